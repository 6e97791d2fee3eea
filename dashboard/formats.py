"""Numbers as the dashboard shows them: always with their unit.

Points carry "pts"; money is integer minor units shown in major units with the ISO code
(the exponent from shared.program: 2 for USD, 0 for JPY); shares are percentages. Plain
Python, no Streamlit: the figures in charts.py use the same functions for their labels.

Tiles use `compact=True` from 10,000 on (23.2k pts, 1.44M USD: three significant
digits), so five tiles fit in a row; their help text gives the exact figure.
"""

from __future__ import annotations

from datetime import date
from decimal import Decimal

from shared.program import CURRENCY_EXPONENTS


def _signed(text: str, negative: bool, *, plus: bool) -> str:
    # An ASCII hyphen, not U+2212: st.metric colours a delta red when it starts with "-".
    if negative:
        return "-" + text
    return "+" + text if plus else text


COMPACT_FROM = 10_000
_SCALES = ((Decimal(10) ** 9, "B"), (Decimal(10) ** 6, "M"), (Decimal(10) ** 3, "k"))


def _compact(magnitude: Decimal) -> str | None:
    """Three significant digits and a scale (23.2k, 144k, 1.23M); None below COMPACT_FROM."""
    if magnitude < COMPACT_FROM:
        return None
    for index, (scale, suffix) in enumerate(_SCALES):
        if magnitude >= scale:
            scaled = magnitude / scale
            digits = 3 - len(str(int(scaled)))  # decimals left for 3 significant digits
            text = f"{scaled:.{max(digits, 0)}f}"
            if Decimal(text) >= 1000 and index > 0:  # 999.95k rounds to the next scale
                return f"{magnitude / _SCALES[index - 1][0]:.2f}{_SCALES[index - 1][1]}"
            return text + suffix
    return None


def count(value: int, unit: str = "", *, plus: bool = False, compact: bool = False) -> str:
    """12,345 or 12,345 members; compact: 12.3k members."""
    magnitude = abs(value)
    number = (_compact(Decimal(magnitude)) if compact else None) or f"{magnitude:,}"
    return _signed(number + (f" {unit}" if unit else ""), value < 0, plus=plus)


def points(value: int, *, plus: bool = False, compact: bool = False) -> str:
    """12,345 pts; compact: 12.3k pts."""
    return count(value, "pts", plus=plus, compact=compact)


def money(amount_minor: int, currency: str, *, plus: bool = False, compact: bool = False) -> str:
    """1,234.56 USD from 123456 minor units; JPY has none: 1,234 JPY; compact: 12.3k USD."""
    exponent = CURRENCY_EXPONENTS.get(currency, 2)
    major = Decimal(abs(amount_minor)).scaleb(-exponent)
    number = (_compact(major) if compact else None) or f"{major:,.{exponent}f}"
    return _signed(f"{number} {currency}", amount_minor < 0, plus=plus)


def percent(share: float | Decimal | None, *, decimals: int = 1, plus: bool = False) -> str:
    """0.1234 -> 12.3%; None (not computable, e.g. a ratio to zero) -> n/a."""
    if share is None:
        return "n/a"
    value = float(share) * 100
    text = f"{abs(value):,.{decimals}f}%"
    return _signed(text, round(value, decimals) < 0, plus=plus)


def change(current: int, previous: int) -> float | None:
    """Relative change from the previous value; None when there was nothing before."""
    if previous == 0:
        return None
    return (current - previous) / abs(previous)


def delta(current: int, previous: int, unit_format=count) -> str:
    """What a tile's delta says: the relative change, or the absolute one when the
    previous period had nothing (a percentage of zero means nothing)."""
    relative = change(current, previous)
    if relative is None:
        return unit_format(current - previous, plus=True)
    return percent(relative, plus=True)


def share_delta(current: float | None, previous: float | None) -> str | None:
    """The change of a share in percentage points: +1.2 pp; None when one side is unknown."""
    if current is None or previous is None:
        return None
    return _signed(f"{abs(current - previous) * 100:,.1f} pp", current < previous, plus=True)


def ratio_delta(current: float | None, previous: float | None) -> str | None:
    """The relative change of a ratio (transactions per member...): +4.2%."""
    if current is None or not previous:
        return None
    return percent((current - previous) / abs(previous), plus=True)


def days(value: float | int | None) -> str:
    """12 days; None (not reached) -> n/a."""
    if value is None:
        return "n/a"
    return f"{value:,.0f} day" + ("" if value == 1 else "s")


def interval(low: float | None, high: float | None, *, plus: bool = True) -> str:
    """A confidence interval of shares: (+1.2%, +8.4%)."""
    return f"({percent(low, plus=plus)}, {percent(high, plus=plus)})"


def day(moment: date) -> str:
    """1 Oct 2026"""
    return f"{moment.day} {moment:%b %Y}"


def day_range(first: date, last: date) -> str:
    """1 Oct - 30 Oct 2026; one day: 1 Oct 2026."""
    if first == last:
        return day(last)
    start = f"{first.day} {first:%b}" if first.year == last.year else day(first)
    return f"{start} - {day(last)}"
