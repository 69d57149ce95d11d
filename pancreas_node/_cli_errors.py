"""The one exception type every ``pancreas-node`` command raises for an expected failure."""

from __future__ import annotations

__all__ = ["CliError"]


class CliError(Exception):
    """An expected failure whose message is shown to the user as is, on one line."""
