"""What the two DICOM importers share: finding cases, sorting files, the CT grid, redaction.

A source folder is one case when DICOM files lie directly in it, else each sub-folder (sorted
by name) is one case. In a case folder (walked recursively) files with Modality ``SEG`` or
``RTSTRUCT`` are the annotations; every other DICOM file goes to the CT series reader.

Patient identifiers are read into memory only: the registry key (PatientID) and the redaction
of a source folder name that holds a name or an id; nothing here logs or returns them
otherwise.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pydicom
from pydicom.errors import InvalidDicomError

from inference.volume import Volume
from inference.volume_io import DicomVolume, read_dicom_series, resample_to_reference
from pancreas_contracts.labels import label_by_name

__all__ = [
    "DicomCase",
    "case_folders",
    "case_ids",
    "paint",
    "read_case",
    "to_ct_grid",
]

_ANNOTATIONS = frozenset({"SEG", "RTSTRUCT"})


@dataclass(frozen=True)
class DicomCase:
    """One case folder, split.

    Attributes
    ----------
    ct
        The CT series read by :func:`inference.volume_io.read_dicom_series`.
    ct_files
        The files the CT reader was given.
    annotations
        The SEG / RTSTRUCT files of the wanted modality.
    identifiers
        PatientName, PatientID and PatientBirthDate of the CT (memory only, for redaction).
    registry_key
        The CT's PatientID (memory only).
    study_date
        The CT's StudyDate (``YYYYMMDD``) or ``""``.
    """

    ct: DicomVolume
    ct_files: tuple[Path, ...]
    annotations: tuple[Path, ...]
    identifiers: frozenset[str] = field(repr=False)
    registry_key: str = field(repr=False)
    study_date: str = ""


def _is_dicom(path: Path) -> bool:
    if not path.is_file() or path.name.startswith(".") or path.name.upper() == "DICOMDIR":
        return False
    with path.open("rb") as handle:
        handle.seek(128)
        return handle.read(4) == b"DICM" or path.suffix.lower() in {".dcm", ".dicom"}


def case_folders(source: Path) -> list[Path]:
    """The case folders of a DICOM source (see the module docstring).

    Raises
    ------
    ValueError
        If ``source`` holds no DICOM file and no sub-folder.
    """
    if not source.is_dir():
        raise ValueError(f"--source {source.name} is not a folder")
    if any(_is_dicom(p) for p in source.iterdir()):
        return [source]
    folders = sorted(p for p in source.iterdir() if p.is_dir() and not p.name.startswith("."))
    if not folders:
        raise ValueError(f"--source {source.name} holds no DICOM file and no case folder")
    return folders


def case_ids(count: int, case_id: str | None) -> list[str]:
    """``case_id`` for a one-case source, else ``case-0001``, ``case-0002``, ...

    Raises
    ------
    ValueError
        If ``case_id`` is given for a source of several cases.
    """
    if case_id is not None:
        if count != 1:
            raise ValueError(f"--case-id names one case, but the source holds {count} cases")
        return [case_id]
    return [f"case-{n:04d}" for n in range(1, count + 1)]


def read_case(folder: Path, modality: str) -> DicomCase:
    """Split ``folder`` into its CT series and its ``modality`` annotation files, read the CT.

    Raises
    ------
    ValueError
        If the folder holds no ``modality`` file.
    """
    ct_files: list[Path] = []
    annotations: list[Path] = []
    for path in sorted(folder.rglob("*")):
        if not _is_dicom(path):
            continue
        try:
            header = pydicom.dcmread(path, stop_before_pixels=True, force=True)
        except (InvalidDicomError, OSError, ValueError, EOFError):
            continue
        kind = str(header.get("Modality", ""))
        if kind == modality:
            annotations.append(path)
        elif kind not in _ANNOTATIONS:
            ct_files.append(path)
    if not annotations:
        raise ValueError(f"a case folder holds no {modality} object")
    ct = read_dicom_series(ct_files)
    first = pydicom.dcmread(ct_files[0], stop_before_pixels=True, force=True)
    identifiers = {
        str(first.get(tag, "")).strip() for tag in ("PatientName", "PatientID", "PatientBirthDate")
    }
    return DicomCase(
        ct=ct,
        ct_files=tuple(ct_files),
        annotations=tuple(annotations),
        identifiers=frozenset(i for i in identifiers if len(i) >= 3),
        registry_key=str(first.get("PatientID", "")).strip(),
        study_date=str(first.get("StudyDate", "")).strip(),
    )


def to_ct_grid(native: npt.NDArray[np.uint8], ct: DicomVolume) -> Volume:
    """A ``(slice, row, column)`` label array in the CT's slice order, on the CT's grid.

    Slice ``k`` belongs to ``ct.sop_instance_uids[k]``; the result lies on ``ct.volume``'s
    canonical grid (flips and permutations only, values copied exactly).
    """
    native_volume = Volume(np.ascontiguousarray(native.transpose(2, 1, 0)), ct.native_affine)
    on_grid = resample_to_reference(native_volume, ct.volume, order=0)
    return Volume(np.asarray(on_grid.array, dtype=np.uint8), ct.volume.affine)


def paint(
    shape: tuple[int, ...], masks: Iterable[tuple[str, npt.NDArray[np.bool_]]]
) -> npt.NDArray[np.uint8]:
    """A label array from ``(project label name, mask)`` pairs.

    Overlaps go to the higher label value (painted last): a tumor inside the pancreas stays
    tumor, a duct or vessel inside it stays duct or vessel.
    """
    result = np.zeros(shape, dtype=np.uint8)
    ordered = sorted(masks, key=lambda item: label_by_name(item[0]).value)
    for name, mask in ordered:
        result[mask] = label_by_name(name).value
    return result
