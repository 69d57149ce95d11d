"""Results: the PDAC detector's patient likelihood.

Issue 23. With a detection bundle configured, every result carries the detector's answer
(``result.json`` 1.5 ``detection``); the worklist shows and filters by its likelihood without
reading every ``result.json``. Results without a detector (or stored before) have none.

Revision ID: r0007
Revises: r0006
Create Date: 2026-12-06
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "r0007"
down_revision: str | None = "r0006"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    """Add the column (results stored before have none)."""
    with op.batch_alter_table("results") as batch:
        batch.add_column(sa.Column("pdac_likelihood", sa.Float, nullable=True))


def downgrade() -> None:
    """Drop the column."""
    with op.batch_alter_table("results") as batch:
        batch.drop_column("pdac_likelihood")
