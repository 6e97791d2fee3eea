"""campaign awards: audiences, target lists, launch, budget shares

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-23
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column(
        "campaigns",
        sa.Column("audience", sa.Text(), server_default="triggered", nullable=False),
    )
    op.add_column("campaigns", sa.Column("launched_at", sa.DateTime(timezone=True), nullable=True))
    op.create_check_constraint(
        op.f("ck_campaigns_audience"),
        "campaigns",
        "audience IN ('triggered', 'enrolled_before_start', 'listed')",
    )
    op.create_table(
        "campaign_targets",
        sa.Column("member_id", sa.UUID(), nullable=False),
        sa.Column("campaign_id", sa.UUID(), nullable=False),
        sa.ForeignKeyConstraint(
            ["campaign_id"],
            ["campaigns.campaign_id"],
            name=op.f("fk_campaign_targets_campaign_id_campaigns"),
        ),
        sa.ForeignKeyConstraint(
            ["member_id"],
            ["members.member_id"],
            name=op.f("fk_campaign_targets_member_id_members"),
        ),
        sa.PrimaryKeyConstraint("member_id", "campaign_id", name=op.f("pk_campaign_targets")),
    )
    op.create_index("ix_campaign_targets_campaign", "campaign_targets", ["campaign_id"])
    op.create_table(
        "campaign_budget_shares",
        sa.Column("campaign_id", sa.UUID(), nullable=False),
        sa.Column("share", sa.SmallInteger(), nullable=False),
        sa.Column("allotted", sa.BigInteger(), nullable=False),
        sa.Column("remaining", sa.BigInteger(), nullable=False),
        sa.CheckConstraint(
            "remaining >= 0 AND remaining <= allotted",
            name=op.f("ck_campaign_budget_shares_remaining_in_range"),
        ),
        sa.ForeignKeyConstraint(
            ["campaign_id"],
            ["campaigns.campaign_id"],
            name=op.f("fk_campaign_budget_shares_campaign_id_campaigns"),
        ),
        sa.PrimaryKeyConstraint("campaign_id", "share", name=op.f("pk_campaign_budget_shares")),
    )


def downgrade() -> None:
    op.drop_table("campaign_budget_shares")
    op.drop_index("ix_campaign_targets_campaign", table_name="campaign_targets")
    op.drop_table("campaign_targets")
    op.drop_constraint(op.f("ck_campaigns_audience"), "campaigns", type_="check")
    op.drop_column("campaigns", "launched_at")
    op.drop_column("campaigns", "audience")
