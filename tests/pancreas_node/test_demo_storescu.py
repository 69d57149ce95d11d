"""The demo sends with DCMTK's storescu, never pynetdicom's script of the same name."""

from __future__ import annotations

import os
import stat
import sys
from pathlib import Path

import pytest

from pancreas_node._demo import dcmtk_storescu


def _script(folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "storescu"
    path.write_text("#!/bin/sh\nexit 0\n", encoding="utf-8")
    path.chmod(path.stat().st_mode | stat.S_IXUSR)
    return path


def test_skips_the_virtual_environments_storescu(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    venv_bin = Path(sys.prefix) / "bin"
    dcmtk = _script(tmp_path / "usr-bin")
    monkeypatch.setenv("PATH", os.pathsep.join([str(venv_bin), str(dcmtk.parent)]))
    assert (venv_bin / "storescu").exists(), "pynetdicom installs a storescu script here"
    assert dcmtk_storescu() == str(dcmtk)


def test_none_without_dcmtk(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", os.pathsep.join([str(Path(sys.prefix) / "bin"), str(tmp_path)]))
    assert dcmtk_storescu() is None
