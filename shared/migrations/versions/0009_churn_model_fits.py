"""churn model fits: the stored BG/NBD fit behind the dashboard's churn figures

Revision ID: 0009
Revises: 0008
Create Date: 2026-11-23
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "churn_model_fits",
        sa.Column("fit_id", sa.UUID(), nullable=False),
        sa.Column(
            "fitted_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False
        ),
        sa.Column("as_of", sa.Date(), nullable=False),
        sa.Column("r", sa.Double(), nullable=False),
        sa.Column("alpha", sa.Double(), nullable=False),
        sa.Column("a", sa.Double(), nullable=False),
        sa.Column("b", sa.Double(), nullable=False),
        sa.Column("log_likelihood", sa.Double(), nullable=False),
        sa.Column("converged", sa.Boolean(), nullable=False),
        sa.Column("members", sa.BigInteger(), nullable=False),
        sa.Column("expected_active", sa.Double(), nullable=False),
        sa.Column("p_alive_bins", postgresql.ARRAY(sa.Double()), nullable=False),
        sa.Column("p_alive_counts", postgresql.ARRAY(sa.BigInteger()), nullable=False),
        sa.Column("seconds", sa.Double(), nullable=False),
        sa.PrimaryKeyConstraint("fit_id", name=op.f("pk_churn_model_fits")),
    )
    op.create_index("ix_churn_model_fits_fitted_at", "churn_model_fits", ["fitted_at"])


def downgrade() -> None:
    op.drop_index("ix_churn_model_fits_fitted_at", table_name="churn_model_fits")
    op.drop_table("churn_model_fits")
