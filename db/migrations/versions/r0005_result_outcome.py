"""Results: ``result.json``'s outcome.

Issue 21. A result without an NCCN category is either ``no-tumor`` (nothing segmented to
stage) or ``out-of-domain`` (the domain check withheld the category); the study status words
(``ai-no-tumor``, ``ai-out-of-domain``) need to tell them apart without reading every
``result.json``. Results stored before have no outcome (read as before: no category means
``ai-no-tumor``).

Revision ID: r0005
Revises: r0004
Create Date: 2026-12-06
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "r0005"
down_revision: str | None = "r0004"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    """Add the column (results stored before have none)."""
    with op.batch_alter_table("results") as batch:
        batch.add_column(sa.Column("outcome", sa.String(32), nullable=True))


def downgrade() -> None:
    """Drop the column."""
    with op.batch_alter_table("results") as batch:
        batch.drop_column("outcome")
