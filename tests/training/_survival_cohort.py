"""A hand-made survival cohort and bundles for the survival tests (issue 25).

Each patient: a 48^3 CT at 2 mm (soft tissue at 30 HU, a pancreas ball at 45 HU, a spherical
PDAC at -10 HU inside it, Gaussian noise) and ``label.nii.gz`` (pancreas 1, tumor 2). The
tumor's radius runs from 5 to 16 mm over the cohort and overall survival falls steeply with
it (``hazard_lp`` is the generator's linear predictor), so size is what a model has to find;
a few patients are censored before death, the longest survivors at 60 months.
``clinical.csv`` has sex, age and CA 19-9 (one patient without CA 19-9); ``truth.csv`` has
the phantom generator's follow-up columns.

:func:`tiny_config` is the CPU-sized training configuration of the tests; :func:`tiny_bundle`
writes a survival bundle by hand (random DenseNet, a one-split forest), for tests of the
plumbing only.
"""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Final

import numpy as np
import numpy.typing as npt
import torch

from inference.tasks.survival import (
    CLINICAL_INPUTS,
    FUSION_INPUTS,
    DenseNetConfig,
    DualInputDenseNet,
    HorizonLogistic,
    RadiomicsConfig,
    RadiomicsExtractor,
    RadiomicsProjection,
    RiskRule,
    RoiConfig,
    SurvivalForest,
    SurvivalParts,
    save_survival_bundle,
)
from inference.volume import Volume, write_nifti
from pancreas_contracts.labels import label_by_name
from pancreas_contracts.prognosis import KaplanMeierCurve
from training.survival_config import SurvivalConfig

__all__ = [
    "SHAPE",
    "SPACING_MM",
    "TINY_DENSENET",
    "TINY_TOML",
    "sphere_case",
    "tiny_bundle",
    "tiny_config",
    "write_cohort",
]

SHAPE: Final = (48, 48, 48)
SPACING_MM: Final = 2.0
TUMOR: Final = label_by_name("tumor").value
PANCREAS: Final = label_by_name("pancreas").value
TINY_DENSENET: Final = DenseNetConfig(
    block_config=(2, 2, 2, 2), init_features=8, growth_rate=4, roi_channels=(4, 8), features=8
)
#: The same settings as :func:`tiny_config`, for ``pancreas-node train --config``.
TINY_TOML: Final = """
epochs = 2
rsf_trees = 20
crossfit_folds = 2
lasso_folds = 3
rsf_leaf_sizes = [3]
batch_size = 8
device = "cpu"
num_threads = 1
weights_dtype = "float16"
[densenet]
block_config = [2, 2, 2, 2]
init_features = 8
growth_rate = 4
roi_channels = [4, 8]
features = 8
"""


def tiny_config() -> SurvivalConfig:
    """The tests' training settings: two epochs, 20 trees, two cross-fitting folds."""
    return SurvivalConfig(
        densenet=TINY_DENSENET, epochs=2, rsf_trees=20, crossfit_folds=2, lasso_folds=3,
        rsf_leaf_sizes=(3,), batch_size=8, device="cpu", num_threads=1,
    )  # fmt: skip


def _affine(shape: tuple[int, int, int], spacing: float) -> npt.NDArray[np.float64]:
    affine = np.diag([spacing, spacing, spacing, 1.0])
    affine[:3, 3] = -spacing * (np.asarray(shape) - 1) / 2.0
    return affine


def sphere_case(
    radius_mm: float,
    *,
    shape: tuple[int, int, int] = SHAPE,
    spacing_mm: float = SPACING_MM,
    tumor_hu: float = -10.0,
    seed: int = 0,
) -> tuple[Volume, Volume]:
    """A CT (HU) and its label map (pancreas 1, tumor 2): a ball tumor at the centre."""
    affine = _affine(shape, spacing_mm)
    grid = (np.indices(shape).astype(np.float64) - (np.asarray(shape) - 1)[:, None, None, None]
            / 2.0) * spacing_mm  # fmt: skip
    distance = np.sqrt((grid**2).sum(axis=0))
    label = np.zeros(shape, dtype=np.uint8)
    label[distance <= radius_mm + 6.0] = PANCREAS
    label[distance <= radius_mm] = TUMOR
    image = np.full(shape, 30.0)
    image[label == PANCREAS] = 45.0
    image[label == TUMOR] = tumor_hu
    image += np.random.default_rng(seed).normal(0.0, 8.0, shape)
    return Volume(image.astype(np.float32), affine), Volume(label, affine)


def _follow_up(radius: float, index: int, rng: np.random.Generator) -> tuple[float, int, float]:
    lp = 2.5 * (radius - 5.0) / 11.0
    months = 70.0 * float(np.exp(-lp + rng.normal(0.0, 0.15)))
    if months >= 60.0:
        return 60.0, 0, lp  # administrative censoring at five years
    if index % 7 == 3:
        return round(0.8 * months, 2), 0, lp  # lost to follow-up before death
    return round(months, 2), 1, lp


def write_cohort(out: Path, patients: int = 30, seed: int = 0) -> Path:
    """Write ``patients`` patients (tumor radius 5-16 mm, shuffled) into ``out``."""
    rng = np.random.default_rng(seed)
    radii = rng.permutation(np.linspace(5.0, 16.0, patients))
    truth, clinical = [], []
    for index, radius in enumerate(radii):
        pid = f"SURV-{index + 1:04d}"
        ct, label = sphere_case(float(radius), seed=seed * 1000 + index)
        write_nifti(ct, out / pid / "image.nii.gz")
        write_nifti(label, out / pid / "label.nii.gz")
        months, event, lp = _follow_up(float(radius), index, rng)
        contact = rng.uniform(0.0, 120.0, 3)
        if index % 10 == 5:
            contact[0] = 200.0  # SMA encased: T4
        truth.append({
            "patient_id": pid, "nccn_label": "2" if contact.max() > 180 else "0",
            "has_tumor": "1", "contact_SMA": f"{contact[0]:.1f}",
            "contact_CA": f"{contact[1]:.1f}", "contact_CHA": f"{contact[2]:.1f}",
            "n_status": str(int(radius > 10.0)), "os_months": f"{months:.2f}",
            "os_event": str(event), "hazard_lp": f"{lp:.4f}",
        })  # fmt: skip
        ca = "" if index == 0 else f"{float(np.exp(rng.normal(4.5, 1.0))):.1f}"
        clinical.append({"patient_id": pid, "sex": str(index % 2),
                         "age": f"{rng.uniform(50, 80):.0f}", "ca19_9_baseline": ca})  # fmt: skip
    for name, rows in (("truth.csv", truth), ("clinical.csv", clinical)):
        with (out / name).open("w", newline="", encoding="utf-8") as handle:
            writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
            writer.writeheader()
            writer.writerows(rows)
    return out


def _logistic(inputs: tuple[str, ...], first: float) -> HorizonLogistic:
    p = len(inputs)
    coef = np.zeros((3, p))
    coef[:, 0] = first
    return HorizonLogistic(
        inputs=inputs, impute=np.zeros(p), mean=np.zeros(p), scale=np.ones(p), coef=coef,
        intercept=np.array([-1.0, 0.0, 1.0]),
    )  # fmt: skip


def _one_split_forest(months: npt.NDArray[np.float32]) -> SurvivalForest:
    """One tree splitting component 0 at 0: left survives longer than right."""
    left = np.exp(-months / 40.0)
    right = np.exp(-months / 12.0)
    return SurvivalForest(
        tree_offset=np.array([0, 3]), children_left=np.array([1, -1, -1]),
        children_right=np.array([2, -1, -1]), feature=np.array([0, -1, -1]),
        threshold=np.array([0.0, 0.0, 0.0]),
        survival=np.stack([(left + right) / 2, left, right]).astype(np.float32),
        months=months,
    )  # fmt: skip


def tiny_bundle(out: Path, *, name: str = "test-survival", version: str = "0") -> Path:
    """A survival bundle made by hand (random DenseNet weights): plumbing tests only.

    Returns the bundle folder.
    """
    ct, label = sphere_case(8.0)
    tumor = Volume((np.asarray(label.array) == TUMOR).astype(np.uint8), label.affine)
    names = tuple(RadiomicsExtractor(RadiomicsConfig()).extract(ct, tumor))
    d = len(names)
    components = np.zeros((2, d))
    components[0, names.index("original_shape_MeshVolume")] = 1.0
    components[1, names.index("original_firstorder_Mean")] = 1.0
    mean = np.zeros(d)
    mean[names.index("original_shape_MeshVolume")] = 2000.0
    scale = np.ones(d)
    scale[names.index("original_shape_MeshVolume")] = 1000.0
    projection = RadiomicsProjection(
        feature_names=names, mean=mean, scale=scale, pca_mean=np.zeros(d),
        components=components, selected=np.array([0]),
    )  # fmt: skip
    torch.manual_seed(0)
    parts = SurvivalParts(
        roi=RoiConfig(), radiomics=RadiomicsConfig(), projection=projection,
        forest=_one_split_forest(np.arange(0.0, 61.0, dtype=np.float32)),
        densenet_config=TINY_DENSENET, densenets=(DualInputDenseNet(TINY_DENSENET).eval(),),
        clinical=_logistic(CLINICAL_INPUTS, 0.5), fusion=_logistic(FUSION_INPUTS, 1.0),
        risk=RiskRule(), reference_curves=(
            KaplanMeierCurve(label="high risk", months=(0.0, 12.0, 24.0), survival=(1.0, 0.5, 0.2)),
            KaplanMeierCurve(label="low risk", months=(0.0, 12.0, 24.0), survival=(1.0, 0.9, 0.7)),
        ),
    )  # fmt: skip
    save_survival_bundle(out, parts, name=name, version=version, config_sha256="c" * 64,
                         data_hash="d" * 64, metrics={})  # fmt: skip
    return out
