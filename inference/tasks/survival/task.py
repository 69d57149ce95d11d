"""The survival model on one CT: radiomics, DenseNet, clinical, and their fusion.

:class:`SurvivalModel` takes the CT, the tumor mask the node segmented, the registry's sex,
age and CA 19-9 and the TNM inputs (:mod:`inference.tasks.survival.staging`) and returns a
:class:`~pancreas_contracts.prognosis.SurvivalPrognosis`: the fusion's death probability by 1,
2 and 3 years, the paper's risk group, each unimodal model's probabilities, the inputs used
and missing (a missing clinical input is imputed with the training folds' median and listed
as missing) and the bundle's reference Kaplan-Meier curves. Investigational, not for clinical
use.
"""

from __future__ import annotations

import math
import time
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import torch

from inference.tasks.survival.bundle import SurvivalBundle
from inference.tasks.survival.linear import logit
from inference.tasks.survival.model import death_probabilities
from inference.tasks.survival.radiomics import RadiomicsExtractor
from inference.tasks.survival.roi import tumor_cube
from inference.tasks.survival.staging import CLINICAL_INPUTS, clinical_row
from inference.volume import Volume
from pancreas_contracts.prognosis import (
    HORIZONS_MONTHS,
    ModelProbabilities,
    StageInput,
    SurvivalPrognosis,
)

__all__ = ["SurvivalAnswer", "SurvivalModel", "UnimodalProbabilities"]


def _triple(row: npt.NDArray[np.float64]) -> tuple[float, float, float]:
    p = np.maximum.accumulate(np.clip(np.asarray(row, dtype=np.float64), 0.0, 1.0))
    return (float(p[0]), float(p[1]), float(p[2]))


@dataclass(frozen=True)
class UnimodalProbabilities:
    """The three unimodal models' death probabilities (``(horizons,)`` each)."""

    radiomics: tuple[float, float, float]
    densenet: tuple[float, float, float]
    clinical: tuple[float, float, float]


@dataclass(frozen=True)
class SurvivalAnswer:
    """The prognosis and the seconds each stage took."""

    prognosis: SurvivalPrognosis
    timings_s: dict[str, float]


class SurvivalModel:
    """A loaded survival bundle, ready to predict.

    Parameters
    ----------
    bundle
        The verified bundle.
    device
        Where the DenseNets run.
    """

    def __init__(self, bundle: SurvivalBundle, device: torch.device) -> None:
        self._bundle = bundle
        self._parts = bundle.parts
        self._device = device
        self._extractor = RadiomicsExtractor(bundle.parts.radiomics)
        for net in self._parts.densenets:
            net.to(device).eval()

    def radiomics_probability(self, features: Mapping[str, float]) -> tuple[float, float, float]:
        """The forest's death probability by each horizon from the radiomic features."""
        scores = self._parts.projection.transform(self._parts.projection.matrix([features]))
        return _triple(self._parts.forest.death_probability(scores, HORIZONS_MONTHS)[0])

    @torch.no_grad()
    def densenet_probability(self, image: npt.NDArray[np.float32], mask: npt.NDArray[np.float32]
                             ) -> tuple[float, float, float]:  # fmt: skip
        """The fold members' mean death probability by each horizon from the ROI cube."""
        x = torch.from_numpy(image)[None, None].to(self._device)
        m = torch.from_numpy(mask)[None, None].to(self._device)
        probs = torch.stack([death_probabilities(net(x, m)) for net in self._parts.densenets])
        return _triple(probs.mean(dim=0)[0].cpu().double().numpy())

    def fuse(
        self, unimodal: tuple[tuple[float, float, float], tuple[float, float, float]],
        clinical: npt.NDArray[np.float64],
    ) -> tuple[float, float, float]:  # fmt: skip
        """The fusion's probabilities from the radiomics and DenseNet ones and a clinical row."""
        radiomics, densenet = (np.asarray(p, dtype=np.float64) for p in unimodal)
        x = np.stack(
            [np.concatenate([[logit(radiomics[h]), logit(densenet[h])], clinical])[None]
             for h in range(len(HORIZONS_MONTHS))]
        )  # fmt: skip
        return _triple(self._parts.fusion.predict(x)[0])

    def predict(
        self,
        ct: Volume,
        tumor: Volume,
        values: Mapping[str, float | None],
        staging: Mapping[str, StageInput],
    ) -> SurvivalAnswer:
        """The prognosis of one CT.

        Parameters
        ----------
        ct, tumor
            The CT (HU) and the tumor mask on its grid.
        values
            The registry's ``sex``, ``age`` and ``ca19_9_baseline`` (absent or ``None``: missing).
        staging
            ``T``, ``N`` and ``M`` with their source.

        Raises
        ------
        ValueError
            If the tumor mask is empty or off the CT's grid, or a feature cannot be computed.
        """
        timings: dict[str, float] = {}
        start = time.perf_counter()
        features = self._extractor.extract(ct, tumor)
        radiomics = self.radiomics_probability(features)
        timings["survival_radiomics"] = time.perf_counter() - start
        start = time.perf_counter()
        roi = tumor_cube(ct, tumor, self._parts.roi)
        densenet = self.densenet_probability(roi.image, roi.mask)
        timings["survival_densenet"] = time.perf_counter() - start
        row = clinical_row(values, staging)
        clinical = _triple(self._parts.clinical.predict(row[None])[0])
        fused = self.fuse((radiomics, densenet), row)
        missing = tuple(n for n, v in zip(CLINICAL_INPUTS, row, strict=True) if math.isnan(v))
        used = ("ct", "tumor_mask", *(n for n in CLINICAL_INPUTS if n not in missing))
        risk = self._parts.risk
        at = fused[risk.horizon_years - 1]
        prognosis = SurvivalPrognosis(
            model_version=self._bundle.name_version,
            death_probability=fused,
            risk_group="high" if at >= risk.cutoff else "low",
            risk_horizon_years=risk.horizon_years,  # type: ignore[arg-type]
            risk_cutoff=risk.cutoff,
            components={
                "radiomics": ModelProbabilities(death_probability=radiomics),
                "densenet": ModelProbabilities(death_probability=densenet),
                "clinical": ModelProbabilities(death_probability=clinical),
            },
            staging={k: v for k, v in staging.items() if k in ("T", "N", "M")},  # type: ignore[misc]
            reference_curves=self._parts.reference_curves,
            inputs_used=used,
            inputs_missing=missing,
            warnings=tuple(
                f"{name} missing: imputed with the training folds' median" for name in missing
            ),
        )
        return SurvivalAnswer(prognosis, timings)
