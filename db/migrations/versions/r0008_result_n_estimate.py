"""Results: the lymph-node model's N estimate and its probability.

Issue 24. With a lymph-node bundle configured, every result carries the model's answer
(``result.json`` 1.6 ``lymph_nodes``): ``N0`` or ``N+`` and the patient-level probability of
regional node metastasis. The worklist shows, filters and sorts by them without reading every
``result.json``. Results without a lymph-node model (or stored before) have none.

Revision ID: r0008
Revises: r0007
Create Date: 2026-12-06
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "r0008"
down_revision: str | None = "r0007"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    """Add the columns (results stored before have none)."""
    with op.batch_alter_table("results") as batch:
        batch.add_column(sa.Column("n_estimate", sa.String(8), nullable=True))
        batch.add_column(sa.Column("n_positive_probability", sa.Float, nullable=True))


def downgrade() -> None:
    """Drop the columns."""
    with op.batch_alter_table("results") as batch:
        batch.drop_column("n_positive_probability")
        batch.drop_column("n_estimate")
