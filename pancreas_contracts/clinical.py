"""The 17 clinical variables of METHOD.md section 1, in the model's units.

This is the one specification the registry bridge converts into, the phantom generator writes,
and the model bundle records. Values outside ``[low, high]`` are implausible and are treated as
missing by readers (never clipped silently).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from types import MappingProxyType

__all__ = [
    "CLINICAL_VARIABLES",
    "ClinicalVariable",
    "ClinicalVariables",
    "VariableKind",
    "variable_by_name",
]


class VariableKind(StrEnum):
    """How a variable is encoded for the model."""

    CONTINUOUS = "continuous"
    CATEGORICAL = "categorical"


@dataclass(frozen=True)
class ClinicalVariable:
    """Specification of one clinical input.

    Parameters
    ----------
    name
        Machine name (column name in ``clinical.csv`` and the bundle).
    display
        Human-readable name.
    kind
        Continuous (KNN-imputed, z-scored) or categorical (mode-imputed, one-hot).
    unit
        UCUM unit of the model's value (``""`` for categorical).
    low, high
        Plausible range for continuous variables (inclusive).
    categories
        Allowed codes for categorical variables.
    """

    name: str
    display: str
    kind: VariableKind
    unit: str = ""
    low: float = -math.inf
    high: float = math.inf
    categories: tuple[int, ...] = ()

    def is_valid(self, value: float) -> bool:
        """Whether ``value`` is a plausible value of this variable."""
        if math.isnan(value):
            return False
        if self.kind is VariableKind.CATEGORICAL:
            return value in self.categories
        return self.low <= value <= self.high


_C = VariableKind.CONTINUOUS
_K = VariableKind.CATEGORICAL

CLINICAL_VARIABLES: tuple[ClinicalVariable, ...] = (
    ClinicalVariable("age", "Age at diagnosis", _C, "a", 18, 105),
    ClinicalVariable("sex", "Sex (0 female, 1 male)", _K, categories=(0, 1)),
    ClinicalVariable("bmi", "Body mass index", _C, "kg/m2", 10, 70),
    ClinicalVariable("cci", "Charlson Comorbidity Index", _C, "{score}", 0, 37),
    ClinicalVariable("asa", "ASA physical status", _K, categories=(1, 2, 3, 4, 5)),
    ClinicalVariable("diabetes", "Diabetes mellitus", _K, categories=(0, 1)),
    ClinicalVariable("nicotine", "Nicotine use", _K, categories=(0, 1)),
    ClinicalVariable("alcohol", "Alcohol use", _K, categories=(0, 1)),
    ClinicalVariable("ca19_9_baseline", "CA 19-9 at baseline", _C, "U/mL", 0, 200000),
    ClinicalVariable(
        "ca19_9_delta", "CA 19-9 change after neoadjuvant therapy", _C, "U/mL", -200000, 200000
    ),
    ClinicalVariable("ca19_9_post", "CA 19-9 after neoadjuvant therapy", _C, "U/mL", 0, 200000),
    ClinicalVariable("cea", "CEA", _C, "ng/mL", 0, 10000),
    ClinicalVariable("glucose", "Blood glucose", _C, "mmol/L", 1, 50),
    ClinicalVariable("hba1c", "HbA1c", _C, "mmol/mol", 15, 200),
    ClinicalVariable("bilirubin", "Bilirubin at diagnosis", _C, "umol/L", 1, 1000),
    ClinicalVariable("grade", "Histopathological grade G", _K, categories=(1, 2, 3)),
    ClinicalVariable(
        "neoadjuvant",
        "Neoadjuvant therapy (0 none, 1 chemo, 2 radiochemo)",
        _K,
        categories=(0, 1, 2),
    ),
)


def variable_by_name(name: str) -> ClinicalVariable:
    """Return the specification of ``name``.

    Raises
    ------
    KeyError
        If there is no such variable.
    """
    for variable in CLINICAL_VARIABLES:
        if variable.name == name:
            return variable
    raise KeyError(name)


@dataclass(frozen=True)
class ClinicalVariables:
    """One patient's clinical inputs in model units; ``None`` means missing.

    A ``ClinicalVariables`` that exists is valid: unknown names and implausible values are
    rejected at construction (readers turn implausible values into ``None`` with a warning
    before building one).
    """

    values: Mapping[str, float | None] = field(default_factory=dict)

    def __post_init__(self) -> None:
        known = {v.name for v in CLINICAL_VARIABLES}
        unknown = set(self.values) - known
        if unknown:
            raise ValueError(f"unknown clinical variables: {sorted(unknown)}")
        for name, value in self.values.items():
            if value is not None and not variable_by_name(name).is_valid(float(value)):
                raise ValueError(f"implausible value for {name}")
        full = {v.name: self.values.get(v.name) for v in CLINICAL_VARIABLES}
        object.__setattr__(self, "values", MappingProxyType(full))

    @property
    def missing(self) -> tuple[str, ...]:
        """Names of the variables without a value, in specification order."""
        return tuple(n for n, v in self.values.items() if v is None)

    @property
    def present(self) -> tuple[str, ...]:
        """Names of the variables with a value, in specification order."""
        return tuple(n for n, v in self.values.items() if v is not None)
