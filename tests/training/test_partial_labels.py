"""Partial labels: truth.csv's ``labelled`` and unknown NCCN, the marginal loss, the metrics."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest
import torch

from inference.volume import Volume, read_nifti, write_nifti
from pancreas_contracts.labels import NUM_CLASSES
from phantom import PhantomOptions, generate_cohort
from tests.training._training_arrays import tiny_arrays
from training._evaluation_scores import summarise_pipeline
from training._evaluation_truth import read_truth
from training._loop import CohortArrays, _Batches, labels_tumor, with_tumor
from training._metrics import group_labelled, labelled_dice_counts, total_dice_counts
from training._partial_labels import labelled_matrix, partial_label_lines
from training._splits import nested_splits
from training.cohort import data_hash, load_cohort
from training.dataset import (
    ALL_LABELLED,
    NCCN_UNKNOWN,
    NO_TUMOR,
    CaseRecord,
    PreprocessConfig,
    discover_cases,
    make_augmentation,
)
from training.detection import detection_cases
from training.evaluation import evaluate_cohort
from training.losses import ClassificationLoss, SegmentationLoss, merge_unlabelled
from training.structure_bundle import build_test_bundle

torch.set_num_threads(2)

# The test bundle labels its whole 160 mm cube pancreas: the scan must hold the whole cube.
EVAL_OPTIONS = PhantomOptions(fov_mm=(320.0, 320.0, 240.0), pixel_spacing=2.0, slice_thickness=4.0)


def _cohort(folder: Path, truth: str, organs: dict[str, tuple[int, ...]]) -> Path:
    """Small NIfTI cases; ``organs`` gives each case's label values (1 = pancreas, 2 = tumor)."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "truth.csv").write_text(truth, encoding="utf-8")
    rows = "".join(f"{pid},{60 + i},{i % 2}\n" for i, pid in enumerate(organs))
    (folder / "clinical.csv").write_text("patient_id,age,sex\n" + rows, encoding="utf-8")
    affine = np.diag([4.0, 4.0, 4.0, 1.0])
    for pid, values in organs.items():
        label = np.zeros((24, 24, 16), dtype=np.uint8)
        if 1 in values:
            label[8:16, 8:16, 6:10] = 1
        if 2 in values:
            label[10:13, 10:13, 7:9] = 2
        if 3 in values:
            label[4:6, 4:6, 4:8] = 3
        image = np.where(label > 0, 100.0, -50.0).astype(np.float32)
        write_nifti(Volume(image, affine), folder / pid / "image.nii.gz")
        write_nifti(Volume(label, affine), folder / pid / "label.nii.gz")
    return folder


_TRUTH = (
    "patient_id,nccn_label,has_tumor,labelled,import_source\n"
    "P1,0,1,,\n"
    "P2,1,1,pancreas;tumor,msd\n"
    "P3,,,pancreas,nih\n"
    "P4,,1,pancreas; tumor ,msd\n"
    "P5,,0,pancreas,nih\n"
)


def test_truth_csv_labelled_and_unknown_nccn_are_read(tmp_path: Path) -> None:
    organs = {"P1": (1, 2, 3), "P2": (1, 2), "P3": (1,), "P4": (1, 2), "P5": (1,)}
    cases = discover_cases(_cohort(tmp_path / "c", _TRUTH, organs))
    assert [c.nccn_label for c in cases] == [0, 1, NCCN_UNKNOWN, NCCN_UNKNOWN, NO_TUMOR]
    assert [c.has_tumor for c in cases] == [True, True, True, True, False]
    assert cases[0].labelled == ALL_LABELLED and not cases[0].partial
    assert cases[1].labelled == cases[3].labelled == frozenset({1, 2})
    assert cases[2].labelled == frozenset({1})
    assert cases[4].labelled == frozenset({1, 2})  # tumor-free: the tumor is annotated (none)
    arrays = load_cohort(cases, PreprocessConfig(32, 64.0), None)
    assert arrays.labelled is not None and arrays.labelled.shape == (5, NUM_CLASSES)
    assert arrays.labelled[:, 0].all() and arrays.labelled[0].all()
    assert arrays.labelled[2].tolist() == [True, True] + [False] * (NUM_CLASSES - 2)
    assert with_tumor(arrays, np.arange(5)).tolist() == [0, 1]
    assert labels_tumor(arrays, np.arange(5)).tolist() == [True, True, False, True, True]
    lines = "\n".join(partial_label_lines(cases))
    assert "NCCN category unknown: 2 patient(s)" in lines
    assert "4 of 5 patients label only some structures" in lines
    assert "pancreas 5, tumor 4, portal_vein 1" in lines
    assert "P3: pancreas;" in lines and "P2: pancreas;tumor" in lines
    # A fully labelled cohort: no matrix, and the digest it had before partial labels.
    full = CohortArrays(arrays.images, arrays.labels, arrays.clinical, arrays.targets,
                        arrays.patient_ids)  # fmt: skip
    assert labelled_matrix([cases[0]]) is None and data_hash(full) != data_hash(arrays)


def test_bad_labelled_names_and_voxels_of_unlabelled_structures_are_refused(
    tmp_path: Path,
) -> None:
    bad = _cohort(
        tmp_path / "bad", "patient_id,nccn_label,labelled\nP9,0,pancreas;liver\n", {"P9": (1,)}
    )
    with pytest.raises(ValueError, match=r"labelled of 'P9' names 'liver', not a structure"):
        discover_cases(bad)
    extra = _cohort(
        tmp_path / "extra", "patient_id,nccn_label,labelled\nP8,0,pancreas\n", {"P8": (1, 2)}
    )
    with pytest.raises(ValueError, match=r"P8: label map has tumor voxels, but .* pancreas$"):
        load_cohort(discover_cases(extra), PreprocessConfig(32, 64.0), None)
    with pytest.raises(ValueError, match="labelled must be a frozenset"):
        CaseRecord("X", None, None, None, {}, 0, labelled=frozenset({0, 1}))
    with pytest.raises(ValueError, match="NCCN_UNKNOWN"):
        CaseRecord("X", None, None, None, {}, -3)


def test_unknown_nccn_is_a_stratum_and_ignored_by_the_classification_loss() -> None:
    labels = [0] * 30 + [1] * 20 + [NO_TUMOR] * 10 + [NCCN_UNKNOWN] * 15
    for split in nested_splits(labels, 5, seed=2):
        assert (np.asarray(labels)[split.test] == NCCN_UNKNOWN).sum() == 3
    torch.manual_seed(0)
    logits = torch.randn(4, 3, requires_grad=True)
    targets = torch.tensor([0, NCCN_UNKNOWN, 2, NO_TUMOR])
    loss = ClassificationLoss((1.0, 2.0, 2.5))(logits, targets)
    kept = targets >= 0
    expected = torch.nn.functional.cross_entropy(
        logits[kept], targets[kept], weight=torch.tensor([1.0, 2.0, 2.5])
    )
    assert loss.item() == pytest.approx(expected.item())
    loss.backward()
    assert logits.grad is not None and float(logits.grad[~kept].abs().max()) == 0.0


def _seg(seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    torch.manual_seed(seed)
    logits = torch.randn(3, 16, 6, 6, 6)
    target = torch.zeros(3, 1, 6, 6, 6, dtype=torch.long)
    target[:, :, 1:4, 1:4, 1:4] = 1
    target[:, :, 2:3, 2:3, 2:3] = 2
    target[0, :, 4:6, 4:6, 4:6] = 3
    return logits, target


@pytest.mark.parametrize("weights", [None, tuple(float(1 + k % 3) for k in range(16))])
def test_a_fully_labelled_batch_gets_exactly_the_plain_loss(
    weights: tuple[float, ...] | None,
) -> None:
    logits, target = _seg()
    loss = SegmentationLoss(label_weights=weights)
    plain = loss(logits, target)
    everything = torch.ones(3, 16, dtype=torch.bool)
    assert torch.equal(loss(logits, target, everything), plain)  # the same code path
    # The marginal formula itself reduces to the plain loss when everything is labelled.
    assert torch.allclose(loss.marginal(logits, target, everything), plain, atol=1e-6)
    assert torch.allclose(merge_unlabelled(logits, everything), logits)


def test_the_marginal_loss_merges_unlabelled_classes_into_the_background() -> None:
    logits, target = _seg(1)
    labelled = torch.ones(3, 16, dtype=torch.bool)
    labelled[1, 3:] = False  # case 1 labels pancreas and tumor
    labelled[2, 2:] = False  # case 2 the pancreas only
    target[2][target[2] == 2] = 0  # its tumor is not labelled: 0 in the file
    merged = merge_unlabelled(logits, labelled)
    probs, plain = torch.softmax(merged, 1), torch.softmax(logits, 1)
    torch.testing.assert_close(probs[2, 0], plain[2, 0] + plain[2, 2:].sum(0))
    assert float(probs[2, 2:].abs().max()) == 0.0 and torch.allclose(probs[0], plain[0])
    loss = SegmentationLoss()
    # Case 2 predicting a confident tumor or vessel on its background is not punished:
    # the loss does not change when its background logit mass moves to unlabelled classes.
    moved = logits.clone()
    background = target[2, 0] == 0
    moved[2, 0][background] = -20.0
    moved[2, 6][background] = torch.logsumexp(logits[2][[0, 6]], 0)[background]
    torch.testing.assert_close(loss(moved, target, labelled), loss(logits, target, labelled))
    assert not torch.allclose(loss(moved, target), loss(logits, target))  # plain loss punishes
    # Gradients flow through the masked Dice term.
    grads = logits.clone().requires_grad_(True)
    SegmentationLoss(0.0, 1.0, 0.0)(grads, target, labelled).backward()
    assert grads.grad is not None and float(grads.grad[0].abs().max()) > 0.0


def test_batches_carry_the_labelled_rows_whatever_the_augmentation() -> None:
    base = tiny_arrays(4)
    labelled = np.ones((4, NUM_CLASSES), dtype=bool)
    labelled[2, 3:] = False
    arrays = CohortArrays(base.images, base.labels, base.clinical, base.targets,
                          base.patient_ids, labelled)  # fmt: skip
    batches = _Batches(arrays, make_augmentation(0), torch.device("cpu"))
    assert batches.labelled(arrays, np.array([0, 1])) is None  # fully labelled: plain loss
    rows = batches.labelled(arrays, np.array([1, 2]))
    assert rows is not None and rows.dtype == torch.bool and rows.shape == (2, NUM_CLASSES)
    assert rows[0].all() and rows[1, :3].all() and not rows[1, 3:].any()
    image, seg = batches(np.array([1, 2]))
    assert image.shape[0] == seg.shape[0] == rows.shape[0]


def test_structure_dice_counts_only_the_patients_that_label_it() -> None:
    truth = np.zeros((3, 8, 8, 8), dtype=np.uint8)
    truth[:, 2:6, 2:6, 2:6] = 1
    truth[0, 3:4, 3:4, 3:4] = 2
    truth[0, 6:8, 6:8, 6:8] = 3
    pred = truth.copy()
    pred[2, 0:2, 0:2, 0:2] = 3  # a vessel where case 2 labels none: not a false positive
    pred[2, 3:4, 3:4, 3:4] = 2  # a tumor inside its gland: still gland
    labelled = np.ones((3, NUM_CLASSES), dtype=bool)
    labelled[2, 2:] = False
    counts, counted = labelled_dice_counts(list(pred), list(truth), labelled)
    assert counted.tolist() == [3, 2, 2, 2]
    assert counts[0, 0] == counts[0, 1] and counts[2, 0] == counts[2, 1]  # Dice 1 where counted
    plain, everyone = labelled_dice_counts(list(pred), list(truth), None)
    np.testing.assert_array_equal(plain, total_dice_counts(list(pred), list(truth)))
    assert everyone.tolist() == [3, 3, 3, 3] and plain[2, 0] < plain[2, 1]
    assert group_labelled(labelled[2]).tolist() == [True, False, False, False]


@pytest.mark.slow
def test_evaluation_scores_structures_where_labelled_and_nccn_where_known(
    tmp_path: Path,
) -> None:
    cohort = tmp_path / "cohort"
    generate_cohort(cohort, 2, 5, EVAL_OPTIONS)
    # PHANTOM-0002 becomes an imported case: pancreas only, no NCCN category, no tumor status.
    label = read_nifti(cohort / "PHANTOM-0002" / "label.nii.gz")
    kept = np.where(label.array == 1, 1, 0).astype(np.uint8)
    write_nifti(Volume(kept, label.affine), cohort / "PHANTOM-0002" / "label.nii.gz")
    with (cohort / "truth.csv").open(newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    rows[1].update(nccn_label="", has_tumor="", labelled="pancreas")
    with (cohort / "truth.csv").open("w", newline="", encoding="utf-8") as handle:
        fields = dict.fromkeys([*rows[0], *rows[1]])
        writer = csv.DictWriter(handle, list(fields), restval="")
        writer.writeheader()
        writer.writerows(rows)
    truth = read_truth(cohort)["PHANTOM-0002"]
    assert truth.has_tumor and truth.nccn_label is None  # unknown, not tumor-free
    bundle = build_test_bundle(tmp_path / "bundle")
    done = evaluate_cohort(cohort, [bundle], tmp_path / "eval", pipeline=False, device="cpu")
    cube = done.report["rows"][0]
    assert cube["n"] == 1 and cube["cases_total"] == 2  # NCCN metrics over the known one
    assert cube["dice_n"] == {"pancreas": 2, "tumor": 1, "major_vessels": 1, "key_arteries": 1}
    partial = next(c for c in cube["cases"] if c["patient_id"] == "PHANTOM-0002")
    assert partial["dice"]["pancreas"] is not None and partial["dice"]["tumor"] is None
    assert done.report["cohort"]["nccn_unknown"] == 1
    assert done.report["cohort"]["partially_labelled"] == 1
    markdown = done.markdown.read_text(encoding="utf-8")
    assert "1 of unknown category" in markdown and "(n=1)" in markdown
    # The pipeline's tumor detection counts only patients whose tumor is labelled.
    cases = [
        {"has_tumor": True, "tumor_labelled": False, "scores": None, "category": None},
        {"has_tumor": True, "scores": None, "category": None},
    ]
    assert summarise_pipeline(cases)["tumor_present"]["found"]["n"] == 1


def test_a_detector_leaves_out_the_patients_whose_tumor_nobody_labelled() -> None:
    """An NIH-like import (pancreas only, no category) is neither PDAC nor PDAC-free."""
    pancreas, tumor = frozenset({1}), frozenset({1, 2})
    cases = [
        CaseRecord("staged", None, None, None, {}, 1),
        CaseRecord("free", None, None, None, {}, NO_TUMOR),
        CaseRecord("msd", None, None, None, {}, NCCN_UNKNOWN, labelled=tumor),
        CaseRecord("nih", None, None, None, {}, NCCN_UNKNOWN, labelled=pancreas),
    ]
    assert [c.tumor_status_known for c in cases] == [True, True, True, False]
    kept, left_out = detection_cases(cases)
    assert [c.patient_id for c in kept] == ["staged", "free", "msd"] and left_out == ["nih"]
