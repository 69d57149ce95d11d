"""Is the HU scale of a CT trustworthy? Fat and soft tissue measured on the working grid.

A calibrated CT puts air at -1000 HU and water at 0 HU by definition, and so adipose tissue near
-100 HU (about -120 to -80) and unenhanced muscle and organs near +40 HU; contrast medium
does not enhance fat. Cone-beam CT (C-arm, radiotherapy on-board imaging) and uncalibrated
reconstructions shift and scale these values by tens to hundreds of HU (scatter, cupping,
beam hardening), so an aorta "at 319 HU" means nothing there.

The body's voxels between -400 and +400 HU are split in two classes by Otsu's threshold; the
fat peak is the mode of the lower class and the soft-tissue peak the mode of the upper class
(10 HU bins, smoothed over three bins). The scale is plausible when

- the fat peak lies within ``-100 +/- 60`` HU (``-160`` to ``-40``), and
- the soft-tissue peak lies ``100`` to ``250`` HU above the fat peak (calibrated CT: muscle
  and organs, unenhanced ~+40 to enhanced ~+120, minus fat ~-100, give 140-220), and
- at least 5 % of the body's voxels are fat-like (within the fat window), so that a peak is
  a tissue and not a handful of partial-volume voxels.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

__all__ = ["FAT_HU", "HuCalibration", "check_calibration"]

#: Expected attenuation of adipose tissue and the tolerance around it.
FAT_HU = -100.0
FAT_TOLERANCE_HU = 60.0
#: Expected soft-tissue peak above the fat peak.
SOFT_MINUS_FAT_HU = (100.0, 250.0)
#: Least share of body voxels within the fat window for a fat peak to count.
MIN_FAT_FRACTION = 0.05
_RANGE_HU = (-400.0, 400.0)
_BIN_HU = 10.0


@dataclass(frozen=True)
class HuCalibration:
    """The measured reference tissues and whether the HU scale is plausible.

    ``fat_hu`` / ``soft_tissue_hu`` are ``None`` when the body has no voxels in the range.
    """

    fat_hu: float | None
    soft_tissue_hu: float | None
    fat_fraction: float
    plausible: bool
    reason: str


def _otsu(values: npt.NDArray[np.float32]) -> float:
    hist, edges = np.histogram(values, bins=160, range=_RANGE_HU)
    centres = (edges[:-1] + edges[1:]) / 2
    weight = np.cumsum(hist).astype(np.float64)
    total = weight[-1]
    mean = np.cumsum(hist * centres)
    w0, w1 = weight[:-1], total - weight[:-1]
    valid = (w0 > 0) & (w1 > 0)
    m0 = np.where(valid, mean[:-1] / np.maximum(w0, 1), 0.0)
    m1 = np.where(valid, (mean[-1] - mean[:-1]) / np.maximum(w1, 1), 0.0)
    between = np.where(valid, w0 * w1 * (m0 - m1) ** 2, -1.0)
    return float(edges[int(np.argmax(between)) + 1])


def _mode(values: npt.NDArray[np.float32], lo: float, hi: float) -> float | None:
    if values.size == 0 or hi - lo < _BIN_HU:
        return None
    bins = max(round((hi - lo) / _BIN_HU), 1)
    hist, edges = np.histogram(values, bins=bins, range=(lo, hi))
    smooth = np.convolve(hist.astype(np.float64), np.ones(3) / 3, mode="same")
    k = int(np.argmax(smooth))
    return float((edges[k] + edges[k + 1]) / 2)


def check_calibration(hu: npt.NDArray[np.float32], body: npt.NDArray[np.bool_]) -> HuCalibration:
    """Measure the fat and soft-tissue peaks of the body and judge the HU scale."""
    values = hu[body]
    values = values[(values >= _RANGE_HU[0]) & (values <= _RANGE_HU[1])]
    if values.size < 100:
        return HuCalibration(None, None, 0.0, False, "too little tissue to check the HU scale")
    split = _otsu(values)
    fat = _mode(values[values < split], _RANGE_HU[0], split)
    soft = _mode(values[values >= split], split, _RANGE_HU[1])
    window = (values >= FAT_HU - FAT_TOLERANCE_HU) & (values <= FAT_HU + FAT_TOLERANCE_HU)
    fraction = float(np.count_nonzero(window)) / float(body.sum())
    if fat is None or soft is None:
        return HuCalibration(fat, soft, fraction, False, "no fat and soft-tissue peaks")
    measured = f"fat {fat:.0f} HU, soft tissue {soft:.0f} HU"
    problems = []
    if abs(fat - FAT_HU) > FAT_TOLERANCE_HU:
        problems.append(f"fat not within {FAT_HU:.0f} +/- {FAT_TOLERANCE_HU:.0f} HU")
    gap_lo, gap_hi = SOFT_MINUS_FAT_HU
    if not gap_lo <= soft - fat <= gap_hi:
        problems.append(f"soft tissue not {gap_lo:.0f}-{gap_hi:.0f} HU above fat")
    if fraction < MIN_FAT_FRACTION:
        problems.append(f"only {100 * fraction:.0f} % of the body fat-like")
    if problems:
        return HuCalibration(fat, soft, fraction, False, f"{measured}: " + ", ".join(problems))
    return HuCalibration(fat, soft, fraction, True, f"{measured}: HU scale plausible")
