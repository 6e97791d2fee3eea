"""alerts: rules, instances, events, webhook endpoints, deliveries and their attempts

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-23
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "alert_rules",
        sa.Column("rule_id", sa.UUID(), nullable=False),
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column("description", sa.Text(), server_default="", nullable=False),
        sa.Column("metric", sa.Text(), nullable=False),
        sa.Column("scope", sa.Text(), nullable=False),
        sa.Column("comparator", sa.Text(), nullable=False),
        sa.Column("threshold", sa.Double(), nullable=False),
        sa.Column("recovery_threshold", sa.Double(), nullable=True),
        sa.Column("window_length", sa.Interval(), nullable=False),
        sa.Column("evaluate_every", sa.Interval(), nullable=False),
        sa.Column("baseline_offset", sa.Interval(), nullable=True),
        sa.Column("min_baseline", sa.Double(), nullable=True),
        sa.Column(
            "pending_evaluations", sa.SmallInteger(), server_default=sa.text("1"), nullable=False
        ),
        sa.Column(
            "recovery_evaluations", sa.SmallInteger(), server_default=sa.text("1"), nullable=False
        ),
        sa.Column("severity", sa.Text(), nullable=False),
        sa.Column("no_data", sa.Text(), server_default="keep", nullable=False),
        sa.Column("owner", sa.Text(), nullable=False),
        sa.Column("enabled", sa.Boolean(), server_default=sa.text("true"), nullable=False),
        sa.Column("archived_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column(
            "updated_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.CheckConstraint(
            "comparator IN ('gt', 'gte', 'lt', 'lte')", name=op.f("ck_alert_rules_comparator")
        ),
        sa.CheckConstraint(
            "evaluate_every >= interval '1 minute'",
            name=op.f("ck_alert_rules_evaluate_every_minimum"),
        ),
        sa.CheckConstraint(
            "no_data IN ('keep', 'ok', 'breach', 'alert')", name=op.f("ck_alert_rules_no_data")
        ),
        sa.CheckConstraint(
            "scope IN ('network', 'merchant', 'tier')", name=op.f("ck_alert_rules_scope")
        ),
        sa.CheckConstraint(
            "severity IN ('info', 'warning', 'critical')", name=op.f("ck_alert_rules_severity")
        ),
        sa.CheckConstraint(
            "window_length > interval '0'", name=op.f("ck_alert_rules_window_positive")
        ),
        sa.CheckConstraint(
            "pending_evaluations BETWEEN 1 AND 1000", name=op.f("ck_alert_rules_pending_in_range")
        ),
        sa.CheckConstraint(
            "recovery_evaluations BETWEEN 1 AND 1000", name=op.f("ck_alert_rules_recovery_in_range")
        ),
        sa.PrimaryKeyConstraint("rule_id", name=op.f("pk_alert_rules")),
        sa.UniqueConstraint("name", name=op.f("uq_alert_rules_name")),
    )
    op.create_table(
        "webhook_endpoints",
        sa.Column("endpoint_id", sa.UUID(), nullable=False),
        sa.Column("url", sa.Text(), nullable=False),
        sa.Column("description", sa.Text(), server_default="", nullable=False),
        sa.Column("secret", sa.Text(), nullable=False),
        sa.Column("min_severity", sa.Text(), server_default="warning", nullable=False),
        sa.Column("enabled", sa.Boolean(), server_default=sa.text("true"), nullable=False),
        sa.Column("archived_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column(
            "updated_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.CheckConstraint(
            "min_severity IN ('info', 'warning', 'critical')",
            name=op.f("ck_webhook_endpoints_min_severity"),
        ),
        sa.CheckConstraint("url ~ '^https?://'", name=op.f("ck_webhook_endpoints_url_http")),
        sa.PrimaryKeyConstraint("endpoint_id", name=op.f("pk_webhook_endpoints")),
    )
    op.create_table(
        "alert_events",
        sa.Column("event_id", sa.UUID(), nullable=False),
        sa.Column("rule_id", sa.UUID(), nullable=False),
        sa.Column("scope_key", sa.Text(), nullable=False),
        sa.Column("tick", sa.DateTime(timezone=True), nullable=False),
        sa.Column("from_state", sa.Text(), nullable=False),
        sa.Column("to_state", sa.Text(), nullable=False),
        sa.Column("value", sa.Double(), nullable=True),
        sa.Column("threshold", sa.Double(), nullable=False),
        sa.Column("severity", sa.Text(), nullable=False),
        sa.Column("notified", sa.Boolean(), nullable=False),
        sa.Column(
            "recorded_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.ForeignKeyConstraint(
            ["rule_id"], ["alert_rules.rule_id"], name=op.f("fk_alert_events_rule_id_alert_rules")
        ),
        sa.PrimaryKeyConstraint("event_id", name=op.f("pk_alert_events")),
        sa.UniqueConstraint(
            "rule_id", "scope_key", "tick", name=op.f("uq_alert_events_rule_id_scope_key_tick")
        ),
    )
    op.create_index("ix_alert_events_tick", "alert_events", ["tick"], unique=False)
    op.create_table(
        "alert_instances",
        sa.Column("rule_id", sa.UUID(), nullable=False),
        sa.Column("scope_key", sa.Text(), nullable=False),
        sa.Column("state", sa.Text(), nullable=False),
        sa.Column("streak", sa.SmallInteger(), server_default=sa.text("0"), nullable=False),
        sa.Column("value", sa.Double(), nullable=True),
        sa.Column("evaluated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("since", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint(
            "state IN ('normal', 'pending', 'firing', 'recovering', 'no_data')",
            name=op.f("ck_alert_instances_state"),
        ),
        sa.ForeignKeyConstraint(
            ["rule_id"],
            ["alert_rules.rule_id"],
            name=op.f("fk_alert_instances_rule_id_alert_rules"),
        ),
        sa.PrimaryKeyConstraint("rule_id", "scope_key", name=op.f("pk_alert_instances")),
    )
    op.create_index("ix_alert_instances_state", "alert_instances", ["state"], unique=False)
    op.create_table(
        "alert_deliveries",
        sa.Column("delivery_id", sa.UUID(), nullable=False),
        sa.Column("event_id", sa.UUID(), nullable=False),
        sa.Column("channel", sa.Text(), nullable=False),
        sa.Column("endpoint_id", sa.UUID(), nullable=True),
        sa.Column("payload", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("status", sa.Text(), server_default="pending", nullable=False),
        sa.Column("attempts", sa.SmallInteger(), server_default=sa.text("0"), nullable=False),
        sa.Column("next_attempt_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("delivered_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.CheckConstraint(
            "(channel = 'webhook') = (endpoint_id IS NOT NULL)",
            name=op.f("ck_alert_deliveries_webhooks_have_endpoint"),
        ),
        sa.CheckConstraint(
            "channel IN ('webhook', 'email')", name=op.f("ck_alert_deliveries_channel")
        ),
        sa.CheckConstraint(
            "status IN ('pending', 'delivered', 'failed')", name=op.f("ck_alert_deliveries_status")
        ),
        sa.ForeignKeyConstraint(
            ["endpoint_id"],
            ["webhook_endpoints.endpoint_id"],
            name=op.f("fk_alert_deliveries_endpoint_id_webhook_endpoints"),
        ),
        sa.ForeignKeyConstraint(
            ["event_id"],
            ["alert_events.event_id"],
            name=op.f("fk_alert_deliveries_event_id_alert_events"),
        ),
        sa.PrimaryKeyConstraint("delivery_id", name=op.f("pk_alert_deliveries")),
        sa.UniqueConstraint(
            "event_id",
            "channel",
            "endpoint_id",
            name=op.f("uq_alert_deliveries_event_id_channel_endpoint_id"),
            postgresql_nulls_not_distinct=True,
        ),
    )
    op.create_index(
        "ix_alert_deliveries_due",
        "alert_deliveries",
        ["next_attempt_at"],
        unique=False,
        postgresql_where=sa.text("status = 'pending'"),
    )
    op.create_table(
        "alert_delivery_attempts",
        sa.Column("delivery_id", sa.UUID(), nullable=False),
        sa.Column("attempt", sa.SmallInteger(), nullable=False),
        sa.Column("attempted_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("status_code", sa.SmallInteger(), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("duration_ms", sa.BigInteger(), nullable=False),
        sa.Column("next_attempt_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["delivery_id"],
            ["alert_deliveries.delivery_id"],
            name=op.f("fk_alert_delivery_attempts_delivery_id_alert_deliveries"),
        ),
        sa.PrimaryKeyConstraint("delivery_id", "attempt", name=op.f("pk_alert_delivery_attempts")),
    )


def downgrade() -> None:
    op.drop_table("alert_delivery_attempts")
    op.drop_index(
        "ix_alert_deliveries_due",
        table_name="alert_deliveries",
        postgresql_where=sa.text("status = 'pending'"),
    )
    op.drop_table("alert_deliveries")
    op.drop_index("ix_alert_instances_state", table_name="alert_instances")
    op.drop_table("alert_instances")
    op.drop_index("ix_alert_events_tick", table_name="alert_events")
    op.drop_table("alert_events")
    op.drop_table("webhook_endpoints")
    op.drop_table("alert_rules")
