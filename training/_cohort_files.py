"""What every writer of a cohort folder shares: the empty target and the provenance version.

Used by :mod:`training.importers.cohort_writer` (``pancreas-node import``) and
:mod:`training.cohort_merge` (``pancreas-node cohort merge``); standard library only, so that
the CLI's start-up stays light.
"""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

__all__ = ["require_empty_folder", "tool_version"]


def require_empty_folder(out: Path) -> None:
    """Refuse a cohort target that exists and is not an empty folder.

    Raises
    ------
    ValueError
        Naming ``out``.
    """
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise ValueError(f"--out {out} exists and is not an empty folder")


def tool_version() -> str:
    """The installed ``pancreas-ai-node`` version for provenance files (``unknown`` if none)."""
    try:
        return version("pancreas-ai-node")
    except PackageNotFoundError:
        return "unknown"
