"""DICOM CT series + RTSTRUCT: contours rasterised with rt-utils.

Each case folder (see :mod:`training.importers._dicom_case`) holds one CT series and one
RTSTRUCT that refers to it. ROI names are mapped through the mapping's ``[names]`` and
``[aliases]`` (case-insensitive; spaces, ``-`` and ``_`` alike); unmapped ROIs are not
labelled, overlaps go to the higher project label value.

The contours are filled by rt-utils (:class:`rt_utils.RTStruct`, OpenCV ``fillPoly`` of the
contour points rounded to pixel centres: a pixel whose centre lies on the contour is inside).
rt-utils 1.2.7 builds each slice mask as ``(Columns, Rows)`` but fills it as ``(row,
column)``, which is right only for square images; a non-square series is refused rather than
read wrong. Its slices are sorted along the slice normal, the order of
:attr:`inference.volume_io.DicomVolume.sop_instance_uids`; the importer hands it the series
in exactly that order.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import numpy.typing as npt
import pydicom

from inference.volume import Volume
from inference.volume_io import DicomVolume
from training.importers._dicom_case import (
    DicomCase,
    case_folders,
    case_ids,
    paint,
    read_case,
    to_ct_grid,
)
from training.importers.cohort_writer import ImportedCase
from training.importers.mapping import LabelMapping

if TYPE_CHECKING:
    from rt_utils import RTStruct

__all__ = ["read_rtstruct", "roi_targets"]


def roi_targets(names: list[str], mapping: LabelMapping) -> dict[str, str]:
    """ROI name -> project label name, for the ROIs ``mapping`` maps."""
    targets: dict[str, str] = {}
    for name in names:
        target = mapping.target(None, [name])
        if target is not None:
            targets[name] = target
    return targets


def _series_datasets(case: DicomCase) -> list[pydicom.Dataset]:
    by_uid: dict[str, pydicom.Dataset] = {}
    for path in case.ct_files:
        ds = pydicom.dcmread(path, force=True)
        by_uid.setdefault(str(ds.get("SOPInstanceUID", "")), ds)
    missing = [uid for uid in case.ct.sop_instance_uids if uid not in by_uid]
    if missing or len(set(case.ct.frame_numbers)) != 1:
        raise ValueError("RTSTRUCT import needs a single-frame CT series")
    return [by_uid[uid] for uid in case.ct.sop_instance_uids]


def _label_volume(structure: RTStruct, ct: DicomVolume, targets: dict[str, str]) -> Volume:
    masks: list[tuple[str, npt.NDArray[np.bool_]]] = []
    for name, target in targets.items():
        # rt-utils: (row, column, slice) for square images; native order is (slice, row, col).
        mask = np.asarray(structure.get_roi_mask_by_name(name), dtype=bool)
        masks.append((target, np.ascontiguousarray(mask.transpose(2, 0, 1))))
    first = structure.series_data[0]
    shape = (len(structure.series_data), int(first.Rows), int(first.Columns))
    return to_ct_grid(paint(shape, masks), ct)


def read_rtstruct(
    source: Path, mapping: LabelMapping, case_id: str | None = None
) -> Iterator[ImportedCase]:
    """Yield the cases of a DICOM CT + RTSTRUCT source, one at a time.

    Parameters
    ----------
    source
        One case folder, or a folder of case folders.
    mapping
        Maps ROI names to project labels.
    case_id
        The case id of a one-case source (default ``case-0001``, ``case-0002``, ...).

    Raises
    ------
    ValueError
        If a case folder holds no RTSTRUCT or several, its CT is not square, or the RTSTRUCT
        refers to another series.
    """
    # Imported here: rt-utils loads OpenCV, which no other command needs at start-up.
    from rt_utils import RTStruct

    folders = case_folders(source)
    for folder, cid in zip(folders, case_ids(len(folders), case_id), strict=True):
        case = read_case(folder, "RTSTRUCT")
        if len(case.annotations) != 1:
            raise ValueError(f"case {cid}: {len(case.annotations)} RTSTRUCT objects; give one")
        series = _series_datasets(case)
        if int(series[0].Rows) != int(series[0].Columns):
            raise ValueError(
                f"case {cid}: the CT is {series[0].Rows} x {series[0].Columns}; rt-utils 1.2.7"
                " fills non-square slices wrongly, so only square series are imported"
            )
        dataset = pydicom.dcmread(case.annotations[0], force=True)
        _check_references(dataset, case.ct)
        structure = RTStruct(series, dataset)
        targets = roi_targets(structure.get_roi_names(), mapping)
        yield ImportedCase(
            case_id=cid,
            image=case.ct.volume,
            label=_label_volume(structure, case.ct, targets),
            labelled=tuple(targets.values()),
            registry_key=case.registry_key,
            study_date=case.study_date,
            identifiers=case.identifiers,
        )


def _check_references(dataset: pydicom.Dataset, ct: DicomVolume) -> None:
    frames = {
        str(item.get("FrameOfReferenceUID", ""))
        for item in dataset.get("ReferencedFrameOfReferenceSequence", [])
    }
    if frames and ct.frame_of_reference_uid and ct.frame_of_reference_uid not in frames:
        raise ValueError("the RTSTRUCT refers to another CT (frame of reference differs)")
