"""`coalition jobs settle`: close every settlement period that has ended, oldest first.

Closing a period, in one database transaction:
1. record which transactions it settles: every transaction posted before the period's end
   that no earlier period settled (so a late one lands in the first period still open);
2. sum their postings per merchant and write one statement per merchant, with its lines
   (shared/settlement/rules.py) at the merchant's terms in force at the close;
3. write the clearing matrix: points earned at A and redeemed at B, from the allocations.

Idempotent: a period is closed once (its start is unique, the job holds an advisory lock),
and a closed period's rows are never updated. A period is closed only `CLOSE_DELAY` after
its end, so that no transaction dated before the end is still in flight.
"""

from __future__ import annotations

import json
import uuid
from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from shared.merchants import NETWORK
from shared.program import CURRENCY_EXPONENTS, ProgramRules
from shared.settlement import periods
from shared.settlement.rules import (
    CORRECTIONS,
    POINTS_ISSUED,
    POINTS_REDEEMED,
    REDEMPTION_REVERSALS,
    REFUND_CLAWBACKS,
    MerchantActivity,
    money_minor,
    net_minor,
    posting_line,
    statement_lines,
)

CLOSE_DELAY = timedelta(minutes=10)
_LOCK_ID = 0x5E771E


@dataclass(frozen=True, slots=True)
class ClosedPeriod:
    period_id: uuid.UUID
    label: str
    starts_at: datetime
    ends_at: datetime
    transactions: int
    statements: int


_SETTLE_SQL = """
INSERT INTO settled_transactions (member_id, transaction_id, period_id)
SELECT t.member_id, t.transaction_id, :period_id
FROM ledger_transactions t
WHERE t.posted_at < :ends_at AND t.posted_at >= :scan_from
  AND NOT EXISTS (
    SELECT 1 FROM settled_transactions s
    WHERE s.member_id = t.member_id AND s.transaction_id = t.transaction_id)
ORDER BY t.member_id, t.transaction_id  -- key order: each index page is written once
"""
# A merchant's issued and redeemed postings summed by sign: the sign says which statement
# line they are (rules.posting_line), without reading the transactions. Settled transactions (and their
# postings and allocations) were posted in [scan_from, ends_at), which lets the planner
# range-scan instead of looking up a million transactions one by one.
_POSTINGS_SQL = """
SELECT p.merchant_id, p.account, p.amount > 0 AS positive, sum(p.amount) AS points
FROM postings p
JOIN settled_transactions s USING (member_id, transaction_id)
WHERE s.period_id = :period_id AND p.merchant_id IS NOT NULL
  AND p.account IN ('issued', 'redeemed')
  AND p.posted_at >= :scan_from AND p.posted_at < :ends_at
GROUP BY 1, 2, 3
"""
# Per funder (NULL: HQ), the period's campaign bonus points and expired points: statements
# take the merchants' rows, HQ's figures the rest.
_CAMPAIGN_BY_FUNDER_SQL = """
SELECT l.funder_merchant_id, sum(l.original) AS points
FROM lots l
JOIN settled_transactions s ON s.member_id = l.member_id AND s.transaction_id = l.transaction_id
WHERE s.period_id = :period_id AND l.campaign_id IS NOT NULL
GROUP BY 1
"""
# Corrections, per period of the transaction they correct (this one when not yet settled).
_CORRECTED_PERIODS_SQL = """
SELECT p.merchant_id, p.account, coalesce(sp.starts_at, :starts_at) AS corrected_start,
       sum(p.amount) AS points
FROM ledger_transactions t
JOIN settled_transactions s USING (member_id, transaction_id)
JOIN postings p USING (member_id, transaction_id)
-- The corrected transaction may be another member's: a refund after a merge posts on the
-- survivor.
LEFT JOIN ledger_transactions o ON o.transaction_id = t.original_transaction_id
LEFT JOIN settled_transactions so
  ON so.member_id = o.member_id AND so.transaction_id = o.transaction_id
LEFT JOIN settlement_periods sp ON sp.period_id = so.period_id
WHERE s.period_id = :period_id AND t.kind IN ('refund', 'reversal')
  AND t.posted_at >= :scan_from AND t.posted_at < :ends_at
  AND p.merchant_id IS NOT NULL AND p.account IN ('issued', 'redeemed')
GROUP BY 1, 2, 3
"""
_CLEARING_SQL = """
SELECT coalesce(a.issuing_merchant_id, :network) AS issuing, a.redeeming_merchant_id AS redeeming,
       sum(a.points) AS points
FROM allocations a
JOIN settled_transactions s USING (member_id, transaction_id)
WHERE s.period_id = :period_id AND a.kind IN ('redemption', 'reversal')
  AND a.posted_at >= :scan_from AND a.posted_at < :ends_at
GROUP BY 1, 2
HAVING sum(a.points) <> 0
"""


# HQ-funded points issued in the period, by kind (HQ campaign bonuses are split off the
# earn total below), and expired points by funder with the funder's price.
_NETWORK_FUNDED_SQL = """
SELECT CASE WHEN t.kind = 'behaviour' THEN 'behaviour_' || t.reason ELSE t.kind END AS kind,
       -sum(p.amount) AS points
FROM ledger_transactions t
JOIN settled_transactions s USING (member_id, transaction_id)
JOIN postings p USING (member_id, transaction_id)
WHERE s.period_id = :period_id AND t.posted_at >= :scan_from AND t.posted_at < :ends_at
  AND p.merchant_id IS NULL
  AND ((p.account = 'issued' AND t.kind IN ('earn', 'behaviour'))
       OR (p.account = 'adjustment' AND t.kind = 'adjustment'))
GROUP BY 1
"""
_EXPIRED_BY_FUNDER_SQL = """
SELECT l.funder_merchant_id, sum(a.points) AS points
FROM allocations a
JOIN settled_transactions s USING (member_id, transaction_id)
JOIN lots l ON l.member_id = a.member_id AND l.lot_id = a.lot_id
WHERE s.period_id = :period_id AND a.kind = 'expiry'
  AND a.posted_at >= :scan_from AND a.posted_at < :ends_at
GROUP BY 1
"""
_FUNDED_KINDS = {"earn": "tier_bonuses", "adjustment": "adjustments"}
_ACTIVITY_FIELDS = {
    POINTS_ISSUED: "issued",
    REFUND_CLAWBACKS: "clawed_back",
    POINTS_REDEEMED: "redeemed",
    REDEMPTION_REVERSALS: "reversed",
}


async def _by_funder(connection: AsyncConnection, sql: str, window: dict) -> dict:
    return {
        row.funder_merchant_id: int(row.points)
        for row in await connection.execute(text(sql), window)
    }


async def _network_figures(
    connection: AsyncConnection, window: dict, campaign: dict, expired_by_funder: dict
) -> dict:
    funded: dict[str, int] = {}
    for row in await connection.execute(text(_NETWORK_FUNDED_SQL), window):
        funded[_FUNDED_KINDS.get(row.kind, row.kind)] = int(row.points)
    hq_campaigns = campaign.get(None, 0)
    if hq_campaigns:
        funded["tier_bonuses"] = funded.get("tier_bonuses", 0) - hq_campaigns
        funded["hq_campaigns"] = hq_campaigns
    expired = {
        "network": expired_by_funder.get(None, 0),
        "merchants": {
            str(funder): points for funder, points in expired_by_funder.items() if funder
        },
    }
    return {
        "fundedPoints": {kind: points for kind, points in funded.items() if points},
        "expiredPoints": expired,
    }


async def close_due_periods(
    engine: AsyncEngine, rules: ProgramRules, close_delay: timedelta = CLOSE_DELAY
) -> list[ClosedPeriod]:
    closed = []
    while True:
        async with engine.begin() as connection:
            period = await _close_next(connection, rules, close_delay)
        if period is None:
            return closed
        closed.append(period)


async def _close_next(
    connection: AsyncConnection, rules: ProgramRules, close_delay: timedelta
) -> ClosedPeriod | None:
    await connection.execute(text("SELECT pg_advisory_xact_lock(:id)"), {"id": _LOCK_ID})
    now = await connection.scalar(text("SELECT now()"))
    last = (
        await connection.execute(
            text(
                "SELECT starts_at, ends_at FROM settlement_periods ORDER BY starts_at DESC LIMIT 1"
            )
        )
    ).one_or_none()
    if last is None:
        first_posted = await connection.scalar(
            text("SELECT min(posted_at) FROM ledger_transactions")
        )
        if first_posted is None:
            return None
        starts_at = periods.period_start(first_posted, rules.settlement_period, rules.time_zone)
        scan_from = datetime.min.replace(tzinfo=starts_at.tzinfo)
    else:
        starts_at, scan_from = last.ends_at, last.starts_at
    ends_at = periods.next_period_start(starts_at, rules.settlement_period, rules.time_zone)
    if ends_at + close_delay > now:
        return None
    period_id = uuid.uuid4()
    await connection.execute(
        text(
            "INSERT INTO settlement_periods (period_id, starts_at, ends_at, length, time_zone,"
            " closed_at, transactions) VALUES (:period_id, :starts_at, :ends_at, :length,"
            " :time_zone, :now, 0)"
        ),
        {
            "period_id": period_id, "starts_at": starts_at, "ends_at": ends_at,
            "length": rules.settlement_period, "time_zone": rules.time_zone, "now": now,
        },
    )  # fmt: skip
    settled = (
        await connection.execute(
            text(_SETTLE_SQL),
            {"period_id": period_id, "ends_at": ends_at, "scan_from": scan_from},
        )
    ).rowcount
    await connection.execute(
        text("UPDATE settlement_periods SET transactions = :n WHERE period_id = :period_id"),
        {"n": settled, "period_id": period_id},
    )
    # The period's rows were just written: fresh statistics let the planner hash-join them.
    await connection.execute(text("ANALYZE settled_transactions"))
    window = {"period_id": period_id, "scan_from": scan_from, "ends_at": ends_at}
    campaign = await _by_funder(connection, _CAMPAIGN_BY_FUNDER_SQL, window)
    expired = await _by_funder(connection, _EXPIRED_BY_FUNDER_SQL, window)
    statements = await _write_statements(connection, rules, window, starts_at, campaign, expired)
    await _write_clearing(connection, window)
    figures = await _network_figures(connection, window, campaign, expired)
    await connection.execute(
        text(
            "UPDATE settlement_periods SET network = CAST(:network AS jsonb) WHERE period_id = :id"
        ),
        {"network": json.dumps(figures), "id": period_id},
    )
    return ClosedPeriod(
        period_id,
        periods.label(starts_at, rules.settlement_period, rules.time_zone),
        starts_at,
        ends_at,
        settled,
        statements,
    )


async def _activity(
    connection: AsyncConnection, window: dict, campaign: dict, expired_by_funder: dict
) -> dict:
    fields: dict[uuid.UUID, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    for row in await connection.execute(text(_POSTINGS_SQL), window):
        line, points = posting_line(row.account, int(row.points))
        fields[row.merchant_id][_ACTIVITY_FIELDS[line]] += abs(points)  # the fields count up
    for funder, points in campaign.items():
        if funder is not None:
            fields[funder]["campaign"] += points
    for funder, points in expired_by_funder.items():
        if funder is not None:
            fields[funder]["expired_funded"] += points
    return {merchant: MerchantActivity(**values) for merchant, values in fields.items()}


async def _corrected_periods(
    connection: AsyncConnection, window: dict, starts_at: datetime, rules: ProgramRules
) -> dict[tuple[uuid.UUID, str], dict[str, int]]:
    corrected: dict[tuple[uuid.UUID, str], dict[str, int]] = defaultdict(dict)
    rows = await connection.execute(
        text(_CORRECTED_PERIODS_SQL), {**window, "starts_at": starts_at}
    )
    for row in rows:
        # Statement sign: a clawback lowers issued points, a reversal lowers redeemed ones.
        line, points = posting_line(row.account, int(row.points))
        label = periods.label(row.corrected_start, rules.settlement_period, rules.time_zone)
        corrected[(row.merchant_id, line)][label] = points
    return corrected


async def _write_statements(
    connection: AsyncConnection,
    rules: ProgramRules,
    window: dict,
    starts_at: datetime,
    campaign: dict,
    expired_by_funder: dict,
) -> int:
    period_id = window["period_id"]
    activity = await _activity(connection, window, campaign, expired_by_funder)
    corrected = await _corrected_periods(connection, window, starts_at, rules)
    # Every partner that existed during the period gets a statement, a zero one included
    # (finance reconciles one per partner per period); a partner that joined later gets
    # none, unless the period settled some of its transactions.
    merchants = (
        await connection.execute(
            text(
                "SELECT merchant_id, currency, issuance_price, redemption_rate FROM merchants"
                " WHERE created_at < :ends_at OR merchant_id = ANY(:active)"
            ),
            {"ends_at": window["ends_at"], "active": list(activity)},
        )
    ).all()
    for merchant in merchants:
        lines = statement_lines(
            activity.get(merchant.merchant_id, MerchantActivity()),
            issuance_price=Decimal(merchant.issuance_price),
            redemption_rate=Decimal(merchant.redemption_rate),
            breakage_share_percent=rules.breakage_share_percent,
            exponent=CURRENCY_EXPONENTS.get(merchant.currency, 2),
        )
        statement_id = uuid.uuid4()
        await connection.execute(
            text(
                "INSERT INTO statements (statement_id, period_id, merchant_id, currency,"
                " net_minor, issuance_price, redemption_rate) VALUES (:statement_id, :period_id,"
                " :merchant_id, :currency, :net, :issuance_price, :redemption_rate)"
            ),
            {
                "statement_id": statement_id, "period_id": period_id,
                "merchant_id": merchant.merchant_id, "currency": merchant.currency,
                "net": net_minor(lines), "issuance_price": merchant.issuance_price,
                "redemption_rate": merchant.redemption_rate,
            },
        )  # fmt: skip
        if lines:
            await connection.execute(
                text(
                    "INSERT INTO statement_lines (statement_id, line, points, rate, amount_minor,"
                    " corrects) VALUES (:statement_id, :line, :points, :rate, :amount,"
                    " CAST(:corrects AS jsonb))"
                ),
                [
                    {
                        "statement_id": statement_id, "line": line.line, "points": line.points,
                        "rate": line.rate, "amount": line.amount_minor,
                        "corrects": json.dumps(
                            corrected.get((merchant.merchant_id, line.line), {})
                            if line.line in CORRECTIONS else {}
                        ),
                    }
                    for line in lines
                ],
            )  # fmt: skip
    return len(merchants)


async def _write_clearing(connection: AsyncConnection, window: dict) -> None:
    period_id = window["period_id"]
    rates = {
        row.merchant_id: (Decimal(row.redemption_rate), row.currency)
        for row in await connection.execute(
            text("SELECT merchant_id, redemption_rate, currency FROM merchants")
        )
    }
    rows = (await connection.execute(text(_CLEARING_SQL), {**window, "network": NETWORK})).all()
    if not rows:
        return
    await connection.execute(
        text(
            "INSERT INTO clearing_lines (period_id, issuing_merchant_id, redeeming_merchant_id,"
            " points, amount_minor) VALUES (:period_id, :issuing, :redeeming, :points, :amount)"
        ),
        [
            {
                "period_id": period_id, "issuing": row.issuing, "redeeming": row.redeeming,
                "points": int(row.points),
                "amount": money_minor(
                    int(row.points), rates[row.redeeming][0],
                    CURRENCY_EXPONENTS.get(rates[row.redeeming][1], 2),
                ),
            }
            for row in rows
        ],
    )  # fmt: skip
