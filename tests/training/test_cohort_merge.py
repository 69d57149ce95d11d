"""Merging cohorts (``training.cohort_merge``, issue 28): a phantom-like and an imported cohort."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

from pancreas_contracts.labels import label_by_name
from tests.training import _lymph_node_cohort
from tests.training._mixed_cohort import (
    PHANTOM_TRUTH,
    imported_cohort,
    phantom_cohort,
)
from tests.training.importers._cohort import read_csv
from training._evaluation_truth import read_truth
from training._lymph_node_data import discover_lymph_node_cases
from training.cohort_merge import MergeSource, merge_cohorts
from training.dataset import ALL_LABELLED, NCCN_UNKNOWN, discover_cases


def _header(path: Path) -> list[str]:
    with path.open(newline="", encoding="utf-8") as handle:
        return next(csv.reader(handle))


def test_merge_writes_the_union_of_columns_with_empty_cells(tmp_path: Path) -> None:
    phantoms = phantom_cohort(tmp_path / "phantoms")
    imported = imported_cohort(tmp_path / "msd07")
    out = tmp_path / "merged"
    summary = merge_cohorts([phantoms, imported], out)

    assert summary.cases == ("PHANTOM-0001", "PHANTOM-0002", "pancreas_001", "pancreas_004")
    assert summary.sources == (MergeSource("phantoms", 2, None), MergeSource("msd07", 2, "msd"))
    assert not summary.copied
    expected = [*PHANTOM_TRUTH, "has_tumor", "labelled", "import_source"]
    assert _header(out / "truth.csv") == expected
    assert list(summary.truth_columns) == expected
    assert _header(out / "clinical.csv") == ["patient_id", "age", "sex", "ca19_9_baseline"]
    truth = read_csv(out / "truth.csv")
    # A phantom row's labelled cell stays empty: all 15 structures labelled.
    assert truth["PHANTOM-0001"]["labelled"] == ""
    assert truth["PHANTOM-0002"]["import_source"] == ""
    assert truth["PHANTOM-0002"]["n_status"] == "1"
    assert truth["pancreas_001"]["labelled"] == "pancreas"
    assert truth["pancreas_001"]["n_status"] == ""
    assert truth["pancreas_001"]["StudyInstanceUID"] == ""
    clinical = read_csv(out / "clinical.csv")
    assert clinical["PHANTOM-0001"] == {
        "patient_id": "PHANTOM-0001",
        "age": "64",
        "sex": "1",
        "ca19_9_baseline": "",
    }
    assert clinical["pancreas_004"]["ca19_9_baseline"] == "37"
    assert clinical["pancreas_004"]["sex"] == ""

    provenance = json.loads((out / "merge.json").read_text(encoding="utf-8"))
    assert provenance["sources"] == [
        {"name": "phantoms", "cases": 2, "format": None},
        {"name": "msd07", "cases": 2, "format": "msd"},
    ]
    assert provenance["mode"] == "link" and provenance["cases"] == 4
    assert provenance["date"] and provenance["tool_version"]


def test_merged_patient_folders_are_absolute_symlinks(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    phantoms = phantom_cohort(tmp_path / "phantoms")
    imported = imported_cohort(tmp_path / "msd07")
    out = tmp_path / "merged"
    # Relative source paths: the links must not depend on the working directory.
    monkeypatch.chdir(tmp_path)
    merge_cohorts([Path("phantoms"), Path("msd07")], Path("merged"))
    for pid, source in (("PHANTOM-0001", phantoms), ("pancreas_004", imported)):
        link = out / pid
        assert link.is_symlink()
        target = link.readlink()
        assert target.is_absolute()
        assert target == (source / pid).resolve()
        assert (link / "image.nii.gz").is_file()


def test_discover_cases_reads_the_merged_cohort(tmp_path: Path) -> None:
    out = tmp_path / "merged"
    merge_cohorts([phantom_cohort(tmp_path / "p"), imported_cohort(tmp_path / "i")], out)
    cases = {case.patient_id: case for case in discover_cases(out)}
    assert list(cases) == ["PHANTOM-0001", "PHANTOM-0002", "pancreas_001", "pancreas_004"]
    pancreas = label_by_name("pancreas").value
    assert cases["PHANTOM-0001"].labelled == ALL_LABELLED
    assert not cases["PHANTOM-0002"].partial
    assert cases["PHANTOM-0002"].nccn_label == 1
    assert cases["pancreas_001"].labelled == frozenset({pancreas})
    assert cases["pancreas_001"].partial
    assert cases["pancreas_001"].nccn_label == NCCN_UNKNOWN
    assert cases["PHANTOM-0001"].clinical["age"] == 64.0
    assert cases["pancreas_004"].clinical["age"] is None
    assert cases["pancreas_004"].clinical["ca19_9_baseline"] == 37.0
    assert cases["pancreas_004"].image == out / "pancreas_004" / "image.nii.gz"
    assert cases["pancreas_004"].label is not None and cases["pancreas_004"].label.is_file()
    # The evaluation's reader too: an empty has_tumor is a tumor, as in the sources.
    truth = read_truth(out)
    assert truth["PHANTOM-0001"].has_tumor and truth["pancreas_001"].nccn_label is None


def test_lymph_node_reader_follows_the_symlinks(tmp_path: Path) -> None:
    source = _lymph_node_cohort.write_cohort(tmp_path / "ln", patients=2)
    out = tmp_path / "merged"
    merge_cohorts([source], out)
    cases = discover_lymph_node_cases(out)
    assert [case.patient_id for case in cases] == ["LN-0001", "LN-0002"]
    assert cases[1].n_status == 1 and cases[1].nodes.is_file()


def test_copy_writes_real_folders(tmp_path: Path) -> None:
    # A merged cohort is a source too: --copy follows its links.
    first = tmp_path / "first"
    merge_cohorts([phantom_cohort(tmp_path / "p"), imported_cohort(tmp_path / "i")], first)
    out = tmp_path / "copied"
    summary = merge_cohorts([first], out, copy=True)
    assert summary.copied and summary.sources == (MergeSource("first", 4, None),)
    folder = out / "PHANTOM-0001"
    assert folder.is_dir() and not folder.is_symlink()
    assert (folder / "label.nii.gz").is_file() and not (folder / "label.nii.gz").is_symlink()
    assert json.loads((out / "merge.json").read_text(encoding="utf-8"))["mode"] == "copy"
    assert len(discover_cases(out)) == 4


def test_a_duplicate_patient_id_is_refused_naming_both_sources(tmp_path: Path) -> None:
    first = phantom_cohort(tmp_path / "phantoms-a")
    second = phantom_cohort(tmp_path / "phantoms-b", ("PHANTOM-0002", "PHANTOM-0003"))
    out = tmp_path / "merged"
    with pytest.raises(ValueError, match="PHANTOM-0002") as caught:
        merge_cohorts([first, second], out)
    message = str(caught.value)
    assert "phantoms-a" in message and "phantoms-b" in message and "\n" not in message
    assert not out.exists()


def test_the_same_source_twice_is_refused(tmp_path: Path) -> None:
    source = phantom_cohort(tmp_path / "phantoms")
    with pytest.raises(ValueError, match="given twice"):
        merge_cohorts([source, tmp_path / "." / "phantoms"], tmp_path / "merged")


def test_a_non_empty_out_is_refused(tmp_path: Path) -> None:
    out = tmp_path / "merged"
    out.mkdir()
    (out / "notes.txt").write_text("x", encoding="utf-8")
    with pytest.raises(ValueError, match="not an empty folder"):
        merge_cohorts([phantom_cohort(tmp_path / "p")], out)
    assert sorted(p.name for p in out.iterdir()) == ["notes.txt"]


def test_an_empty_out_folder_is_used(tmp_path: Path) -> None:
    out = tmp_path / "merged"
    out.mkdir()
    merge_cohorts([phantom_cohort(tmp_path / "p")], out)
    assert (out / "truth.csv").is_file()


def test_out_inside_a_source_is_refused(tmp_path: Path) -> None:
    source = phantom_cohort(tmp_path / "p")
    with pytest.raises(ValueError, match="inside source p"):
        merge_cohorts([source], source / "merged")


@pytest.mark.parametrize("missing", ["truth.csv", "clinical.csv"])
def test_a_folder_that_is_not_a_cohort_is_refused(tmp_path: Path, missing: str) -> None:
    source = phantom_cohort(tmp_path / "p")
    (source / missing).unlink()
    out = tmp_path / "merged"
    with pytest.raises(ValueError, match=f"source p is not a cohort: no {missing}"):
        merge_cohorts([imported_cohort(tmp_path / "i"), source], out)
    assert not out.exists()


def test_a_patient_without_its_folder_is_refused(tmp_path: Path) -> None:
    source = imported_cohort(tmp_path / "i")
    (source / "pancreas_004" / "image.nii.gz").unlink()
    (source / "pancreas_004" / "label.nii.gz").unlink()
    (source / "pancreas_004").rmdir()
    with pytest.raises(ValueError, match="patient pancreas_004 has no folder"):
        merge_cohorts([source], tmp_path / "merged")


def test_a_patient_id_that_is_a_path_is_refused(tmp_path: Path) -> None:
    source = imported_cohort(tmp_path / "i")
    text = (source / "truth.csv").read_text(encoding="utf-8")
    (source / "truth.csv").write_text(text.replace("pancreas_004", "../x"), encoding="utf-8")
    with pytest.raises(ValueError, match="invalid patient_id"):
        merge_cohorts([source], tmp_path / "merged")


def test_no_source_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="no source"):
        merge_cohorts([], tmp_path / "merged")
