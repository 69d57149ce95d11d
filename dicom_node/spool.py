"""Durable spool of received instances.

Layout (ARCHITECTURE.md): ``<data>/spool/<StudyInstanceUID>/<SeriesInstanceUID>/
<SOPInstanceUID>.dcm``. Each instance is written to a temporary file in the target folder,
flushed with ``fsync``, renamed over its final name and the folder entry is synced, so an
acknowledged instance survives ``kill -9`` and power loss (a crash before the rename leaves only
a ``.tmp`` file that :meth:`Spool.remove_partial_files` cleans up).

Received data sets arrive as files (pynetdicom's chunked receive) and are moved into place with
:meth:`Spool.place`. At start-up :meth:`Spool.reconcile` compares the spool with the database:
files no row names are moved to ``<data>/quarantine`` (they were never acknowledged), rows whose
file is gone are reported for flagging.
"""

from __future__ import annotations

import errno
import os
import re
import shutil
import uuid
from collections.abc import Set
from dataclasses import dataclass
from pathlib import Path

__all__ = ["Reconciliation", "Spool", "SpoolFullError", "is_valid_uid"]

# PS3.5 9.1: components of digits separated by ".", no leading zeros, at most 64 characters.
_UID_PATTERN = re.compile(r"^(0|[1-9][0-9]*)(\.(0|[1-9][0-9]*))*$")


def is_valid_uid(value: object) -> bool:
    """Whether ``value`` is a syntactically valid UID (PS3.5 section 9.1)."""
    return isinstance(value, str) and 0 < len(value) <= 64 and bool(_UID_PATTERN.match(value))


class SpoolFullError(OSError):
    """The spool's file system has no room left (ENOSPC / EDQUOT)."""


@dataclass(frozen=True)
class Reconciliation:
    """What :meth:`Spool.reconcile` found: files moved to quarantine, rows without a file."""

    quarantined: tuple[Path, ...]
    missing: tuple[str, ...]


class Spool:
    """Atomic, crash-safe storage of received instances under ``root``.

    Parameters
    ----------
    root
        The spool folder.
    quarantine
        Where :meth:`reconcile` moves orphan files (default: ``quarantine`` beside ``root``).
    """

    def __init__(self, root: Path, quarantine: Path | None = None) -> None:
        self.root = root
        self.quarantine = quarantine or root.parent / "quarantine"

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

    def place(self, received: Path, path: Path) -> None:
        """Move the received file ``received`` to ``path`` durably (fsync file and folder).

        On another file system the file is copied to a temporary name beside ``path`` first,
        so ``path`` only ever holds a complete file.

        Raises
        ------
        SpoolFullError
            If the disk is full.
        OSError
            On other I/O failures.
        """
        folder = path.parent
        try:
            folder.mkdir(parents=True, exist_ok=True)
            _fsync_file(received)
            try:
                received.replace(path)
            except OSError as exc:
                if exc.errno != errno.EXDEV:
                    raise
                self._copy_into_place(received, path)
            _fsync_dir(folder)
        except OSError as exc:
            if exc.errno in (errno.ENOSPC, errno.EDQUOT):
                raise SpoolFullError(exc.errno, "spool disk full") from exc
            raise

    def _copy_into_place(self, received: Path, path: Path) -> None:
        tmp = path.parent / f".{path.name}.{uuid.uuid4().hex}.tmp"
        try:
            shutil.copyfile(received, tmp)
            _fsync_file(tmp)
            tmp.replace(path)
        finally:
            tmp.unlink(missing_ok=True)

    def reconcile(self, recorded: Set[str]) -> Reconciliation:
        """Compare the spool with the database's ``recorded`` spool paths.

        Files under the spool no path in ``recorded`` names (written, never acknowledged) move to
        :attr:`quarantine` with their relative path kept; paths in ``recorded`` without a file
        come back in :attr:`Reconciliation.missing`.
        """
        quarantined: list[Path] = []
        on_disk: set[str] = set()
        if self.root.is_dir():
            for path in sorted(self.root.rglob("*.dcm")):
                if str(path) in recorded:
                    on_disk.add(str(path))
                    continue
                target = self.quarantine / path.relative_to(self.root)
                target.parent.mkdir(parents=True, exist_ok=True)
                path.replace(target)
                quarantined.append(target)
        missing = tuple(sorted(p for p in recorded if p not in on_disk and not Path(p).is_file()))
        return Reconciliation(tuple(quarantined), missing)

    def remove_partial_files(self) -> int:
        """Delete temporary files left by a crash; return how many were removed."""
        removed = 0
        if not self.root.is_dir():
            return 0
        for tmp in self.root.rglob(".*.tmp"):
            tmp.unlink(missing_ok=True)
            removed += 1
        return removed


def _fsync_file(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _fsync_dir(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
