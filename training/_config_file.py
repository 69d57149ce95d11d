"""Reading a task's training config file (TOML or JSON) with command-line overrides.

The detection and lymph-node configs share the rule: the file's keys, then every override that
is not ``None``; a key that is not a field of the config's dataclass is refused by name.
"""

from __future__ import annotations

import json
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import fields
from pathlib import Path
from typing import Any, TypeVar

__all__ = ["build_config", "merge_table", "read_config_keys"]

_Config = TypeVar("_Config")


def read_config_keys(
    path: Path | None, overrides: dict[str, Any], config_type: type[Any], what: str
) -> dict[str, Any]:
    """The raw keys of a config file with ``overrides`` applied, checked against the fields.

    Parameters
    ----------
    path
        A ``.toml`` file (else read as JSON), or ``None`` for the defaults.
    overrides
        Values that win over the file's; ``None`` means "not given".
    config_type
        The config dataclass whose field names are the allowed keys.
    what
        The config's name in error messages (``detection``, ``lymph-node``).

    Raises
    ------
    ValueError
        On an unparsable file or unknown keys.
    OSError
        If the file cannot be read.
    """
    data: dict[str, Any] = {}
    if path is not None:
        text = path.read_text(encoding="utf-8")
        try:
            data = tomllib.loads(text) if path.suffix == ".toml" else json.loads(text)
        except (tomllib.TOMLDecodeError, json.JSONDecodeError) as exc:
            raise ValueError(f"cannot parse {path.name}: {exc}") from exc
    data.update({k: v for k, v in overrides.items() if v is not None})
    unknown = set(data) - {f.name for f in fields(config_type)}
    if unknown:
        raise ValueError(f"unknown {what} config keys: {sorted(unknown)}")
    return data


def merge_table(
    key: str, value: Any, defaults: Mapping[str, Any], forbidden: frozenset[str] = frozenset()
) -> dict[str, Any]:
    """A config file's table (``[roi]``, ``[stage1]`` ...) over its defaults, keys checked.

    Raises
    ------
    ValueError
        If ``value`` is no table, or names a key the defaults lack or one in ``forbidden``.
    """
    if not isinstance(value, dict):
        raise ValueError(f"{key} must be a table of settings")
    unknown = (set(value) - set(defaults)) | (forbidden & set(value))
    if unknown:
        raise ValueError(f"unknown {key} keys: {sorted(unknown)}")
    return {**defaults, **value}


def build_config(
    path: Path | None,
    overrides: dict[str, Any],
    config_type: type[_Config],
    what: str,
    value: Callable[[str, Any], Any],
) -> _Config:
    """Read a config file with overrides and build ``config_type`` from ``value(key, raw)``.

    Raises
    ------
    ValueError
        On unknown keys, wrong types or an unparsable file.
    OSError
        If the file cannot be read.
    """
    data = read_config_keys(path, overrides, config_type, what)
    try:
        return config_type(**{k: value(k, v) for k, v in data.items()})
    except TypeError as exc:
        raise ValueError(f"invalid {what} config: {exc}") from exc
