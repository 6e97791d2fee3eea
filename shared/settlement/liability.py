"""The points liability: what HQ owes members for the points they hold, net of the points
expected never to be redeemed (breakage), and its IFRS 15-style monthly roll-forward.

The method and the rounding live in two pure functions (`estimate_breakage`,
`roll_forward`), unit-tested without a database; the query functions (`cohort_outcomes`,
`monthly_movements`, `liability_report`) read the ledger set-based and feed them.

Cohorts
-------
A cohort is the calendar month (UTC) in which lots were earned (`lots.earned_at`). Seen at
a moment t (a month end, or the report's as-of), from the lots and the allocations posted
before t:

- issued: the originals of its lots, less refund clawbacks posted before t. Copies of
  moved points (transfers, merges: `origin_lot_id` set) are not issuance: they keep the
  earn date of the lot they came from, so moved points stay in their cohort and count
  once; transfer and merge allocations are ignored for the same reason. Behaviour points
  and HQ credits (adjustment lots) are issuance.
- redeemed: redemption allocations plus reversal allocations (negative: points given back).
- expired: expiry allocations.
- outstanding: points still on its lots (original minus allocations, all before t).
- other = issued - redeemed - expired - outstanding: corrections, neither redeemed nor
  expired. Clawbacks are already in `issued` (a refund reduces what was issued); what a
  refund clawed back that the lot no longer held (the member had spent it) became debt,
  and debt repayments (points taken from a later lot to repay it) and HQ debits are
  points leaving lots as corrections. They play no part in the breakage rate.
- resolved: every lot of the cohort is past expiry at t (max(expires_at) <= t).

Breakage estimate (`estimate_breakage`)
---------------------------------------
- The ultimate breakage of a resolved cohort is its expired points plus any points still
  on its lots (past expiry: the expiry job posts them at its next run, and reads already
  treat them as expired); its resolved points are that breakage plus its redeemed points.
- observed rate = sum(breakage) / sum(resolved points) over resolved cohorts
  (points-weighted, not an average of cohort rates).
- credibility z = min(1, resolved points / full-credibility points).
- rate = z x observed + (1 - z) x default rate. Before any cohort is resolved z = 0 and
  the rate IS the default: the fallback before enough history exists. While z < 1 it is
  computed as (breakage + default x (full - resolved)) / full, one division.
- Expected breakage of the book = the sum over cohorts of: an unresolved cohort's
  outstanding points x rate; a resolved cohort's outstanding points in full.

Roll-forward (`monthly_movements`, `roll_forward`)
--------------------------------------------------
Points per calendar month (UTC) of `posted_at`, from the member postings by transaction
kind (read as `ledger_transactions.points`, which the audit holds equal to the
transaction's member postings):

- issued = earn + behaviour + refund (clawbacks are negative issuance);
- redeemed = redeem + capture - reversal;
- expired = expiry;
- other = adjustment (HQ credits and debits: they change the total) + transfer_out/in +
  merge_out/in (these net to zero: both legs post at the same instant);
- opening + issued - redeemed - expired + other = closing, exactly, and the closing is the
  sum of member postings before the month end, i.e. the sum of member balances then.

Money, in integer minor units. With v the point value, r0 the breakage rate estimated at
the start of the month (the end of the previous one) and r1 the one estimated at its end:

- closing liability = closing points x v x (1 - r1);
- opening liability = the previous month's closing liability, exactly (the first month:
  opening points x v x (1 - r0));
- issued, redeemed, expired and other = their points x v x (1 - r0): every movement of
  the month is carried at the estimate in force while it happened, the same value per
  point that the opening book carries;
- change in estimate = closing - (opening + issued - redeemed - expired + other): the
  plug, so the identity holds exactly in minor units. It equals closing points x v x
  (r0 - r1), the re-measurement of the book at the new estimate, plus a rounding residue
  of at most 3 minor units (six figures rounded once each, half a unit at most each).

Redemptions are carried at v x (1 - r0), not at their face value v: the book carries
each point at v x (1 - r), so taking a redeemed point out at v would move r x v per
redeemed point into "change in estimate" every month, even with an unchanged estimate.

Rounding and exactness: each money figure is rounded once, to the minor unit,
ROUND_HALF_UP (halves away from zero: 2.5 -> 3, -2.5 -> -3). Points are integers. Rates
are Decimals; a ratio that is not a finite decimal is carried to 28 significant digits
(ROUND_HALF_EVEN), the only rounding of a non-money figure. Every other sum and product
is exact: it is computed in a Decimal context that traps Inexact.

Reading the ledger: all four queries are set-based aggregates over lots (one pass for
the lots, one joined to the allocations), the refunds (through the partial index on
original_transaction_id) and the transactions (one pass), returning one row per cohort
and month, never per member. Each statement reads one snapshot; run the report in a
REPEATABLE READ transaction to have all of them read the same one. A cohort's history
is rebuilt from lot originals and allocations (never from `remaining`), so month ends in
the past are seen as they were, except for lot expiry dates that later events changed
(a reversal's grace period), which are the current ones.
"""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import (
    ROUND_HALF_EVEN,
    Context,
    Decimal,
    DivisionByZero,
    Inexact,
    InvalidOperation,
    Overflow,
    localcontext,
)

from sqlalchemy import Connection, Date, and_, cast, func, literal_column, select
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from shared import snapshots
from shared.program import ProgramRules
from shared.settlement.rules import round_minor
from shared.tables import allocations, ledger_transactions, lots, report_snapshots

# Program settings this module needs; ProgramRules will carry them (the keyword arguments
# below default to these until then).
ROLL_FORWARD_MONTHS = 12

# A ratio is carried to 28 significant digits; every sum and product is exact (the Inexact
# trap turns a silent rounding into an error instead).
_RATIO = Context(prec=28, rounding=ROUND_HALF_EVEN)
_EXACT = Context(
    prec=200,
    rounding=ROUND_HALF_EVEN,
    traps=[Inexact, InvalidOperation, DivisionByZero, Overflow],
)

# The roll-forward line of each transaction kind; a line sums its kinds' member points
# (redeemed and expired turned positive: they take points from members).
ISSUED_KINDS = ("earn", "behaviour", "refund")
REDEEMED_KINDS = ("redeem", "capture", "reversal")
EXPIRED_KINDS = ("expiry",)
OTHER_KINDS = ("adjustment", "transfer_out", "transfer_in", "merge_out", "merge_in")

# Allocation kinds as the ledger writes them (shared/ledger/*.py).
_REDEEMED_ALLOCATIONS = ("redemption", "reversal")  # reversal points are negative
_EXPIRED_ALLOCATIONS = ("expiry",)
_MOVED_ALLOCATIONS = ("transfer", "merge")  # the points go on in a copy of the lot


# --- pure: the method ----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class CohortOutcome:
    """One issuance cohort seen at a moment (see the module docstring for each figure)."""

    month: date  # first day of the calendar month (UTC) its lots were earned
    issued: int
    redeemed: int
    expired: int
    outstanding: int
    resolved: bool

    @property
    def other(self) -> int:
        """Corrections: debt repayments and HQ debits taken from its lots, less clawbacks
        of points the lots no longer held."""
        return self.issued - self.redeemed - self.expired - self.outstanding


@dataclass(frozen=True, slots=True)
class CohortBreakage:
    month: date
    outstanding: int
    rate: Decimal  # the book's estimate; 1 for a resolved cohort (its points are past expiry)
    expected_breakage_points: Decimal


@dataclass(frozen=True, slots=True)
class BreakageEstimate:
    rate: Decimal
    default_rate: Decimal
    observed_rate: Decimal | None  # None before any cohort is resolved
    credibility: Decimal  # z
    full_credibility_points: int
    resolved_points: int  # breakage + redeemed of the resolved cohorts
    resolved_breakage_points: int  # expired + still on lots past expiry, resolved cohorts
    cohorts: tuple[CohortBreakage, ...]
    expected_breakage_points: Decimal  # of the book: the sum over cohorts
    method: str


def _ratio(numerator: Decimal | int, denominator: Decimal | int) -> Decimal:
    return _RATIO.divide(Decimal(numerator), Decimal(denominator))


def estimate_breakage(
    cohorts: Sequence[CohortOutcome], *, default_rate: Decimal, full_credibility_points: int
) -> BreakageEstimate:
    """The breakage rate: resolved cohorts' observed rate, credibility-weighted against the
    default; and the expected breakage of each cohort's outstanding points."""
    if not Decimal(0) <= default_rate <= 1:
        raise ValueError(f"the default breakage rate is between 0 and 1, not {default_rate}")
    if full_credibility_points <= 0:
        raise ValueError("full credibility needs a positive number of points")
    for cohort in cohorts:
        if min(cohort.redeemed, cohort.expired, cohort.outstanding) < 0:
            raise ValueError(f"negative redeemed, expired or outstanding points: {cohort}")
    resolved = [cohort for cohort in cohorts if cohort.resolved]
    breakage = sum(cohort.expired + cohort.outstanding for cohort in resolved)
    resolved_points = breakage + sum(cohort.redeemed for cohort in resolved)
    with localcontext(_EXACT):
        observed = _ratio(breakage, resolved_points) if resolved_points else None
        if resolved_points >= full_credibility_points:
            credibility, rate = Decimal(1), observed
        else:
            credibility = _ratio(resolved_points, full_credibility_points)
            # z x (breakage / resolved) + (1 - z) x default, with z = resolved / full.
            rate = _ratio(
                breakage + default_rate * (full_credibility_points - resolved_points),
                full_credibility_points,
            )
        assert rate is not None
        by_cohort = tuple(
            CohortBreakage(
                cohort.month,
                cohort.outstanding,
                Decimal(1) if cohort.resolved else rate,
                cohort.outstanding * (Decimal(1) if cohort.resolved else rate),
            )
            for cohort in cohorts
        )
        expected = sum((item.expected_breakage_points for item in by_cohort), Decimal(0))
    method = _method_text(
        rate=rate,
        default_rate=default_rate,
        observed=observed,
        credibility=credibility,
        breakage=breakage,
        resolved_points=resolved_points,
        full_credibility_points=full_credibility_points,
    )
    return BreakageEstimate(
        rate=rate,
        default_rate=default_rate,
        observed_rate=observed,
        credibility=credibility,
        full_credibility_points=full_credibility_points,
        resolved_points=resolved_points,
        resolved_breakage_points=breakage,
        cohorts=by_cohort,
        expected_breakage_points=expected,
        method=method,
    )


def _method_text(
    *,
    rate: Decimal,
    default_rate: Decimal,
    observed: Decimal | None,
    credibility: Decimal,
    breakage: int,
    resolved_points: int,
    full_credibility_points: int,
) -> str:
    method = (
        "Breakage rate = z x observed + (1 - z) x default. Observed: the ultimate breakage "
        "of resolved cohorts (calendar months of earning, UTC, whose lots are all past "
        "expiry), points-weighted: (expired + points still on lots past expiry) / (that "
        "+ redeemed net of reversals). Credibility z = min(1, resolved points / "
        "full-credibility points). Expected breakage: an unresolved cohort's outstanding "
        "points x rate, a resolved cohort's outstanding points in full."
    )
    if observed is None:
        workings = f"No cohort is resolved yet: z = 0 and the rate is the default, {default_rate}."
    else:
        workings = (
            f"Observed = {breakage:,} / {resolved_points:,} = {observed}; z = min(1, "
            f"{resolved_points:,} / {full_credibility_points:,}) = {credibility}; default "
            f"{default_rate}; rate = {rate}."
        )
    return f"{method} {workings}"


@dataclass(frozen=True, slots=True)
class MonthMovement:
    """A calendar month of member points: opening + issued - redeemed - expired + other =
    closing."""

    month: date  # first day of the month
    opening: int
    issued: int  # net of refund clawbacks
    redeemed: int  # net of reversals
    expired: int
    other: int  # HQ adjustments, transfers, merges
    closing: int


@dataclass(frozen=True, slots=True)
class RollForwardLine:
    """One month, in points and in minor units: opening + issued - redeemed - expired +
    other (+ change in estimate, for money) = closing."""

    month: date
    opening_points: int
    issued_points: int
    redeemed_points: int
    expired_points: int
    other_points: int
    closing_points: int
    opening_rate: Decimal  # breakage rate estimated at the start of the month
    closing_rate: Decimal  # ... and at its end
    opening_minor: int
    issued_minor: int
    redeemed_minor: int
    expired_minor: int
    other_minor: int
    change_in_estimate_minor: int
    closing_minor: int


def _next_month(month: date) -> date:
    return date(month.year + month.month // 12, month.month % 12 + 1, 1)


def roll_forward(
    months: Sequence[MonthMovement],
    *,
    point_value_minor: Decimal,
    breakage_rates: Sequence[Decimal],
) -> list[RollForwardLine]:
    """The liability's roll-forward in minor units, one line per month.

    `breakage_rates[0]` is the estimate at the start of the first month and
    `breakage_rates[i + 1]` the one at the end of month i."""
    if len(breakage_rates) != len(months) + 1:
        raise ValueError("one breakage rate at the start, then one per month end")
    if point_value_minor <= 0:
        raise ValueError("the point value is positive")
    for rate in breakage_rates:
        if not Decimal(0) <= rate <= 1:
            raise ValueError(f"a breakage rate is between 0 and 1, not {rate}")
    for before, after in zip(months, months[1:], strict=False):
        if after.month != _next_month(before.month) or after.opening != before.closing:
            raise ValueError(f"{after.month} does not follow on from {before.month}")
    lines: list[RollForwardLine] = []
    with localcontext(_EXACT):
        for movement, opening_rate, closing_rate in zip(
            months, breakage_rates, breakage_rates[1:], strict=False
        ):
            moved = movement.issued - movement.redeemed - movement.expired + movement.other
            if movement.opening + moved != movement.closing:
                raise ValueError(f"the points of {movement.month} do not add up: {movement}")
            # Every movement of the month is carried at the estimate in force during it.
            carried = point_value_minor * (1 - opening_rate)
            opening_minor = (
                lines[-1].closing_minor if lines else round_minor(movement.opening * carried)
            )
            issued_minor = round_minor(movement.issued * carried)
            redeemed_minor = round_minor(movement.redeemed * carried)
            expired_minor = round_minor(movement.expired * carried)
            other_minor = round_minor(movement.other * carried)
            closing_minor = round_minor(movement.closing * point_value_minor * (1 - closing_rate))
            before_change = (
                opening_minor + issued_minor - redeemed_minor - expired_minor + other_minor
            )
            lines.append(
                RollForwardLine(
                    month=movement.month,
                    opening_points=movement.opening,
                    issued_points=movement.issued,
                    redeemed_points=movement.redeemed,
                    expired_points=movement.expired,
                    other_points=movement.other,
                    closing_points=movement.closing,
                    opening_rate=opening_rate,
                    closing_rate=closing_rate,
                    opening_minor=opening_minor,
                    issued_minor=issued_minor,
                    redeemed_minor=redeemed_minor,
                    expired_minor=expired_minor,
                    other_minor=other_minor,
                    change_in_estimate_minor=closing_minor - before_change,
                    closing_minor=closing_minor,
                )
            )
    return lines


# --- reading the ledger ----------------------------------------------------------------


def _utc_month(column):
    """The first day of the column's calendar month in UTC. 'month' and 'UTC' are literals,
    not bound parameters: PostgreSQL matches a GROUP BY expression to the select list
    textually, and two parameters ($1, $2) would not match.

    Without statistics on this expression the planner expects one group per row (it has
    the column's distinct count only) and may sort millions of rows where a small hash
    would do; `CREATE STATISTICS ... ON ((date_trunc('month', timezone('UTC', col)))::date)
    FROM table` gives it the real count (a few dozen months)."""
    return cast(
        func.date_trunc(literal_column("'month'"), func.timezone(literal_column("'UTC'"), column)),
        Date,
    )


def _month_start(moment: datetime) -> datetime:
    return datetime(moment.year, moment.month, 1, tzinfo=UTC)


def _instant(month: date) -> datetime:
    return datetime(month.year, month.month, 1, tzinfo=UTC)


def _require_aware(moment: datetime) -> None:
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError("a moment needs a time zone")


@dataclass(frozen=True, slots=True)
class _CohortLots:
    originals: int  # of lots that are not copies of moved points
    last_expiry: datetime


@dataclass(slots=True)
class _CohortFlows:
    """What left a cohort's lots (or its issuance) in one calendar month of posting."""

    redeemed: int = 0
    expired: int = 0
    taken_otherwise: int = 0  # clawbacks from lots, debt repayments, HQ debits
    refunded: int = 0  # clawed back by refunds, whether or not the lot still held it


@dataclass(frozen=True, slots=True)
class _CohortHistory:
    lots: dict[date, _CohortLots]
    flows: dict[tuple[date, date], _CohortFlows]  # (cohort, month of posting)


async def _cohort_history(connection: AsyncConnection, until: datetime) -> _CohortHistory:
    """Per cohort: its lots; per cohort and month of posting: its flows. Only what was
    earned and posted before `until`."""
    cohort = _utc_month(lots.c.earned_at)
    lot_rows = await connection.execute(
        select(
            cohort.label("cohort"),
            func.coalesce(
                func.sum(lots.c.original).filter(lots.c.origin_lot_id.is_(None)), 0
            ).label("originals"),
            func.max(lots.c.expires_at).label("last_expiry"),
        )
        .where(lots.c.earned_at < until)
        .group_by(cohort)
    )
    history = _CohortHistory(
        lots={row.cohort: _CohortLots(int(row.originals), row.last_expiry) for row in lot_rows},
        flows=defaultdict(_CohortFlows),
    )

    def allocated(kinds, *, excluded: bool = False):
        chosen = allocations.c.kind.not_in(kinds) if excluded else allocations.c.kind.in_(kinds)
        return func.coalesce(func.sum(allocations.c.points).filter(chosen), 0)

    posted = _utc_month(allocations.c.posted_at)
    allocation_rows = await connection.execute(
        select(
            cohort.label("cohort"),
            posted.label("month"),
            allocated(_REDEEMED_ALLOCATIONS).label("redeemed"),
            allocated(_EXPIRED_ALLOCATIONS).label("expired"),
            # Any other kind (clawback, debt_repayment, adjustment, ...) is a correction;
            # counting every one keeps the rebuilt outstanding points right.
            allocated(_REDEEMED_ALLOCATIONS + _EXPIRED_ALLOCATIONS, excluded=True).label(
                "taken_otherwise"
            ),
        )
        .select_from(
            allocations.join(
                lots,
                and_(
                    lots.c.member_id == allocations.c.member_id,
                    lots.c.lot_id == allocations.c.lot_id,
                ),
            )
        )
        .where(
            allocations.c.posted_at < until,
            lots.c.earned_at < until,
            allocations.c.kind.not_in(_MOVED_ALLOCATIONS),
        )
        .group_by(cohort, posted)
    )
    for row in allocation_rows:
        flows = history.flows[(row.cohort, row.month)]
        flows.redeemed = int(row.redeemed)
        flows.expired = int(row.expired)
        flows.taken_otherwise = int(row.taken_otherwise)

    # A refund's clawback (its negative member points) belongs to the cohort of the earn it
    # corrects: the earn's occurred_at is its lots' earned_at. The earn may be another
    # member's (a refund after a merge posts on the survivor), so it is found by its id.
    refund, earn = ledger_transactions.alias("refund"), ledger_transactions.alias("earn")
    earned_in, refunded_in = _utc_month(earn.c.occurred_at), _utc_month(refund.c.posted_at)
    refund_rows = await connection.execute(
        select(
            earned_in.label("cohort"),
            refunded_in.label("month"),
            func.sum(-refund.c.points).label("refunded"),
        )
        .select_from(
            refund.join(
                earn,
                earn.c.transaction_id == refund.c.original_transaction_id,
            )
        )
        .where(
            # Spelled out so the partial index on original_transaction_id serves the scan.
            refund.c.original_transaction_id.is_not(None),
            refund.c.kind == "refund",
            refund.c.points != 0,
            refund.c.posted_at < until,
            earn.c.occurred_at < until,
        )
        .group_by(earned_in, refunded_in)
    )
    for row in refund_rows:
        history.flows[(row.cohort, row.month)].refunded = int(row.refunded)
    return history


def _outcomes_at(history: _CohortHistory, moment: datetime) -> list[CohortOutcome]:
    """The cohorts as they stood at `moment`, a month end or the history's `until`."""
    totals: dict[date, _CohortFlows] = defaultdict(_CohortFlows)
    for (cohort, month), flows in history.flows.items():
        if _instant(month) < moment:
            total = totals[cohort]
            total.redeemed += flows.redeemed
            total.expired += flows.expired
            total.taken_otherwise += flows.taken_otherwise
            total.refunded += flows.refunded
    outcomes = []
    for cohort, cohort_lots in sorted(history.lots.items()):
        if _instant(cohort) >= moment:
            continue
        total = totals[cohort]
        outcomes.append(
            CohortOutcome(
                month=cohort,
                issued=cohort_lots.originals - total.refunded,
                redeemed=total.redeemed,
                expired=total.expired,
                outstanding=cohort_lots.originals
                - total.redeemed
                - total.expired
                - total.taken_otherwise,
                resolved=cohort_lots.last_expiry <= moment,
            )
        )
    return outcomes


async def cohort_outcomes(connection: AsyncConnection, as_of: datetime) -> list[CohortOutcome]:
    """Every issuance cohort as it stood at `as_of` (lots earned and allocations posted
    before it), oldest first."""
    _require_aware(as_of)
    return _outcomes_at(await _cohort_history(connection, as_of), as_of)


_LINE_OF_KIND = {
    **dict.fromkeys(ISSUED_KINDS, "issued"),
    **dict.fromkeys(REDEEMED_KINDS, "redeemed"),
    **dict.fromkeys(EXPIRED_KINDS, "expired"),
    **dict.fromkeys(OTHER_KINDS, "other"),
}


async def monthly_movements(
    connection: AsyncConnection,
    first_month: date,
    last_month: date,
    *,
    until: datetime | None = None,
) -> list[MonthMovement]:
    """Member points month by month, first_month to last_month (any day of them) included;
    `until` cuts the last month short (month to date)."""
    first, last = first_month.replace(day=1), last_month.replace(day=1)
    if last < first:
        raise ValueError("the last month comes before the first")
    end = _instant(_next_month(last))
    if until is not None:
        _require_aware(until)
        if not _instant(last) < until <= end:
            raise ValueError("`until` falls within the last month")
        end = until
    month = _utc_month(ledger_transactions.c.posted_at)
    rows = await connection.execute(
        select(
            month.label("month"),
            ledger_transactions.c.kind,
            func.sum(ledger_transactions.c.points).label("points"),
        )
        .where(ledger_transactions.c.posted_at < end)
        .group_by(month, ledger_transactions.c.kind)
    )
    opening = 0
    lines: dict[date, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    for row in rows:
        if row.kind not in _LINE_OF_KIND:
            # Fail loudly rather than file new issuance (or anything else) under a guess.
            raise ValueError(f"transaction kind {row.kind!r} has no roll-forward line")
        if row.month < first:
            opening += int(row.points)
        else:
            lines[row.month][_LINE_OF_KIND[row.kind]] += int(row.points)
    movements = []
    current = first
    while current <= last:
        points = lines[current]
        movement = MonthMovement(
            month=current,
            opening=opening,
            issued=points["issued"],
            # Redemptions and expiries take points from members: their postings are
            # negative, and a line shows them as positive points.
            redeemed=-points["redeemed"],
            expired=-points["expired"],
            other=points["other"],
            closing=opening + sum(points.values()),
        )
        movements.append(movement)
        opening, current = movement.closing, _next_month(current)
    return movements


@dataclass(frozen=True, slots=True)
class LiabilityReport:
    as_of: datetime
    currency: str
    point_value_minor: Decimal
    outstanding_points: int  # sum of member postings before as_of = sum of member balances
    gross_value_minor: int  # outstanding points x point value
    breakage_rate: Decimal
    liability_minor: int  # outstanding points x point value x (1 - rate)
    expected_breakage_points: Decimal  # the book's, cohort by cohort
    expected_breakage_minor: int
    method: str
    breakage: BreakageEstimate
    cohorts: list[CohortOutcome]
    roll_forward: list[RollForwardLine]  # the last line closes at as_of (month to date)


async def liability_report(
    connection: AsyncConnection,
    rules: ProgramRules,
    as_of: datetime | None = None,
    *,
    default_breakage_rate: Decimal | None = None,
    full_credibility_points: int | None = None,
    months: int = ROLL_FORWARD_MONTHS,
) -> LiabilityReport:
    """The liability at `as_of` (default: the database's now), its cohorts and its
    roll-forward for the `months` calendar months up to `as_of` (the last one month to
    date). The breakage assumptions default to the programme's."""
    if as_of is None:
        as_of = await connection.scalar(select(func.now()))
    if default_breakage_rate is None:
        default_breakage_rate = rules.default_breakage_rate
    if full_credibility_points is None:
        full_credibility_points = rules.breakage_full_credibility_points
    _require_aware(as_of)
    if months < 1:
        raise ValueError("a roll-forward has at least one month")
    # The month holding the last instant before as_of: as_of at midnight on the 1st closes
    # the previous month rather than opening an empty one.
    last = _month_start(as_of.astimezone(UTC) - timedelta(microseconds=1)).date()
    first = last
    for _ in range(months - 1):
        first = (first - timedelta(days=1)).replace(day=1)
    history = await _cohort_history(connection, as_of)
    movements = await monthly_movements(connection, first, last, until=as_of)
    month_ends = [_instant(movement.month) for movement in movements[1:]]
    moments = [_instant(first), *month_ends, as_of]

    def estimate(cohorts: Sequence[CohortOutcome]) -> BreakageEstimate:
        return estimate_breakage(
            cohorts,
            default_rate=default_breakage_rate,
            full_credibility_points=full_credibility_points,
        )

    cohorts = _outcomes_at(history, as_of)
    estimates = [estimate(_outcomes_at(history, moment)) for moment in moments[:-1]]
    estimates.append(estimate(cohorts))
    lines = roll_forward(
        movements,
        point_value_minor=rules.point_value_minor,
        breakage_rates=[estimated.rate for estimated in estimates],
    )
    now = estimates[-1]
    outstanding = movements[-1].closing
    with localcontext(_EXACT):
        gross_value = round_minor(outstanding * rules.point_value_minor)
        expected_breakage_minor = round_minor(
            now.expected_breakage_points * rules.point_value_minor
        )
    return LiabilityReport(
        as_of=as_of,
        currency=rules.currency,
        point_value_minor=rules.point_value_minor,
        outstanding_points=outstanding,
        gross_value_minor=gross_value,
        breakage_rate=now.rate,
        liability_minor=lines[-1].closing_minor,
        expected_breakage_points=now.expected_breakage_points,
        expected_breakage_minor=expected_breakage_minor,
        method=now.method,
        breakage=now,
        cohorts=cohorts,
        roll_forward=lines,
    )


# --- The stored current report (shared/snapshots.py) --------------------------------------
# On a large network the report takes seconds (9.6 s on 1M members); `coalition jobs
# settle` stores the current one at most hourly and the dashboard shows that copy.

SNAPSHOT = ("liability", "now")
SNAPSHOT_MAX_AGE = timedelta(hours=1)


async def store_current(
    engine: AsyncEngine, rules: ProgramRules, max_age: timedelta = SNAPSHOT_MAX_AGE
) -> LiabilityReport | None:
    """Compute and store the report as of now, unless the stored one is younger than
    `max_age` (None then)."""
    async with engine.begin() as connection:
        fresh = await connection.scalar(
            select(func.count()).where(
                report_snapshots.c.report == SNAPSHOT[0],
                report_snapshots.c.subject == SNAPSHOT[1],
                report_snapshots.c.computed_at > func.now() - max_age,
            )
        )
        if fresh:
            return None
        started = time.perf_counter()
        report = await liability_report(connection, rules)
        await snapshots.store(
            connection,
            *SNAPSHOT,
            report,
            covers_until=report.as_of,
            seconds=time.perf_counter() - started,
        )
    return report


def stored_current(connection: Connection) -> LiabilityReport | None:
    stored = snapshots.latest(connection, *SNAPSHOT, LiabilityReport)
    return None if stored is None else stored[0]
