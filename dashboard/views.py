"""What the tables and scorecards show: rows and tiles with formatted numbers, built from
the shared/ dataclasses as they come (figures are in charts.py)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING

from dashboard import formats, periods
from dashboard.ui import Figure
from shared.analytics.activity import ActivityPeriod, PairAffinity
from shared.analytics.filters import Filters
from shared.analytics.lifecycle import LifecyclePeriod
from shared.analytics.query import Grain
from shared.analytics.redemption import BreakagePeriod
from shared.analytics.retention import RetentionMatrix
from shared.campaigns.definitions import Campaign
from shared.program import CURRENCY_EXPONENTS
from shared.settlement import rules as statement_rules
from shared.settlement.liability import LiabilityReport
from shared.settlement.reads import NetworkView, StatementView

if TYPE_CHECKING:  # scipy and statsmodels behind it load slowly: types only
    from shared.analytics.churn_model import AtRiskMember, ModelFit
    from shared.analytics.survival import SurvivalCurve
    from shared.campaigns.results import CampaignResults


def _amount(label: str, value: int, unit, *, note: str | None = None, help: str = "") -> Figure:
    """A tile for an amount: compact in the tile, exact in its help."""
    exact = f"Exactly {unit(value)}."
    return Figure(label, unit(value, compact=True), note, f"{help} {exact}".strip())


def _money(currency: str):
    def unit(amount_minor: int, compact: bool = False) -> str:
        return formats.money(amount_minor, currency, compact=compact)

    return unit


WHO_PAYS = {
    "merchant_pays": "merchant pays HQ",
    "hq_pays": "HQ pays merchant",
    "nothing_due": "nothing due",
}


# --- Campaigns --------------------------------------------------------------------------


def _merchants(campaign: Campaign, names: dict) -> str:
    if not campaign.merchant_ids:
        return "every partner"
    return ", ".join(
        sorted(names.get(merchant, str(merchant)) for merchant in campaign.merchant_ids)
    )


def campaign_label(campaign: Campaign) -> str:
    return f"{campaign.name} ({campaign.status}, from {formats.day(campaign.starts_at.date())})"


def campaign_rows(campaigns: list[Campaign], names: dict) -> list[dict]:
    return [
        {
            "Campaign": campaign.name,
            "Status": campaign.status,
            "Kind": campaign.kind.replace("_", " "),
            "Funded by": names.get(campaign.owner_merchant_id, "HQ"),
            "Runs at": _merchants(campaign, names),
            "Tiers": ", ".join(campaign.tiers) or "every tier",
            "Window": formats.day_range(campaign.starts_at.date(), campaign.ends_at.date()),
            "Holdout": formats.percent(campaign.holdout_bps / 10_000, decimals=0),
        }
        for campaign in campaigns
    ]


def campaign_window(result: CampaignResults, computed_at: datetime | None = None) -> str:
    arms = (
        f"{formats.count(result.treatment_members, 'members treated')}, "
        f"{formats.count(result.holdout_members, 'held out')}"
    )
    window = formats.day_range(result.window_start.date(), result.window_end.date())
    when = (
        f" Computed {computed_at:%Y-%m-%d %H:%M %Z} by `coalition jobs campaigns`."
        if computed_at
        else ""
    )
    return f"Results over {window} ({result.campaign.status}): {arms}.{when}"


def _lift(estimate) -> tuple[str, str | None]:
    if estimate is None or estimate.relative_lift is None:
        return "n/a", None
    return (
        formats.percent(estimate.relative_lift, plus=True),
        f"95% CI {formats.interval(estimate.relative_ci_low, estimate.relative_ci_high)}",
    )


def campaign_effect_tiles(result: CampaignResults) -> list[Figure]:
    visits = result.visits.lift if result.visits else None
    return [
        Figure(
            "Visit lift",
            *_lift(visits),
            help="Visits per member, treatment vs holdout, CUPED-adjusted on the pre-period.",
        ),
        Figure("Spend lift", *_lift(result.spend_minor), help="Purchase amounts per member."),
        Figure(
            "Points lift", *_lift(result.points), help="Points earned per member, bonus included."
        ),
        Figure("Active-share lift", *_lift(result.active), help="Members with at least one visit."),
    ]


def campaign_money_tiles(result: CampaignResults, currency: str) -> list[Figure]:
    revenue, roi, money = result.incremental_revenue, result.roi, _money(currency)
    return [
        _amount(
            "Bonus cost",
            result.bonus_cost_minor,
            money,
            note=formats.points(result.bonus_points),
            help="The campaign's bonus points at the programme's point value.",
        ),
        _amount(
            "Incremental revenue",
            revenue.amount_minor,
            money,
            note=f"95% CI ({money(revenue.ci_low_minor, compact=True)}, "
            f"{money(revenue.ci_high_minor, compact=True)})",
            help="The spend lift per member times the treated members.",
        )
        if revenue
        else Figure("Incremental revenue", "n/a"),
        Figure(
            "Return on investment",
            formats.percent(roi.roi, decimals=0, plus=True) if roi else "n/a",
            f"{roi.revenue_per_cost:.2f} of revenue per unit of cost" if roi else None,
            help="(Incremental revenue - bonus cost) / bonus cost.",
        ),
    ]


def sample_ratio_warning(result: CampaignResults) -> str | None:
    check = result.sample_ratio
    if check is None or not check.mismatch:
        return None
    return (
        f"The arms are not the split the campaign was configured with: "
        f"{formats.percent(check.observed_holdout_share)} held out instead of "
        f"{formats.percent(check.expected_holdout_share)} (p = {check.p_value:.2g}). "
        "Assignment may be broken: do not trust these results until it is explained."
    )


# --- Settlement -------------------------------------------------------------------------


def network_tiles(view: NetworkView) -> list[Figure]:
    money = _money(view.currency)
    return [
        _amount(
            "Issuance fees",
            view.issuance_fees_minor,
            money,
            help="What merchants paid for the points they issued, net of refund credits.",
        ),
        _amount(
            "Redemption payments",
            view.redemption_payments_minor,
            money,
            help="What HQ paid merchants for points redeemed at their tills, net of reversals.",
        ),
        _amount("Spread", view.issuance_spread_minor, money, help="Fees less payments."),
        _amount(
            "Net cash",
            view.net_cash_minor,
            money,
            help="What HQ received from the period's statements, breakage shares paid back.",
        ),
        _amount(
            "Breakage revenue",
            view.breakage_revenue_minor,
            money,
            note=formats.points(view.expired_points["merchants"]) + " expired",
            help="Merchant-funded points that expired this period, at their issuance price.",
        ),
    ]


def statement_rows(statements: list[StatementView]) -> list[dict]:
    issued_lines = (
        statement_rules.POINTS_ISSUED,
        statement_rules.CAMPAIGN_POINTS,
        statement_rules.REFUND_CLAWBACKS,
    )
    redeemed_lines = (statement_rules.POINTS_REDEEMED, statement_rules.REDEMPTION_REVERSALS)
    rows = []
    for statement in sorted(statements, key=lambda statement: statement.merchant_name):
        lines = statement.lines
        rows.append(
            {
                "Merchant": statement.merchant_name,
                "Points issued": formats.points(
                    sum(line.points for line in lines if line.line in issued_lines)
                ),
                "Points redeemed": formats.points(
                    sum(line.points for line in lines if line.line in redeemed_lines)
                ),
                "Charged": formats.money(
                    sum(line.amount_minor for line in lines if line.amount_minor > 0),
                    statement.currency,
                ),
                "Reimbursed": formats.money(
                    -sum(line.amount_minor for line in lines if line.amount_minor < 0),
                    statement.currency,
                ),
                "Net": formats.money(statement.net_minor, statement.currency),
                "Who pays": WHO_PAYS[statement.direction],
            }
        )
    return rows


# --- Liability --------------------------------------------------------------------------


def liability_as_of(filters: Filters) -> datetime | None:
    """The end of the selected dates, or None (now) when they reach today."""
    return filters.ends_at if filters.ends_at <= datetime.now(UTC) else None


def liability_tiles(report: LiabilityReport) -> list[Figure]:
    money = _money(report.currency)
    exponent = CURRENCY_EXPONENTS.get(report.currency, 2)
    point_value = report.point_value_minor.scaleb(-exponent).normalize()
    return [
        _amount(
            "Outstanding points",
            report.outstanding_points,
            formats.points,
            note=f"as of {formats.day(report.as_of.date())}",
            help="Sum of member balances at that moment.",
        ),
        _amount(
            "Gross value",
            report.gross_value_minor,
            money,
            note=f"at {point_value:f} {report.currency} a point",
        ),
        Figure(
            "Expected breakage",
            formats.percent(report.breakage_rate),
            "default rate: no cohort resolved"
            if report.breakage.observed_rate is None
            else f"blend: {formats.percent(report.breakage.credibility, decimals=0)} observed",
            help="Share of outstanding points expected never to be redeemed. " + report.method,
        ),
        _amount(
            "Liability",
            report.liability_minor,
            money,
            note="net of expected breakage",
            help="Outstanding points x point value x (1 - breakage rate).",
        ),
    ]


def roll_forward_rows(report: LiabilityReport) -> list[dict]:
    currency = report.currency

    def money(amount: int) -> str:
        return formats.money(amount, currency)

    return [
        {
            "Month": f"{line.month:%b %Y}",
            "Opening": money(line.opening_minor),
            "Issued": money(line.issued_minor),
            "Redeemed": money(line.redeemed_minor),
            "Expired": money(line.expired_minor),
            "Other": money(line.other_minor),
            "Change in estimate": money(line.change_in_estimate_minor),
            "Closing": money(line.closing_minor),
            "Closing points": formats.points(line.closing_points),
            "Breakage rate": formats.percent(line.closing_rate),
        }
        for line in report.roll_forward
    ]


ALERT_STATES = {
    "firing": "🔴 firing",
    "no_data": "⚪ no data",
    "recovering": "🟡 recovering",
    "pending": "🟠 pending",
    "normal": "🟢 normal",
}


def alert_value(value: float | None) -> str:
    return "no data" if value is None else f"{value:,.4g}"


def alert_rows(alerts) -> list[dict]:
    return [
        {
            "State": ALERT_STATES[alert.state],
            "Severity": alert.severity,
            "Rule": alert.rule_name,
            "For": alert.scope_label,
            "Value": alert_value(alert.value),
            "Threshold": f"{alert.comparator} {alert.threshold:g}",
            "Since": alert.since,
            "Owner": alert.owner,
        }
        for alert in alerts
    ]


# --- Analytics: tiles comparing a period with the one before it ----------------------------

NO_ROLLUPS = (
    "The analytics rollups have not been built yet. `coalition jobs rollups` builds them "
    "(`coalition seed` and the compose worker run it)."
)
NOTHING_SELECTED = (
    "No {what} in these dates for this selection. Widen the dates, or clear the merchant "
    "and tier filters."
)


def headline_caption(current, grain: Grain) -> str:
    """What the tiles of an analytics page compare."""
    when = periods.label(current.period_start, grain)
    before = periods.label(periods.previous_period(current.period_start, grain), grain)
    if getattr(current, "complete", True):
        return (
            f"Tiles: {when}, the latest complete {grain} by the end of the dates, against {before}."
        )
    return f"Tiles: {when} so far (no complete {grain} in the dates yet), against {before}."


def _count_tile(label: str, current: int, previous: int | None, unit, help: str, **kw) -> Figure:
    before = previous or 0
    return Figure(
        label,
        unit(current, compact=True),
        formats.delta(current, before, unit),
        f"{help} This period: {unit(current)}; the one before: {unit(before)}.",
        **{"rise_is_good": True, **kw},
    )


def _share_tile(
    label: str, current: float | None, previous: float | None, help: str, *, rise_is_good=True
) -> Figure:
    return Figure(
        label,
        formats.percent(current),
        formats.share_delta(current, previous),
        f"{help} This period: {formats.percent(current)}; the one before: "
        f"{formats.percent(previous)}.",
        rise_is_good,
    )


def _active_members_tile(current: ActivityPeriod, previous: ActivityPeriod | None) -> Figure:
    return _count_tile(
        "Active members",
        current.active_members,
        previous.active_members if previous else None,
        formats.count,
        "Members with at least one purchase or redemption, at the selected partners.",
    )


def overview_tiles(
    current: ActivityPeriod, previous: ActivityPeriod | None, outstanding: int
) -> list[Figure]:
    def before(field: str) -> int | None:
        return getattr(previous, field) if previous else None

    return [
        _active_members_tile(current, previous),
        _count_tile(
            "Purchases", current.purchases, before("purchases"), formats.count, "Earn transactions."
        ),
        _count_tile(
            "Points earned",
            current.points_earned_net,
            before("points_earned_net"),
            formats.points,
            "Points of purchases (base, tier and campaign bonuses) less refund clawbacks.",
        ),
        _count_tile(
            "Points redeemed",
            current.points_redeemed_net,
            before("points_redeemed_net"),
            formats.points,
            "Redemptions and captured holds, less reversals.",
        ),
        Figure(
            "Outstanding points",
            formats.points(outstanding, compact=True),
            "held by members now",
            f"Member balances now: {formats.points(outstanding)}, the liability before "
            "breakage. Every merchant: points belong to members, not to merchants.",
        ),
    ]


def activity_tiles(current: ActivityPeriod, previous: ActivityPeriod | None) -> list[Figure]:
    per_member = current.transactions_per_active_member
    before = previous.transactions_per_active_member if previous else None
    return [
        _active_members_tile(current, previous),
        Figure(
            "Transactions per active member",
            "n/a" if per_member is None else f"{per_member:.2f}",
            formats.ratio_delta(per_member, before),
            "Purchases and redemptions per active member. This period: "
            + ("n/a" if per_member is None else f"{per_member:.3f}")
            + "; the one before: "
            + ("n/a" if before is None else f"{before:.3f}")
            + ".",
            True,
        ),
        _share_tile(
            "Cross-merchant penetration",
            current.cross_merchant_penetration,
            previous.cross_merchant_penetration if previous else None,
            "Share of active members active at 2 or more partners (with a merchant filter: "
            "2 or more of the selected ones, so 0% for one partner).",
        ),
    ]


def pair_rows(pairs: list[PairAffinity], names: dict) -> list[dict]:
    return [
        {
            "Partner A": names.get(pair.merchant_a, str(pair.merchant_a)),
            "Partner B": names.get(pair.merchant_b, str(pair.merchant_b)),
            "Lift": f"{pair.lift:.2f}×",
            "Members at both": formats.count(pair.both),
            "At A": formats.count(pair.members_a),
            "At B": formats.count(pair.members_b),
            "Support": formats.percent(pair.support),
            "Confidence A → B": formats.percent(pair.confidence_a_to_b),
        }
        for pair in pairs
    ]


def retention_tiles(matrix: RetentionMatrix, *, unbounded: bool) -> list[Figure]:
    """The cohort sizes, and retention k periods on for the latest cohort that got there."""
    grain = matrix.grain
    tiles = [
        _amount(
            "Members in these cohorts",
            sum(row.members for row in matrix.rows),
            formats.count,
            note=f"{len(matrix.rows)} {grain}ly cohorts",
            help="Members enrolled in the cohorts shown.",
        )
    ]
    for k in (1, 3):
        label = f"{grain.title()}-{k} retention"
        known = [
            row
            for row in matrix.rows
            if len(row.active) > k and (row.on_or_after if unbounded else row.active)[k] is not None
        ]
        if not known:
            tiles.append(Figure(label, "n/a", f"no cohort is {k} {grain}s old yet"))
            continue
        row = known[-1]
        share = (row.unbounded_retention if unbounded else row.retention)[k]
        cohort = periods.label(row.cohort_start, grain)
        tiles.append(
            Figure(
                label,
                formats.percent(share),
                f"cohort: {cohort}, {formats.count(row.members, 'members')}",
                f"Share of the latest cohort with a complete {grain} {k} that was active "
                + ("in it or later." if unbounded else "in it."),
            )
        )
    return tiles


def churn_tiles(
    current: LifecyclePeriod, previous: LifecyclePeriod | None, grain: Grain
) -> list[Figure]:
    return [
        _share_tile(
            "Churn rate",
            current.churn_rate,
            previous.churn_rate if previous else None,
            f"Members not lapsed at the {grain}'s start who lapsed during it.",
            rise_is_good=False,
        ),
        _count_tile(
            "Lapsed members",
            current.lapsed,
            previous.lapsed if previous else None,
            formats.count,
            f"Members inactive for the lapse threshold or longer at the {grain}'s end.",
            rise_is_good=False,
        ),
        _count_tile(
            "Reactivated",
            current.reactivated,
            previous.reactivated if previous else None,
            formats.count,
            f"Members who came back in the {grain} after having lapsed.",
        ),
    ]


def _median(curve: SurvivalCurve) -> str:
    if curve.median is not None:
        return formats.days(curve.median)
    if not len(curve.times):
        return "no redemption yet"
    return f"over {formats.days(curve.times[-1])}"


def redemption_tiles(
    current: ActivityPeriod,
    previous: ActivityPeriod | None,
    breakage_now: BreakagePeriod | None,
    breakage_before: BreakagePeriod | None,
    curve: SurvivalCurve,
) -> list[Figure]:
    redeemed = int(curve.events.sum()) if len(curve.events) else 0
    return [
        _share_tile(
            "Burn/earn ratio",
            current.burn_earn_ratio,
            previous.burn_earn_ratio if previous else None,
            "Points redeemed net of reversals ÷ points earned net of clawbacks, at the "
            f"selected partners: {formats.points(current.points_redeemed_net)} ÷ "
            f"{formats.points(current.points_earned_net)}.",
        ),
        _share_tile(
            "Redeemer penetration",
            current.redeemer_penetration,
            previous.redeemer_penetration if previous else None,
            f"Active members who redeemed: {formats.count(current.redeemers)} of "
            f"{formats.count(current.active_members)}.",
        ),
        Figure(
            "To first redemption",
            _median(curve),
            f"median; {formats.count(redeemed)} of {formats.count(curve.members)} redeemed",
            "Kaplan-Meier median: the day after enrolment by which half the members enrolled "
            "in the curve's window had redeemed, those who have not redeemed yet counting "
            "until the end of the time observed. 'Over N days': fewer than half had redeemed "
            "by the latest day observed.",
        ),
        _share_tile(
            "Breakage rate",
            breakage_now.breakage_rate if breakage_now else None,
            breakage_before.breakage_rate if breakage_before else None,
            "Of the points that left members' lots in the period, the share that expired "
            "unused (of the points the selected partners issued).",
            rise_is_good=False,
        ),
    ]


# --- The churn model ------------------------------------------------------------------------

LIKELY_GONE = 0.3  # P(alive) at or below: the model thinks the member has probably left


def model_tiles(fit: ModelFit) -> list[Figure]:
    p = fit.parameters
    model = (
        f"BG/NBD fitted to {formats.count(fit.members, 'members')} with a purchase, "
        f"observed up to {formats.day(fit.as_of)}: r = {p.r:.3f}, α = {p.alpha:.3f} (weeks), "
        f"a = {p.a:.3f}, b = {p.b:.3f}; log-likelihood {fit.log_likelihood:,.1f}"
        + ("" if fit.converged else " (the fit did not converge: read with care)")
        + "."
    )
    gone = sum(
        count
        for edge, count in zip(fit.p_alive_bins, fit.p_alive_counts, strict=True)
        if edge <= LIKELY_GONE + 1e-9
    )
    expected = round(fit.expected_active)
    return [
        Figure(
            "Expected active base",
            formats.count(expected, compact=True),
            f"{formats.percent(fit.expected_active / fit.members)} of "
            f"{formats.count(fit.members, 'members', compact=True)}",
            f"Σ P(alive) over the members with a purchase: how many the model expects are "
            f"still customers. Exactly {fit.expected_active:,.1f}. {model}",
        ),
        Figure(
            "Likely gone",
            formats.count(gone, compact=True),
            f"P(alive) ≤ {formats.percent(LIKELY_GONE, decimals=0)}: "
            f"{formats.percent(gone / fit.members)}",
            f"Members whose probability of still being a customer is "
            f"{formats.percent(LIKELY_GONE, decimals=0)} or less. {model}",
        ),
        Figure(
            "Model fitted",
            formats.day(fit.fitted_at.date()),
            f"data up to {formats.day(fit.as_of)}",
            f"`coalition jobs models` fits the model once per day of data. {model}",
        ),
    ]


AT_RISK_SHOWN = 500  # rows in the table; the CSV has the whole list


def shown_of(shown: int, total: int) -> str:
    if shown == total:
        return ""
    return (
        f" The table shows the first {formats.count(shown)} of {formats.count(total)}; the "
        "CSV has them all."
    )


def at_risk_rows(members: list[AtRiskMember], currency: str) -> list[dict]:
    return [
        {
            "Member": str(member.member_id),
            "Tier": member.tier.title(),
            "Balance": formats.points(member.balance),
            "Last purchase": formats.day(member.last_purchase_day)
            if member.last_purchase_day
            else "never",
            "Purchases": formats.count(member.purchases),
            "Net spend": formats.money(member.net_spend_minor, currency),
            "P(alive)": formats.percent(member.p_alive),
        }
        for member in members
    ]
