"""The ledger's invariants, checked on a live database by `coalition audit`.

Each check is one query returning the rows that violate it (none when healthy), so a
failure report shows examples, not just a count.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import Connection, text


@dataclass(frozen=True, slots=True)
class Check:
    name: str
    rule: str
    violations_sql: str


CHECKS = (
    Check(
        "balanced transactions",
        "every transaction's postings sum to zero",
        "SELECT member_id, transaction_id, sum(amount) AS total FROM postings "
        "GROUP BY member_id, transaction_id HAVING sum(amount) <> 0",
    ),
    Check(
        "zero-sum ledger",
        "the sum of all postings is zero",
        "SELECT sum(amount) AS total FROM postings HAVING coalesce(sum(amount), 0) <> 0",
    ),
    Check(
        "transaction points",
        "a transaction's points equal its member postings",
        "SELECT t.member_id, t.transaction_id, t.points, coalesce(p.total, 0) AS postings "
        "FROM ledger_transactions t LEFT JOIN (SELECT member_id, transaction_id, sum(amount) AS total "
        "FROM postings WHERE account = 'member' GROUP BY 1, 2) p USING (member_id, transaction_id) "
        "WHERE t.points <> coalesce(p.total, 0)",
    ),
    Check(
        "balance = postings",
        "each stored balance equals the sum of the member's postings",
        "SELECT b.member_id, b.balance, coalesce(p.total, 0) AS postings FROM member_balances b "
        "LEFT JOIN (SELECT member_id, sum(amount) AS total FROM postings WHERE account = 'member' "
        "GROUP BY member_id) p USING (member_id) WHERE b.balance <> coalesce(p.total, 0)",
    ),
    Check(
        "balance = lots - debt",
        "each stored balance equals open lot remainders minus debt",
        "SELECT b.member_id, b.balance, b.debt, coalesce(l.total, 0) AS lots FROM member_balances b "
        "LEFT JOIN (SELECT member_id, sum(remaining) AS total FROM lots GROUP BY member_id) l "
        "USING (member_id) WHERE b.balance <> coalesce(l.total, 0) - b.debt",
    ),
    Check(
        "lot bounds",
        "0 <= reserved <= remaining <= original on every lot",
        "SELECT member_id, lot_id, original, remaining, reserved FROM lots "
        "WHERE NOT (0 <= reserved AND reserved <= remaining AND remaining <= original)",
    ),
    Check(
        "lots = allocations",
        "a lot's remaining equals original minus its allocations",
        "SELECT l.member_id, l.lot_id, l.original, l.remaining, coalesce(a.total, 0) AS allocated "
        "FROM lots l LEFT JOIN (SELECT member_id, lot_id, sum(points) AS total FROM allocations "
        "GROUP BY 1, 2) a USING (member_id, lot_id) WHERE l.remaining <> l.original - coalesce(a.total, 0)",
    ),
    Check(
        "reservations",
        "a lot's reserved points equal its active holds' reservations",
        "SELECT l.member_id, l.lot_id, l.reserved, coalesce(r.total, 0) AS held FROM lots l "
        "LEFT JOIN (SELECT r.member_id, r.lot_id, sum(r.points) AS total FROM hold_reservations r "
        "JOIN holds h USING (member_id, hold_id) WHERE h.status = 'active' GROUP BY 1, 2) r "
        "USING (member_id, lot_id) WHERE l.reserved <> coalesce(r.total, 0)",
    ),
    Check(
        "hold reservations",
        "an active hold reserves exactly its points",
        "SELECT h.member_id, h.hold_id, h.points, coalesce(sum(r.points), 0) AS reserved "
        "FROM holds h LEFT JOIN hold_reservations r USING (member_id, hold_id) "
        "WHERE h.status = 'active' GROUP BY 1, 2, 3 HAVING h.points <> coalesce(sum(r.points), 0)",
    ),
    Check(
        "debt",
        "debt is never negative, and a member in debt has no free points",
        "SELECT b.member_id, b.debt, sum(l.remaining - l.reserved) AS free FROM member_balances b "
        "JOIN lots l USING (member_id) WHERE b.debt > 0 AND l.expires_at > now() "
        "GROUP BY 1, 2 HAVING sum(l.remaining - l.reserved) > 0 "
        "UNION ALL SELECT member_id, debt, NULL FROM member_balances WHERE debt < 0",
    ),
    Check(
        "idempotency",
        "every recorded idempotency key has its stored response",
        "SELECT scope_id, idempotency_key FROM idempotency_records WHERE status_code IS NULL",
    ),
    Check(
        "single reversal",
        "a redemption is reversed at most once",
        "SELECT member_id, original_transaction_id, count(*) FROM ledger_transactions "
        "WHERE kind = 'reversal' GROUP BY 1, 2 HAVING count(*) > 1",
    ),
)


@dataclass(frozen=True, slots=True)
class CheckResult:
    check: Check
    violations: int
    examples: list[dict]

    @property
    def ok(self) -> bool:
        return self.violations == 0


def run_checks(
    connection: Connection, example_limit: int = 5, checks: tuple[Check, ...] = CHECKS
) -> list[CheckResult]:
    results = []
    for check in checks:
        rows = connection.execute(text(check.violations_sql)).mappings().all()
        results.append(CheckResult(check, len(rows), [dict(row) for row in rows[:example_limit]]))
    return results
