"""The schema, as SQLAlchemy Core tables: one MetaData for the services and for Alembic.

Member-scoped tables carry `member_id` in their primary key (design principle 7), so the
schema can later be distributed by member_id. `member_identifiers` is the exception by
nature: it is the routing table that turns an identifier into a member_id, unique
network-wide on (kind, scope, value); in a distributed setup it would be distributed by
value and consulted before routing to the member's shard.
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    Column,
    Date,
    DateTime,
    ForeignKey,
    Identity,
    Index,
    LargeBinary,
    MetaData,
    Numeric,
    Table,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB, UUID

metadata = MetaData(
    naming_convention={
        "ix": "ix_%(table_name)s_%(column_0_N_name)s",
        "uq": "uq_%(table_name)s_%(column_0_N_name)s",
        "ck": "ck_%(table_name)s_%(constraint_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)


def _created_at() -> Column:
    return Column(
        "created_at", DateTime(timezone=True), nullable=False, server_default=text("now()")
    )


def _updated_at() -> Column:
    return Column(
        "updated_at", DateTime(timezone=True), nullable=False, server_default=text("now()")
    )


merchants = Table(
    "merchants",
    metadata,
    Column("merchant_id", UUID(as_uuid=True), primary_key=True),
    Column("name", Text, nullable=False),
    Column("industry", Text, nullable=False),
    Column("status", Text, nullable=False, server_default="active"),
    Column("currency", Text, nullable=False),
    # Commercial terms: exact decimals, never floats (design principle 2).
    Column("earn_rate", Numeric(12, 4), nullable=False),  # points per major currency unit
    Column("issuance_price", Numeric(18, 6), nullable=False),  # money per point issued
    Column("redemption_rate", Numeric(18, 6), nullable=False),  # money per point redeemed
    _created_at(),
    _updated_at(),
    CheckConstraint("status IN ('active', 'suspended')", name="status"),
    CheckConstraint("earn_rate >= 0", name="earn_rate_not_negative"),
    CheckConstraint("issuance_price >= 0", name="issuance_price_not_negative"),
    CheckConstraint("redemption_rate >= 0", name="redemption_rate_not_negative"),
    CheckConstraint("currency ~ '^[A-Z]{3}$'", name="currency_iso4217"),
)

stores = Table(
    "stores",
    metadata,
    Column("store_id", UUID(as_uuid=True), primary_key=True),
    Column("merchant_id", UUID(as_uuid=True), ForeignKey("merchants.merchant_id"), nullable=False),
    Column("code", Text, nullable=False),  # the merchant's own store code, as its POS knows it
    Column("name", Text, nullable=False),
    Column("city", Text),
    Column("country", Text),
    Column("timezone", Text, nullable=False, server_default="UTC"),
    Column("status", Text, nullable=False, server_default="open"),
    _created_at(),
    _updated_at(),
    UniqueConstraint("merchant_id", "code"),
    CheckConstraint("status IN ('open', 'closed')", name="status"),
)

api_keys = Table(
    "api_keys",
    metadata,
    Column("key_id", UUID(as_uuid=True), primary_key=True),
    Column("prefix", Text, nullable=False, unique=True),
    Column("secret_hash", LargeBinary, nullable=False),
    Column("role", Text, nullable=False),
    Column("merchant_id", UUID(as_uuid=True), ForeignKey("merchants.merchant_id")),
    Column("label", Text, nullable=False),
    _created_at(),
    Column("created_by_key_id", UUID(as_uuid=True)),
    Column("last_used_at", DateTime(timezone=True)),
    Column("expires_at", DateTime(timezone=True)),  # set by rotation with a grace period
    Column("revoked_at", DateTime(timezone=True)),
    Column("replaced_by_key_id", UUID(as_uuid=True)),
    CheckConstraint("role IN ('hq_admin', 'hq_analyst', 'merchant')", name="role"),
    CheckConstraint("(role = 'merchant') = (merchant_id IS NOT NULL)", name="merchant_keys_scoped"),
)
Index("ix_api_keys_merchant", api_keys.c.merchant_id)

members = Table(
    "members",
    metadata,
    Column("member_id", UUID(as_uuid=True), primary_key=True),
    Column("status", Text, nullable=False, server_default="active"),
    Column("tier", Text, nullable=False, server_default="basic"),
    Column("enrolled_at", DateTime(timezone=True), nullable=False),
    Column(
        "acquiring_merchant_id",
        UUID(as_uuid=True),
        ForeignKey("merchants.merchant_id"),
        nullable=False,
    ),
    Column("acquiring_store_id", UUID(as_uuid=True), ForeignKey("stores.store_id")),
    Column("merged_into_member_id", UUID(as_uuid=True)),
    # Profile (PII): visible to HQ and to the merchant that submitted it only.
    Column("given_name", Text),
    Column("family_name", Text),
    Column("birth_date", Date),
    Column("preferred_locale", Text),
    Column("profile_source_merchant_id", UUID(as_uuid=True)),
    Column("consent_marketing_email", Boolean, nullable=False, server_default=text("false")),
    Column("consent_marketing_sms", Boolean, nullable=False, server_default=text("false")),
    Column("consents_updated_at", DateTime(timezone=True)),
    _created_at(),
    _updated_at(),
    CheckConstraint("status IN ('active', 'suspended', 'closed', 'merged')", name="status"),
    CheckConstraint(
        "(status = 'merged') = (merged_into_member_id IS NOT NULL)", name="merged_has_survivor"
    ),
)
Index(
    "ix_members_acquiring_merchant_enrolled", members.c.acquiring_merchant_id, members.c.enrolled_at
)
Index("ix_members_enrolled_at", members.c.enrolled_at)

member_identifiers = Table(
    "member_identifiers",
    metadata,
    Column("member_id", UUID(as_uuid=True), ForeignKey("members.member_id"), primary_key=True),
    Column("identifier_id", UUID(as_uuid=True), primary_key=True),
    Column("kind", Text, nullable=False),
    # NULL for network-wide identifiers; the owning merchant for merchant customer references.
    Column("scope_merchant_id", UUID(as_uuid=True), ForeignKey("merchants.merchant_id")),
    Column("value", Text, nullable=False),
    Column("added_by_merchant_id", UUID(as_uuid=True)),  # NULL: added by HQ
    Column("added_at", DateTime(timezone=True), nullable=False, server_default=text("now()")),
    UniqueConstraint("kind", "scope_merchant_id", "value", postgresql_nulls_not_distinct=True),
    UniqueConstraint("identifier_id"),
    CheckConstraint("kind IN ('card', 'phone', 'email', 'merchant_ref')", name="kind"),
    CheckConstraint(
        "(kind = 'merchant_ref') = (scope_merchant_id IS NOT NULL)", name="only_refs_are_scoped"
    ),
)

audit_log = Table(
    "audit_log",
    metadata,
    Column("audit_id", BigInteger, Identity(), primary_key=True),
    Column("occurred_at", DateTime(timezone=True), nullable=False, server_default=text("now()")),
    Column("actor_key_id", UUID(as_uuid=True)),  # NULL: the CLI / a job
    Column("actor_role", Text, nullable=False),
    Column("action", Text, nullable=False),
    Column("subject_type", Text, nullable=False),
    Column("subject_id", Text, nullable=False),
    Column("details", JSONB, nullable=False, server_default=text("'{}'::jsonb")),
)
Index("ix_audit_log_subject", audit_log.c.subject_type, audit_log.c.subject_id)
