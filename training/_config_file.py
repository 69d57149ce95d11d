"""Reading a task's training config file (TOML or JSON) with command-line overrides.

The detection and lymph-node configs share the rule: the file's keys, then every override that
is not ``None``; a key that is not a field of the config's dataclass is refused by name.
"""

from __future__ import annotations

import json
import tomllib
from dataclasses import fields
from pathlib import Path
from typing import Any

__all__ = ["read_config_keys"]


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
