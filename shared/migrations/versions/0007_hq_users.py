"""HQ dashboard users

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-23
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "hq_users",
        sa.Column("user_id", sa.UUID(), nullable=False),
        sa.Column("username", sa.Text(), nullable=False),
        sa.Column("display_name", sa.Text(), nullable=False),
        sa.Column("password_hash", sa.Text(), nullable=True),
        sa.Column("role", sa.Text(), nullable=False),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column("password_changed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_login_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("disabled_at", sa.DateTime(timezone=True), nullable=True),
        sa.CheckConstraint("role IN ('analyst', 'admin')", name=op.f("ck_hq_users_role")),
        sa.CheckConstraint(
            "username = lower(username) AND username <> ''",
            name=op.f("ck_hq_users_username_normalised"),
        ),
        sa.PrimaryKeyConstraint("user_id", name=op.f("pk_hq_users")),
        sa.UniqueConstraint("username", name=op.f("uq_hq_users_username")),
    )


def downgrade() -> None:
    op.drop_table("hq_users")
