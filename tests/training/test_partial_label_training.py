"""A mixed cohort trains: phantoms labelling everything plus partially labelled cases.

An NIH-like case labels its pancreas alone and has neither NCCN category nor tumor status
(its own stratum: a single such patient always lands in fold 0's test rows), and a site case
labels pancreas and tumor with a known category (so a fold trains on a partial case).
"""

from __future__ import annotations

import csv
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from inference.volume import Volume, read_nifti, write_nifti
from phantom import PhantomOptions, generate_cohort
from tests.training._training_arrays import tiny_config
from training._splits import nested_splits
from training.cohort import train_cohort
from training.dataset import NCCN_UNKNOWN, discover_cases
from training.losses import SegmentationLoss

torch.set_num_threads(2)

SMALL = PhantomOptions(fov_mm=(200.0, 160.0, 100.0), pixel_spacing=2.0, slice_thickness=4.0)
PARTIAL = "NIH-0001"
SITE = "SITE-0001"


def _copy_case(folder: Path, source: str, target: str, keep: tuple[int, ...]) -> None:
    """Copy phantom ``source`` as ``target`` with only the labels ``keep`` in its label map."""
    (folder / target).mkdir()
    shutil.copy(folder / source / "image.nii.gz", folder / target / "image.nii.gz")
    label = read_nifti(folder / source / "label.nii.gz")
    kept = np.where(np.isin(label.array, keep), label.array, 0).astype(np.uint8)
    write_nifti(Volume(kept, label.affine), folder / target / "label.nii.gz")


def _append(path: Path, rows: list[dict[str, str]]) -> None:
    with path.open(newline="", encoding="utf-8") as handle:
        old = list(csv.DictReader(handle))
    fields = list(old[0]) + [k for row in rows for k in row if k not in old[0]]
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, list(dict.fromkeys(fields)), restval="")
        writer.writeheader()
        writer.writerows([*old, *rows])


def _mixed_cohort(folder: Path) -> Path:
    """Four phantoms; an NIH-like and a site case copied from two of them (partial labels)."""
    generate_cohort(folder, 4, 11, SMALL)
    _copy_case(folder, "PHANTOM-0001", PARTIAL, (1,))
    with (folder / "truth.csv").open(newline="", encoding="utf-8") as handle:
        truth = {row["patient_id"]: row for row in csv.DictReader(handle)}
    # A resectable phantom: its stratum is then large enough for fold 0 to train on the copy.
    source = next(pid for pid, row in truth.items() if row["nccn_label"] == "0")
    _copy_case(folder, source, SITE, (1, 2))
    _append(
        folder / "truth.csv",
        [
            {"patient_id": PARTIAL, "nccn_label": "", "has_tumor": "", "labelled": "pancreas",
             "import_source": "nih_pancreas_ct"},
            {"patient_id": SITE, "nccn_label": truth[source]["nccn_label"], "has_tumor": "1",
             "labelled": "pancreas;tumor"},
        ],
    )  # fmt: skip
    _append(folder / "clinical.csv", [{"patient_id": PARTIAL}, {"patient_id": SITE}])
    return folder


@pytest.mark.slow
def test_a_mixed_cohort_trains_with_the_marginal_loss_and_reports_its_labels(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cohort = _mixed_cohort(tmp_path / "cohort")
    cases = discover_cases(cohort)
    partial = next(c for c in cases if c.patient_id == PARTIAL)
    assert partial.labelled == frozenset({1}) and partial.nccn_label == NCCN_UNKNOWN
    assert partial.has_tumor  # unknown, not tumor-free
    # A split seed whose fold 0 trains on the site case (so the marginal loss runs).
    targets = [c.nccn_label for c in cases]
    ids = [c.patient_id for c in cases]
    row, site = ids.index(PARTIAL), ids.index(SITE)
    seed = next(s for s in range(50) if site in nested_splits(targets, 2, s)[0].train)
    calls: list[torch.Tensor] = []
    plain_marginal = SegmentationLoss.marginal

    def spy(
        self: SegmentationLoss, logits: torch.Tensor, target: torch.Tensor, known: torch.Tensor
    ) -> torch.Tensor:
        calls.append(known.detach().cpu())
        loss = plain_marginal(self, logits, target, known)
        assert torch.isfinite(loss)
        return loss

    monkeypatch.setattr(SegmentationLoss, "marginal", spy)
    config = tiny_config(seed=seed)
    run = train_cohort(cohort, tmp_path / "out", config)
    assert calls and all(not bool(k.all()) for k in calls)  # only partial batches
    report = (tmp_path / "out" / "report.md").read_text(encoding="utf-8")
    assert "1 NCCN unknown" in report
    assert "2 of 6 patients label only some structures" in report
    assert f"{PARTIAL}: pancreas;" in report and f"{SITE}: pancreas;tumor" in report
    assert "pancreas 6, tumor 5, portal_vein 4" in report
    assert "| structure | Dice | n labelled |" in report
    fold = run.folds["multimodal"][0]
    test = nested_splits(targets, 2, seed)[0].test
    assert fold["dice_n"]["pancreas"] == len(test)
    assert fold["dice_n"]["tumor"] == len(test) - int(row in test)
    assert sum(fold["confusion"][0]) + sum(fold["confusion"][1]) + sum(fold["confusion"][2]) == sum(
        targets[i] >= 0 for i in test
    )
