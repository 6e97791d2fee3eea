"""Pure settlement rules: which lines a merchant statement has, their signs, their rounding.

Rounding, written down once (tests/unit/test_settlement_rules.py holds it to it):
- a line's amount is its points x its rate (money per point, in major units), converted to
  minor units and rounded once, half away from zero (ROUND_HALF_UP on the absolute value);
- the statement's net amount is the sum of its rounded lines, so no minor unit is created
  or lost between the lines and the total;
- per-transaction amounts in the CSV export are exact decimals (no rounding), so a finance
  team can see where each line's rounding happened: a line's amount is its CSV
  transactions' exact sum, rounded once.

Signs: a positive amount is owed by the merchant to HQ, a negative one by HQ to the
merchant. Issued points are charged at the merchant's issuance price; points redeemed at
its tills are reimbursed at its redemption rate; refunds and reversals carry the sign of
the correction (fewer points issued, fewer redeemed).
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal

from shared.ledger.journal import ISSUED, REDEEMED

# Line kinds, in the order a statement lists them.
POINTS_ISSUED = "points_issued"  # base points of purchases at this merchant
CAMPAIGN_POINTS = "campaign_points"  # bonuses of the merchant's own campaigns
REFUND_CLAWBACKS = "refund_clawbacks"  # points clawed back by refunds (both of the above)
POINTS_REDEEMED = "points_redeemed"  # points taken as tender at the merchant's tills
REDEMPTION_REVERSALS = "redemption_reversals"  # redemptions undone
BREAKAGE_SHARE = "breakage_share"  # the merchant's share of its expired funded points
LINE_ORDER = (
    POINTS_ISSUED,
    CAMPAIGN_POINTS,
    REFUND_CLAWBACKS,
    POINTS_REDEEMED,
    REDEMPTION_REVERSALS,
    BREAKAGE_SHARE,
)
CORRECTIONS = (REFUND_CLAWBACKS, REDEMPTION_REVERSALS)


def posting_line(account: str, points: int) -> tuple[str, int]:
    """The statement line a merchant's `issued` or `redeemed` posting (or a sum of postings
    of one sign) lands on, and the points it puts there, signed as statement_lines counts
    them. The close and the statement CSV both classify with this, so they cannot disagree.

    The posting's sign says which line, whatever the transaction's kind: issuing debits the
    funder (negative; it includes the merchant's own campaign bonuses, which the statement
    then shows on their own line) and a refund's clawback credits it back (positive); a
    redemption credits the till (positive) and its reversal debits it (negative).
    """
    if account == ISSUED:
        return (POINTS_ISSUED if points < 0 else REFUND_CLAWBACKS), -points
    if account == REDEEMED:
        return (POINTS_REDEEMED if points > 0 else REDEMPTION_REVERSALS), points
    raise ValueError(f"{account!r} postings are not on a merchant statement")


def round_minor(amount: Decimal) -> int:
    """Money to the minor unit, the programme's one rounding: ROUND_HALF_UP, i.e. halves
    away from zero (2.5 -> 3, -2.5 -> -3)."""
    return int(amount.to_integral_value(rounding=ROUND_HALF_UP))


def money_minor(points: int, rate: Decimal, exponent: int) -> int:
    """points x rate (major units per point) in minor units, rounded half away from zero."""
    return round_minor(Decimal(points) * rate * (Decimal(10) ** exponent))


@dataclass(frozen=True, slots=True)
class MerchantActivity:
    """A merchant's points in one period, from the settled transactions' postings."""

    issued: int = 0  # base + campaign points it funded on purchases
    campaign: int = 0  # of which its own campaigns' bonuses
    clawed_back: int = 0  # points refunds returned to it (positive)
    redeemed: int = 0  # points taken at its tills
    reversed: int = 0  # redemptions at its tills undone (positive)
    expired_funded: int = 0  # points it funded that expired


@dataclass(frozen=True, slots=True)
class Line:
    line: str
    points: int
    rate: Decimal
    amount_minor: int


def statement_lines(
    activity: MerchantActivity,
    *,
    issuance_price: Decimal,
    redemption_rate: Decimal,
    breakage_share_percent: Decimal,
    exponent: int,
) -> list[Line]:
    """The non-empty lines of a statement, in LINE_ORDER."""
    share_rate = -issuance_price * breakage_share_percent / 100
    candidates = [
        (POINTS_ISSUED, activity.issued - activity.campaign, issuance_price),
        (CAMPAIGN_POINTS, activity.campaign, issuance_price),
        (REFUND_CLAWBACKS, -activity.clawed_back, issuance_price),
        (POINTS_REDEEMED, activity.redeemed, -redemption_rate),
        (REDEMPTION_REVERSALS, -activity.reversed, -redemption_rate),
        (BREAKAGE_SHARE, activity.expired_funded if share_rate else 0, share_rate),
    ]
    return [
        Line(line, points, rate, money_minor(points, rate, exponent))
        for line, points, rate in candidates
        if points != 0
    ]


def net_minor(lines: list[Line]) -> int:
    return sum(line.amount_minor for line in lines)
