"""The held-out generator is written separately: it imports none of the training generator's
private modules (anatomy, tumor, rendering, cohort, DICOM writer), only public names."""

from __future__ import annotations

import ast
from pathlib import Path

import phantom.holdout

HOLDOUT = Path(phantom.holdout.__file__).parent
# The shared table layouts and the follow-up model (one hazard model for both generators).
PUBLIC_NAMES = {
    "phantom.CLINICAL_COLUMNS",
    "phantom.TRUTH_COLUMNS",
    "phantom.FOLLOW_UP_TRUTH_COLUMNS",
    "phantom.follow_up_cells",
}


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
        elif isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
    return names


def test_no_training_generator_code_is_imported() -> None:
    files = sorted(HOLDOUT.glob("*.py"))
    assert len(files) >= 5
    for path in files:
        for name in _imports(path):
            if name.startswith("phantom.") and not name.startswith("phantom.holdout"):
                assert name in PUBLIC_NAMES, (
                    path.name,
                    name,
                )
