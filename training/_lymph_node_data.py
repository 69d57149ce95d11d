"""The lymph-node cohort and its training arrays.

A lymph-node cohort is a training cohort (:func:`training.dataset.discover_cases`) whose
``truth.csv`` has an ``n_status`` column (0 N0, 1 N+) and whose patient folders hold
``organs.nii.gz``, ``nodes.nii.gz`` and ``lymph_nodes.json``
(:mod:`pancreas_contracts.lymph_nodes`); ``label.nii.gz``'s ``tumor`` label is the PDAC.

Per patient, cut exactly as :class:`inference.tasks.lymph_nodes.task.LymphNodeModel` cuts
at analysis (:func:`inference.preprocessing.preprocess_volume`):

* the organ cube around the scan's middle and its truth structures (channel ``k`` =
  ``ATTENTION_STRUCTURES[k - 1]``);
* the node cube, centred on the truth structures' bounding box (on the organ cube) plus a
  per-patient jitter (its centre is kept), with ``A^all`` computed from the **truth**
  structures on the organ cube and resampled onto it (training replaces it with the predicted
  structures' once the organ segmenter is trained, as the analysis uses those) and the truth
  node instances (``nodes.nii.gz``'s ids, so that sampling can pick a node, not a voxel);
* one crop per truth node, centred on its centre of mass, at the node grid's spacing, with
  its metastatic flag;
* the tumor slices of the truth PDAC mask (none for a tumor-free patient).

Arrays are cached as ``.npz`` under the run's ``cache/`` folder, named by patient, sizes and
the source files' fingerprint.
"""

from __future__ import annotations

import csv
import hashlib
import itertools
import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt

from inference.parallel import ordered_map
from inference.preprocessing import PreprocessConfig, preprocess_volume
from inference.tasks.lymph_nodes.attention import attention_maps
from inference.tasks.lymph_nodes.patient import tumor_slices
from inference.volume import Volume, read_nifti
from inference.volume_io import resample_to_reference
from pancreas_contracts.labels import label_by_name
from pancreas_contracts.lymph_nodes import (
    ATTENTION_STRUCTURES,
    LYMPH_NODES_FILE,
    NODES_FILE,
    ORGANS_FILE,
    NodeTruth,
)
from training.dataset import CaseRecord, discover_cases, source_fingerprint
from training.lymph_node_config import LymphNodeConfig

__all__ = [
    "NO_NODES",
    "CaseArrays",
    "CaseVolumes",
    "LymphNodeCase",
    "around",
    "discover_lymph_node_cases",
    "load_case_arrays",
    "node_centres",
    "node_crop",
    "read_case_volumes",
    "seg_attention",
]

TUMOR_LABEL = label_by_name("tumor").value
NO_NODES = (
    "has no lymph-node truth (organs.nii.gz, nodes.nii.gz, lymph_nodes.json and truth.csv's "
    "n_status): generate it with `pancreas-node phantom --variation wide --lymph-nodes` or "
    "with the held-out generator (`--generator holdout`, nodes on by default)"
)
FloatArray = npt.NDArray[np.float32]
#: ``organs.nii.gz`` value -> the organ segmenter's channel.
_CHANNEL = np.zeros(256, dtype=np.uint8)
for _index, _structure in enumerate(ATTENTION_STRUCTURES, start=1):
    _CHANNEL[_structure.value] = _index


@dataclass(frozen=True)
class LymphNodeCase:
    """One patient of a lymph-node cohort.

    Attributes
    ----------
    record
        The training case (image, label map).
    organs, nodes
        ``organs.nii.gz`` and ``nodes.nii.gz``.
    truth
        The nodes of ``lymph_nodes.json``.
    n_status
        0 (N0) or 1 (N+), from ``truth.csv``.
    """

    record: CaseRecord
    organs: Path
    nodes: Path
    truth: tuple[NodeTruth, ...]
    n_status: int

    @property
    def patient_id(self) -> str:
        """The patient."""
        return self.record.patient_id


def _n_status(data: Path) -> dict[str, int]:
    with (data / "truth.csv").open(newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    if not rows or "n_status" not in rows[0]:
        raise ValueError(f"cohort {data.name} {NO_NODES}")
    out = {}
    for row in rows:
        cell = (row.get("n_status") or "").strip()
        if cell not in ("0", "1"):
            raise ValueError(f"truth.csv: n_status of {row.get('patient_id')!r} must be 0 or 1")
        out[row["patient_id"].strip()] = int(cell)
    return out


def discover_lymph_node_cases(data: Path) -> list[LymphNodeCase]:
    """The cohort's patients with their node truth (see the module docstring).

    Raises
    ------
    ValueError
        On an unreadable cohort or a patient without lymph-node truth (the message says how
        to generate it).
    """
    records = discover_cases(data)
    status = _n_status(data)
    cases = []
    for record in records:
        folder = data / record.patient_id
        files = [folder / name for name in (ORGANS_FILE, NODES_FILE, LYMPH_NODES_FILE)]
        if not all(f.is_file() for f in files) or record.patient_id not in status:
            raise ValueError(f"patient {record.patient_id} of cohort {data.name} {NO_NODES}")
        document = json.loads(files[2].read_text(encoding="utf-8"))
        truth = tuple(NodeTruth.model_validate(entry) for entry in document)
        cases.append(LymphNodeCase(record, files[0], files[1], truth, status[record.patient_id]))
    return cases


@dataclass(frozen=True, eq=False)
class CaseVolumes:
    """One patient's volumes: CT, structures, node instances and PDAC mask (``None``: none)."""

    image: Volume
    organs: Volume
    nodes: Volume
    tumor: Volume | None


def read_case_volumes(case: LymphNodeCase) -> CaseVolumes:
    """Read the CT, ``organs.nii.gz``, ``nodes.nii.gz`` and the PDAC mask of ``label.nii.gz``.

    Raises
    ------
    ValueError
        If the patient has no NIfTI image.
    """
    if case.record.image is None:
        raise ValueError(f"patient {case.patient_id}: lymph-node training needs image.nii.gz")
    tumor = None
    if case.record.label is not None:
        label = read_nifti(case.record.label)
        mask = np.asarray(label.array) == TUMOR_LABEL
        tumor = Volume(mask.astype(np.uint8), label.affine) if mask.any() else None
    ct = read_nifti(case.record.image)  # float32 once, not per cube cut from it
    image = Volume(np.asarray(ct.array, dtype=np.float32), ct.affine)
    return CaseVolumes(image, read_nifti(case.organs), read_nifti(case.nodes), tumor)


def cube_affine(centre: Sequence[float], size: int, cube_mm: float) -> npt.NDArray[np.float64]:
    """The affine of the analysis cube of ``size`` voxels and ``cube_mm`` mm at ``centre``."""
    spacing = cube_mm / size
    affine = np.diag([spacing, spacing, spacing, 1.0])
    affine[:3, 3] = np.asarray(centre, dtype=np.float64) - spacing * (size - 1) / 2.0
    return affine


def scan_middle(volume: Volume) -> tuple[float, float, float]:
    """RAS+ mm of the volume's middle voxel (the organ cube's centre at analysis)."""
    middle = (np.asarray(volume.shape, dtype=np.float64) - 1.0) / 2.0
    x, y, z = volume.voxel_to_world(middle[None, :])[0]
    return (float(x), float(y), float(z))


def around(volume: Volume, centre_ras: Sequence[float], half_mm: float, margin: int = 4) -> Volume:
    """The voxels of ``volume`` within ``half_mm`` of ``centre_ras`` per world axis, plus a margin.

    Whole-voxel slicing (values and world positions unchanged), so that cutting a small cube
    does not convert or smooth the whole scan; the margin covers the interpolation and the
    anti-aliasing filter of :func:`inference.preprocessing.preprocess_volume` at the cube's
    border.
    """
    corners = np.array(list(itertools.product(*[(c - half_mm, c + half_mm) for c in centre_ras])))
    index = volume.world_to_voxel(corners)
    shape = np.asarray(volume.shape)
    low = np.clip(np.floor(index.min(axis=0)).astype(int) - margin, 0, shape)
    high = np.clip(np.ceil(index.max(axis=0)).astype(int) + margin + 1, 0, shape)
    if np.any(high - low < 2):
        return volume
    affine = volume.affine.copy()
    affine[:3, 3] = volume.voxel_to_world(low[None, :].astype(np.float64))[0]
    (i0, j0, k0), (i1, j1, k1) = low, high
    return Volume(np.asarray(volume.array)[i0:i1, j0:j1, k0:k1], affine)


def node_crop(image: Volume, centre_ras: Sequence[float], size: int, crop_mm: float) -> FloatArray:
    """The classifier's crop of ``size`` voxels and ``crop_mm`` mm around a node (as analysed)."""
    config = PreprocessConfig(target_size=size, cube_mm=crop_mm)
    part = around(image, centre_ras, crop_mm * 0.5 * np.sqrt(3.0))
    return preprocess_volume(part, config, centre_mm=centre_ras).image


def node_centres(nodes: Volume, truth: Sequence[NodeTruth]) -> list[tuple[float, float, float]]:
    """RAS+ centre of mass of each truth node on ``nodes`` (its recorded centre if absent)."""
    values = np.asarray(nodes.array)
    centres = []
    for node in truth:
        index = np.argwhere(values == node.node_id)
        if len(index):
            x, y, z = nodes.voxel_to_world(index.astype(np.float64)).mean(axis=0)
        else:
            lx, ly, z = node.centre_lps_mm
            x, y = -lx, -ly
        centres.append((float(x), float(y), float(z)))
    return centres


@dataclass(frozen=True, eq=False)
class CaseArrays:
    """One patient's training arrays (see the module docstring)."""

    organ_image: FloatArray
    organ_labels: npt.NDArray[np.uint8]
    seg_image: FloatArray
    seg_attention: FloatArray
    seg_nodes: npt.NDArray[np.uint8]
    seg_centre: npt.NDArray[np.float64]
    crops: FloatArray
    crop_labels: npt.NDArray[np.int64]
    slice_images: FloatArray
    slice_masks: FloatArray

    def as_dict(self) -> dict[str, npt.NDArray[np.generic]]:
        """Name -> array (the cache file's entries)."""
        return dict(vars(self))


def _structures_centre(labels: npt.NDArray[np.uint8], affine: npt.NDArray[np.float64]) -> (
    npt.NDArray[np.float64] | None
):  # fmt: skip
    index = np.argwhere(labels > 0)
    if len(index) == 0:
        return None
    middle = (index.min(axis=0) + index.max(axis=0)) / 2.0
    centre: npt.NDArray[np.float64] = Volume(labels, affine).voxel_to_world(middle[None, :])[0]
    return centre


def _organ_cube(volumes: CaseVolumes, config: LymphNodeConfig) -> tuple[Volume, FloatArray]:
    organs = config.organs
    centre = scan_middle(volumes.image)
    cube = preprocess_volume(
        volumes.image, PreprocessConfig(organs.cube_size, organs.cube_mm), volumes.organs, centre
    )
    assert cube.label is not None
    labels = Volume(cube.label, cube_affine(centre, organs.cube_size, organs.cube_mm))
    return labels, cube.image


def seg_attention(organs: Volume, centre: Sequence[float], config: LymphNodeConfig) -> FloatArray:
    """``A^all`` of the structures in ``organs`` on the node cube centred at ``centre``."""
    seg = config.segmenter
    combined = attention_maps(np.asarray(organs.array), organs.spacing).combined
    reference = Volume(np.zeros((seg.cube_size,) * 3, np.float32),
                       cube_affine(centre, seg.cube_size, seg.cube_mm))  # fmt: skip
    moved = resample_to_reference(Volume(combined, organs.affine), reference, 1)
    return np.clip(np.asarray(moved.array, dtype=np.float32), 0.0, 1.0)


def _seg_cube(
    volumes: CaseVolumes, organs: Volume, config: LymphNodeConfig, jitter: Sequence[float]
) -> tuple[FloatArray, FloatArray, npt.NDArray[np.uint8], npt.NDArray[np.float64]]:
    seg = config.segmenter
    found = _structures_centre(np.asarray(organs.array, dtype=np.uint8), organs.affine)
    centre = (found if found is not None else np.asarray(scan_middle(organs))) + np.asarray(jitter)
    cube = preprocess_volume(
        volumes.image, PreprocessConfig(seg.cube_size, seg.cube_mm), volumes.nodes, centre
    )
    assert cube.label is not None
    attention = seg_attention(organs, centre, config)
    return cube.image, attention, cube.label.astype(np.uint8), centre.astype(np.float64)


def _slices(volumes: CaseVolumes, config: LymphNodeConfig) -> tuple[FloatArray, FloatArray]:
    found = None
    if volumes.tumor is not None:
        index = np.argwhere(np.asarray(volumes.tumor.array) > 0).astype(np.float64)
        world = volumes.tumor.voxel_to_world(np.stack([index.min(axis=0), index.max(axis=0)]))
        centre = world.mean(axis=0)
        half = float(np.abs(world[1] - world[0]).max()) / 2 + config.patient.patch_mm
        image, tumor = (around(v, centre, half) for v in (volumes.image, volumes.tumor))
        found = tumor_slices(image, tumor, config.patient)
    if found is None:
        empty = np.zeros((0, config.patient.patch_size, config.patient.patch_size), np.float32)
        return empty, empty.copy()
    return found.images, found.masks


def case_arrays(
    case: LymphNodeCase, config: LymphNodeConfig, jitter: Sequence[float]
) -> CaseArrays:
    """Read one patient and cut its training arrays."""
    volumes = read_case_volumes(case)
    organs, organ_image = _organ_cube(volumes, config)
    seg_image, attention, seg_nodes, seg_centre = _seg_cube(volumes, organs, config, jitter)
    size = config.classifier.crop_size
    crop_mm = size * config.segmenter.spacing_mm
    centres = node_centres(volumes.nodes, case.truth)
    crops = [node_crop(volumes.image, c, size, crop_mm) for c in centres]
    slice_images, slice_masks = _slices(volumes, config)
    return CaseArrays(
        organ_image=organ_image,
        organ_labels=_CHANNEL[np.asarray(organs.array, dtype=np.uint8)],
        seg_image=seg_image, seg_attention=attention, seg_nodes=seg_nodes, seg_centre=seg_centre,
        crops=np.stack(crops).astype(np.float32) if crops else np.zeros((0, size, size, size),
                                                                         np.float32),
        crop_labels=np.array([int(n.metastatic) for n in case.truth], dtype=np.int64),
        slice_images=slice_images, slice_masks=slice_masks,
    )  # fmt: skip


#: Bumped when :class:`CaseArrays` changes, so that older cache files are not read.
_ARRAYS_VERSION = 2


def _fingerprint(case: LymphNodeCase, config: LymphNodeConfig) -> str:
    digest = hashlib.sha256(f"{_ARRAYS_VERSION}\0{source_fingerprint(case.record)}".encode())
    for path in (case.organs, case.nodes):
        stat = path.stat()
        digest.update(f"{path.resolve()}\0{stat.st_size}\0{stat.st_mtime_ns}\n".encode())
    sizes = {k: config.to_dict()[k] for k in ("organs", "segmenter", "classifier", "patient")}
    digest.update(json.dumps([sizes, config.roi_jitter_mm, config.seed], sort_keys=True).encode())
    return digest.hexdigest()[:16]


def _cached(
    pair: tuple[LymphNodeCase, tuple[float, float, float]], config: LymphNodeConfig, cache: Path
) -> CaseArrays:
    case, jitter = pair
    file = cache / f"{case.patient_id}_ln_{_fingerprint(case, config)}.npz"
    if file.is_file():
        with np.load(file) as saved:
            return CaseArrays(**{key: saved[key] for key in saved.files})
    arrays = case_arrays(case, config, jitter)
    cache.mkdir(parents=True, exist_ok=True)
    partial = file.with_suffix(".partial.npz")
    np.savez_compressed(partial, allow_pickle=False, **arrays.as_dict())
    partial.replace(file)
    return arrays


def load_case_arrays(
    cases: Sequence[LymphNodeCase], config: LymphNodeConfig, cache: Path
) -> list[CaseArrays]:
    """Every patient's arrays (from the cache, else cut and cached), ``config.workers`` at once."""
    rng = np.random.default_rng(config.seed)
    jitters = [
        tuple(float(v) for v in rng.uniform(-config.roi_jitter_mm, config.roi_jitter_mm, 3))
        for _ in cases
    ]
    pairs = list(zip(cases, jitters, strict=True))
    return list(ordered_map(_cached, pairs, config, cache, workers=config.workers))
