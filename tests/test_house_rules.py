"""The rules of the house (pyproject.toml's import-linter contracts) hold, and can fail.

``make test`` runs ``lint-imports`` on the tree; these tests also break each kind of rule on
purpose in a copy of the tree, so a contract that could never fail would be caught.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import REPO_ROOT

_PACKAGES = (
    "pancreas_contracts",
    "db",
    "dicom_node",
    "orthanc_plugin",
    "inference",
    "phantom",
    "training",
    "pancreas_node",
    "bench",
    "scripts",
)


def _lint_imports() -> str:
    path = Path(sys.executable).parent / "lint-imports"
    if not path.exists():
        pytest.fail("lint-imports is missing: `make install-dev` installs import-linter")
    return str(path)


def _copy_tree(target: Path) -> Path:
    for package in _PACKAGES:
        shutil.copytree(
            REPO_ROOT / package,
            target / package,
            ignore=shutil.ignore_patterns("__pycache__", "*.pyc", "rules", "*.toml"),
        )
    shutil.copy(REPO_ROOT / "pyproject.toml", target / "pyproject.toml")
    (target / "tests").mkdir()
    (target / "tests" / "__init__.py").write_text("")
    return target


def _run(root: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(root)}
    return subprocess.run(
        [_lint_imports(), "--no-cache"],
        cwd=root,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_the_tree_keeps_every_contract() -> None:
    result = _run(REPO_ROOT)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "BROKEN" not in result.stdout


@pytest.mark.parametrize(
    ("module", "line", "contract"),
    [
        (
            "dicom_node/spool.py",
            "import torch  # noqa",
            "The node's front door and database never load model code",
        ),
        (
            "orthanc_plugin/_config.py",
            "import inference  # noqa",
            "The node's front door and database never load model code",
        ),
        (
            "inference/volume.py",
            "import training  # noqa",
            "The runtime never imports training, the phantoms, the command line or the node",
        ),
        (
            "training/dataset.py",
            "import inference._resample  # noqa",
            "No package imports another package's private modules",
        ),
        (
            "db/_types.py",
            "import dicom_node  # noqa",
            "No package loop: each room imports only the rooms below it",
        ),
        (
            "bench/phantom_bench.py",
            "import tests  # noqa",
            "Benchmarks and scripts import no test code",
        ),
    ],
)
def test_a_broken_rule_fails_the_check(
    tmp_path: Path, module: str, line: str, contract: str
) -> None:
    root = _copy_tree(tmp_path)
    source = root / module
    source.write_text(source.read_text() + f"\n{line}\n")
    result = _run(root)
    assert result.returncode != 0, result.stdout
    broken = [row for row in result.stdout.splitlines() if row.endswith("BROKEN")]
    assert any(row.startswith(contract) for row in broken), result.stdout
