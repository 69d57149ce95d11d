"""A hand-made lymph-node cohort for the tests: tiny volumes, boxes for organs, ball nodes.

Each patient: a 40 x 40 x 24 CT at 4 x 4 x 6 mm (fat at -100 HU, the ten attention
structures as boxes at 40 HU, a PDAC box at 10 HU inside the pancreas), ``organs.nii.gz``,
``label.nii.gz`` (pancreas 1, tumor 2), ``nodes.nii.gz`` with two benign nodes (small, 25 HU)
and, for N+ patients, a metastatic node (larger, 70 HU), ``lymph_nodes.json`` and the
``truth.csv`` columns of the phantom generator. Patients alternate N0 / N+.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import numpy.typing as npt

from inference.volume import Volume, write_nifti
from pancreas_contracts.lymph_nodes import NodeTruth

__all__ = ["SHAPE", "write_cohort"]

SHAPE = (40, 40, 24)
_SPACING = (4.0, 4.0, 6.0)
#: structure value -> box (i0, i1, j0, j1, k0, k1)
_BOXES = {
    1: (28, 34, 24, 32, 8, 16),
    2: (18, 21, 24, 27, 18, 24),
    3: (22, 30, 27, 34, 12, 20),
    4: (18, 21, 21, 24, 0, 24),
    5: (12, 28, 16, 20, 10, 14),
    6: (8, 12, 14, 20, 6, 14),
    7: (18, 20, 13, 15, 4, 12),
    8: (18, 28, 20, 21, 14, 15),
    9: (20, 22, 24, 26, 15, 18),
    10: (10, 18, 20, 21, 14, 15),
}
_TUMOR = (20, 24, 16, 20, 10, 13)
_BENIGN = ((14, 23, 12), (25, 14, 12))
_METASTATIC = (15, 12, 9)


def _affine() -> npt.NDArray[np.float64]:
    affine = np.diag([*_SPACING, 1.0])
    affine[:3, 3] = -np.asarray(_SPACING) * (np.asarray(SHAPE) - 1) / 2.0
    return affine


def _box(array: npt.NDArray[np.generic], box: tuple[int, ...], value: float) -> None:
    i0, i1, j0, j1, k0, k1 = box
    array[i0:i1, j0:j1, k0:k1] = value


def _ball(centre: tuple[int, int, int], radius_mm: float) -> npt.NDArray[np.bool_]:
    grid = np.indices(SHAPE).astype(np.float64)
    distance = sum(
        ((grid[a] - centre[a]) * _SPACING[a]) ** 2 for a in range(3)
    )  # fmt: skip
    out: npt.NDArray[np.bool_] = np.sqrt(distance) <= radius_mm
    return out


def _patient(root: Path, positive: bool, rng: np.random.Generator) -> list[NodeTruth]:
    affine = _affine()
    image = np.full(SHAPE, -100.0, dtype=np.float32)
    organs = np.zeros(SHAPE, dtype=np.uint8)
    for value, box in _BOXES.items():
        _box(organs, box, value)
        _box(image, box, 40.0)
    label = (organs == 5).astype(np.uint8)
    _box(label, _TUMOR, 2)
    _box(image, _TUMOR, 10.0)
    nodes = np.zeros(SHAPE, dtype=np.uint8)
    placed = [(c, 5.0, False) for c in _BENIGN]
    if positive:
        placed.append((_METASTATIC, 8.0, True))
    truth = []
    for node_id, (centre, radius, metastatic) in enumerate(placed, start=1):
        ball = _ball(centre, radius) & (organs == 0)
        nodes[ball] = node_id
        image[ball] = 70.0 if metastatic else 25.0
        x, y, z = (affine[:3, :3] @ np.asarray(centre, dtype=np.float64)) + affine[:3, 3]
        truth.append(
            NodeTruth(
                node_id=node_id, station="8a" if node_id == 1 else "14p",
                kind="metastatic" if metastatic else "benign", metastatic=metastatic,
                centre_lps_mm=(-float(x), -float(y), float(z)), short_axis_mm=2 * radius,
                long_axis_mm=2 * radius + 1.0, volume_ml=float(ball.sum()) * 0.096,
            )
        )  # fmt: skip
    image += rng.normal(0.0, 5.0, SHAPE).astype(np.float32)
    for name, array in (("image", image), ("organs", organs), ("label", label),
                        ("nodes", nodes)):  # fmt: skip
        write_nifti(Volume(array, affine), root / f"{name}.nii.gz")
    document = [n.model_dump(mode="json") for n in truth]
    (root / "lymph_nodes.json").write_text(json.dumps(document), encoding="utf-8")
    return truth


def write_cohort(out: Path, patients: int = 8, seed: int = 0) -> Path:
    """Write ``patients`` patients (alternately N0 and N+) into ``out``."""
    rng = np.random.default_rng(seed)
    rows = []
    for index in range(patients):
        pid = f"LN-{index + 1:04d}"
        truth = _patient(out / pid, index % 2 == 1, rng)
        positive = sum(n.metastatic for n in truth)
        rows.append({"patient_id": pid, "nccn_label": "0", "has_tumor": "1",
                     "n_status": str(int(positive > 0)), "node_count": str(len(truth)),
                     "positive_nodes": str(positive)})  # fmt: skip
    with (out / "truth.csv").open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    (out / "clinical.csv").write_text(
        "patient_id\n" + "".join(f"{r['patient_id']}\n" for r in rows), encoding="utf-8"
    )
    return out
