"""Delivered objects: one row per result object a destination confirmed.

Issue 22 (D4, item 3). A delivery attempt used to be recorded only after every object of the
batch had been sent, so a node killed mid-way sent every object again after its restart. Each
object is now recorded as soon as its destination confirms it, and a retry skips the recorded
ones. Jobs delivered before have no rows (nothing is retried for them).

Revision ID: r0006
Revises: r0005
Create Date: 2026-12-06
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "r0006"
down_revision: str | None = "r0005"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    """Add the table."""
    op.create_table(
        "delivered_objects",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("job_id", sa.String(36), nullable=False),
        sa.Column("destination", sa.String(256), nullable=False),
        sa.Column("protocol", sa.String(16), nullable=False),
        sa.Column("sop_instance_uid", sa.String(64), nullable=False),
        sa.Column("delivered_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["job_id"], ["jobs.id"], name="fk_delivered_objects_job_id_jobs", ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name="pk_delivered_objects"),
        sa.UniqueConstraint(
            "job_id",
            "destination",
            "sop_instance_uid",
            name="uq_delivered_objects_job_id_destination_sop_instance_uid",
        ),
    )


def downgrade() -> None:
    """Drop the table."""
    op.drop_table("delivered_objects")
