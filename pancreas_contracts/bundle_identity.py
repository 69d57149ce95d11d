"""A model bundle's identity: the SHA-256 of its ``bundle.json``.

Part of a job's identity (SeriesInstanceUID, series version, bundle hash; see the job-states
contract), so the node that queues a job and the plugin that tells whether a result is outdated
compute it the same way.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

__all__ = ["NO_BUNDLE", "bundle_sha256"]

#: Bundle hash recorded for jobs queued while no model bundle is configured.
NO_BUNDLE = "none"


def bundle_sha256(bundle_path: Path | None) -> str:
    """SHA-256 of a bundle's ``bundle.json`` (the bundle's identity), or :data:`NO_BUNDLE`.

    Parameters
    ----------
    bundle_path
        The bundle directory or its ``bundle.json``; ``None`` when no bundle is configured.

    Raises
    ------
    OSError
        If the manifest cannot be read.
    """
    if bundle_path is None:
        return NO_BUNDLE
    manifest = bundle_path / "bundle.json" if bundle_path.is_dir() else bundle_path
    return hashlib.sha256(manifest.read_bytes()).hexdigest()
