"""Reading closed periods: statements (merchants see their own only), their transactions
as CSV lines, the clearing matrix, and HQ's view of the network's money per period."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

from shared.errors import NotFound
from shared.program import CURRENCY_EXPONENTS, ProgramRules
from shared.settlement import periods
from shared.settlement.rules import (
    CAMPAIGN_POINTS,
    LINE_ORDER,
    POINTS_ISSUED,
    money_minor,
    posting_line,
)


@dataclass(frozen=True, slots=True)
class PeriodView:
    period_id: uuid.UUID
    label: str
    starts_at: datetime
    ends_at: datetime
    closed_at: datetime
    transactions: int


@dataclass(frozen=True, slots=True)
class LineView:
    line: str
    points: int
    rate: Decimal
    amount_minor: int
    corrects: dict[str, int]


@dataclass(frozen=True, slots=True)
class StatementView:
    statement_id: uuid.UUID
    period: PeriodView
    merchant_id: uuid.UUID
    merchant_name: str
    currency: str
    net_minor: int
    direction: str  # merchant_pays | hq_pays | nothing_due
    issuance_price: Decimal
    redemption_rate: Decimal
    lines: list[LineView]


def _period(row) -> PeriodView:
    return PeriodView(
        row.period_id,
        periods.label(row.starts_at, row.length, row.time_zone),
        row.starts_at,
        row.ends_at,
        row.closed_at,
        row.transactions,
    )


_PERIOD_COLUMNS = (
    "p.period_id, p.starts_at, p.ends_at, p.closed_at, p.transactions, p.length, p.time_zone"
)


async def list_periods(connection: AsyncConnection) -> list[PeriodView]:
    rows = await connection.execute(
        text(f"SELECT {_PERIOD_COLUMNS} FROM settlement_periods p ORDER BY p.starts_at DESC")
    )
    return [_period(row) for row in rows]


async def get_period(connection: AsyncConnection, period_id: uuid.UUID) -> PeriodView:
    row = (
        await connection.execute(
            text(f"SELECT {_PERIOD_COLUMNS} FROM settlement_periods p WHERE p.period_id = :id"),
            {"id": period_id},
        )
    ).one_or_none()
    if row is None:
        raise NotFound(f"Settlement period {period_id} does not exist.")
    return _period(row)


def _direction(net: int) -> str:
    return "merchant_pays" if net > 0 else "hq_pays" if net < 0 else "nothing_due"


async def list_statements(
    connection: AsyncConnection,
    *,
    merchant_id: uuid.UUID | None,
    period_id: uuid.UUID | None = None,
) -> list[StatementView]:
    """Statements, newest period first (a merchant's own only when `merchant_id` is given)."""
    clauses, parameters = [], {}
    if merchant_id is not None:
        clauses.append("s.merchant_id = :merchant_id")
        parameters["merchant_id"] = merchant_id
    if period_id is not None:
        clauses.append("s.period_id = :period_id")
        parameters["period_id"] = period_id
    where = f"WHERE {' AND '.join(clauses)}" if clauses else ""
    rows = (
        await connection.execute(
            text(
                f"SELECT s.*, m.name AS merchant_name, {_PERIOD_COLUMNS}"
                " FROM statements s JOIN settlement_periods p USING (period_id)"
                f" JOIN merchants m USING (merchant_id) {where}"
                " ORDER BY p.starts_at DESC, m.name"
            ),
            parameters,
        )
    ).all()
    lines = await _lines(connection, [row.statement_id for row in rows])
    return [_statement(row, lines.get(row.statement_id, [])) for row in rows]


async def get_statement(
    connection: AsyncConnection, statement_id: uuid.UUID, merchant_id: uuid.UUID | None
) -> StatementView:
    """One statement; another merchant's statement does not exist for the caller (404)."""
    row = (
        await connection.execute(
            text(
                f"SELECT s.*, m.name AS merchant_name, {_PERIOD_COLUMNS}"
                " FROM statements s JOIN settlement_periods p USING (period_id)"
                " JOIN merchants m USING (merchant_id) WHERE s.statement_id = :id"
            ),
            {"id": statement_id},
        )
    ).one_or_none()
    if row is None or (merchant_id is not None and row.merchant_id != merchant_id):
        raise NotFound(f"Statement {statement_id} does not exist.")
    lines = await _lines(connection, [statement_id])
    return _statement(row, lines.get(statement_id, []))


async def _lines(connection, statement_ids) -> dict[uuid.UUID, list[LineView]]:
    if not statement_ids:
        return {}
    rows = await connection.execute(
        text("SELECT * FROM statement_lines WHERE statement_id = ANY(:ids)"),
        {"ids": statement_ids},
    )
    by_statement: dict[uuid.UUID, list[LineView]] = {}
    for row in rows:
        by_statement.setdefault(row.statement_id, []).append(
            LineView(row.line, row.points, Decimal(row.rate), row.amount_minor, row.corrects)
        )
    for lines in by_statement.values():
        lines.sort(key=lambda line: LINE_ORDER.index(line.line))
    return by_statement


def _statement(row, lines: list[LineView]) -> StatementView:
    return StatementView(
        statement_id=row.statement_id,
        period=_period(row),
        merchant_id=row.merchant_id,
        merchant_name=row.merchant_name,
        currency=row.currency,
        net_minor=row.net_minor,
        direction=_direction(row.net_minor),
        issuance_price=Decimal(row.issuance_price),
        redemption_rate=Decimal(row.redemption_rate),
        lines=lines,
    )


CSV_COLUMNS = (
    "transaction_id", "kind", "posted_at", "occurred_at", "member_id", "store_id",
    "original_transaction_id", *LINE_ORDER, "amount",
)  # fmt: skip

# One row per (transaction, statement line) that moved the merchant's accounts.
_TRANSACTION_LINES_SQL = """
SELECT t.transaction_id, t.kind, t.posted_at, t.occurred_at, t.member_id, t.store_id,
       t.original_transaction_id, p.account, sum(p.amount) AS points,
       coalesce((SELECT sum(l.original) FROM lots l
                 WHERE l.member_id = t.member_id AND l.transaction_id = t.transaction_id
                   AND l.campaign_id IS NOT NULL AND l.funder_merchant_id = :merchant_id), 0)
         AS campaign_points
FROM settled_transactions s
JOIN ledger_transactions t USING (member_id, transaction_id)
JOIN postings p USING (member_id, transaction_id)
WHERE s.period_id = :period_id AND p.merchant_id = :merchant_id
  AND p.account IN ('issued', 'redeemed')
GROUP BY t.transaction_id, t.kind, t.posted_at, t.occurred_at, t.member_id, t.store_id,
         t.original_transaction_id, p.account
ORDER BY t.posted_at, t.transaction_id
"""


# Expiry transactions that took points the merchant had funded (its breakage share).
_EXPIRED_FUNDED_LINES_SQL = """
SELECT t.transaction_id, t.kind, t.posted_at, t.occurred_at, t.member_id, t.store_id,
       t.original_transaction_id, sum(a.points) AS points
FROM settled_transactions s
JOIN ledger_transactions t USING (member_id, transaction_id)
JOIN allocations a USING (member_id, transaction_id)
JOIN lots l ON l.member_id = a.member_id AND l.lot_id = a.lot_id
WHERE s.period_id = :period_id AND t.kind = 'expiry' AND a.kind = 'expiry'
  AND l.funder_merchant_id = :merchant_id
GROUP BY 1, 2, 3, 4, 5, 6, 7
"""


async def statement_transactions(
    connection: AsyncConnection, statement: StatementView
) -> list[tuple]:
    """The statement's transactions, one CSV row per ledger transaction: its points on each
    statement line and its exact decimal amount (each statement line rounds its column's
    exact sum once)."""
    rates = {line.line: line.rate for line in statement.lines}
    parameters = {"period_id": statement.period.period_id, "merchant_id": statement.merchant_id}
    by_transaction: dict[uuid.UUID, tuple[object, dict[str, int]]] = {}
    for row in await connection.execute(text(_TRANSACTION_LINES_SQL), parameters):
        _, points = by_transaction.setdefault(row.transaction_id, (row, {}))
        for line, value in _transaction_lines(row):
            points[line] = points.get(line, 0) + value
    if "breakage_share" in rates:
        for row in await connection.execute(text(_EXPIRED_FUNDED_LINES_SQL), parameters):
            by_transaction[row.transaction_id] = (row, {"breakage_share": int(row.points)})
    result = []
    for row, points in sorted(
        by_transaction.values(), key=lambda item: (item[0].posted_at, str(item[0].transaction_id))
    ):
        amount = sum(
            (Decimal(value) * rates.get(line, Decimal(0)) for line, value in points.items()),
            Decimal(0),
        )
        result.append(
            (
                row.transaction_id, row.kind, row.posted_at.isoformat(),
                row.occurred_at.isoformat(), row.member_id, row.store_id or "",
                row.original_transaction_id or "", *(points.get(line, "") for line in LINE_ORDER),
                amount,
            )
        )  # fmt: skip
    return result


def _transaction_lines(row) -> list[tuple[str, int]]:
    line, points = posting_line(row.account, int(row.points))
    if line != POINTS_ISSUED:
        return [(line, points)]
    campaign = int(row.campaign_points)
    lines = [(POINTS_ISSUED, points - campaign), (CAMPAIGN_POINTS, campaign)]
    return [(line, value) for line, value in lines if value]


@dataclass(frozen=True, slots=True)
class ClearingCell:
    issuing_merchant_id: uuid.UUID | None  # None: points HQ issued itself
    redeeming_merchant_id: uuid.UUID
    points: int
    amount_minor: int


async def clearing(connection: AsyncConnection, period_id: uuid.UUID) -> list[ClearingCell]:
    await get_period(connection, period_id)
    rows = await connection.execute(
        text(
            "SELECT * FROM clearing_lines WHERE period_id = :id"
            " ORDER BY issuing_merchant_id, redeeming_merchant_id"
        ),
        {"id": period_id},
    )
    return [
        ClearingCell(
            None if row.issuing_merchant_id.int == 0 else row.issuing_merchant_id,
            row.redeeming_merchant_id,
            row.points,
            row.amount_minor,
        )
        for row in rows
    ]


@dataclass(frozen=True, slots=True)
class NetworkView:
    """HQ's money and points for one closed period."""

    period: PeriodView
    currency: str
    issuance_fees_minor: int  # merchants' issuance charges, net of refund credits
    redemption_payments_minor: int  # HQ's reimbursements for redemptions, net of reversals
    breakage_shared_minor: int  # paid back to funders under the breakage policy
    issuance_spread_minor: int  # issuance fees less redemption payments
    net_cash_minor: int  # what HQ received from the statements, net
    breakage_revenue_minor: int  # merchant-funded points that expired, at their price, less shares
    network_funded_points: dict[str, int]  # points HQ paid for, by kind
    network_funded_cost_minor: int  # those points at the programme's point value
    expired_points: dict[str, int]  # by funder: merchants | network


async def network_view(
    connection: AsyncConnection, period_id: uuid.UUID, rules: ProgramRules
) -> NetworkView:
    period = await get_period(connection, period_id)
    totals = {
        row.line: int(row.amount)
        for row in await connection.execute(
            text(
                "SELECT l.line, sum(l.amount_minor) AS amount FROM statement_lines l"
                " JOIN statements s USING (statement_id) WHERE s.period_id = :id GROUP BY 1"
            ),
            {"id": period_id},
        )
    }
    fees = sum(
        totals.get(line, 0) for line in ("points_issued", "campaign_points", "refund_clawbacks")
    )
    payments = -sum(totals.get(line, 0) for line in ("points_redeemed", "redemption_reversals"))
    shared = -totals.get("breakage_share", 0)
    figures = (
        await connection.execute(
            text("SELECT network FROM settlement_periods WHERE period_id = :id"), {"id": period_id}
        )
    ).scalar_one()
    funded = figures.get("fundedPoints", {})
    expired_by_merchant = figures.get("expiredPoints", {}).get("merchants", {})
    exponent = CURRENCY_EXPONENTS.get(rules.currency, 2)
    point_value = rules.point_value_minor / (Decimal(10) ** exponent)
    prices = {
        str(row.merchant_id): Decimal(row.issuance_price)
        for row in await connection.execute(
            text("SELECT merchant_id, issuance_price FROM statements WHERE period_id = :id"),
            {"id": period_id},
        )
    }
    breakage_revenue = sum(
        money_minor(points, prices[merchant], exponent)
        for merchant, points in expired_by_merchant.items()
    )
    expired = {
        "merchants": sum(expired_by_merchant.values()),
        "network": figures.get("expiredPoints", {}).get("network", 0),
    }
    return NetworkView(
        period=period,
        currency=rules.currency,
        issuance_fees_minor=fees,
        redemption_payments_minor=payments,
        breakage_shared_minor=shared,
        issuance_spread_minor=fees - payments,
        net_cash_minor=fees - payments - shared,
        breakage_revenue_minor=breakage_revenue - shared,
        network_funded_points=funded,
        network_funded_cost_minor=money_minor(sum(funded.values()), point_value, exponent),
        expired_points=expired,
    )
