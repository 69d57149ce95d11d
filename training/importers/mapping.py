"""Label mapping files: which source labels become which of the project's 16 labels.

A mapping is a small TOML file (examples ship in ``training/importers/mappings/``)::

    [mapping]
    description = "Medical Segmentation Decathlon Task07 Pancreas"

    [values]            # source label value -> project label name
    1 = "pancreas"
    2 = "tumor"

    [names]             # source label / segment / ROI name -> project label name
    cancer = "tumor"

    [aliases]           # project label name -> more source names (RTSTRUCT ROI names, ...)
    pancreas = ["Pancreas", "PANC", "pancreas_whole"]

Names are compared case-insensitively, with runs of spaces, ``-`` and ``_`` made one ``_``
(``"Portal Vein"`` matches ``portal_vein``). A source label is looked up by its value first,
then by each of its names. A source label no entry maps is *not labelled*: its voxels become
0 and the structure it shows is not in the case's ``labelled`` list; nothing is guessed from
a name that only resembles a project label. The targets are the non-background names of
:data:`pancreas_contracts.labels.LABELS`.
"""

from __future__ import annotations

import hashlib
import re
import tomllib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from importlib.resources import files
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from pancreas_contracts.labels import LABELS

__all__ = [
    "LabelMapping",
    "example_mappings",
    "load_mapping",
    "normalise_name",
    "remap_label_map",
]

_TARGETS: dict[str, int] = {label.name: label.value for label in LABELS if label.value != 0}
_SECTIONS = frozenset({"mapping", "values", "names", "aliases"})


def normalise_name(name: str) -> str:
    """``name`` lower-cased, trimmed, with runs of spaces, ``-`` and ``_`` made one ``_``."""
    return re.sub(r"[\s_\-]+", "_", name.strip().lower()).strip("_")


@dataclass(frozen=True)
class LabelMapping:
    """A loaded mapping file.

    Attributes
    ----------
    by_value
        Source label value -> project label name.
    by_name
        Normalised source name (:func:`normalise_name`) -> project label name.
    file_name
        The mapping file's name (no folder), for ``import.json``.
    sha256
        Hex SHA-256 of the file's bytes.
    description
        ``[mapping] description``, or ``""``.
    """

    by_value: Mapping[int, str]
    by_name: Mapping[str, str]
    file_name: str = ""
    sha256: str = ""
    description: str = ""

    def target(self, value: int | None = None, names: Iterable[str] = ()) -> str | None:
        """The project label name for a source label, or ``None`` (not labelled).

        Parameters
        ----------
        value
            The source label value (a label map's integer), if it has one.
        names
            The source label's names (dataset.json name, SegmentLabel, code meaning, ROI name).
        """
        if value is not None and value in self.by_value:
            return self.by_value[value]
        for name in names:
            hit = self.by_name.get(normalise_name(name))
            if hit is not None:
                return hit
        return None

    def targets(self) -> frozenset[str]:
        """Every project label name this mapping can produce."""
        return frozenset(self.by_value.values()) | frozenset(self.by_name.values())


def _target(where: str, raw: Any) -> str:
    if not isinstance(raw, str) or normalise_name(raw) not in _TARGETS:
        known = ", ".join(_TARGETS)
        raise ValueError(f"{where}: {raw!r} is not a project label name (one of {known})")
    return normalise_name(raw)


def _parse(data: Mapping[str, Any], where: str) -> tuple[dict[int, str], dict[str, str], str]:
    unknown = set(data) - _SECTIONS
    if unknown:
        raise ValueError(f"{where}: unknown section(s) {', '.join(sorted(unknown))}")
    by_value: dict[int, str] = {}
    for key, raw in dict(data.get("values", {})).items():
        try:
            value = int(key)
        except ValueError:
            raise ValueError(f"{where}: [values] key {key!r} is not an integer") from None
        if value <= 0:
            raise ValueError(f"{where}: [values] key {value} must be positive (0 is background)")
        by_value[value] = _target(f"{where} [values] {key}", raw)
    by_name: dict[str, str] = {}

    def add(name: str, target: str) -> None:
        key = normalise_name(name)
        if not key:
            raise ValueError(f"{where}: empty source name")
        if by_name.get(key, target) != target:
            raise ValueError(
                f"{where}: source name {name!r} maps to both {by_name[key]} and {target}"
            )
        by_name[key] = target

    for name, raw in dict(data.get("names", {})).items():
        add(name, _target(f"{where} [names] {name}", raw))
    for raw_target, aliases in dict(data.get("aliases", {})).items():
        target = _target(f"{where} [aliases]", raw_target)
        if not isinstance(aliases, list) or not all(isinstance(a, str) for a in aliases):
            raise ValueError(f"{where}: [aliases] {raw_target} must be a list of names")
        for alias in aliases:
            add(alias, target)
    description = dict(data.get("mapping", {})).get("description", "")
    if not isinstance(description, str):
        raise ValueError(f"{where}: [mapping] description must be a string")
    if not by_value and not by_name:
        raise ValueError(f"{where}: maps no source label")
    return by_value, by_name, description


def load_mapping(path: Path | str) -> LabelMapping:
    """Read a mapping file, or one of the shipped examples by name.

    Parameters
    ----------
    path
        A TOML file, or the name of a shipped example (``msd-task07-pancreas``; see
        :func:`example_mappings`).

    Raises
    ------
    ValueError
        If the file is not valid TOML, or names an unknown project label or section.
    FileNotFoundError
        If neither a file nor a shipped example has that name.
    """
    file = Path(path)
    if not file.is_file():
        shipped = example_mappings()
        stem = file.name.removesuffix(".toml")
        if stem not in shipped:
            names = ", ".join(sorted(shipped))
            raise FileNotFoundError(f"mapping {path} not found (shipped examples: {names})")
        file = shipped[stem]
    raw = file.read_bytes()
    try:
        data = tomllib.loads(raw.decode("utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ValueError(f"mapping {file.name}: not valid TOML: {exc}") from exc
    by_value, by_name, description = _parse(data, f"mapping {file.name}")
    return LabelMapping(
        by_value=by_value,
        by_name=by_name,
        file_name=file.name,
        sha256=hashlib.sha256(raw).hexdigest(),
        description=description,
    )


def example_mappings() -> dict[str, Path]:
    """The shipped example mappings, by name (file name without ``.toml``)."""
    folder = files("training.importers") / "mappings"
    found: dict[str, Path] = {}
    for entry in folder.iterdir():
        if entry.name.endswith(".toml"):
            found[entry.name.removesuffix(".toml")] = Path(str(entry))
    return found


def remap_label_map(
    array: np.ndarray[Any, np.dtype[Any]],
    source_labels: Mapping[int, Iterable[str]],
    mapping: LabelMapping,
) -> tuple[npt.NDArray[np.uint8], tuple[str, ...]]:
    """Map a source label map's values to the project's; unmapped values become 0.

    Parameters
    ----------
    array
        The source label map (integer values; non-integers are refused).
    source_labels
        Each source label value the source declares, with its names (dataset.json); values
        in ``array`` it does not declare are looked up by value only.
    mapping
        The mapping.

    Returns
    -------
    tuple
        The uint8 project label map, and the project label names the declared (or, with no
        declaration, the mapping's ``[values]``) source labels and any mapped value present
        give: ``labelled`` for every case of this source, voxels or not.

    Raises
    ------
    ValueError
        If ``array`` holds negative or non-integer values.
    """
    data = np.asarray(array)
    if not np.issubdtype(data.dtype, np.integer):
        rounded = np.rint(data)
        if not np.array_equal(rounded, data):
            raise ValueError("label map holds non-integer values")
        data = rounded.astype(np.int64)
    present = np.unique(data)
    if present.size and present[0] < 0:
        raise ValueError("label map holds negative values")
    declared = dict(source_labels) if source_labels else {v: () for v in mapping.by_value}
    table = np.zeros(int(present[-1]) + 1 if present.size else 1, dtype=np.uint8)
    labelled: set[str] = set()
    for value in sorted(set(declared) | {int(v) for v in present}):
        if value == 0:
            continue
        target = mapping.target(value, declared.get(value, ()))
        if target is None:
            continue
        labelled.add(target)
        if value < table.size:
            table[value] = _TARGETS[target]
    result: npt.NDArray[np.uint8] = table[data]
    return result, tuple(sorted(labelled, key=_TARGETS.__getitem__))
