"""Jobs: cancelled/superseded states, the analysed instance count, the delivery lease.

Issue 22. A series that grows after its job was made supersedes that job (``cancelled`` or
``superseded``, with ``superseded_by``); ``instance_count`` says how many instances a job's
series version had; the delivery lease (``delivery_owner``, ``delivery_lease_expires_at``)
lets exactly one dispatcher send a job's objects at a time.

Revision ID: r0003
Revises: r0002
Create Date: 2026-12-06
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "r0003"
down_revision: str | None = "r0002"
branch_labels: str | None = None
depends_on: str | None = None

_TS = sa.DateTime(timezone=True)
_OLD_STATES = ("received", "queued", "running", "done", "failed", "delivered")
_NEW_STATES = (*_OLD_STATES, "cancelled", "superseded")


def _check(states: tuple[str, ...]) -> str:
    return "state IN ({})".format(", ".join(f"'{s}'" for s in states))


def upgrade() -> None:
    """Add the columns and widen the state check."""
    # Batch mode: SQLite can only change a CHECK constraint by copying the table.
    with op.batch_alter_table("jobs") as batch:
        batch.add_column(sa.Column("instance_count", sa.Integer(), nullable=True))
        batch.add_column(sa.Column("superseded_by", sa.String(36), nullable=True))
        batch.add_column(sa.Column("delivery_owner", sa.String(128), nullable=True))
        batch.add_column(sa.Column("delivery_lease_expires_at", _TS, nullable=True))
        batch.drop_constraint("ck_jobs_state", type_="check")
        batch.create_check_constraint("ck_jobs_state", _check(_NEW_STATES))


def downgrade() -> None:
    """Drop what this revision added; cancelled and superseded jobs become failed."""
    op.execute("UPDATE jobs SET state = 'failed' WHERE state IN ('cancelled', 'superseded')")
    with op.batch_alter_table("jobs") as batch:
        batch.drop_constraint("ck_jobs_state", type_="check")
        batch.create_check_constraint("ck_jobs_state", _check(_OLD_STATES))
        for column in (
            "delivery_lease_expires_at",
            "delivery_owner",
            "superseded_by",
            "instance_count",
        ):
            batch.drop_column(column)
