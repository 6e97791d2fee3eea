"""lots: an index that answers a member's qualifying points on its own

The earn's locking read, the tier job and the tier-progress read sum a member's base points
of the last 12 months. Without this index the sum visits every lot of the year in the heap:
the earn's locking read took 0.4-0.8 ms for a member with 1,000 base lots in 12 months,
against 0.15-0.22 ms with it (seed.benchmark_heavy_member, docs/benchmarks.md). It costs
one index entry per base lot.

Built in the migration's transaction, which blocks writes to lots while it builds. On a
large network, build it beforehand with CREATE INDEX CONCURRENTLY and the same definition:
the migration then finds it and does nothing.

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-07
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index(
        "ix_lots_qualifying",
        "lots",
        ["member_id", "earned_at"],
        postgresql_include=["original", "clawed_back"],
        postgresql_where=sa.text("source = 'base'"),
        if_not_exists=True,
    )


def downgrade() -> None:
    op.drop_index("ix_lots_qualifying", table_name="lots")
