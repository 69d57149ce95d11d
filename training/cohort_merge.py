"""Merge training cohorts into one cohort folder (``pancreas-node cohort merge``, issue 28).

A mixed cohort (phantoms that label all 15 structures, imported real CTs that label only some)
trains with the partial-label loss (``docs/training.md``) once it is one folder in the layout
:mod:`training.dataset` reads::

    DIR/truth.csv         the sources' rows, in source order; the union of their columns
                          (patient_id first, then first seen), cells a source lacks empty
    DIR/clinical.csv      the same for the clinical tables
    DIR/<patient_id>      a symlink to the source's patient folder (absolute, resolved), or a
                          copy of it
    DIR/merge.json        provenance: the sources (folder name, cases, import.json format),
                          the mode, the date, the tool version

Cells are kept as they are: a phantom row's empty ``labelled`` cell (no such column in a
phantom cohort) means "all structures labelled", exactly as in its source. Nothing is written
before every source has been read and checked; nothing in a source is modified.

Messages name sources by their folder name and cases by their ``patient_id`` (the cohort's
pseudonymous case key), nothing else.
"""

from __future__ import annotations

import csv
import json
import shutil
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from training._cohort_files import require_empty_folder, tool_version

__all__ = ["MergeSource", "MergeSummary", "merge_cohorts"]

_TABLES = ("truth.csv", "clinical.csv")
_ID = "patient_id"


@dataclass(frozen=True)
class MergeSource:
    """One merged source cohort.

    Attributes
    ----------
    name
        The source folder's name.
    cases
        Its number of cases (``truth.csv`` rows).
    format
        ``import.json``'s ``format`` (``msd``, ``dicom-seg``, ...), or ``None`` (a phantom or
        reviewed-case cohort, which has no ``import.json``).
    """

    name: str
    cases: int
    format: str | None


@dataclass(frozen=True)
class MergeSummary:
    """What :func:`merge_cohorts` wrote.

    Attributes
    ----------
    out
        The merged cohort folder.
    sources
        The sources, in the order given.
    cases
        The merged cohort's patient ids, in ``truth.csv`` order.
    truth_columns
        ``truth.csv``'s columns.
    clinical_columns
        ``clinical.csv``'s columns.
    copied
        Whether patient folders were copied (else symlinked).
    """

    out: Path
    sources: tuple[MergeSource, ...]
    cases: tuple[str, ...]
    truth_columns: tuple[str, ...]
    clinical_columns: tuple[str, ...]
    copied: bool


@dataclass(frozen=True)
class _Table:
    columns: tuple[str, ...]
    rows: tuple[dict[str, str], ...]


@dataclass(frozen=True)
class _Source:
    folder: Path
    truth: _Table
    clinical: _Table
    ids: tuple[str, ...]
    format: str | None


def _read_table(folder: Path, name: str) -> _Table:
    path = folder / name
    with path.open(newline="", encoding="utf-8") as handle:
        reader = csv.DictReader(handle)
        columns = tuple(reader.fieldnames or ())
        if _ID not in columns:
            raise ValueError(f"source {folder.name}: {name} has no {_ID} column")
        rows = []
        for line, row in enumerate(reader, start=2):
            if None in row:
                raise ValueError(f"source {folder.name}: {name} line {line} has extra cells")
            rows.append({key: value or "" for key, value in row.items() if key is not None})
    return _Table(columns, tuple(rows))


def _safe_id(folder: Path, pid: str) -> str:
    if not pid or pid in (".", "..") or "/" in pid or "\\" in pid or pid.startswith("."):
        raise ValueError(f"source {folder.name}: truth.csv has an invalid patient_id {pid!r}")
    return pid


def _import_format(folder: Path) -> str | None:
    path = folder / "import.json"
    if not path.is_file():
        return None
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ValueError(f"source {folder.name}: unreadable import.json ({exc})") from exc
    value = document.get("format") if isinstance(document, dict) else None
    return value if isinstance(value, str) else None


def _read_source(folder: Path) -> _Source:
    if not folder.is_dir():
        raise ValueError(f"source {folder} is not a folder")
    missing = [name for name in _TABLES if not (folder / name).is_file()]
    if missing:
        raise ValueError(f"source {folder.name} is not a cohort: no {' or '.join(missing)}")
    truth = _read_table(folder, "truth.csv")
    clinical = _read_table(folder, "clinical.csv")
    ids: list[str] = []
    for row in truth.rows:
        pid = _safe_id(folder, row[_ID].strip())
        if pid in ids:
            raise ValueError(f"source {folder.name}: patient {pid} appears twice in truth.csv")
        if not (folder / pid).is_dir():
            raise ValueError(f"source {folder.name}: patient {pid} has no folder")
        ids.append(pid)
    if not ids:
        raise ValueError(f"source {folder.name} has no cases in truth.csv")
    return _Source(folder, truth, clinical, tuple(ids), _import_format(folder))


def _union(tables: Sequence[_Table]) -> tuple[str, ...]:
    columns = [_ID]
    for table in tables:
        columns.extend(c for c in table.columns if c not in columns)
    return tuple(columns)


def _write_csv(path: Path, columns: tuple[str, ...], tables: Sequence[_Table]) -> None:
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(columns), restval="")
        writer.writeheader()
        for table in tables:
            writer.writerows(table.rows)


def _check_out(out: Path, sources: Sequence[_Source]) -> None:
    require_empty_folder(out)
    target = out.resolve()
    for source in sources:
        if target == source.folder or source.folder in target.parents:
            raise ValueError(f"--out {out} lies inside source {source.folder.name}")


def merge_cohorts(sources: Sequence[Path], out: Path, copy: bool = False) -> MergeSummary:
    """Merge cohort folders into one cohort folder ``out``.

    Parameters
    ----------
    sources
        Cohort folders (``truth.csv``, ``clinical.csv``, one folder per patient), at least
        one; an imported cohort, a phantom cohort, an earlier merge.
    out
        The merged cohort folder: created; must not exist or be empty, and must not lie inside
        a source.
    copy
        Copy each patient folder (following symlinks) instead of symlinking it; a symlink
        points to the source folder's absolute, resolved path.

    Returns
    -------
    MergeSummary
        The sources, the cases and the tables' columns.

    Raises
    ------
    ValueError
        If there is no source, a source is given twice, is not a cohort (no ``truth.csv`` or
        ``clinical.csv``, no ``patient_id`` column), lists a patient twice or without its
        folder, or has no case; if a patient id appears in two sources; if ``out`` holds
        files or lies inside a source. Nothing is written then.
    OSError
        If ``out`` or a copy cannot be written.
    """
    if not sources:
        raise ValueError("no source cohort given")
    read: list[_Source] = []
    owner: dict[str, str] = {}
    for given in sources:
        folder = Path(given).resolve()
        if any(folder == s.folder for s in read):
            raise ValueError(f"source {folder.name} is given twice")
        source = _read_source(folder)
        clinical_ids = {row[_ID].strip() for row in source.clinical.rows} - {""}
        ids = set(source.ids) | clinical_ids
        for pid in [*source.ids, *sorted(ids - set(source.ids))]:
            if pid in owner:
                raise ValueError(f"patient {pid} is in two sources: {owner[pid]} and {folder.name}")
        owner.update(dict.fromkeys(ids, folder.name))
        read.append(source)
    _check_out(out, read)

    out.mkdir(parents=True, exist_ok=True)
    for source in read:
        for pid in source.ids:
            patient = (source.folder / pid).resolve()
            if copy:
                shutil.copytree(patient, out / pid)
            else:
                (out / pid).symlink_to(patient, target_is_directory=True)
    truth_columns = _union([s.truth for s in read])
    clinical_columns = _union([s.clinical for s in read])
    _write_csv(out / "truth.csv", truth_columns, [s.truth for s in read])
    _write_csv(out / "clinical.csv", clinical_columns, [s.clinical for s in read])
    merged = tuple(MergeSource(s.folder.name, len(s.ids), s.format) for s in read)
    provenance = {
        "tool": "pancreas-node cohort merge",
        "tool_version": tool_version(),
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "mode": "copy" if copy else "link",
        "cases": sum(s.cases for s in merged),
        "sources": [{"name": s.name, "cases": s.cases, "format": s.format} for s in merged],
    }
    (out / "merge.json").write_text(json.dumps(provenance, indent=2) + "\n", encoding="utf-8")
    return MergeSummary(
        out=out,
        sources=merged,
        cases=tuple(pid for s in read for pid in s.ids),
        truth_columns=truth_columns,
        clinical_columns=clinical_columns,
        copied=copy,
    )
