"""idempotency records always hold their response: status_code and response_body NOT NULL

A key is now recorded together with its response, by the last statement of the write
(shared/idempotency.py), so a record without one can no longer exist; the database says
so instead of `coalition audit` looking for such rows.

Revision ID: 0011
Revises: 0010
Create Date: 2026-11-23
"""

from __future__ import annotations

from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.alter_column("idempotency_records", "status_code", nullable=False)
    op.alter_column("idempotency_records", "response_body", nullable=False)


def downgrade() -> None:
    op.alter_column("idempotency_records", "response_body", nullable=True)
    op.alter_column("idempotency_records", "status_code", nullable=True)
