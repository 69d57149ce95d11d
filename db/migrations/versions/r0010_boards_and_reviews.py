"""Tumor boards in use: members and auto rules, case provenance and the board's decision,
radiologists' reviews, and the study's requesting service.

Issue 26. Revision r0002 created the board tables with a single reviewer verdict per board
case; nothing wrote them. A radiologist's review is about a study's AI result, not about a
board, so it moves to its own table (``reviews``, every review kept, the newest one counts) and
the board case keeps the board's decision (category, coded treatments, free text, who, when).

Revision ID: r0010
Revises: r0009
Create Date: 2026-12-07
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "r0010"
down_revision: str | None = "r0009"
branch_labels: str | None = None
depends_on: str | None = None

_TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    """Add board members and rules, case provenance and decisions, reviews, the service."""
    with op.batch_alter_table("tumor_boards") as batch:
        batch.add_column(sa.Column("members", sa.JSON(), nullable=True))
        batch.add_column(sa.Column("auto_rule", sa.JSON(), nullable=True))
    with op.batch_alter_table("board_cases") as batch:
        batch.drop_column("decision")
        batch.drop_column("reviewer_category")
        batch.drop_column("reviewer")
        batch.drop_column("note")
        batch.add_column(sa.Column("position", sa.Integer(), nullable=False, server_default="1"))
        batch.add_column(
            sa.Column("added_by", sa.String(128), nullable=False, server_default="system")
        )
        batch.add_column(
            sa.Column("added_reason", sa.String(16), nullable=False, server_default="manual")
        )
        batch.add_column(
            sa.Column("added_at", _TS, nullable=False, server_default=sa.text("CURRENT_TIMESTAMP"))
        )
        batch.add_column(sa.Column("decision_category", sa.String(32), nullable=True))
        batch.add_column(sa.Column("treatments", sa.JSON(), nullable=True))
        batch.add_column(sa.Column("decision_text", sa.Text(), nullable=True))
        batch.add_column(sa.Column("decided_by", sa.String(128), nullable=True))
    with op.batch_alter_table("studies") as batch:
        batch.add_column(sa.Column("requesting_service", sa.String(64), nullable=True))
    op.create_table(
        "reviews",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("study_instance_uid", sa.String(64), nullable=False),
        sa.Column("job_id", sa.String(36), nullable=True),
        sa.Column("verdict", sa.String(16), nullable=False),
        sa.Column("ai_category", sa.Integer(), nullable=True),
        sa.Column("category", sa.String(32), nullable=True),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column("reviewer", sa.String(128), nullable=False),
        sa.Column("created_at", _TS, nullable=False),
        sa.Column("correction_path", sa.Text(), nullable=True),
        sa.Column("correction_state", sa.String(16), nullable=True),
        sa.Column("correction_error", sa.Text(), nullable=True),
        sa.Column("corrected_seg_sop_uid", sa.String(64), nullable=True),
        sa.Column("amendment_sr_sop_uid", sa.String(64), nullable=True),
        sa.ForeignKeyConstraint(
            ["job_id"], ["jobs.id"], name="fk_reviews_job_id_jobs", ondelete="SET NULL"
        ),
        sa.PrimaryKeyConstraint("id", name="pk_reviews"),
    )
    op.create_index("ix_reviews_study_instance_uid", "reviews", ["study_instance_uid"])


def downgrade() -> None:
    """Drop the reviews and the new columns; restore the r0002 board-case columns (empty)."""
    op.drop_index("ix_reviews_study_instance_uid", table_name="reviews")
    op.drop_table("reviews")
    with op.batch_alter_table("studies") as batch:
        batch.drop_column("requesting_service")
    with op.batch_alter_table("board_cases") as batch:
        for column in (
            "decided_by", "decision_text", "treatments", "decision_category", "added_at",
            "added_reason", "added_by", "position",
        ):  # fmt: skip
            batch.drop_column(column)
        batch.add_column(
            sa.Column("decision", sa.String(16), nullable=False, server_default="pending")
        )
        batch.add_column(sa.Column("reviewer_category", sa.Integer(), nullable=True))
        batch.add_column(sa.Column("reviewer", sa.String(128), nullable=True))
        batch.add_column(sa.Column("note", sa.Text(), nullable=True))
    with op.batch_alter_table("tumor_boards") as batch:
        batch.drop_column("auto_rule")
        batch.drop_column("members")
