"""Result files as dispatch sees them: DICOM Part-10 files identified by their meta header."""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from pydicom.errors import InvalidDicomError
from pydicom.filereader import read_file_meta_info

__all__ = ["ResultFile", "find_part10_files", "is_part10"]

_log = logging.getLogger(__name__)

_PREAMBLE = 128
_MAGIC = b"DICM"


def is_part10(path: Path) -> bool:
    """Whether ``path`` is a regular file with the PS3.10 7.1 preamble and ``DICM`` prefix."""
    try:
        with path.open("rb") as fh:
            head = fh.read(_PREAMBLE + len(_MAGIC))
    except OSError:
        return False
    return head[_PREAMBLE:] == _MAGIC


def find_part10_files(folder: Path) -> list[Path]:
    """The DICOM Part-10 files directly in ``folder``, by name (``[]`` if it does not exist)."""
    try:
        entries = sorted(folder.iterdir())
    except OSError:
        return []
    return [p for p in entries if p.is_file() and is_part10(p)]


@dataclass(frozen=True)
class ResultFile:
    """A file to send, with the UIDs from its File Meta Information (PS3.10 7.1).

    Parameters
    ----------
    path
        The file.
    sop_class_uid, sop_instance_uid, transfer_syntax_uid
        (0002,0002), (0002,0003) and (0002,0010); empty if the file could not be read.
    error
        Why the file cannot be sent (``None`` if it can).
    """

    path: Path
    sop_class_uid: str = ""
    sop_instance_uid: str = ""
    transfer_syntax_uid: str = ""
    error: str | None = None

    @property
    def label(self) -> str:
        """The SOPInstanceUID, or the file name when the file could not be read."""
        return self.sop_instance_uid or self.path.name

    @classmethod
    def read(cls, path: Path) -> ResultFile:
        """Read ``path``'s meta header; an unreadable file gives a ``ResultFile`` with ``error``."""
        try:
            meta = read_file_meta_info(path)
        except (OSError, InvalidDicomError, ValueError, EOFError) as exc:
            return cls(path, error=f"unreadable DICOM file {path.name} ({type(exc).__name__})")
        uids = [
            str(meta.get(keyword, "") or "").strip()
            for keyword in (
                "MediaStorageSOPClassUID",
                "MediaStorageSOPInstanceUID",
                "TransferSyntaxUID",
            )
        ]
        if not all(uids):
            return cls(path, error=f"{path.name} lacks SOP class, instance or transfer syntax UID")
        return cls(path, *uids)

    @classmethod
    def read_all(cls, paths: Iterable[Path]) -> tuple[ResultFile, ...]:
        """:meth:`read` every path, keeping the order."""
        files = tuple(cls.read(Path(p)) for p in paths)
        for f in files:
            if f.error:
                _log.warning("result file not sendable: %s", f.error)
        return files
