"""``python -m dicom_node`` and the ``pancreas-node`` console script."""

from __future__ import annotations

import sys

from pancreas_node.cli import main

__all__ = ["run"]


def run() -> None:
    """Console-script entry point: exit with :func:`pancreas_node.cli.main`'s status."""
    sys.exit(main())


if __name__ == "__main__":
    run()
