"""Two tiny hand-written cohorts for the merge tests: a phantom-like one and an imported one.

The phantom-like cohort has no ``labelled`` column (all 15 structures labelled) and lymph-node
columns; the imported one labels the pancreas only and has an ``import.json``.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np

from tests.training.importers._cohort import write_nifti_array

__all__ = ["IMPORT_TRUTH", "PHANTOM_TRUTH", "imported_cohort", "phantom_cohort"]

PHANTOM_TRUTH = ("patient_id", "StudyInstanceUID", "nccn_label", "n_status", "node_count")
IMPORT_TRUTH = ("patient_id", "nccn_label", "has_tumor", "labelled", "import_source")


def _write_table(path: Path, columns: tuple[str, ...], rows: list[dict[str, str]]) -> None:
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(columns))
        writer.writeheader()
        writer.writerows(rows)


def _case(folder: Path, label_value: int) -> None:
    affine = np.diag([2.0, 2.0, 3.0, 1.0])
    label = np.zeros((6, 5, 4), dtype=np.uint8)
    label[1:4, 1:4, 1:3] = label_value
    write_nifti_array(folder / "image.nii.gz", np.full(label.shape, 40, np.int16), affine)
    write_nifti_array(folder / "label.nii.gz", label, affine)


def phantom_cohort(root: Path, ids: tuple[str, ...] = ("PHANTOM-0001", "PHANTOM-0002")) -> Path:
    """A cohort as ``pancreas-node phantom`` writes it: no ``labelled`` column, node columns."""
    rows = []
    for index, pid in enumerate(ids):
        _case(root / pid, 1)
        rows.append(
            {
                "patient_id": pid,
                "StudyInstanceUID": f"1.2.3.{index}",
                "nccn_label": str(index % 3),
                "n_status": str(index % 2),
                "node_count": "3",
            }
        )
    _write_table(root / "truth.csv", PHANTOM_TRUTH, rows)
    _write_table(
        root / "clinical.csv",
        ("patient_id", "age", "sex"),
        [{"patient_id": pid, "age": "64", "sex": "1"} for pid in ids],
    )
    return root


def imported_cohort(root: Path, ids: tuple[str, ...] = ("pancreas_001", "pancreas_004")) -> Path:
    """A cohort as ``pancreas-node import`` writes it: pancreas labelled only, import.json."""
    rows = []
    for pid in ids:
        _case(root / pid, 1)
        rows.append(
            {
                "patient_id": pid,
                "nccn_label": "",
                "has_tumor": "",
                "labelled": "pancreas",
                "import_source": "msd",
            }
        )
    _write_table(root / "truth.csv", IMPORT_TRUTH, rows)
    _write_table(
        root / "clinical.csv",
        ("patient_id", "age", "ca19_9_baseline"),
        [{"patient_id": pid, "age": "", "ca19_9_baseline": "37"} for pid in ids],
    )
    (root / "import.json").write_text(json.dumps({"format": "msd"}), encoding="utf-8")
    return root
