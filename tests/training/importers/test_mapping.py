"""Mapping files: parsing, look-up order, the shipped examples."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from training.importers import example_mappings, load_mapping, normalise_name, remap_label_map


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "m.toml"
    path.write_text(text, encoding="utf-8")
    return path


def test_value_then_names_then_aliases(tmp_path: Path) -> None:
    mapping = load_mapping(
        _write(
            tmp_path,
            '[values]\n1 = "pancreas"\n[names]\ncancer = "tumor"\n'
            '[aliases]\nportal_vein = ["Portal Vein", "PV"]\n',
        )
    )
    assert mapping.target(1, ["cancer"]) == "pancreas"
    assert mapping.target(9, ["CANCER"]) == "tumor"
    assert mapping.target(None, ["portal-vein"]) == "portal_vein"
    assert mapping.target(None, ["pv"]) == "portal_vein"
    assert mapping.target(None, ["liver"]) is None
    assert mapping.targets() == {"pancreas", "tumor", "portal_vein"}
    assert len(mapping.sha256) == 64 and mapping.file_name == "m.toml"
    assert normalise_name("  Portal -_ Vein ") == "portal_vein"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('[values]\n1 = "liver"\n', "not a project label"),
        ('[values]\n0 = "pancreas"\n', "positive"),
        ('[values]\nx = "pancreas"\n', "not an integer"),
        ('[colours]\na = "b"\n', "unknown section"),
        ('[names]\npv = "portal_vein"\n[aliases]\nsmv = ["PV"]\n', "maps to both"),
        ("[mapping]\n", "maps no source label"),
        ("[values\n", "not valid TOML"),
    ],
)
def test_bad_mappings_are_refused(tmp_path: Path, text: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        load_mapping(_write(tmp_path, text))


def test_shipped_examples_load_by_name() -> None:
    names = set(example_mappings())
    assert {
        "msd-task07-pancreas",
        "nih-pancreas-ct",
        "totalsegmentator-v2",
        "rtstruct-aliases-example",
    } <= names
    assert load_mapping("msd-task07-pancreas").targets() == {"pancreas", "tumor"}
    # One TotalSegmentator class covers the portal and the splenic vein: mapped to neither.
    total = load_mapping("totalsegmentator-v2")
    assert total.target(64, ["portal_vein_and_splenic_vein"]) is None
    assert total.targets() == {"pancreas", "aorta", "ivc"}
    with pytest.raises(FileNotFoundError, match="shipped examples"):
        load_mapping("no-such-mapping")


def test_remap_zeroes_unmapped_values(tmp_path: Path) -> None:
    mapping = load_mapping(_write(tmp_path, '[values]\n7 = "pancreas"\n52 = "aorta"\n'))
    source = np.array([[[0, 7, 52, 64, 5]]], dtype=np.int16)
    mapped, labelled = remap_label_map(source, {}, mapping)
    assert mapped.dtype == np.uint8
    assert mapped.tolist() == [[[0, 1, 8, 0, 0]]]
    assert labelled == ("pancreas", "aorta")
    with pytest.raises(ValueError, match="non-integer"):
        remap_label_map(np.array([[[0.5]]]), {}, mapping)
