"""Durable spool of received instances.

Layout (ARCHITECTURE.md): ``<data>/spool/<StudyInstanceUID>/<SeriesInstanceUID>/
<SOPInstanceUID>.dcm``. Each instance is written to a temporary file in the target folder,
flushed with ``fsync``, renamed over its final name and the folder entry is synced, so an
acknowledged instance survives ``kill -9`` and power loss (a crash before the rename leaves only
a ``.tmp`` file that :meth:`Spool.remove_partial_files` cleans up).
"""

from __future__ import annotations

import os
import re
import uuid
from pathlib import Path

__all__ = ["Spool", "SpoolFullError", "is_valid_uid"]

# PS3.5 9.1: components of digits separated by ".", no leading zeros, at most 64 characters.
_UID_PATTERN = re.compile(r"^(0|[1-9][0-9]*)(\.(0|[1-9][0-9]*))*$")


def is_valid_uid(value: object) -> bool:
    """Whether ``value`` is a syntactically valid UID (PS3.5 section 9.1)."""
    return isinstance(value, str) and 0 < len(value) <= 64 and bool(_UID_PATTERN.match(value))


class SpoolFullError(OSError):
    """The spool's file system has no room left (ENOSPC / EDQUOT)."""


class Spool:
    """Atomic, crash-safe storage of received instances under ``root``."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def path_for(self, StudyInstanceUID: str, SeriesInstanceUID: str, SOPInstanceUID: str) -> Path:
        """Final path of one instance.

        Raises
        ------
        ValueError
            If a UID is not a valid UID (which also rules out path traversal).
        """
        for uid in (StudyInstanceUID, SeriesInstanceUID, SOPInstanceUID):
            if not is_valid_uid(uid):
                raise ValueError("invalid UID")
        return self.root / StudyInstanceUID / SeriesInstanceUID / f"{SOPInstanceUID}.dcm"

    def write(self, path: Path, payload: bytes) -> None:
        """Write ``payload`` to ``path`` atomically and durably.

        Raises
        ------
        SpoolFullError
            If the disk is full.
        OSError
            On other I/O failures.
        """
        folder = path.parent
        folder.mkdir(parents=True, exist_ok=True)
        tmp = folder / f".{path.name}.{uuid.uuid4().hex}.tmp"
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o640)
            try:
                view = memoryview(payload)
                while view:
                    written = os.write(fd, view)
                    view = view[written:]
                os.fsync(fd)
            finally:
                os.close(fd)
            tmp.replace(path)
            _fsync_dir(folder)
        except OSError as exc:
            tmp.unlink(missing_ok=True)
            if exc.errno in (28, 122):  # ENOSPC, EDQUOT
                raise SpoolFullError(exc.errno, "spool disk full") from exc
            raise

    def remove_partial_files(self) -> int:
        """Delete temporary files left by a crash; return how many were removed."""
        removed = 0
        if not self.root.is_dir():
            return 0
        for tmp in self.root.rglob(".*.tmp"):
            tmp.unlink(missing_ok=True)
            removed += 1
        return removed


def _fsync_dir(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
