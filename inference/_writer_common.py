"""Helpers shared by the SEG, SR and encapsulated PDF writers.

Source headers (the CT series the objects derive from), equipment identification (PS3.3 C.7.5.1
General Equipment), the model's identification (PS3.3 Table 10-19 Algorithm Identification
Macro) and an all-or-nothing file write.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import TypeGuard

import highdicom as hd
from pydicom.dataset import Dataset

from inference._dicom_read import collect_files, drop_pixel_data, scan
from inference._volume_errors import MultipleSeriesError, NotAnImageError, SeriesNotFoundError
from inference.dicom_codes import ALGORITHM_FAMILY, MANUFACTURER
from pancreas_contracts.result import AnalysisResult, BundleRef

__all__ = [
    "SourceImages",
    "algorithm_sequence",
    "bundle_of",
    "device_serial_number",
    "load_source_headers",
    "node_software_version",
    "save_atomically",
]

#: The source CT series: its directory, its files, or its (header) data sets.
SourceImages = Path | str | Sequence[Path | str] | Sequence[Dataset]


def _are_datasets(source: object) -> TypeGuard[Sequence[Dataset]]:
    return (
        isinstance(source, Sequence)
        and not isinstance(source, str)
        and len(source) > 0
        and all(isinstance(item, Dataset) for item in source)
    )


def load_source_headers(source: SourceImages, series_uid: str | None = None) -> list[Dataset]:
    """Headers of the source image series, without pixel data.

    Parameters
    ----------
    source
        A directory (walked recursively), files, or data sets already read. Data sets are
        returned as given (they must all belong to one series); files are read with
        :func:`inference._dicom_read.scan`, so non-image instances (an earlier SEG or SR in the
        same folder) are skipped.
    series_uid
        SeriesInstanceUID to keep when ``source`` holds several image series.

    Returns
    -------
    list of pydicom.dataset.Dataset
        One per instance, in the order found (the writers never rely on file order).

    Raises
    ------
    NotAnImageError
        No image instance in ``source``.
    MultipleSeriesError
        Several series and no ``series_uid``.
    SeriesNotFoundError
        ``series_uid`` is not among them.
    """
    if _are_datasets(source):
        datasets = list(source)
    else:
        if isinstance(source, Sequence) and not isinstance(source, str):
            paths: Path | str | list[Path | str] = [p for p in source if isinstance(p, Path | str)]
        else:
            paths = source
        datasets = []
        for inst in scan(collect_files(paths)).images:
            drop_pixel_data(inst.dataset)
            datasets.append(inst.dataset)
    groups: dict[str, list[Dataset]] = defaultdict(list)
    for ds in datasets:
        groups[str(ds.get("SeriesInstanceUID", ""))].append(ds)
    if not groups:
        raise NotAnImageError("no image instances in the source")
    if series_uid is not None:
        if series_uid not in groups:
            raise SeriesNotFoundError(f"series {series_uid} not among the source images")
        return groups[series_uid]
    if len(groups) > 1:
        raise MultipleSeriesError(sorted(groups))
    return next(iter(groups.values()))


def bundle_of(result: AnalysisResult | BundleRef) -> BundleRef:
    """The model bundle of a result (or the bundle itself)."""
    return result.bundle if isinstance(result, AnalysisResult) else result


def node_software_version() -> str:
    """Software Versions (0018,1020) value: the installed node package and its version."""
    try:
        return f"pancreas-ai-node {version('pancreas-ai-node')}"
    except PackageNotFoundError:
        return "pancreas-ai-node unknown"


def device_serial_number(bundle: BundleRef) -> str:
    """Device Serial Number of the software device: the bundle hash's first 16 hex digits."""
    return bundle.sha256[:16]


def algorithm_sequence(bundle: BundleRef) -> hd.AlgorithmIdentificationSequence:
    """Algorithm Identification Sequence of the model (PS3.3 C.8.20.2, Table 10-19).

    Name and version are the bundle's; the family is DCM 123110 "Artificial Intelligence"; the
    bundle's SHA-256 is the one parameter, so the exact weights are traceable.
    """
    return hd.AlgorithmIdentificationSequence(
        name=bundle.name,
        family=ALGORITHM_FAMILY,
        version=bundle.version,
        source=MANUFACTURER,
        parameters={"bundle_sha256": bundle.sha256},
    )


def save_atomically(dataset: Dataset, out_path: Path) -> None:
    """Write ``dataset`` as a DICOM file (PS3.10) to ``out_path`` all or nothing.

    The file is written under a temporary name in the same directory and renamed, so a reader
    (or an upload) never sees half an object.
    """
    out_path.parent.mkdir(parents=True, exist_ok=True)
    partial = out_path.with_name(f".{out_path.name}.partial")
    try:
        dataset.save_as(partial, enforce_file_format=True)
        partial.replace(out_path)
    finally:
        partial.unlink(missing_ok=True)
