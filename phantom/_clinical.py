"""Synthetic clinical variables in the model's units, correlated with the NCCN class.

The distributions are plausible for a PDAC cohort, not fitted to any real one: CA 19-9 rises
with the category, neoadjuvant therapy is common for borderline and locally advanced disease,
head tumors raise bilirubin (obstructive jaundice), and glucose and HbA1c follow diabetes.
Where the cohort has biologically borderline patients (Isaji et al. 2017, "BR-B"), the
baseline CA 19-9 of an anatomically resectable patient lies above :data:`BIOLOGICAL_CA19_9`
exactly when the tumor board calls the patient borderline (:class:`CA199Condition`).
About 15 % of the cells are missing: CA 19-9 after therapy (and its change) is missing when no
neoadjuvant therapy was given, and the remaining cells are missing at random with
per-variable propensities chosen so every patient's expected missing fraction is
:data:`MISSING_FRACTION`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from enum import Enum
from types import MappingProxyType

import numpy as np

from pancreas_contracts.clinical import CLINICAL_VARIABLES, ClinicalVariables

MISSING_FRACTION = 0.15
#: Baseline CA 19-9 (U/mL) above which an anatomically resectable tumor is borderline
#: resectable on biology (Isaji et al., Pancreatology 18:2-11, 2018: "BR-B").
BIOLOGICAL_CA19_9 = 500.0
# Rejection sampling needs about 3 draws for the rarest side (borderline, above 500 U/mL).
_MAX_DRAWS = 200


class CA199Condition(Enum):
    """The side of :data:`BIOLOGICAL_CA19_9` a patient's baseline CA 19-9 is drawn on."""

    ANY = "any"
    AT_MOST = "at most"
    ABOVE = "above"

    def holds(self, value: float) -> bool:
        """Whether ``value`` (U/mL) lies on this side of the threshold."""
        if self is CA199Condition.AT_MOST:
            return value <= BIOLOGICAL_CA19_9
        if self is CA199Condition.ABOVE:
            return value > BIOLOGICAL_CA19_9
        return True


# Relative chance of a variable being missing at random: demographics are almost always
# recorded, lifestyle and second-line labs often are not.
_MISSING_WEIGHTS: Mapping[str, float] = MappingProxyType({
    "age": 0.15, "sex": 0.1, "bmi": 1.0, "cci": 1.0, "asa": 1.0, "diabetes": 0.5,
    "nicotine": 1.6, "alcohol": 1.6, "ca19_9_baseline": 0.7, "ca19_9_delta": 0.8,
    "ca19_9_post": 0.8, "cea": 1.5, "glucose": 1.0, "hba1c": 1.8, "bilirubin": 0.7,
    "grade": 1.5, "neoadjuvant": 0.3,
})  # fmt: skip


def _clip(value: float, lo: float, hi: float, digits: int) -> float:
    return round(min(max(value, lo), hi), digits)


def _lognormal(rng: np.random.Generator, median: float, sigma: float) -> float:
    return float(median * math.exp(rng.normal(0.0, sigma)))


def _demographics(rng: np.random.Generator, target: int) -> dict[str, float]:
    age = _clip(rng.normal(66.0 - 1.5 * target, 9.5), 35.0, 89.0, 0)
    sex = float(rng.random() < 0.53)
    bmi = _clip(rng.normal(25.5, 4.2), 16.0, 45.0, 1)
    cci = float(min(12, 2 + max(0, int((age - 40) // 10)) + rng.poisson(0.9)))
    asa_probs = (
        np.array([0.04, 0.42, 0.48, 0.06]) if cci < 6 else np.array([0.01, 0.22, 0.62, 0.15])
    )
    asa = float(1 + rng.choice(4, p=asa_probs))
    return {"age": age, "sex": sex, "bmi": bmi, "cci": cci, "asa": asa}


def _metabolic(rng: np.random.Generator, location: str) -> dict[str, float]:
    diabetes = float(rng.random() < 0.3)
    if diabetes:
        glucose = _clip(rng.normal(8.6, 2.2), 3.5, 30.0, 1)
        hba1c = _clip(rng.normal(60.0, 12.0), 40.0, 130.0, 0)
    else:
        glucose = _clip(rng.normal(5.5, 0.7), 3.5, 9.0, 1)
        hba1c = _clip(rng.normal(37.0, 4.0), 25.0, 47.0, 0)
    jaundiced = location == "head" and rng.random() < 0.65
    bilirubin = _lognormal(rng, 95.0, 0.7) if jaundiced else _lognormal(rng, 10.0, 0.4)
    return {
        "diabetes": diabetes,
        "glucose": glucose,
        "hba1c": hba1c,
        "bilirubin": _clip(bilirubin, 2.0, 600.0, 1),
        "nicotine": float(rng.random() < 0.3),
        "alcohol": float(rng.random() < 0.25),
    }


def _baseline_ca19_9(rng: np.random.Generator, target: int) -> float:
    if rng.random() < 0.08:
        baseline = rng.uniform(0.5, 4.0)  # Lewis-antigen-negative non-secretors
    else:
        baseline = _lognormal(rng, (120.0, 280.0, 650.0)[target], 1.2)
    return _clip(baseline, 0.5, 150000.0, 1)


def _tumor_markers(
    rng: np.random.Generator, target: int, ca19_9: CA199Condition
) -> dict[str, float]:
    neoadjuvant = float(
        rng.choice(3, p=((0.8, 0.15, 0.05), (0.25, 0.55, 0.2), (0.15, 0.6, 0.25))[target])
    )
    baseline = _baseline_ca19_9(rng, target)
    for _ in range(_MAX_DRAWS):
        if ca19_9.holds(baseline):
            break
        baseline = _baseline_ca19_9(rng, target)
    else:  # pragma: no cover - probability below 1e-30
        raise RuntimeError(
            f"no baseline CA 19-9 {ca19_9.value} the threshold in {_MAX_DRAWS} draws"
        )
    values = {
        "ca19_9_baseline": baseline,
        "cea": _clip(_lognormal(rng, (3.0, 4.2, 6.0)[target], 0.8), 0.2, 2000.0, 2),
        "grade": float(
            1 + rng.choice(3, p=((0.12, 0.6, 0.28), (0.1, 0.55, 0.35), (0.06, 0.5, 0.44))[target])
        ),
        "neoadjuvant": neoadjuvant,
    }
    if neoadjuvant > 0:
        post = _clip(baseline * math.exp(rng.normal(-0.9 + 0.25 * target, 0.8)), 0.5, 150000.0, 1)
        values["ca19_9_post"] = post
        values["ca19_9_delta"] = round(post - baseline, 1)
    return values


def _no_tumor_markers(rng: np.random.Generator) -> dict[str, float]:
    """Markers of a patient without cancer: CA 19-9 and CEA in or near the normal range."""
    return {
        "ca19_9_baseline": _clip(_lognormal(rng, 12.0, 0.7), 0.5, 400.0, 1),
        "cea": _clip(_lognormal(rng, 2.0, 0.5), 0.2, 30.0, 2),
        "neoadjuvant": 0.0,
    }


def clinical_truth(
    target: int,
    location: str,
    rng: np.random.Generator,
    ca19_9: CA199Condition = CA199Condition.ANY,
    *,
    tumor: bool = True,
) -> dict[str, float]:
    """Complete clinical values of one patient (no missingness applied).

    ``ca19_9_post`` and ``ca19_9_delta`` are absent when no neoadjuvant therapy was given.
    ``ca19_9`` says on which side of :data:`BIOLOGICAL_CA19_9` the baseline lies. A
    tumor-free patient (``tumor=False``, wide phantom modes) has normal-range markers, no
    therapy and no tumor grade (absent: not applicable).
    """
    values = {**_demographics(rng, target), **_metabolic(rng, location)}
    markers = _tumor_markers(rng, target, ca19_9) if tumor else _no_tumor_markers(rng)
    return {**values, **markers}


def with_missingness(truth: Mapping[str, float], rng: np.random.Generator) -> ClinicalVariables:
    """Blank cells at random so the expected missing fraction is :data:`MISSING_FRACTION`."""
    names = [v.name for v in CLINICAL_VARIABLES]
    present = [n for n in names if n in truth]
    expected_extra = MISSING_FRACTION * len(names) - (len(names) - len(present))
    total_weight = sum(_MISSING_WEIGHTS[n] for n in present)
    values: dict[str, float | None] = dict.fromkeys(names)
    for name in present:
        p = min(0.9, max(0.0, expected_extra) * _MISSING_WEIGHTS[name] / total_weight)
        values[name] = None if rng.random() < p else truth[name]
    return ClinicalVariables(values)
