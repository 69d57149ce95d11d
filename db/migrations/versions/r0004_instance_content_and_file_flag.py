"""Instances: the content hash and the missing-file flag.

Issue 22. ``content_sha256`` makes one stored object per SOPInstanceUID and content: a re-send
with the same bytes is a duplicate, other bytes under the same UID are refused and audited.
``file_missing`` is set by the start-up reconciliation when an instance's spool file is gone.

Revision ID: r0004
Revises: r0003
Create Date: 2026-12-06
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "r0004"
down_revision: str | None = "r0003"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    """Add the two columns (instances stored before have no hash)."""
    with op.batch_alter_table("instances") as batch:
        batch.add_column(sa.Column("content_sha256", sa.String(64), nullable=True))
        batch.add_column(
            sa.Column("file_missing", sa.Boolean(), nullable=False, server_default=sa.false())
        )


def downgrade() -> None:
    """Drop the two columns."""
    with op.batch_alter_table("instances") as batch:
        batch.drop_column("file_missing")
        batch.drop_column("content_sha256")
