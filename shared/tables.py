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
    Double,
    ForeignKey,
    Identity,
    Index,
    Interval,
    LargeBinary,
    MetaData,
    Numeric,
    SmallInteger,
    Table,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.dialects.postgresql import ARRAY, JSONB, UUID

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
    # Points earned here become spendable this many days later (returns window).
    Column("pending_days", BigInteger, nullable=False, server_default=text("0")),
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
    Column("tier_since", DateTime(timezone=True)),
    Column("tier_valid_until", DateTime(timezone=True)),  # NULL: the base tier never lapses
    Column("referred_by_member_id", UUID(as_uuid=True)),
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


# --- The points ledger (design principles 3-6) -------------------------------------------
# Every business event is one ledger transaction whose postings sum to zero. Postings on
# the `member` account are the member's balance; the other accounts belong to merchants or
# the network and keep no running balance (their totals are sums of postings: no hot rows).

member_balances = Table(
    "member_balances",
    metadata,
    Column("member_id", UUID(as_uuid=True), ForeignKey("members.member_id"), primary_key=True),
    # balance = sum of the member's postings = sum of open lot remainders - debt
    Column("balance", BigInteger, nullable=False, server_default=text("0")),
    Column("debt", BigInteger, nullable=False, server_default=text("0")),
    Column("lifetime_earned", BigInteger, nullable=False, server_default=text("0")),
    Column("lifetime_redeemed", BigInteger, nullable=False, server_default=text("0")),
    Column("last_activity_at", DateTime(timezone=True)),
    Column("updated_at", DateTime(timezone=True), nullable=False, server_default=text("now()")),
    CheckConstraint("debt >= 0", name="debt_not_negative"),
)

ledger_transactions = Table(
    "ledger_transactions",
    metadata,
    Column("member_id", UUID(as_uuid=True), primary_key=True),
    Column("transaction_id", UUID(as_uuid=True), primary_key=True),
    Column("kind", Text, nullable=False),
    Column("merchant_id", UUID(as_uuid=True)),  # where it happened; NULL for HQ / jobs
    Column("store_id", UUID(as_uuid=True)),
    Column("occurred_at", DateTime(timezone=True), nullable=False),
    Column("posted_at", DateTime(timezone=True), nullable=False, server_default=text("now()")),
    Column("points", BigInteger, nullable=False),  # net effect on the member's balance
    Column("amount_minor", BigInteger),  # purchase / refund amount, when there is one
    Column("currency", Text),
    Column("original_transaction_id", UUID(as_uuid=True)),  # what a refund/reversal corrects
    Column("hold_id", UUID(as_uuid=True)),
    Column("counterparty_member_id", UUID(as_uuid=True)),  # transfers and merges
    Column("external_reference", Text),  # the merchant's own transaction id
    Column("reason", Text),
    Column("actor_key_id", UUID(as_uuid=True)),
    Column("details", JSONB, nullable=False, server_default=text("'{}'::jsonb")),
    CheckConstraint(
        "kind IN ('earn', 'behaviour', 'redeem', 'capture', 'refund', 'reversal', 'expiry',"
        " 'adjustment', 'transfer_out', 'transfer_in', 'merge_out', 'merge_in')",
        name="kind",
    ),
)
Index(
    "ix_ledger_transactions_member_posted",
    ledger_transactions.c.member_id,
    ledger_transactions.c.posted_at,
)
Index(
    "ix_ledger_transactions_merchant_posted",
    ledger_transactions.c.merchant_id,
    ledger_transactions.c.posted_at,
)
Index("ix_ledger_transactions_posted", ledger_transactions.c.posted_at)
Index("ix_ledger_transactions_transaction_id", ledger_transactions.c.transaction_id)
Index(
    "ix_ledger_transactions_original",
    ledger_transactions.c.member_id,
    ledger_transactions.c.original_transaction_id,
    postgresql_where=ledger_transactions.c.original_transaction_id.is_not(None),
)
# A redemption is reversed at most once, whatever races the API lets through.
Index(
    "uq_ledger_transactions_one_reversal",
    ledger_transactions.c.member_id,
    ledger_transactions.c.original_transaction_id,
    unique=True,
    postgresql_where=ledger_transactions.c.kind == "reversal",
)

postings = Table(
    "postings",
    metadata,
    Column("member_id", UUID(as_uuid=True), primary_key=True),
    Column("transaction_id", UUID(as_uuid=True), primary_key=True),
    Column("line", BigInteger, primary_key=True),
    # member | issued | redeemed | breakage | adjustment | transfer_clearing
    Column("account", Text, nullable=False),
    Column("merchant_id", UUID(as_uuid=True)),  # the merchant the account belongs to; NULL: network
    Column("amount", BigInteger, nullable=False),  # points; + credit to the account holder
    Column("posted_at", DateTime(timezone=True), nullable=False, server_default=text("now()")),
    CheckConstraint(
        "account IN ('member', 'issued', 'redeemed', 'breakage', 'adjustment',"
        " 'transfer_clearing')",
        name="account",
    ),
    CheckConstraint("amount <> 0", name="amount_not_zero"),
)
Index(
    "ix_postings_account_merchant_posted",
    postings.c.account,
    postings.c.merchant_id,
    postings.c.posted_at,
)

lots = Table(
    "lots",
    metadata,
    Column("member_id", UUID(as_uuid=True), primary_key=True),
    Column("lot_id", UUID(as_uuid=True), primary_key=True),
    Column("transaction_id", UUID(as_uuid=True), nullable=False),
    # base | tier_bonus | behaviour | campaign | adjustment | transfer | merge
    Column("source", Text, nullable=False),
    Column("issuing_merchant_id", UUID(as_uuid=True)),  # where earned; NULL: the network
    Column("funder_merchant_id", UUID(as_uuid=True)),  # who pays for it; NULL: HQ
    Column("campaign_id", UUID(as_uuid=True)),
    Column("earned_at", DateTime(timezone=True), nullable=False),
    Column("available_at", DateTime(timezone=True), nullable=False),  # pending until then
    Column("expires_at", DateTime(timezone=True), nullable=False),
    Column("original", BigInteger, nullable=False),
    Column("remaining", BigInteger, nullable=False),
    Column("reserved", BigInteger, nullable=False, server_default=text("0")),  # by active holds
    # Points refunds clawed back from this lot, including any part that became debt.
    Column("clawed_back", BigInteger, nullable=False, server_default=text("0")),
    Column("origin_lot_id", UUID(as_uuid=True)),  # transfers/merges: the lot it came from
    CheckConstraint("original > 0", name="original_positive"),
    CheckConstraint("remaining >= 0 AND remaining <= original", name="remaining_in_range"),
    CheckConstraint("reserved >= 0 AND reserved <= remaining", name="reserved_in_range"),
    CheckConstraint("clawed_back >= 0 AND clawed_back <= original", name="clawed_back_in_range"),
)
Index(
    "ix_lots_member_open",
    lots.c.member_id,
    lots.c.expires_at,
    postgresql_where=lots.c.remaining > 0,
)
Index("ix_lots_expiring", lots.c.expires_at, postgresql_where=lots.c.remaining > 0)
# A member's qualifying points (base points earned in the last 12 months: the earn's locking
# read, the tier job) from the index alone, however many lots the member earned.
Index(
    "ix_lots_qualifying",
    lots.c.member_id,
    lots.c.earned_at,
    postgresql_include=["original", "clawed_back"],
    postgresql_where=lots.c.source == "base",
)

allocations = Table(
    "allocations",
    metadata,
    Column("member_id", UUID(as_uuid=True), primary_key=True),
    Column("transaction_id", UUID(as_uuid=True), primary_key=True),
    Column("lot_id", UUID(as_uuid=True), primary_key=True),
    # redemption | clawback | expiry | debt_repayment | transfer | merge | reversal
    Column("kind", Text, primary_key=True),
    # points taken from the lot (negative: given back, by a reversal)
    Column("points", BigInteger, nullable=False),
    Column("issuing_merchant_id", UUID(as_uuid=True)),  # copied from the lot: flow matrix
    Column("redeeming_merchant_id", UUID(as_uuid=True)),
    Column("posted_at", DateTime(timezone=True), nullable=False, server_default=text("now()")),
    CheckConstraint("points <> 0", name="points_not_zero"),
)
Index("ix_allocations_member_lot", allocations.c.member_id, allocations.c.lot_id)

holds = Table(
    "holds",
    metadata,
    Column("member_id", UUID(as_uuid=True), primary_key=True),
    Column("hold_id", UUID(as_uuid=True), primary_key=True),
    Column("merchant_id", UUID(as_uuid=True), nullable=False),
    Column("store_id", UUID(as_uuid=True)),
    Column("points", BigInteger, nullable=False),
    Column("status", Text, nullable=False, server_default="active"),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=text("now()")),
    Column("expires_at", DateTime(timezone=True), nullable=False),
    Column("closed_at", DateTime(timezone=True)),
    Column("captured_points", BigInteger),
    Column("capture_transaction_id", UUID(as_uuid=True)),
    Column("external_reference", Text),
    CheckConstraint("points > 0", name="points_positive"),
    CheckConstraint("status IN ('active', 'captured', 'voided', 'expired')", name="status"),
)
Index("ix_holds_active_expiry", holds.c.expires_at, postgresql_where=holds.c.status == "active")
Index("ix_holds_hold_id", holds.c.hold_id, unique=True)

hold_reservations = Table(
    "hold_reservations",
    metadata,
    Column("member_id", UUID(as_uuid=True), primary_key=True),
    Column("hold_id", UUID(as_uuid=True), primary_key=True),
    Column("lot_id", UUID(as_uuid=True), primary_key=True),
    Column("points", BigInteger, nullable=False),
    CheckConstraint("points > 0", name="points_positive"),
)

idempotency_records = Table(
    "idempotency_records",
    metadata,
    # The merchant (or, for HQ keys, the nil UUID) the key belongs to.
    Column("scope_id", UUID(as_uuid=True), primary_key=True),
    Column("idempotency_key", Text, primary_key=True),
    Column("request_hash", LargeBinary, nullable=False),
    Column("status_code", BigInteger),
    Column("response_body", LargeBinary),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=text("now()")),
)


# --- Campaigns (issue 6 builds the service on these) -------------------------------------
# A campaign is owned and funded by HQ (owner NULL) or by one merchant. Members are
# assigned to an arm by a hash of (salt, member) (shared/campaigns/assignment.py); the
# assignment is recorded so effect analysis compares the arms that were really served.

campaigns = Table(
    "campaigns",
    metadata,
    Column("campaign_id", UUID(as_uuid=True), primary_key=True),
    Column("name", Text, nullable=False),
    Column("owner_merchant_id", UUID(as_uuid=True), ForeignKey("merchants.merchant_id")),
    Column("kind", Text, nullable=False),
    Column("status", Text, nullable=False, server_default="draft"),
    Column("starts_at", DateTime(timezone=True), nullable=False),
    Column("ends_at", DateTime(timezone=True), nullable=False),
    # Kind-specific terms: {"multiplier": "2"}, {"bonusPoints": 50, "minSpendMinor": 500}, ...
    Column("terms", JSONB, nullable=False, server_default=text("'{}'::jsonb")),
    # Participating merchants; empty: every partner.
    Column("merchant_ids", ARRAY(UUID(as_uuid=True)), nullable=False, server_default="{}"),
    Column("tiers", ARRAY(Text), nullable=False, server_default="{}"),  # empty: every tier
    Column("holdout_bps", BigInteger, nullable=False),
    Column("salt", Text, nullable=False),
    Column("per_member_cap_points", BigInteger),
    Column("budget_points", BigInteger),
    # Who is assigned: 'triggered' members at their first eligible purchase; or a targeted
    # list assigned at launch (launched_at) by `jobs campaigns`: 'enrolled_before_start'
    # (every member enrolled before the start) or 'listed' (campaign_targets).
    Column("audience", Text, nullable=False, server_default="triggered"),
    Column("launched_at", DateTime(timezone=True)),
    _created_at(),
    _updated_at(),
    CheckConstraint(
        "kind IN ('multiplier', 'fixed_bonus', 'spend_threshold', 'cross_merchant', 'win_back')",
        name="kind",
    ),
    CheckConstraint(
        "status IN ('draft', 'scheduled', 'running', 'ended', 'cancelled')", name="status"
    ),
    CheckConstraint("holdout_bps >= 0 AND holdout_bps <= 10000", name="holdout_in_range"),
    CheckConstraint("ends_at > starts_at", name="ends_after_start"),
    CheckConstraint(
        "audience IN ('triggered', 'enrolled_before_start', 'listed')", name="audience"
    ),
)

campaign_assignments = Table(
    "campaign_assignments",
    metadata,
    Column("member_id", UUID(as_uuid=True), ForeignKey("members.member_id"), primary_key=True),
    Column(
        "campaign_id", UUID(as_uuid=True), ForeignKey("campaigns.campaign_id"), primary_key=True
    ),
    Column("arm", Text, nullable=False),
    Column("assigned_at", DateTime(timezone=True), nullable=False),
    CheckConstraint("arm IN ('treatment', 'holdout')", name="arm"),
)
Index(
    "ix_campaign_assignments_campaign_arm",
    campaign_assignments.c.campaign_id,
    campaign_assignments.c.arm,
)
# The members of a 'listed' campaign's audience (a segment HQ or the merchant uploads).
campaign_targets = Table(
    "campaign_targets",
    metadata,
    Column("member_id", UUID(as_uuid=True), ForeignKey("members.member_id"), primary_key=True),
    Column(
        "campaign_id", UUID(as_uuid=True), ForeignKey("campaigns.campaign_id"), primary_key=True
    ),
)
Index("ix_campaign_targets_campaign", campaign_targets.c.campaign_id)

# A budget is split into shares so concurrent earns of different members lock different
# rows (no hot campaign row); an award draws on the member's share first (shared/campaigns/
# budget.py). Sum of remaining = what is left; no share ever goes below zero.
campaign_budget_shares = Table(
    "campaign_budget_shares",
    metadata,
    Column(
        "campaign_id", UUID(as_uuid=True), ForeignKey("campaigns.campaign_id"), primary_key=True
    ),
    Column("share", SmallInteger, primary_key=True),
    Column("allotted", BigInteger, nullable=False),
    Column("remaining", BigInteger, nullable=False),
    CheckConstraint("remaining >= 0 AND remaining <= allotted", name="remaining_in_range"),
)
Index("ix_lots_campaign", lots.c.campaign_id, postgresql_where=lots.c.campaign_id.is_not(None))


# --- Settlement (docs/settlement.md) -----------------------------------------------------
# A closed period, its statements and their lines never change: the close job writes them
# once. Which transactions a period settled is recorded row by row, so each transaction is
# settled exactly once (a late one lands in the next period still open).

settlement_periods = Table(
    "settlement_periods",
    metadata,
    Column("period_id", UUID(as_uuid=True), primary_key=True),
    Column("starts_at", DateTime(timezone=True), nullable=False, unique=True),
    Column("ends_at", DateTime(timezone=True), nullable=False),
    Column("length", Text, nullable=False),
    Column("time_zone", Text, nullable=False),
    Column("closed_at", DateTime(timezone=True), nullable=False),
    Column("transactions", BigInteger, nullable=False),
    # HQ's points for the period (network-funded by kind, expired by funder), computed at
    # the close like the statements, so that reading them does not rescan the period.
    Column("network", JSONB, nullable=False, server_default=text("'{}'::jsonb")),
    CheckConstraint("ends_at > starts_at", name="ends_after_start"),
)

settled_transactions = Table(
    "settled_transactions",
    metadata,
    Column("member_id", UUID(as_uuid=True), primary_key=True),
    Column("transaction_id", UUID(as_uuid=True), primary_key=True),
    Column(
        "period_id",
        UUID(as_uuid=True),
        ForeignKey("settlement_periods.period_id"),
        nullable=False,
    ),
)
Index("ix_settled_transactions_period", settled_transactions.c.period_id)

statements = Table(
    "statements",
    metadata,
    Column("statement_id", UUID(as_uuid=True), primary_key=True),
    Column(
        "period_id", UUID(as_uuid=True), ForeignKey("settlement_periods.period_id"), nullable=False
    ),
    Column("merchant_id", UUID(as_uuid=True), ForeignKey("merchants.merchant_id"), nullable=False),
    Column("currency", Text, nullable=False),
    # Positive: the merchant pays HQ; negative: HQ pays the merchant.
    Column("net_minor", BigInteger, nullable=False),
    Column("issuance_price", Numeric(18, 6), nullable=False),  # terms in force at the close
    Column("redemption_rate", Numeric(18, 6), nullable=False),
    UniqueConstraint("period_id", "merchant_id"),
)

statement_lines = Table(
    "statement_lines",
    metadata,
    Column(
        "statement_id", UUID(as_uuid=True), ForeignKey("statements.statement_id"), primary_key=True
    ),
    Column("line", Text, primary_key=True),
    Column("points", BigInteger, nullable=False),
    Column("rate", Numeric(18, 6), nullable=False),  # money per point, signed as charged
    Column("amount_minor", BigInteger, nullable=False),
    # For corrections: points per period of the transactions they correct.
    Column("corrects", JSONB, nullable=False, server_default=text("'{}'::jsonb")),
)

clearing_lines = Table(
    "clearing_lines",
    metadata,
    Column(
        "period_id",
        UUID(as_uuid=True),
        ForeignKey("settlement_periods.period_id"),
        primary_key=True,
    ),
    Column("issuing_merchant_id", UUID(as_uuid=True), primary_key=True),
    Column("redeeming_merchant_id", UUID(as_uuid=True), primary_key=True),
    Column("points", BigInteger, nullable=False),
    Column("amount_minor", BigInteger, nullable=False),  # points x the redeemer's rate
)


# --- HQ dashboard users (docs/dashboard.md) ----------------------------------------------
# People who sign in to the dashboard, unlike API keys (machines). Never deleted, only
# disabled, so the audit log's references keep pointing at someone.

hq_users = Table(
    "hq_users",
    metadata,
    Column("user_id", UUID(as_uuid=True), primary_key=True),
    Column("username", Text, nullable=False, unique=True),  # normalised: lower-case
    Column("display_name", Text, nullable=False),
    # argon2id in PHC string form (parameters and salt inside); NULL: signs in through
    # the identity provider (OIDC) only.
    Column("password_hash", Text),
    Column("role", Text, nullable=False),
    _created_at(),
    Column("password_changed_at", DateTime(timezone=True)),
    Column("last_login_at", DateTime(timezone=True)),
    Column("disabled_at", DateTime(timezone=True)),
    CheckConstraint("role IN ('analyst', 'admin')", name="role"),
    CheckConstraint("username = lower(username) AND username <> ''", name="username_normalised"),
)


# --- Alerts (docs/alerts.md) -------------------------------------------------------------
# A rule watches one metric (shared/alerts/metrics.py) for a scope: the network, each
# merchant or each tier. Every scope key of a rule is an instance with its own state
# (shared/alerts/rules.py); every change of state is an event, and the events HQ is told
# about are delivered to webhooks and by e-mail with retries (shared/alerts/delivery.py).

alert_rules = Table(
    "alert_rules",
    metadata,
    Column("rule_id", UUID(as_uuid=True), primary_key=True),
    Column("name", Text, nullable=False, unique=True),
    Column("description", Text, nullable=False, server_default=""),
    Column("metric", Text, nullable=False),
    Column("scope", Text, nullable=False),
    Column("comparator", Text, nullable=False),
    # Metric values are counts and ratios (floats), not money: thresholds are floats too.
    Column("threshold", Double, nullable=False),
    # Hysteresis: a firing alert recovers only once the value is back past this one (NULL:
    # the threshold itself).
    Column("recovery_threshold", Double),
    Column("window_length", Interval, nullable=False),
    Column("evaluate_every", Interval, nullable=False),  # the tick: evaluation times align to it
    # The value is metric(window) / metric(same window this much earlier) when set.
    Column("baseline_offset", Interval),
    Column("min_baseline", Double),  # a smaller baseline makes the ratio no data
    Column("pending_evaluations", SmallInteger, nullable=False, server_default=text("1")),
    Column("recovery_evaluations", SmallInteger, nullable=False, server_default=text("1")),
    Column("severity", Text, nullable=False),
    Column("no_data", Text, nullable=False, server_default="keep"),
    Column("owner", Text, nullable=False),
    Column("enabled", Boolean, nullable=False, server_default=text("true")),
    # Deleting a rule archives it: its history stays readable, it is never evaluated again.
    Column("archived_at", DateTime(timezone=True)),
    _created_at(),
    _updated_at(),
    CheckConstraint("scope IN ('network', 'merchant', 'tier')", name="scope"),
    CheckConstraint("comparator IN ('gt', 'gte', 'lt', 'lte')", name="comparator"),
    CheckConstraint("severity IN ('info', 'warning', 'critical')", name="severity"),
    CheckConstraint("no_data IN ('keep', 'ok', 'breach', 'alert')", name="no_data"),
    CheckConstraint("pending_evaluations BETWEEN 1 AND 1000", name="pending_in_range"),
    CheckConstraint("recovery_evaluations BETWEEN 1 AND 1000", name="recovery_in_range"),
    CheckConstraint("window_length > interval '0'", name="window_positive"),
    CheckConstraint("evaluate_every >= interval '1 minute'", name="evaluate_every_minimum"),
)

alert_instances = Table(
    "alert_instances",
    metadata,
    Column("rule_id", UUID(as_uuid=True), ForeignKey("alert_rules.rule_id"), primary_key=True),
    # 'network', a merchant_id or a tier name
    Column("scope_key", Text, primary_key=True),
    Column("state", Text, nullable=False),
    # Consecutive evaluations counted toward the next change (pending or recovering).
    Column("streak", SmallInteger, nullable=False, server_default=text("0")),
    Column("value", Double),  # the last value seen; NULL: no data
    Column("evaluated_at", DateTime(timezone=True), nullable=False),  # the last tick evaluated
    Column("since", DateTime(timezone=True), nullable=False),  # the tick the state began
    CheckConstraint(
        "state IN ('normal', 'pending', 'firing', 'recovering', 'no_data')", name="state"
    ),
)
Index("ix_alert_instances_state", alert_instances.c.state)

alert_events = Table(
    "alert_events",
    metadata,
    Column("event_id", UUID(as_uuid=True), primary_key=True),
    Column("rule_id", UUID(as_uuid=True), ForeignKey("alert_rules.rule_id"), nullable=False),
    Column("scope_key", Text, nullable=False),
    Column("tick", DateTime(timezone=True), nullable=False),
    Column("from_state", Text, nullable=False),
    Column("to_state", Text, nullable=False),
    Column("value", Double),
    Column("threshold", Double, nullable=False),  # the rule's, when it changed
    Column("severity", Text, nullable=False),
    Column("notified", Boolean, nullable=False),  # firing, resolved and no-data are sent
    Column("recorded_at", DateTime(timezone=True), nullable=False, server_default=text("now()")),
    # One change per instance and tick: evaluating a tick again writes nothing.
    UniqueConstraint("rule_id", "scope_key", "tick"),
)
Index("ix_alert_events_tick", alert_events.c.tick)

webhook_endpoints = Table(
    "webhook_endpoints",
    metadata,
    Column("endpoint_id", UUID(as_uuid=True), primary_key=True),
    Column("url", Text, nullable=False),
    Column("description", Text, nullable=False, server_default=""),
    # Signs every delivery (HMAC-SHA256): kept in clear because signing needs it.
    Column("secret", Text, nullable=False),
    Column("min_severity", Text, nullable=False, server_default="warning"),
    Column("enabled", Boolean, nullable=False, server_default=text("true")),
    # Deleting an endpoint archives it: its delivery log stays.
    Column("archived_at", DateTime(timezone=True)),
    _created_at(),
    _updated_at(),
    CheckConstraint("min_severity IN ('info', 'warning', 'critical')", name="min_severity"),
    CheckConstraint("url ~ '^https?://'", name="url_http"),
)

# One row per notified event and destination (a webhook endpoint, or the e-mail recipients),
# written with the event (an outbox); the delivery job sends it until it succeeds or runs
# out of attempts.
alert_deliveries = Table(
    "alert_deliveries",
    metadata,
    Column("delivery_id", UUID(as_uuid=True), primary_key=True),
    Column("event_id", UUID(as_uuid=True), ForeignKey("alert_events.event_id"), nullable=False),
    Column("channel", Text, nullable=False),
    Column("endpoint_id", UUID(as_uuid=True), ForeignKey("webhook_endpoints.endpoint_id")),
    # The message, fixed when the event happened: every attempt sends the same body.
    Column("payload", JSONB, nullable=False),
    Column("status", Text, nullable=False, server_default="pending"),
    Column("attempts", SmallInteger, nullable=False, server_default=text("0")),
    # When the next attempt is due; a worker that claims the delivery moves it forward (a
    # lease), so a crashed worker's delivery is tried again.
    Column("next_attempt_at", DateTime(timezone=True), nullable=False),
    Column("delivered_at", DateTime(timezone=True)),
    _created_at(),
    CheckConstraint("channel IN ('webhook', 'email')", name="channel"),
    CheckConstraint("status IN ('pending', 'delivered', 'failed')", name="status"),
    CheckConstraint(
        "(channel = 'webhook') = (endpoint_id IS NOT NULL)", name="webhooks_have_endpoint"
    ),
    UniqueConstraint("event_id", "channel", "endpoint_id", postgresql_nulls_not_distinct=True),
)
Index(
    "ix_alert_deliveries_due",
    alert_deliveries.c.next_attempt_at,
    postgresql_where=alert_deliveries.c.status == "pending",
)

# The delivery log: every attempt with what came back.
alert_delivery_attempts = Table(
    "alert_delivery_attempts",
    metadata,
    Column(
        "delivery_id",
        UUID(as_uuid=True),
        ForeignKey("alert_deliveries.delivery_id"),
        primary_key=True,
    ),
    Column("attempt", SmallInteger, primary_key=True),
    Column("attempted_at", DateTime(timezone=True), nullable=False),
    Column("status_code", SmallInteger),  # NULL: no HTTP answer (or e-mail)
    Column("error", Text),  # NULL: delivered
    Column("duration_ms", BigInteger, nullable=False),
    Column("next_attempt_at", DateTime(timezone=True)),  # NULL: no further attempt
)
# --- Analytics rollups (docs/metrics.md) -------------------------------------------------
# Written only by `coalition jobs rollups` (shared/analytics/refresh.py), never by the
# posting transaction: the ledger's hot paths stay as they are. Days are local days in the
# programme's time zone; weeks start on Monday; a period is named by its first day.
#
# Two member-scoped tables (member_id in their keys, principle 7) carry the facts:
# activity_member_days (member x day x merchant counters, added to from the ledger) and
# activity_members (one summary row per member, recomputed from the former). Every other
# rollup is a small aggregate that is a sum over members of what each member contributes,
# maintained by taking a touched member's contribution out before its facts change and
# putting it back after (shared/analytics/refresh.py).

_GRAINS = "grain IN ('day', 'week', 'month')"


def _counter(name: str) -> Column:
    return Column(name, BigInteger, nullable=False, server_default=text("0"))


# What a member did at a merchant on a day. A purchase is an earn transaction; a
# redemption a redeem or a capture. Refunds and reversals are counted on the day they
# happen, beside the purchases and redemptions they correct (never netted into them).
DAY_COUNTERS = (
    "purchases",
    "spend_minor",  # purchase amounts, in the merchant's currency
    "points_earned",  # points the purchases credited (base, tier and campaign bonuses)
    "refunds",
    "refunded_minor",
    "points_clawed_back",  # points the refunds took back (positive)
    "redemptions",
    "points_redeemed",  # points spent (positive)
    "points_reversed",  # points given back by redemption reversals (positive)
)

activity_member_days = Table(
    "activity_member_days",
    metadata,
    Column("member_id", UUID(as_uuid=True), primary_key=True),
    Column("day", Date, primary_key=True),
    Column("merchant_id", UUID(as_uuid=True), primary_key=True),
    *(_counter(name) for name in DAY_COUNTERS),
)
# Date-range scans for filters the small aggregates cannot answer (several merchants).
Index("ix_activity_member_days_merchant_day", activity_member_days.c.merchant_id,
      activity_member_days.c.day)  # fmt: skip

# One row per member: the inputs of BG/NBD, RFM, Kaplan-Meier and the at-risk list. An
# active day is a day with a purchase or a redemption.
activity_members = Table(
    "activity_members",
    metadata,
    Column("member_id", UUID(as_uuid=True), primary_key=True),
    # Local day of enrolment, or of the first activity when a till dated a purchase earlier.
    Column("enrolled_day", Date, nullable=False),
    Column("acquiring_merchant_id", UUID(as_uuid=True), nullable=False),
    Column("tier", Text, nullable=False),  # the member's tier when the row was refreshed
    Column("first_active_day", Date),
    Column("last_active_day", Date),
    _counter("active_days"),
    Column("first_purchase_day", Date),
    Column("last_purchase_day", Date),
    _counter("purchase_days"),
    Column("first_redemption_day", Date),
    _counter("merchants"),  # partners with an active day
    *(_counter(name) for name in DAY_COUNTERS),
)

# Per period and merchant (the nil UUID: the whole network) and current tier: members with
# an active day, with a purchase, with a redemption, with active days at 2+ partners
# (network rows only), the sum of their active days, and the day counters summed. Distinct
# counts add up across tiers (a member has one tier), not across merchants.
PERIOD_DISTINCT_COUNTS = ("active_members", "purchasers", "redeemers", "multi_merchant_members")
PERIOD_COUNTERS = (*PERIOD_DISTINCT_COUNTS, "active_member_days", *DAY_COUNTERS)
activity_periods = Table(
    "activity_periods",
    metadata,
    Column("grain", Text, primary_key=True),
    Column("period_start", Date, primary_key=True),
    Column("merchant_id", UUID(as_uuid=True), primary_key=True),
    Column("tier", Text, primary_key=True),
    *(_counter(name) for name in PERIOD_COUNTERS),
    CheckConstraint(_GRAINS, name="grain"),
)

# Network-wide, per current tier: how many members had N active days in the period.
activity_active_days = Table(
    "activity_active_days",
    metadata,
    Column("grain", Text, primary_key=True),
    Column("period_start", Date, primary_key=True),
    Column("tier", Text, primary_key=True),
    Column("active_days", BigInteger, primary_key=True),
    _counter("members"),
    CheckConstraint("grain IN ('week', 'month')", name="grain"),
)

# Members per period, tier and the sets of partners they were active / purchased /
# redeemed at (sorted arrays): distinct members over any several partners are the sum of
# the rows whose set meets them, without reading member rows. A period has some 10^4-10^5
# distinct sets at 1M members.
activity_merchant_sets = Table(
    "activity_merchant_sets",
    metadata,
    Column("grain", Text, primary_key=True),
    Column("period_start", Date, primary_key=True),
    Column("tier", Text, primary_key=True),
    Column("active_at", ARRAY(UUID(as_uuid=True)), primary_key=True),
    Column("purchased_at", ARRAY(UUID(as_uuid=True)), primary_key=True),
    Column("redeemed_at", ARRAY(UUID(as_uuid=True)), primary_key=True),
    _counter("members"),
    CheckConstraint(_GRAINS, name="grain"),
)

# Members active at both partners of a pair in the period (merchant_a < merchant_b).
activity_merchant_pairs = Table(
    "activity_merchant_pairs",
    metadata,
    Column("grain", Text, primary_key=True),
    Column("period_start", Date, primary_key=True),
    Column("merchant_a", UUID(as_uuid=True), primary_key=True),
    Column("merchant_b", UUID(as_uuid=True), primary_key=True),
    _counter("members"),
    CheckConstraint("grain IN ('week', 'month')", name="grain"),
    CheckConstraint("merchant_a < merchant_b", name="ordered_pair"),
)

# Retention: members of an enrolment cohort (and acquiring merchant) active in a period,
# and those whose last active period it is ("on or after" retention sums the latter).
activity_cohorts = Table(
    "activity_cohorts",
    metadata,
    Column("grain", Text, primary_key=True),
    Column("cohort_start", Date, primary_key=True),
    Column("acquiring_merchant_id", UUID(as_uuid=True), primary_key=True),
    Column("period_start", Date, primary_key=True),
    _counter("active_members"),
    _counter("last_active_members"),
    CheckConstraint("grain IN ('week', 'month')", name="grain"),
)

# Cohort sizes: members per enrolment day and acquiring merchant.
activity_enrolments = Table(
    "activity_enrolments",
    metadata,
    Column("day", Date, primary_key=True),
    Column("acquiring_merchant_id", UUID(as_uuid=True), primary_key=True),
    _counter("members"),
)

# Lifecycle, churn and inter-purchase gaps: a member's timeline cut at its enrolment and
# active days into spells (from_day, to_day]: from an active day (or the enrolment, when
# no activity fell on it) to the next active day; to_day = 'infinity' while it lasts.
activity_spells = Table(
    "activity_spells",
    metadata,
    Column("from_day", Date, primary_key=True),
    Column("to_day", Date, primary_key=True),
    Column("from_enrolment", Boolean, primary_key=True),
    _counter("members"),
)

# Points leaving lots per day (posting day), by kind, issuing and redeeming merchant (the
# nil UUID for HQ-issued points, and as the redeemer of expired points): the earned-at /
# redeemed-at flows and breakage. Reversal allocations are negative.
activity_point_flows = Table(
    "activity_point_flows",
    metadata,
    Column("day", Date, primary_key=True),
    Column("kind", Text, primary_key=True),
    Column("issuing_merchant_id", UUID(as_uuid=True), primary_key=True),
    Column("redeeming_merchant_id", UUID(as_uuid=True), primary_key=True),
    Column("points", BigInteger, nullable=False),
    CheckConstraint("kind IN ('redemption', 'reversal', 'expiry')", name="kind"),
)

# The refresh job's state: everything posted before `watermark` is in the rollups.
activity_refresh = Table(
    "activity_refresh",
    metadata,
    Column("id", Boolean, primary_key=True, server_default=text("true")),
    Column("watermark", DateTime(timezone=True), nullable=False),
    Column("time_zone", Text, nullable=False),
    Column("refreshed_at", DateTime(timezone=True), nullable=False),
    CheckConstraint("id", name="one_row"),
)
# Members whose tier (or anything else) changed since the last refresh are found by this.
Index("ix_members_updated_at", members.c.updated_at)


# --- Churn model (docs/metrics.md) ------------------------------------------------
# `coalition jobs models` fits BG/NBD to every member's purchase history and stores the
# fit with its summary (expected active base, P(alive) distribution): the dashboard reads
# the latest row instead of fitting a million histories while a page renders.

churn_model_fits = Table(
    "churn_model_fits",
    metadata,
    Column("fit_id", UUID(as_uuid=True), primary_key=True),
    Column("fitted_at", DateTime(timezone=True), nullable=False, server_default=text("now()")),
    Column("as_of", Date, nullable=False),  # histories observed up to this local day (excl.)
    Column("r", Double, nullable=False),
    Column("alpha", Double, nullable=False),  # per week
    Column("a", Double, nullable=False),
    Column("b", Double, nullable=False),
    Column("log_likelihood", Double, nullable=False),
    Column("converged", Boolean, nullable=False),
    Column("members", BigInteger, nullable=False),  # members with a purchase, all fitted
    Column("expected_active", Double, nullable=False),  # sum of P(alive)
    Column("p_alive_bins", ARRAY(Double), nullable=False),  # upper edges: 0.1, 0.2, ... 1.0
    Column("p_alive_counts", ARRAY(BigInteger), nullable=False),
    Column("seconds", Double, nullable=False),  # how long the fit took
)
Index("ix_churn_model_fits_fitted_at", churn_model_fits.c.fitted_at)

# Reports too slow to compute while a page renders (a campaign's results, the points
# liability), stored by the worker's jobs as JSON and read by the dashboard in one row:
# shared/snapshots.py. One row per (report, subject), replaced when recomputed.
report_snapshots = Table(
    "report_snapshots",
    metadata,
    Column("report", Text, primary_key=True),  # campaign_results | liability
    Column("subject", Text, primary_key=True),  # a campaign id; 'now' for the liability
    Column("computed_at", DateTime(timezone=True), nullable=False),
    Column("covers_until", DateTime(timezone=True), nullable=False),  # data up to here
    Column("body", JSONB, nullable=False),
    Column("seconds", Double, nullable=False),  # how long computing it took
)
