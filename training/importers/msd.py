"""Medical Segmentation Decathlon and nnU-Net (v1 and v2) dataset folders.

Both keep a ``dataset.json`` beside ``imagesTr/`` and ``labelsTr/``:

* MSD (and nnU-Net v1): ``"labels": {"0": "background", "1": "pancreas", "2": "cancer"}``
  (value -> name) and ``"training": [{"image": "./imagesTr/x.nii.gz", "label":
  "./labelsTr/x.nii.gz"}, ...]``; an image listed as ``x.nii.gz`` that exists only as
  nnU-Net v1's ``x_0000.nii.gz`` is found too.
* nnU-Net v2: ``"labels": {"background": 0, "pancreas": 1, ...}`` (name -> value),
  ``"file_ending": ".nii.gz"``, ``imagesTr/<case>_0000<ending>`` and
  ``labelsTr/<case><ending>``. Region-based labels (a name with a list of values) are refused.

The case id is the label file's name without its ending (``pancreas_001``). Each source label
is mapped by value, then by its dataset.json name; every structure a declared label maps to is
labelled in every case, voxels or not.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from inference.volume import read_nifti
from training.importers.cohort_writer import ImportedCase
from training.importers.mapping import LabelMapping
from training.importers.nifti_pairs import case_from_label_map

__all__ = ["MsdDataset", "read_msd", "scan_msd"]


class MsdDataset:
    """A parsed dataset.json.

    Attributes
    ----------
    style
        ``msd`` (value -> name labels, training list) or ``nnunet-v2``.
    labels
        Source value -> its names.
    cases
        ``(case id, image, label)`` paths.
    """

    def __init__(
        self,
        style: str,
        labels: Mapping[int, tuple[str, ...]],
        cases: list[tuple[str, Path, Path]],
    ) -> None:
        self.style = style
        self.labels = dict(labels)
        self.cases = cases


def _ending(name: str) -> str:
    return ".nii.gz" if name.endswith(".nii.gz") else Path(name).suffix


def _msd_labels(raw: Mapping[str, Any]) -> dict[int, tuple[str, ...]]:
    labels: dict[int, tuple[str, ...]] = {}
    for key, name in raw.items():
        try:
            labels[int(key)] = (str(name),)
        except ValueError:
            raise ValueError(f"dataset.json: label key {key!r} is not an integer") from None
    return labels


def _v2_labels(raw: Mapping[str, Any]) -> dict[int, tuple[str, ...]]:
    labels: dict[int, tuple[str, ...]] = {}
    for name, value in raw.items():
        if isinstance(value, list | tuple):
            raise ValueError(
                f"dataset.json: region-based label {name!r} (a list of values) is not supported"
            )
        labels.setdefault(int(value), ())
        labels[int(value)] += (str(name),)
    return labels


def _msd_cases(source: Path, training: list[Any]) -> list[tuple[str, Path, Path]]:
    cases = []
    for entry in training:
        image = source / str(entry["image"])
        label = source / str(entry["label"])
        ending = _ending(label.name)
        if not image.is_file():
            v1 = image.with_name(image.name.removesuffix(ending) + "_0000" + ending)
            image = v1 if v1.is_file() else image
        cases.append((label.name.removesuffix(ending), image, label))
    return cases


def _v2_cases(source: Path, ending: str) -> list[tuple[str, Path, Path]]:
    cases = []
    for label in sorted((source / "labelsTr").glob(f"*{ending}")):
        if label.name.startswith("."):
            continue
        case = label.name.removesuffix(ending)
        cases.append((case, source / "imagesTr" / f"{case}_0000{ending}", label))
    return cases


def scan_msd(source: Path) -> MsdDataset:
    """Parse ``source/dataset.json`` and list the training cases.

    Raises
    ------
    ValueError
        If dataset.json is missing or malformed, or a listed file is absent.
    """
    path = source / "dataset.json"
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ValueError(f"{source.name}: no dataset.json") from None
    except json.JSONDecodeError as exc:
        raise ValueError(f"{source.name}/dataset.json: not valid JSON: {exc}") from exc
    raw_labels = data.get("labels")
    if not isinstance(raw_labels, dict) or not raw_labels:
        raise ValueError(f"{source.name}/dataset.json: no labels")
    values = list(raw_labels.values())
    if "file_ending" in data or all(isinstance(v, int | list) for v in values):
        style = "nnunet-v2"
        labels = _v2_labels(raw_labels)
        channels = data.get("channel_names", data.get("modality", {"0": "CT"}))
        if isinstance(channels, dict) and len(channels) > 1:
            raise ValueError(f"{source.name}: {len(channels)} input channels; CT needs one")
        cases = _v2_cases(source, str(data.get("file_ending", ".nii.gz")))
    else:
        style = "msd"
        labels = _msd_labels(raw_labels)
        training = data.get("training")
        if not isinstance(training, list):
            raise ValueError(f"{source.name}/dataset.json: no training list")
        cases = _msd_cases(source, training)
    if not cases:
        raise ValueError(f"{source.name}: dataset.json lists no training case")
    for case, image, label in cases:
        for what, file in (("image", image), ("label", label)):
            if not file.is_file():
                raise ValueError(f"{source.name}: case {case}: {what} {file.name} missing")
    return MsdDataset(style, labels, cases)


def read_msd(source: Path, mapping: LabelMapping) -> Iterator[ImportedCase]:
    """Yield an MSD / nnU-Net dataset's training cases, one at a time."""
    dataset = scan_msd(source)
    for case_id, image_path, label_path in dataset.cases:
        yield case_from_label_map(
            case_id, read_nifti(image_path), read_nifti(label_path), mapping, dataset.labels
        )
