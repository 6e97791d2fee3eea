"""Settlement's invariants, checked by `coalition audit` next to the ledger's own: closed
periods reconcile with the ledger, and every settled transaction is in one statement."""

from __future__ import annotations

from shared.ledger.integrity import Check

# The statement checks take the periods they look at as a subquery of period ids: the audit
# checks every closed period, the settlement-imbalance alert metric (shared/alerts/
# metrics.py) only the periods closed in its window. Both return the failing statements'
# period_id and merchant_id.
ALL_PERIODS = "SELECT period_id FROM settlement_periods"

STATEMENT_TOTALS_SQL = (
    "SELECT s.statement_id, s.period_id, s.merchant_id, s.net_minor, coalesce(l.total, 0) AS lines "
    "FROM statements s LEFT JOIN (SELECT statement_id, sum(amount_minor) AS total "
    "FROM statement_lines GROUP BY 1) l USING (statement_id) "
    "WHERE s.period_id IN ({periods}) AND s.net_minor <> coalesce(l.total, 0)"
)

STATEMENTS_VS_LEDGER_SQL = """
WITH ledger AS (
    SELECT s.period_id, p.merchant_id,
           sum(CASE WHEN p.account = 'issued' THEN -p.amount ELSE 0 END) AS issued,
           sum(CASE WHEN p.account = 'redeemed' THEN p.amount ELSE 0 END) AS redeemed
    FROM settled_transactions s JOIN postings p USING (member_id, transaction_id)
    WHERE p.merchant_id IS NOT NULL AND p.account IN ('issued', 'redeemed')
      AND s.period_id IN ({periods})
    GROUP BY 1, 2
), stated AS (
    SELECT st.period_id, st.merchant_id,
           sum(CASE WHEN l.line IN ('points_issued', 'campaign_points',
               'refund_clawbacks') THEN l.points ELSE 0 END) AS issued,
           sum(CASE WHEN l.line IN ('points_redeemed', 'redemption_reversals')
               THEN l.points ELSE 0 END) AS redeemed
    FROM statements st LEFT JOIN statement_lines l USING (statement_id)
    WHERE st.period_id IN ({periods})
    GROUP BY 1, 2
)
SELECT period_id, merchant_id, ledger.issued AS ledger_issued,
       stated.issued AS stated_issued, ledger.redeemed AS ledger_redeemed,
       stated.redeemed AS stated_redeemed
FROM ledger FULL JOIN stated USING (period_id, merchant_id)
WHERE coalesce(ledger.issued, 0) <> coalesce(stated.issued, 0)
   OR coalesce(ledger.redeemed, 0) <> coalesce(stated.redeemed, 0)
"""

CHECKS = (
    Check(
        "settlement complete",
        "every transaction posted before the latest closed period is settled (a late one "
        "may wait for the next close)",
        "SELECT t.member_id, t.transaction_id, t.posted_at FROM ledger_transactions t "
        "WHERE t.posted_at < (SELECT max(starts_at) FROM settlement_periods) "
        "AND NOT EXISTS (SELECT 1 FROM settled_transactions s "
        "WHERE s.member_id = t.member_id AND s.transaction_id = t.transaction_id)",
    ),
    Check(
        "statement totals",
        "a statement's net amount is the sum of its rounded lines",
        STATEMENT_TOTALS_SQL.format(periods=ALL_PERIODS),
    ),
    Check(
        "statements = ledger",
        "each statement's issued and redeemed points equal its merchant's postings in the "
        "transactions the period settled",
        STATEMENTS_VS_LEDGER_SQL.format(periods=ALL_PERIODS),
    ),
    Check(
        "clearing = statements",
        "the points the clearing matrix sends to each redeeming merchant equal its "
        "statement's redeemed points",
        """
        SELECT coalesce(c.period_id, st.period_id) AS period_id,
               coalesce(c.merchant_id, st.merchant_id) AS merchant_id,
               c.points AS cleared, st.points AS stated
        FROM (SELECT period_id, redeeming_merchant_id AS merchant_id, sum(points) AS points
              FROM clearing_lines GROUP BY 1, 2) c
        FULL JOIN (SELECT s.period_id, s.merchant_id, sum(l.points) AS points
                   FROM statements s JOIN statement_lines l USING (statement_id)
                   WHERE l.line IN ('points_redeemed', 'redemption_reversals')
                   GROUP BY 1, 2) st
          ON st.period_id = c.period_id AND st.merchant_id = c.merchant_id
        WHERE coalesce(c.points, 0) <> coalesce(st.points, 0)
        """,
    ),
    Check(
        "network-funded points",
        "the bonus and behaviour lots HQ funds in each period equal HQ's issued postings",
        """
        WITH lots_side AS (
            SELECT s.period_id, sum(l.original) AS points
            FROM settled_transactions s
            JOIN lots l ON l.member_id = s.member_id AND l.transaction_id = s.transaction_id
            WHERE l.funder_merchant_id IS NULL
              AND l.source IN ('tier_bonus', 'campaign', 'behaviour')
            GROUP BY 1
        ), postings_side AS (
            SELECT s.period_id, -sum(p.amount) AS points
            FROM settled_transactions s
            JOIN ledger_transactions t USING (member_id, transaction_id)
            JOIN postings p USING (member_id, transaction_id)
            WHERE p.account = 'issued' AND p.merchant_id IS NULL
              AND t.kind IN ('earn', 'behaviour')
            GROUP BY 1
        )
        SELECT period_id, lots_side.points AS lots, postings_side.points AS postings
        FROM lots_side FULL JOIN postings_side USING (period_id)
        WHERE coalesce(lots_side.points, 0) <> coalesce(postings_side.points, 0)
        """,
    ),
)
