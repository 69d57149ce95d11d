"""Radiomic features of the tumor with PyRadiomics (IBSI-aligned), as the paper extracts them.

The paper resamples to 3 x 3 x 3 mm and extracts 1,037 features: 107 of the original image
(shape, first order, GLCM, GLDM, GLRLM, GLSZM, NGTDM) and 930 of filtered images. PyRadiomics
3.0.1 with every feature class enabled on the original image, two Laplacian-of-Gaussian images
(sigma 2 and 3 mm) and the eight wavelet decompositions gives exactly 107 + 2 x 93 + 8 x 93 =
1,037 (van Griethuysen et al., *Cancer Research* 77:e104-e107, 2017). The bin width 25 HU is
PyRadiomics' default for CT. Shape features are computed on the resampled mask, so a sphere's
volume comes out within a few per cent of the true one at 3 mm (checked in the tests).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import SimpleITK
from radiomics import featureextractor

from inference.tasks.survival.roi import native_crop
from inference.volume import Volume

__all__ = ["RadiomicsConfig", "RadiomicsExtractor"]


@dataclass(frozen=True)
class RadiomicsConfig:
    """PyRadiomics settings (stored in the bundle, so training and the node agree).

    Attributes
    ----------
    spacing_mm
        Isotropic resampling before extraction (the paper's 3 mm).
    bin_width
        Grey-level bin width in HU.
    log_sigma_mm
        Laplacian-of-Gaussian filter widths.
    wavelet
        Whether the eight wavelet decompositions are used.
    margin_mm
        Margin of the native crop around the tumor (room for the filters).
    """

    spacing_mm: float = 3.0
    bin_width: float = 25.0
    log_sigma_mm: tuple[float, ...] = (2.0, 3.0)
    wavelet: bool = True
    margin_mm: float = 15.0

    def to_dict(self) -> dict[str, Any]:
        """For ``bundle.json``."""
        return {
            "spacing_mm": self.spacing_mm,
            "bin_width": self.bin_width,
            "log_sigma_mm": list(self.log_sigma_mm),
            "wavelet": self.wavelet,
            "margin_mm": self.margin_mm,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> RadiomicsConfig:
        """From ``bundle.json``."""
        return cls(
            spacing_mm=float(data["spacing_mm"]),
            bin_width=float(data["bin_width"]),
            log_sigma_mm=tuple(float(s) for s in data["log_sigma_mm"]),
            wavelet=bool(data["wavelet"]),
            margin_mm=float(data["margin_mm"]),
        )


def _sitk(volume: Volume, array: Any) -> Any:
    # PyRadiomics indexes (z, y, x); a canonical volume's axes are (R, A, S) = (x, y, z).
    image = SimpleITK.GetImageFromArray(np.ascontiguousarray(np.transpose(array, (2, 1, 0))))
    image.SetSpacing(tuple(float(s) for s in volume.spacing))  # type: ignore[no-untyped-call]
    image.SetOrigin(tuple(float(v) for v in volume.affine[:3, 3]))  # type: ignore[no-untyped-call]
    return image


@dataclass
class RadiomicsExtractor:
    """Extracts the configured features from a CT and a tumor mask on its grid.

    Parameters
    ----------
    config
        The extraction settings.
    """

    config: RadiomicsConfig = field(default_factory=RadiomicsConfig)

    def __post_init__(self) -> None:
        # PyRadiomics logs every filter at INFO; the node's own log says what ran.
        logging.getLogger("radiomics").setLevel(logging.ERROR)
        extractor = featureextractor.RadiomicsFeatureExtractor(
            resampledPixelSpacing=[self.config.spacing_mm] * 3,
            binWidth=self.config.bin_width,
            interpolator="sitkBSpline",
        )
        extractor.enableAllFeatures()
        types: dict[str, dict[str, Any]] = {"Original": {}}
        if self.config.log_sigma_mm:
            types["LoG"] = {"sigma": list(self.config.log_sigma_mm)}
        if self.config.wavelet:
            types["Wavelet"] = {}
        extractor.enableImageTypes(**types)
        self._extractor = extractor

    def extract(self, ct: Volume, tumor: Volume) -> dict[str, float]:
        """The features by PyRadiomics name (``original_shape_MeshVolume`` ...), in its order.

        Raises
        ------
        ValueError
            If the mask is empty or PyRadiomics cannot compute a feature.
        """
        crop_ct, crop_tumor = native_crop(ct, tumor, self.config.margin_mm)
        image = _sitk(crop_ct, np.asarray(crop_ct.array, dtype=np.float32))
        mask = _sitk(crop_tumor, np.asarray(crop_tumor.array, dtype=np.uint8))
        mask.CopyInformation(image)
        result = self._extractor.execute(image, mask)
        features = {
            key: float(value) for key, value in result.items() if not key.startswith("diagnostics")
        }
        if not all(np.isfinite(v) for v in features.values()):
            raise ValueError("a radiomic feature is not finite")
        return features
