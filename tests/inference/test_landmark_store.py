"""The node's contrast landmarks, kept for the worker (inference.landmark_store)."""

from __future__ import annotations

import dataclasses
import os
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from inference import read_dicom_series
from inference.analysis import (
    Analyzer,
    CrossCheckedLocaliser,
    LandmarkLocaliser,
    LocalisationEstimate,
)
from inference.contrast_phase import (
    ContrastLandmarks,
    VesselLandmark,
    estimate_series_phase,
    locate_contrast_landmarks,
)
from inference.landmark_store import LandmarkStore, series_key
from inference.volume import Volume
from phantom import PhantomOptions, generate_cohort
from training.structure_bundle import build_test_bundle

torch.set_num_threads(2)


@pytest.fixture(scope="module")
def series(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    """A phantom CT's files (3 mm slices, 1.5 mm pixels: the scale bench's size)."""
    options = PhantomOptions(fov_mm=(320.0, 320.0, 240.0), pixel_spacing=2.0, slice_thickness=4.0)
    (patient,) = generate_cohort(tmp_path_factory.mktemp("phantom"), 1, 3, options)
    return sorted(patient.dicom_dir.glob("*.dcm"))


@pytest.fixture(scope="module")
def landmarks(series: list[Path]) -> ContrastLandmarks:
    return locate_contrast_landmarks(read_dicom_series(series).volume)


def _same(a: ContrastLandmarks, b: ContrastLandmarks) -> None:
    for field in dataclasses.fields(ContrastLandmarks):
        x, y = getattr(a, field.name), getattr(b, field.name)
        if isinstance(x, VesselLandmark):
            assert isinstance(y, VesselLandmark)
            for part in dataclasses.fields(VesselLandmark):
                np.testing.assert_array_equal(getattr(x, part.name), getattr(y, part.name))
        elif isinstance(x, np.ndarray):
            np.testing.assert_array_equal(x, y)
        else:
            assert x == y, field.name


def test_landmarks_come_back_exactly_for_the_same_files(
    series: list[Path], landmarks: ContrastLandmarks, tmp_path: Path
) -> None:
    assert landmarks.aorta is not None and landmarks.portal_vein is not None
    store = LandmarkStore(tmp_path / "landmarks")
    assert store.get(series) is None
    store.put(series, landmarks)
    back = store.get(list(reversed(series)))  # the key does not depend on the files' order
    assert back is not None
    _same(back, landmarks)


def test_landmarks_of_an_empty_volume_round_trip(tmp_path: Path, series: list[Path]) -> None:
    nothing = ContrastLandmarks((4, 4, 2), (2.5, 2.5, 2.5), 0.0, None, None, None, None)
    store = LandmarkStore(tmp_path)
    store.put(series, nothing)
    back = store.get(series)
    assert back is not None
    _same(back, nothing)


def test_a_changed_added_or_missing_file_finds_no_entry(
    series: list[Path], landmarks: ContrastLandmarks, tmp_path: Path
) -> None:
    files = []
    for path in series[:6]:
        copy = tmp_path / "series" / path.name
        copy.parent.mkdir(exist_ok=True)
        copy.write_bytes(path.read_bytes())
        files.append(copy)
    store = LandmarkStore(tmp_path / "landmarks")
    store.put(files, landmarks)
    assert store.get(files) is not None
    assert store.get(files[:-1]) is None
    # An instance sent again is renamed into place: a new modification time.
    stat = files[0].stat()
    os.utime(files[0], ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000))
    assert store.get(files) is None
    assert series_key(files) != series_key(series[:6])


def test_an_unreadable_entry_is_a_miss(
    series: list[Path], landmarks: ContrastLandmarks, tmp_path: Path
) -> None:
    store = LandmarkStore(tmp_path)
    store.put(series, landmarks)
    (tmp_path / f"{series_key(series)}.json").write_text('{"format": 1, "aorta": ')
    assert store.get(series) is None
    (tmp_path / f"{series_key(series)}.json").write_text('{"format": 99}')
    assert store.get(series) is None


def test_an_unwritable_store_only_logs(
    series: list[Path], landmarks: ContrastLandmarks, tmp_path: Path
) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("")
    LandmarkStore(blocker / "landmarks").put(series, landmarks)  # no exception
    assert LandmarkStore(blocker / "landmarks").get(series) is None


def test_old_entries_are_pruned_when_one_is_put(
    series: list[Path], landmarks: ContrastLandmarks, tmp_path: Path
) -> None:
    store = LandmarkStore(tmp_path)
    old = tmp_path / ("0" * 64 + ".json")
    old.write_text("{}")
    day_ago = time.time() - 2 * 24 * 3600
    os.utime(old, (day_ago, day_ago))
    fresh = tmp_path / ("1" * 64 + ".json")
    fresh.write_text("{}")
    store.put(series, landmarks)
    assert not old.exists() and fresh.exists()
    assert store.get(series) is not None


def test_the_node_estimator_keeps_what_it_found(
    series: list[Path], landmarks: ContrastLandmarks, tmp_path: Path
) -> None:
    store = LandmarkStore(tmp_path)
    assert estimate_series_phase(series, store) == estimate_series_phase(series)
    kept = store.get(series)
    assert kept is not None
    _same(kept, landmarks)


def test_a_localiser_with_known_landmarks_uses_them_and_not_the_volume(
    series: list[Path], landmarks: ContrastLandmarks
) -> None:
    volume = read_dicom_series(series).volume
    found = LandmarkLocaliser()(volume)
    assert found.found
    known = LandmarkLocaliser(known=landmarks)
    assert known(volume) == found
    # Known landmarks are not checked against the volume: an empty volume gives the same.
    blank = Volume(np.full(volume.shape, -1000.0, dtype=np.float32), volume.affine)
    assert LandmarkLocaliser()(blank).method == "volume centre"
    assert known(blank) == found


class _FixedLocaliser:
    """A learned-localiser stand-in with a fixed estimate."""

    def __init__(self, estimate: LocalisationEstimate) -> None:
        self.estimate = estimate

    def __call__(self, volume: Volume) -> LocalisationEstimate:
        return self.estimate


def test_the_analyzer_reuses_the_node_landmarks_and_gives_the_same_result(
    series: list[Path], landmarks: ContrastLandmarks, tmp_path: Path
) -> None:
    bundle = build_test_bundle(tmp_path / "bundle")
    store = LandmarkStore(tmp_path / "landmarks")
    plain = Analyzer(bundle, "cpu")
    reusing = Analyzer(bundle, "cpu", landmark_store=store)
    first = plain.analyze(series, None, out_dir=tmp_path / "plain")
    estimate_series_phase(series, store)
    second = reusing.analyze(series, None, out_dir=tmp_path / "reused")
    ignore = {"timings_s", "outputs", "created_at", "analysed_at"}
    assert first.result.model_dump(exclude=ignore) == second.result.model_dump(exclude=ignore)
    # The kept landmarks are what the localiser used: others give another localisation.
    moved = dataclasses.replace(
        landmarks,
        aorta=None if landmarks.aorta is None else _shifted(landmarks.aorta),
        portal_vein=None if landmarks.portal_vein is None else _shifted(landmarks.portal_vein),
    )
    store.put(series, moved)
    third = reusing.analyze(series, None, out_dir=tmp_path / "moved")
    assert third.result.localisation.box_mm != first.result.localisation.box_mm
    assert third.result.localisation.box_mm[0] == pytest.approx(
        first.result.localisation.box_mm[0] + 20.0
    )


def _shifted(vessel: VesselLandmark) -> VesselLandmark:
    return dataclasses.replace(
        vessel, centreline_ras=vessel.centreline_ras + np.array([20.0, 0.0, 0.0])
    )


def test_a_cross_checked_localiser_passes_them_to_its_reference(
    landmarks: ContrastLandmarks,
) -> None:
    from inference._analysis_localise import with_known_landmarks

    learned = _FixedLocaliser(
        LocalisationEstimate((0.0, 0.0, 0.0), (0.0,) * 6, 0.9, True, "learned")
    )
    checked = with_known_landmarks(CrossCheckedLocaliser(learned, LandmarkLocaliser()), landmarks)
    assert isinstance(checked, CrossCheckedLocaliser)
    assert checked.primary is learned
    assert isinstance(checked.reference, LandmarkLocaliser)
    assert checked.reference.known is landmarks
    assert with_known_landmarks(learned, landmarks) is learned
