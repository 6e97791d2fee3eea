"""The dashboard's database access: every load the pages make, cached, in one place.

Reads run in REPEATABLE READ READ ONLY transactions, so a figure made of several
statements sees one snapshot. New queries are sync functions of shared/analytics (the
dashboard's engine is psycopg); the domain services written for the API are async and
run through `_run_async` on a short-lived asyncpg connection (a pool cannot outlive the
event loop of one `asyncio.run`, so it gets none). Results are cached with
st.cache_data for a few minutes (shared by every session): the TTLs say how stale each
figure may be. Sign-in and admin actions are never cached.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import replace
from datetime import date, datetime
from typing import TYPE_CHECKING, TypeVar

import streamlit as st
from sqlalchemy import Connection, Engine, create_engine
from sqlalchemy.ext.asyncio import AsyncConnection, create_async_engine
from sqlalchemy.pool import NullPool

from dashboard import periods
from shared import hq_users, network_summary
from shared.analytics import activity, lifecycle, overview, redemption, retention
from shared.analytics import campaigns as campaign_listing
from shared.analytics import filters as filter_options
from shared.analytics import query as analytics
from shared.analytics.filters import Filters
from shared.campaigns import definitions
from shared.database.bootstrap import async_url, database_url
from shared.errors import DomainError
from shared.settings import get_settings
from shared.settlement import liability, reads

if TYPE_CHECKING:
    from shared.analytics.churn_model import AtRiskMember, ModelFit
    from shared.analytics.survival import SurvivalCurve
    from shared.campaigns.results import CampaignResults

T = TypeVar("T")

LIVE = 60  # seconds: activity figures and the signed-in user's account
SETTLED = 600  # closed periods never change; campaign statistics are costly
REFERENCE = 300  # merchants and campaign definitions change rarely

_READ_ONLY = {"isolation_level": "REPEATABLE READ", "postgresql_readonly": True}


@st.cache_resource
def engine() -> Engine:
    return create_engine(database_url(get_settings()), pool_pre_ping=True)


def _read(query: Callable[..., T], *arguments) -> T:
    with engine().connect().execution_options(**_READ_ONLY) as connection:
        return query(connection, *arguments)


def _write(work: Callable[[Connection], T]) -> T:
    with engine().begin() as connection:
        return work(connection)


def _run_async(work: Callable[[AsyncConnection], Awaitable[T]], *, read_only: bool = True) -> T:
    async def main() -> T:
        async_engine = create_async_engine(async_url(engine().url), poolclass=NullPool)
        try:
            if read_only:
                async with async_engine.connect() as connection:
                    connection = await connection.execution_options(**_READ_ONLY)
                    return await work(connection)
            async with async_engine.begin() as connection:
                return await work(connection)
        finally:
            await async_engine.dispose()

    return asyncio.run(main())


# --- HQ users (never cached: a sign-in is checked against the database every time) ------


def authenticate(username: str, password: str) -> hq_users.HqUser | None:
    return _write(lambda connection: hq_users.authenticate(connection, username, password))


def sign_in_verified(username: str) -> hq_users.HqUser | None:
    return _write(lambda connection: hq_users.sign_in_verified(connection, username))


@st.cache_data(ttl=LIVE, show_spinner=False)
def enabled_user(username: str) -> hq_users.HqUser | None:
    """Re-read once a minute at most: disabling a user ends open sessions within a minute."""
    return _read(hq_users.enabled_user, username)


# --- Filters and the Overview ---------------------------------------------------------


@st.cache_data(ttl=REFERENCE, show_spinner=False)
def merchant_options() -> list[filter_options.MerchantOption]:
    return _read(filter_options.merchant_options)


def merchant_names() -> dict[uuid.UUID | None, str]:
    """Merchant names by id; None is the network itself (points HQ issued or funded)."""
    return {None: "Network (HQ)"} | {
        option.merchant_id: option.name for option in merchant_options()
    }


@st.cache_data(ttl=LIVE, show_spinner=False)
def network_headline() -> network_summary.NetworkSummary:
    return _read(network_summary.network_summary)


@st.cache_data(ttl=LIVE, show_spinner=False)
def outstanding_points(filters: Filters) -> int:
    return _read(overview.outstanding_points, filters)


# --- Activity, retention, churn, redemption: the analytics rollups ------------------------
# Each loader is one figure's query (a few thousand rollup rows at most), cached for a
# minute and keyed by `as_of`, so a refresh of the rollups shows at once.


def _query(query: analytics.Query[T]) -> T:
    return _read(analytics.run, query)


@st.cache_data(ttl=LIVE, show_spinner=False)
def data_as_of() -> date | None:
    """The first day the rollups may not hold in full; None before their first build."""
    return _query(analytics.data_as_of())


@st.cache_data(ttl=LIVE, show_spinner=False)
def activity_series(
    filters: Filters, grain: analytics.Grain, as_of: date
) -> list[activity.ActivityPeriod]:
    return _query(activity.series(grain, periods.trend_scope(filters, grain), as_of))


@st.cache_data(ttl=LIVE, show_spinner=False)
def active_days(
    filters: Filters, grain: analytics.Grain, period: date, as_of: date
) -> list[activity.ActiveDaysHistogram]:
    """The histograms of one period and the one before it."""
    scope = replace(
        filters.scope(),
        start=periods.previous_period(period, grain),
        end=analytics.next_period(period, grain),
    )
    return _query(activity.active_days_histogram(grain, scope, as_of))


@st.cache_data(ttl=LIVE, show_spinner=False)
def pair_affinity(
    grain: analytics.Grain, period: date, merchant_ids: tuple[uuid.UUID, ...]
) -> list[activity.PairAffinity]:
    return _query(activity.pair_affinity(grain, period, merchant_ids))


@st.cache_data(ttl=LIVE, show_spinner=False)
def retention_matrix(
    filters: Filters, grain: retention.CohortGrain, acquiring: uuid.UUID | None, as_of: date
) -> retention.RetentionMatrix:
    """Cohorts of the trend's periods, acquired by `acquiring` (None: by the merchants
    selected, or anyone)."""
    return _query(
        retention.matrix(
            grain,
            as_of,
            cohorts_from=periods.trend_start(filters, grain),
            cohorts_until=filters.scope().end,
            acquiring_merchant_ids=(acquiring,) if acquiring else filters.merchant_ids,
        )
    )


@st.cache_data(ttl=LIVE, show_spinner=False)
def lapse_threshold(as_of: date) -> tuple[int, int]:
    """The default lapse threshold in days (segments.py's percentile of every gap between
    consecutive active days), and how many gaps it comes from."""
    from shared.analytics.segments import lapse_threshold_days

    histogram = _query(lifecycle.active_day_gaps(end=as_of))
    gaps = [gap for gap, _ in histogram.counts]
    counts = [count for _, count in histogram.counts]
    return lapse_threshold_days(gaps, counts=counts), histogram.gaps


@st.cache_data(ttl=LIVE, show_spinner=False)
def lifecycle_states(
    filters: Filters, grain: retention.CohortGrain, lapse_days: int, as_of: date
) -> list[lifecycle.LifecyclePeriod]:
    scope = periods.trend_scope(filters, grain)
    return _query(lifecycle.states(grain, scope.start, scope.end, as_of, lapse_days))


@st.cache_data(ttl=LIVE, show_spinner=False)
def rfm_segments(filters: Filters, as_of: date) -> dict[str, int]:
    """Members with a purchase per RFM segment (segments.py), in the grid's order; scored
    on every purchase to date, among the members acquired by the selected merchants and
    holding the selected tiers."""
    from shared.analytics import members
    from shared.analytics.segments import segment_sizes

    grouped = _query(
        members.recency_frequency(
            as_of, acquiring_merchant_ids=filters.merchant_ids, tiers=filters.tiers
        )
    )
    sizes = segment_sizes(grouped.recency_days, grouped.purchase_days, grouped.members)
    return {segment.value: members for segment, members in sizes.items()}


@st.cache_data(ttl=REFERENCE, show_spinner=False)
def churn_model_fit() -> ModelFit | None:
    """The latest stored fit of the churn model (`coalition jobs models`, daily)."""
    from shared.analytics.churn_model import latest_fit

    return _read(latest_fit)


AT_RISK_LIMIT = 10_000
HIGH_BALANCE = 0.99  # the at-risk list's default balance: the top 1% of balances


@st.cache_data(ttl=REFERENCE, show_spinner=False)
def high_balance() -> int:
    """The balance the top 1% of members hold at least (the at-risk list's default)."""
    from shared.analytics import members

    return _query(members.balance_quantile(HIGH_BALANCE))


@st.cache_data(ttl=LIVE, show_spinner="Scoring the members with the highest balances...")
def at_risk_members(
    fit: ModelFit, filters: Filters, min_balance: int, max_p_alive: float
) -> tuple[list[AtRiskMember], str]:
    """The win-back list (at most AT_RISK_LIMIT members, highest balance first) and its CSV."""
    from shared.analytics import churn_model

    rows = _read(
        lambda connection: churn_model.at_risk(
            connection,
            fit,
            min_balance=min_balance,
            max_p_alive=max_p_alive,
            limit=AT_RISK_LIMIT,
            filters=filters,
        )
    )
    return rows, churn_model.at_risk_csv(rows)


@st.cache_data(ttl=LIVE, show_spinner=False)
def breakage(
    filters: Filters, grain: analytics.Grain, as_of: date
) -> list[redemption.BreakagePeriod]:
    return _query(redemption.breakage(grain, periods.trend_scope(filters, grain), as_of))


@st.cache_data(ttl=LIVE, show_spinner=False)
def point_flows(filters: Filters) -> list[redemption.PointFlow]:
    return _query(redemption.flows(filters.scope()))


@st.cache_data(ttl=LIVE, show_spinner="Fitting the time to first redemption...")
def time_to_first_redemption(filters: Filters, as_of: date) -> SurvivalCurve:
    """Kaplan-Meier over the members enrolled in the month trend's window, observed up to
    the end of the dates (or the data's as-of day when earlier)."""
    from shared.analytics.survival import kaplan_meier

    until = min(filters.scope().end, as_of)
    durations = _query(
        redemption.time_to_first_redemption(
            until,
            enrolled_from=periods.trend_start(filters, "month"),
            acquiring_merchant_ids=filters.merchant_ids,
            tiers=filters.tiers,
        )
    )
    return kaplan_meier(*durations.arrays())


# --- Campaigns ------------------------------------------------------------------------


@st.cache_data(ttl=REFERENCE, show_spinner=False)
def campaigns(filters: Filters) -> list[definitions.Campaign]:
    return _run_async(lambda connection: campaign_listing.campaigns_in_scope(connection, filters))


@st.cache_data(ttl=LIVE, show_spinner="Comparing the campaign's arms...")
def campaign_results(campaign_id: uuid.UUID) -> tuple[CampaignResults, datetime | None]:
    """The results `coalition jobs campaigns` stored, and when it computed them; computed
    here (None: just now) for a campaign the job has not reached yet."""
    # Imported when first needed: scipy and statsmodels take seconds to import, and the
    # sign-in screen should not wait for them.
    from shared.campaigns import results, snapshots

    stored = _read(snapshots.latest, campaign_id)
    if stored is not None:
        return stored
    rules = get_settings().program
    live = _run_async(
        lambda connection: results.campaign_results(
            connection, campaign_listing.HQ_READER, campaign_id, rules
        )
    )
    return live, None


def cancel_campaign(campaign_id: uuid.UUID, actor: hq_users.HqUser) -> str | None:
    """An admin action; None when done, else why the service refused (the campaign ended
    meanwhile, say). The audit record names the HQ user (shared/audit.py)."""
    try:
        _run_async(
            lambda connection: definitions.cancel_campaign(
                connection, actor.principal, campaign_id
            ),
            read_only=False,
        )
    except DomainError as refusal:
        return refusal.detail
    finally:
        campaigns.clear()
        campaign_results.clear()
    return None


# --- Settlement and the liability -------------------------------------------------------


@st.cache_data(ttl=LIVE, show_spinner=False)
def settlement_periods() -> list[reads.PeriodView]:
    """Newest first. LIVE: the close job adds one at the end of every period."""
    return _run_async(reads.list_periods)


@st.cache_data(ttl=SETTLED, show_spinner=False)
def statements(period_id: uuid.UUID) -> list[reads.StatementView]:
    return _run_async(
        lambda connection: reads.list_statements(connection, merchant_id=None, period_id=period_id)
    )


@st.cache_data(ttl=SETTLED, show_spinner=False)
def clearing(period_id: uuid.UUID) -> list[reads.ClearingCell]:
    return _run_async(lambda connection: reads.clearing(connection, period_id))


@st.cache_data(ttl=SETTLED, show_spinner=False)
def network_view(period_id: uuid.UUID) -> reads.NetworkView:
    rules = get_settings().program
    return _run_async(lambda connection: reads.network_view(connection, period_id, rules))


@st.cache_data(
    ttl=REFERENCE, show_spinner="Estimating breakage and rolling the liability forward..."
)
def liability_report(as_of: datetime | None) -> liability.LiabilityReport:
    """As of a past moment, or now (None): the copy `coalition jobs settle` stored (its
    `as_of` says when), computed here only when there is none yet."""
    if as_of is None:
        stored = _read(liability.stored_current)
        if stored is not None:
            return stored
    rules = get_settings().program
    return _run_async(lambda connection: liability.liability_report(connection, rules, as_of))


@st.cache_data(ttl=LIVE)
def firing_alert_count() -> int:
    from shared.alerts.reads import firing_count

    return _read(firing_count)


@st.cache_data(ttl=LIVE)
def active_alerts():
    from shared.alerts.reads import current_alerts

    return _read(current_alerts)


@st.cache_data(ttl=LIVE)
def alert_events():
    from shared.alerts.reads import list_events

    return _read(lambda connection: list_events(connection, limit=500)[0])


@st.cache_data(ttl=REFERENCE)
def alert_rules():
    from shared.alerts.definitions import list_rules

    return _read(list_rules)


def alert_rule_count() -> int:
    return sum(rule.enabled for rule in alert_rules())


@st.cache_data(ttl=REFERENCE, show_spinner="Replaying the rule over the days...")
def alert_backtest(rule_id: uuid.UUID, days: int):
    from shared.alerts.backtest import backtest

    tiers = get_settings().program.tier_names
    return _read(lambda connection: backtest(connection, rule_id, days=days, tiers=tiers))
