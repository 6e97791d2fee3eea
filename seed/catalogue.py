"""What partners of each industry look like: commercial terms, baskets, rhythm of the week.

Figures are plausible for a North-American coalition programme (1 point = 1 cent at the
till): merchants pay HQ a little more per point issued than HQ pays them per point
redeemed, high-margin partners give more points per unit of currency, travel and fashion
keep points pending during their returns window, and e-commerce partners spend points
through holds (reserve at checkout, capture at dispatch).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Industry:
    name: str
    brand_words: tuple[str, ...]
    earn_rate: str  # points per major currency unit
    issuance_price: str  # money per point the merchant pays HQ
    redemption_rate: str  # money per point HQ pays the merchant
    pending_days: int
    basket_median: float  # major units; baskets are lognormal around it
    basket_sigma: float
    popularity: float  # share of members' visits, before affinity
    weekday_weights: tuple[float, ...]  # Monday .. Sunday
    peak_hour: float  # local time of the busiest hour
    hour_spread: float
    stores: tuple[int, int]  # range of store counts
    online_share: float  # share of visits that are e-commerce (redemption through holds)
    excluded_lines: tuple[tuple[str, float, float], ...] = ()  # category, basket share, probability


INDUSTRIES: tuple[Industry, ...] = (
    Industry(
        "grocery", ("Market", "Grocers", "Foods", "Fresh"),
        "1", "0.010000", "0.008000", 0, 42.0, 0.65, 0.30,
        (0.9, 0.85, 0.9, 1.0, 1.2, 1.35, 0.8), 17.5, 3.0, (8, 40), 0.05,
        (("tobacco", 0.18, 0.04), ("lottery", 0.05, 0.03)),
    ),
    Industry(
        "coffee", ("Coffee", "Roasters", "Espresso", "Café"),
        "2", "0.012000", "0.008000", 0, 6.5, 0.40, 0.18,
        (1.15, 1.1, 1.1, 1.05, 1.0, 0.8, 0.8), 8.5, 2.0, (5, 60), 0.0,
    ),
    Industry(
        "fuel", ("Fuel", "Petroleum", "Gas & Go", "Energy"),
        "0.5", "0.009000", "0.008000", 0, 48.0, 0.35, 0.12,
        (1.0, 1.0, 1.0, 1.05, 1.2, 0.95, 0.8), 16.0, 4.0, (10, 80), 0.0,
        (("gift_card", 0.5, 0.01), ("tobacco", 0.25, 0.05)),
    ),
    Industry(
        "pharmacy", ("Pharmacy", "Health", "Care", "Drugstore"),
        "1", "0.010000", "0.008000", 0, 24.0, 0.70, 0.08,
        (1.1, 1.05, 1.0, 1.0, 1.05, 1.0, 0.8), 13.0, 3.5, (4, 30), 0.1,
    ),
    Industry(
        "cinema", ("Cinemas", "Pictures", "Screens"),
        "1.5", "0.011000", "0.008500", 0, 27.0, 0.40, 0.04,
        (0.6, 0.7, 0.8, 0.9, 1.4, 1.7, 1.3), 19.5, 2.5, (2, 12), 0.3,
    ),
    Industry(
        "restaurant", ("Kitchen", "Grill", "Bistro", "Diner"),
        "2", "0.012000", "0.008500", 0, 38.0, 0.55, 0.10,
        (0.7, 0.8, 0.9, 1.0, 1.4, 1.5, 1.1), 19.0, 2.5, (3, 25), 0.15,
        (("gift_card", 0.4, 0.005),),
    ),
    Industry(
        "fashion", ("Apparel", "Outfitters", "Threads", "Boutique"),
        "1", "0.013000", "0.008000", 14, 68.0, 0.70, 0.06,
        (0.8, 0.8, 0.9, 1.0, 1.2, 1.5, 1.1), 15.0, 3.0, (2, 15), 0.4,
    ),
    Industry(
        "travel", ("Travel", "Journeys", "Getaways", "Air"),
        "3", "0.015000", "0.009000", 30, 420.0, 0.80, 0.015,
        (1.1, 1.1, 1.0, 1.0, 0.9, 0.9, 1.0), 14.0, 4.0, (1, 3), 0.85,
    ),
    Industry(
        "electronics", ("Electronics", "Digital", "Tech"),
        "1", "0.011000", "0.008000", 14, 160.0, 0.90, 0.025,
        (0.8, 0.8, 0.9, 1.0, 1.2, 1.4, 1.1), 15.5, 3.0, (1, 10), 0.6,
        (("gift_card", 0.3, 0.02),),
    ),
    Industry(
        "home", ("Home", "Hardware", "Living"),
        "1", "0.010000", "0.008000", 0, 55.0, 0.80, 0.04,
        (0.8, 0.8, 0.8, 0.9, 1.0, 1.6, 1.3), 12.0, 3.0, (2, 12), 0.25,
    ),
)  # fmt: skip

BY_NAME = {industry.name: industry for industry in INDUSTRIES}

# Network-wide rhythm of the week (Monday .. Sunday), and the busy and quiet seasons:
# (month, first day, last day, multiplier).
WEEKDAY_RHYTHM = (0.92, 0.92, 0.95, 1.0, 1.12, 1.16, 0.93)
SEASONS = (
    (11, 20, 30, 1.25),  # Thanksgiving and Black Friday
    (12, 1, 23, 1.35),  # the run-up to Christmas
    (12, 24, 26, 0.7),
    (1, 2, 20, 0.85),  # the January lull
    (7, 1, 31, 1.05),
    (8, 1, 31, 1.05),
)
