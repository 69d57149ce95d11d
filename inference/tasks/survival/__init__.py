"""Survival risk task (issue 25; METHOD.md section 4, ``seeds/survival_radiomics_densenet_fusion``).

Radiomics (PyRadiomics, 1,037 features -> PCA 80 % -> LASSO -> random survival forest), a
dual-input 3D-DenseNet (dense blocks 6/12/24/16) on the tumor ROI and clinical variables
(sex, age, T, N, M, and CA 19-9) fused by logistic regression per horizon into the
probability of death within 1, 2 and 3 years; the paper's cut-off 0.8 on the 3-year fusion
probability splits high from low risk. Training lives in ``training/survival.py``; the
analysis stage in :mod:`inference._analysis_survival`. Investigational, not for clinical use.
"""

from inference.tasks.survival.bundle import (
    FUSION_INPUTS,
    RiskRule,
    SurvivalBundle,
    SurvivalParts,
    load_survival_bundle,
    save_survival_bundle,
)
from inference.tasks.survival.forest import SurvivalForest
from inference.tasks.survival.linear import HorizonLogistic, RadiomicsProjection, logit
from inference.tasks.survival.model import DenseNetConfig, DualInputDenseNet, death_probabilities
from inference.tasks.survival.radiomics import RadiomicsConfig, RadiomicsExtractor
from inference.tasks.survival.roi import RoiConfig, TumorRoi, native_crop, tumor_cube
from inference.tasks.survival.staging import (
    ARTERIES,
    CLINICAL_INPUTS,
    PAPER_CLINICAL_INPUTS,
    clinical_row,
    n_stage,
    t_stage,
)
from inference.tasks.survival.task import SurvivalAnswer, SurvivalModel

__all__ = [
    "ARTERIES",
    "CLINICAL_INPUTS",
    "FUSION_INPUTS",
    "PAPER_CLINICAL_INPUTS",
    "DenseNetConfig",
    "DualInputDenseNet",
    "HorizonLogistic",
    "RadiomicsConfig",
    "RadiomicsExtractor",
    "RadiomicsProjection",
    "RiskRule",
    "RoiConfig",
    "SurvivalAnswer",
    "SurvivalBundle",
    "SurvivalForest",
    "SurvivalModel",
    "SurvivalParts",
    "TumorRoi",
    "clinical_row",
    "death_probabilities",
    "load_survival_bundle",
    "logit",
    "n_stage",
    "native_crop",
    "save_survival_bundle",
    "t_stage",
    "tumor_cube",
]
