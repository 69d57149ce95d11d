"""The contrast landmarks of a series, found once: by the node's phase check, reused by the worker.

The default routing rule asks for the contrast phase (``dicom_node/rules/default.toml``), so
the node reads every pixel of the series and finds the spine, aorta, IVC and portal vein
(:func:`inference.contrast_phase.locate_contrast_landmarks`, about 1.2 s for a 300-slice CT).
The worker's landmark localiser (:class:`inference.analysis.LandmarkLocaliser`, the check on
the learned localiser) needs exactly these landmarks of exactly that volume, and used to find
them again. :class:`LandmarkStore` keeps them between the two: the node's estimator
(:func:`inference.contrast_phase.estimate_series_phase`) puts them, the
:class:`~inference.analysis.Analyzer` gets them.

Which series
------------
An entry is found only for the same files, unchanged: its key is a SHA-256 over the format,
the node's software version and, for every file in name order, its name, size and
modification time in nanoseconds (``os.stat``). The spool writes each instance once, by
renaming a finished file into place (:mod:`dicom_node.spool`), so an instance sent again, a
file added or removed, or another software version gives another key, and the landmarks are
found again from the pixels. A remote worker that mounts the node's data folder sees the same
names, sizes and times; where it does not, it simply finds no entry. The entry holds no
identifier and no pixel value: positions in millimetres, diameters, median HU and qualities.

Entries older than :data:`MAX_AGE_S` are removed whenever one is put (the node analyses a
series within minutes of its last instance; a retried job finds the landmarks again).
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any, Final

import numpy as np
import numpy.typing as npt

from inference._contrast_calibration import HuCalibration
from inference.contrast_phase import ContrastLandmarks, VesselLandmark

__all__ = ["MAX_AGE_S", "LandmarkStore", "series_key"]

#: Entries older than this (seconds) are removed when one is put.
MAX_AGE_S: Final = 24 * 3600.0
#: Bumped when the entry's layout or the landmark method changes.
_FORMAT: Final = 1
_SUFFIX: Final = ".json"
_log = logging.getLogger(__name__)


def _software_version() -> str:
    try:
        return metadata.version("pancreas-ai-node")
    except metadata.PackageNotFoundError:
        return "unknown"


def series_key(paths: Sequence[Path]) -> str:
    """The key of a series' files as they are now (see the module notes).

    Raises
    ------
    OSError
        If a file cannot be examined.
    """
    digest = hashlib.sha256(f"landmarks {_FORMAT} {_software_version()}\n".encode())
    for path in sorted(Path(p) for p in paths):
        st = path.stat()
        digest.update(f"{path.name}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
    return digest.hexdigest()


@dataclass(frozen=True)
class LandmarkStore:
    """Contrast landmarks by series, one JSON file each under ``root``.

    Parameters
    ----------
    root
        The folder (created when the first entry is put), e.g.
        :attr:`pancreas_contracts.Settings.landmarks_dir`.
    """

    root: Path

    def put(self, paths: Sequence[Path], landmarks: ContrastLandmarks) -> None:
        """Keep ``landmarks`` of the series ``paths``; a failure to write is logged, not raised.

        The entry is written to a temporary file and renamed into place, so a reader sees a
        whole entry or none.
        """
        try:
            key = series_key(paths)
            self.root.mkdir(parents=True, exist_ok=True)
            temporary = self.root / f".{key}.{uuid.uuid4().hex}.tmp"
            temporary.write_text(json.dumps(_encode(landmarks)), encoding="utf-8")
            temporary.replace(self.root / f"{key}{_SUFFIX}")
            self.prune(MAX_AGE_S)
        except OSError as exc:
            _log.warning("contrast landmarks not kept: %s", type(exc).__name__)

    def get(self, paths: Sequence[Path]) -> ContrastLandmarks | None:
        """The landmarks put for exactly these files (``None``: never put, changed, unreadable)."""
        try:
            text = (self.root / f"{series_key(paths)}{_SUFFIX}").read_text(encoding="utf-8")
        except OSError:
            return None
        try:
            return _decode(json.loads(text))
        except (ValueError, KeyError, TypeError) as exc:
            _log.warning("a contrast-landmark entry is unreadable: %s", type(exc).__name__)
            return None

    def prune(self, max_age_s: float) -> int:
        """Remove the entries (and abandoned temporary files) older than ``max_age_s``.

        Returns
        -------
        int
            How many files were removed.
        """
        oldest = time.time() - max_age_s
        removed = 0
        try:
            entries = list(self.root.iterdir())
        except OSError:
            return 0
        for entry in entries:
            try:
                if entry.is_file() and entry.stat().st_mtime < oldest:
                    entry.unlink()
                    removed += 1
            except OSError:
                continue  # pruned by another process meanwhile, or not ours to remove
        return removed


def _array(values: npt.NDArray[np.float64] | None) -> list[Any] | None:
    return None if values is None else values.tolist()


def _vessel(vessel: VesselLandmark | None) -> dict[str, Any] | None:
    if vessel is None:
        return None
    return {
        "centreline_ras": _array(vessel.centreline_ras),
        "diameters_mm": _array(vessel.diameters_mm),
        "hu": float(vessel.hu),
        "length_mm": float(vessel.length_mm),
        "quality": float(vessel.quality),
    }


def _encode(marks: ContrastLandmarks) -> dict[str, Any]:
    calibration = marks.calibration
    return {
        "format": _FORMAT,
        "working_shape": list(marks.working_shape),
        "spacing_mm": list(marks.spacing_mm),
        "spine_found_fraction": float(marks.spine_found_fraction),
        "spine_anterior_ras": _array(marks.spine_anterior_ras),
        "aorta": _vessel(marks.aorta),
        "ivc": _vessel(marks.ivc),
        "portal_vein": _vessel(marks.portal_vein),
        "calibration": None if calibration is None else _calibration(calibration),
    }


def _calibration(calibration: HuCalibration) -> dict[str, Any]:
    def number(value: float | None) -> float | None:
        return None if value is None else float(value)

    return {
        "fat_hu": number(calibration.fat_hu),
        "soft_tissue_hu": number(calibration.soft_tissue_hu),
        "fat_fraction": float(calibration.fat_fraction),
        "plausible": bool(calibration.plausible),
        "reason": str(calibration.reason),
    }


def _points(values: Any, columns: int | None) -> npt.NDArray[np.float64]:
    """``values`` as float64, ``(n, columns)`` (or ``(n,)`` when ``columns`` is ``None``)."""
    array = np.asarray(values, dtype=np.float64)
    shape = (-1,) if columns is None else (-1, columns)
    if array.size == 0:
        return array.reshape(shape)
    if array.ndim != len(shape) or (columns is not None and array.shape[1] != columns):
        raise ValueError(f"unexpected array shape {array.shape}")
    return array


def _vessel_of(data: dict[str, Any] | None) -> VesselLandmark | None:
    if data is None:
        return None
    return VesselLandmark(
        centreline_ras=_points(data["centreline_ras"], 3),
        diameters_mm=_points(data["diameters_mm"], None),
        hu=float(data["hu"]),
        length_mm=float(data["length_mm"]),
        quality=float(data["quality"]),
    )


def _decode(data: dict[str, Any]) -> ContrastLandmarks:
    if data.get("format") != _FORMAT:
        raise ValueError(f"entry format {data.get('format')!r}, expected {_FORMAT}")
    shape = tuple(int(v) for v in data["working_shape"])
    spacing = tuple(float(v) for v in data["spacing_mm"])
    if len(shape) != 3 or len(spacing) != 3:
        raise ValueError("working_shape and spacing_mm need three values")
    spine = data["spine_anterior_ras"]
    calibration = data["calibration"]
    fat, soft = (calibration or {}).get("fat_hu"), (calibration or {}).get("soft_tissue_hu")
    return ContrastLandmarks(
        working_shape=(shape[0], shape[1], shape[2]),
        spacing_mm=(spacing[0], spacing[1], spacing[2]),
        spine_found_fraction=float(data["spine_found_fraction"]),
        spine_anterior_ras=None if spine is None else _points(spine, 3),
        aorta=_vessel_of(data["aorta"]),
        ivc=_vessel_of(data["ivc"]),
        portal_vein=_vessel_of(data["portal_vein"]),
        calibration=None
        if calibration is None
        else HuCalibration(
            fat_hu=None if fat is None else float(fat),
            soft_tissue_hu=None if soft is None else float(soft),
            fat_fraction=float(calibration["fat_fraction"]),
            plausible=bool(calibration["plausible"]),
            reason=str(calibration["reason"]),
        ),
    )
