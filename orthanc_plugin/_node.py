"""The node as the plugin sees it: its settings and its database.

The plugin does not load the node's routing rules: the node's series assembly alone routes
the series the plugin forwards, and the plugin reads the decisions back from the database.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from db import NodeDatabase
from pancreas_contracts import Settings, load_settings

__all__ = ["NodeContext", "open_node"]


@dataclass(frozen=True)
class NodeContext:
    """What the plugin reads of the node.

    The plugin only reads the node database, except for re-analysis (``db.retry_job``,
    ``db.enqueue_job``, and ``db.reopen_series`` for a series whose assembly failed); it never
    migrates it.
    """

    settings: Settings
    database: NodeDatabase

    def close(self) -> None:
        """Release the database connections."""
        self.database.dispose()


def open_node(node_config: Path | None) -> NodeContext:
    """Load the node's settings (TOML file and ``PANCREAS_AI_*``) and open its database.

    Raises
    ------
    ValueError
        If the settings or the database URL are invalid.
    """
    settings = load_settings(node_config)
    return NodeContext(settings=settings, database=NodeDatabase(settings.resolved_database_url))
