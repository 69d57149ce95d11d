"""Audit events, tumor boards and board cases; the job queue's claim index.

Revision ID: r0002
Revises: r0001
Create Date: 2026-11-25
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "r0002"
down_revision: str | None = "r0001"
branch_labels: str | None = None
depends_on: str | None = None

_TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    """Add the audit trail, the board tables and the queue index."""
    op.create_table(
        "audit_events",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("occurred_at", _TS, nullable=False),
        sa.Column("actor", sa.String(128), nullable=False),
        sa.Column("action", sa.String(64), nullable=False),
        sa.Column("object_type", sa.String(32), nullable=False),
        sa.Column("object_id", sa.String(128), nullable=False),
        sa.Column("origin", sa.String(256), nullable=True),
        sa.Column("detail", sa.JSON(), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_audit_events"),
    )
    op.create_index("ix_audit_events_occurred_at", "audit_events", ["occurred_at"])
    op.create_index("ix_audit_events_object", "audit_events", ["object_type", "object_id"])
    op.create_table(
        "tumor_boards",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("board_date", sa.Date(), nullable=False),
        sa.Column("title", sa.String(256), nullable=False),
        sa.Column("created_by", sa.String(128), nullable=False),
        sa.Column("created_at", _TS, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_tumor_boards"),
    )
    op.create_index("ix_tumor_boards_board_date", "tumor_boards", ["board_date"])
    op.create_table(
        "board_cases",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("board_id", sa.Integer(), nullable=False),
        sa.Column("study_instance_uid", sa.String(64), nullable=False),
        sa.Column("job_id", sa.String(36), nullable=True),
        sa.Column("decision", sa.String(16), nullable=False),
        sa.Column("reviewer_category", sa.Integer(), nullable=True),
        sa.Column("reviewer", sa.String(128), nullable=True),
        sa.Column("note", sa.Text(), nullable=True),
        sa.Column("decided_at", _TS, nullable=True),
        sa.ForeignKeyConstraint(
            ["board_id"],
            ["tumor_boards.id"],
            name="fk_board_cases_board_id_tumor_boards",
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["job_id"], ["jobs.id"], name="fk_board_cases_job_id_jobs", ondelete="SET NULL"
        ),
        sa.PrimaryKeyConstraint("id", name="pk_board_cases"),
        sa.UniqueConstraint(
            "board_id", "study_instance_uid", name="uq_board_cases_board_id_study_instance_uid"
        ),
    )
    op.create_index("ix_board_cases_board_id", "board_cases", ["board_id"])
    # claim_next_job filters by state and due time; without it every claim scans the queue.
    op.create_index("ix_jobs_state_next_attempt_at", "jobs", ["state", "next_attempt_at"])


def downgrade() -> None:
    """Drop what this revision added."""
    op.drop_index("ix_jobs_state_next_attempt_at", table_name="jobs")
    for table in ("board_cases", "tumor_boards", "audit_events"):
        op.drop_table(table)
