"""Results: the survival model's risk group and its death probabilities.

Issue 25. With a survival bundle configured, every result carries the model's answer
(``result.json`` 1.7 ``prognosis``): the risk group (``high`` when the fusion probability of
death within 3 years reaches the cut-off, else ``low``) and the probabilities of death within
1 and 3 years. The worklist shows, filters and sorts by them without reading every
``result.json``. Results without a survival model (or stored before) have none.

Revision ID: r0009
Revises: r0008
Create Date: 2026-12-07
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "r0009"
down_revision: str | None = "r0008"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    """Add the columns (results stored before have none)."""
    with op.batch_alter_table("results") as batch:
        batch.add_column(sa.Column("risk_group", sa.String(8), nullable=True))
        batch.add_column(sa.Column("death_probability_1y", sa.Float, nullable=True))
        batch.add_column(sa.Column("death_probability_3y", sa.Float, nullable=True))


def downgrade() -> None:
    """Drop the columns."""
    with op.batch_alter_table("results") as batch:
        batch.drop_column("death_probability_3y")
        batch.drop_column("death_probability_1y")
        batch.drop_column("risk_group")
