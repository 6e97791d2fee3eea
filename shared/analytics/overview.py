"""The Overview page's figure the rollups do not hold: the points members hold now.

Everything else on the page comes from the activity rollups (shared/analytics/activity.py,
docs/metrics.md), like the other pages. Outstanding points are the members' balances now
(the stored balance rows, which the ledger keeps equal to the sum of each member's
postings); the tiers filter selects members by the tier they hold now; the merchants
filter does not apply: points belong to members, not to merchants (points earned at one
partner are spent at another).
"""

from __future__ import annotations

from sqlalchemy import Connection, func, select

from shared.analytics.filters import Filters
from shared.tables import member_balances, members


def outstanding_points(connection: Connection, filters: Filters) -> int:
    statement = select(func.coalesce(func.sum(member_balances.c.balance), 0))
    if filters.tiers:
        statement = statement.where(
            member_balances.c.member_id.in_(
                select(members.c.member_id).where(members.c.tier.in_(filters.tiers))
            )
        )
    return int(connection.scalar(statement))
