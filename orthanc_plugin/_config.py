"""The plugin's settings: the ``"PancreasAI"`` section of Orthanc's configuration.

Orthanc hands its whole configuration to the plugin (``orthanc.GetConfiguration()``); the
node's own settings (database URL, routing rules, model bundle) are the node's
:class:`pancreas_contracts.Settings`, read from ``NodeConfig`` (TOML) and the usual
``PANCREAS_AI_*`` environment variables, so both processes share one source of truth.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = ["SECTION", "PluginConfig", "plugin_config"]

#: Name of the plugin's section in Orthanc's configuration.
SECTION = "PancreasAI"
_STATE_FILE = "pancreas-ai-plugin.sqlite"


@dataclass(frozen=True)
class PluginConfig:
    """Settings of the Orthanc plugin (see ``deploy/orthanc/README.md``).

    Parameters
    ----------
    state_file
        SQLite file holding pending submissions and the labels applied to studies.
    node_modality
        Orthanc's name of the node in ``DicomModalities`` (series are sent there by C-STORE).
    node_config
        The node's TOML settings file; ``None`` reads ``PANCREAS_AI_*`` variables only.
    submit
        Whether stable series are submitted to the node (off: routes and labels only).
    retry_base_s, retry_max_s
        Back-off before the n-th retry: ``min(retry_max_s, retry_base_s * 2**(n-1))``.
    give_up_h
        A submission the node has not accepted after this many hours is failed (``ai-failed``).
    sync_interval_s
        How often the labels of studies waiting for a result are refreshed.
    write_users
        Orthanc users allowed to POST (re-analyse); others get HTTP 403.
    """

    state_file: Path
    node_modality: str = "pancreas_ai"
    node_config: Path | None = None
    submit: bool = True
    retry_base_s: float = 30.0
    retry_max_s: float = 900.0
    give_up_h: float = 24.0
    sync_interval_s: float = 5.0
    write_users: tuple[str, ...] = ("admin",)

    def retry_delay_s(self, attempt: int) -> float:
        """Seconds to wait before retry number ``attempt`` (1-based)."""
        exponent = max(0, min(attempt - 1, 32))
        return float(min(self.retry_max_s, self.retry_base_s * 2.0**exponent))


def _number(section: Mapping[str, Any], key: str, default: float) -> float:
    value = section.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
        raise ValueError(f"{SECTION}.{key} must be a positive number")
    return float(value)


def _text(section: Mapping[str, Any], key: str) -> str | None:
    value = section.get(key)
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise ValueError(f"{SECTION}.{key} must be a string")
    return value


def plugin_config(orthanc_config: Mapping[str, Any]) -> PluginConfig:
    """Read the plugin's settings from Orthanc's (parsed) configuration.

    Raises
    ------
    ValueError
        If the section or one of its values has the wrong type.
    """
    section = orthanc_config.get(SECTION, {})
    if not isinstance(section, Mapping):
        raise ValueError(f"{SECTION} must be a JSON object")
    storage = str(orthanc_config.get("StorageDirectory", "OrthancStorage"))
    state_file = _text(section, "StateFile")
    node_config = _text(section, "NodeConfig")
    users = section.get("WriteUsers", ["admin"])
    if not isinstance(users, list) or not all(isinstance(u, str) for u in users):
        raise ValueError(f"{SECTION}.WriteUsers must be a list of user names")
    submit = section.get("SubmitStableSeries", True)
    if not isinstance(submit, bool):
        raise ValueError(f"{SECTION}.SubmitStableSeries must be true or false")
    return PluginConfig(
        state_file=Path(state_file) if state_file else Path(storage) / _STATE_FILE,
        node_modality=_text(section, "NodeModality") or "pancreas_ai",
        node_config=Path(node_config) if node_config else None,
        submit=submit,
        retry_base_s=_number(section, "RetryBaseSeconds", 30.0),
        retry_max_s=_number(section, "RetryMaxSeconds", 900.0),
        give_up_h=_number(section, "GiveUpHours", 24.0),
        sync_interval_s=_number(section, "SyncIntervalSeconds", 5.0),
        write_users=tuple(users),
    )
