"""The shared part of a seeded network: calendar, merchants and stores, campaigns, incidents.

Everything here is drawn from the run's seed alone, so every worker process rebuilds the
same network without talking to the others.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

import numpy as np
from dateutil.relativedelta import relativedelta
from faker import Faker

from seed.catalogue import INDUSTRIES, SEASONS, WEEKDAY_RHYTHM, Industry
from seed.config import SeedConfig
from shared.program import CURRENCY_EXPONENTS, ProgramRules

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
DAY = 86_400

# Local time zone of the stores per locale (a fixed offset: tills print local time, the
# ledger stores UTC; daylight saving is ignored, which only blurs peak hours by one hour).
LOCALE_ZONES = {
    "en_US": ("America/New_York", -5), "en_GB": ("Europe/London", 0),
    "de_DE": ("Europe/Berlin", 1), "fr_FR": ("Europe/Paris", 1), "zh_CN": ("Asia/Shanghai", 8),
    "ja_JP": ("Asia/Tokyo", 9), "en_CA": ("America/Toronto", -5), "es_ES": ("Europe/Madrid", 1),
}  # fmt: skip
LOCALE_REGIONS = {
    "en_US": "US", "en_GB": "GB", "de_DE": "DE", "fr_FR": "FR", "zh_CN": "CN", "ja_JP": "JP",
    "en_CA": "CA", "es_ES": "ES",
}  # fmt: skip


def seconds(moment: datetime) -> int:
    return int((moment - EPOCH).total_seconds())


def moment(epoch_seconds: int) -> datetime:
    return EPOCH + timedelta(seconds=int(epoch_seconds))


def make_id(rng: np.random.Generator) -> uuid.UUID:
    return uuid.UUID(bytes=rng.bytes(16), version=4)


@dataclass(frozen=True, slots=True)
class Calendar:
    start: datetime
    end: datetime
    days: int
    season: np.ndarray  # visit-rate multiplier per day, mean 1 over the period
    # Whole days from a day to the same date `expiry_months` later (calendar months, as
    # rules.lot_expiry computes) and 12 months earlier (the tier qualifying window), for
    # every day from the start to well past the end.
    months_ahead: dict[int, np.ndarray]
    twelve_months_back: np.ndarray
    start_s: int
    end_s: int

    def day_of(self, epoch_seconds: int) -> int:
        return (epoch_seconds - self.start_s) // DAY

    def plus_months(self, epoch_seconds: int, months: int) -> int:
        return epoch_seconds + int(self.months_ahead[months][self.day_of(epoch_seconds)]) * DAY

    def minus_twelve_months(self, epoch_seconds: int) -> int:
        return epoch_seconds - int(self.twelve_months_back[self.day_of(epoch_seconds)]) * DAY


def build_calendar(config: SeedConfig, rules: ProgramRules) -> Calendar:
    end = config.resolved_end()
    start = end - relativedelta(months=config.months)
    days = (end - start).days
    horizon = days + 800  # lots, tiers and grace periods reach past the end
    day_dates = [start.date() + timedelta(days=offset) for offset in range(horizon)]
    season = np.array([_season(day) for day in day_dates[:days]], dtype=np.float64)
    season /= season.mean()
    months_ahead = {
        months: np.array(
            [((day + relativedelta(months=months)) - day).days for day in day_dates],
            dtype=np.int64,
        )
        for months in {rules.expiry_months, rules.tier_validity_months, 12}
    }
    back = np.array([(day - (day - relativedelta(months=12))).days for day in day_dates])
    return Calendar(start, end, days, season, months_ahead, back, seconds(start), seconds(end))


def _season(day: date) -> float:
    multiplier = WEEKDAY_RHYTHM[day.weekday()]
    for month, first, last, factor in SEASONS:
        if day.month == month and first <= day.day <= last:
            multiplier *= factor
    return multiplier


@dataclass(frozen=True, slots=True)
class MerchantPlan:
    index: int
    merchant_id: uuid.UUID
    name: str
    industry: Industry
    earn_rate: Decimal
    earn_ratio: tuple[int, int]
    issuance_price: Decimal
    redemption_rate: Decimal
    pending_days: int
    store_ids: tuple[uuid.UUID, ...]
    store_cities: tuple[str, ...]
    popularity: float


@dataclass(frozen=True, slots=True)
class CampaignPlan:
    index: int
    key: str
    campaign_id: uuid.UUID
    name: str
    kind: str
    owner: MerchantPlan | None
    merchants: tuple[int, ...]  # participating merchant indexes; empty: all
    start_s: int
    end_s: int
    holdout_bps: int
    salt: str
    visit_lift: float
    terms: dict


@dataclass(frozen=True, slots=True)
class Incident:
    kind: str  # feed_stop | churn_spike | redemption_surge
    start_s: int
    end_s: int
    merchant: int | None = None
    magnitude: float = 0.0


@dataclass(frozen=True, slots=True)
class Network:
    config: SeedConfig
    rules: ProgramRules
    calendar: Calendar
    merchants: tuple[MerchantPlan, ...]
    campaigns: tuple[CampaignPlan, ...]
    incidents: tuple[Incident, ...]
    currency_scale: int  # minor units per major unit of the programme currency
    utc_offset_hours: int
    time_zone: str
    region: str
    card_prefix: str

    def incident(self, kind: str) -> Incident | None:
        return next((item for item in self.incidents if item.kind == kind), None)


def build_network(config: SeedConfig, rules: ProgramRules, card_prefix: str) -> Network:
    rng = np.random.default_rng([config.seed, 0])
    fake = Faker(config.locale)
    fake.seed_instance(config.seed)
    calendar = build_calendar(config, rules)
    merchants = []
    used_names: set[str] = set()
    for index in range(config.merchants):
        industry = INDUSTRIES[index % len(INDUSTRIES)]
        name = _merchant_name(fake, industry, used_names)
        low, high = industry.stores
        store_count = int(rng.integers(low, high + 1))
        merchants.append(
            MerchantPlan(
                index=index,
                merchant_id=make_id(rng),
                name=name,
                industry=industry,
                earn_rate=Decimal(industry.earn_rate).quantize(Decimal("0.0001")),
                earn_ratio=Decimal(industry.earn_rate).as_integer_ratio(),
                issuance_price=Decimal(industry.issuance_price),
                redemption_rate=Decimal(industry.redemption_rate),
                pending_days=industry.pending_days,
                store_ids=tuple(make_id(rng) for _ in range(store_count)),
                store_cities=tuple(fake.city() for _ in range(store_count)),
                # Brands of one industry differ in size (the first is the market leader).
                popularity=industry.popularity * float(rng.lognormal(0.0, 0.5)),
            )
        )
    campaigns = _campaigns(config, calendar, merchants, rng)
    incidents = _incidents(config, calendar, merchants) if config.incidents else ()
    zone, offset = LOCALE_ZONES.get(config.locale, ("UTC", 0))
    return Network(
        config=config,
        rules=rules,
        calendar=calendar,
        merchants=tuple(merchants),
        campaigns=campaigns,
        incidents=incidents,
        currency_scale=10 ** CURRENCY_EXPONENTS.get(rules.currency, 2),
        utc_offset_hours=offset,
        time_zone=zone,
        region=LOCALE_REGIONS.get(config.locale, "US"),
        card_prefix=card_prefix,
    )


def _merchant_name(fake: Faker, industry: Industry, used: set[str]) -> str:
    for attempt in range(50):
        word = industry.brand_words[attempt % len(industry.brand_words)]
        name = f"{fake.last_name()} {word}"
        if name not in used:
            used.add(name)
            return name
    raise RuntimeError("could not find a free merchant name")


def _campaigns(config, calendar, merchants, rng) -> tuple[CampaignPlan, ...]:
    plans = []
    for index, truth in enumerate(config.campaigns):
        owner = None
        participating: tuple[int, ...] = ()
        if truth.funded_by != "hq":
            candidates = [m for m in merchants if m.industry.name == truth.funded_by]
            if not candidates:
                continue
            owner = candidates[0]
            participating = (owner.index,)
        start = calendar.start_s + int(truth.start_fraction * calendar.days) * DAY
        end = min(start + truth.days * DAY, calendar.end_s)
        plans.append(
            CampaignPlan(
                index=index,
                key=truth.key,
                campaign_id=make_id(rng),
                name=truth.name,
                kind=truth.kind,
                owner=owner,
                merchants=participating,
                start_s=start,
                end_s=end,
                holdout_bps=truth.holdout_bps,
                salt=f"{truth.key}-{config.seed}",
                visit_lift=truth.visit_lift,
                terms=dict(truth.terms),
            )
        )
    return tuple(plans)


def _incidents(config, calendar, merchants) -> tuple[Incident, ...]:
    def at(fraction: float) -> int:
        return calendar.start_s + int(fraction * calendar.days) * DAY

    grocers = sorted(
        (m for m in merchants if m.industry.name == "grocery"), key=lambda m: -m.popularity
    )
    silent = (grocers or list(merchants))[0]
    return (
        Incident("feed_stop", at(0.70), at(0.70) + 5 * DAY, merchant=silent.index),
        Incident("redemption_surge", at(0.56), at(0.56) + 7 * DAY, magnitude=4.0),
        Incident("churn_spike", at(0.88), at(0.88) + DAY, magnitude=0.2),
    )
