"""Members and their purchases, drawn for one shard with vectorised numpy.

The story, per member (docs/seed.md has the details and the reasons):
- enrols on a day of the period (more members join as the network grows) at an acquiring
  merchant, with a first purchase there;
- BG/NBD: while alive, buys at a personal rate lambda ~ Gamma(r, alpha) per week, shaped
  by the network's weekly and seasonal rhythm; after each purchase drops out with a
  personal probability p ~ Beta(a, b);
- shops at 1-4 favourite partners, and more often elsewhere as tenure grows;
- baskets are lognormal per industry, scaled by a personal spend level;
- ~2% of purchases are refunded (fully or partly), some after the points were spent;
- a campaign's treated members visit more often during its window, by the campaign's
  TRUE lift: extra visits at the participating partners that do not count toward
  dropout, so the lift in visits is exactly the configured one in expectation.

Redemptions, holds and reversals depend on the member's balance, so the ledger replay
(seed/replay.py) decides them.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import timedelta

import numpy as np
from faker import Faker
from stdnum import luhn

from seed.network import DAY, Network
from shared.campaigns.assignment import arm, in_global_holdout
from shared.identifiers import CARD_LENGTH

FAVOURITE_COUNTS = (1, 2, 3, 4)
FAVOURITE_WEIGHTS = (0.35, 0.35, 0.2, 0.1)
REDEMPTION_THRESHOLDS = np.array([200, 400, 800, 1500, 10**12])  # the last: never redeems
THRESHOLD_WEIGHTS = (0.25, 0.25, 0.2, 0.15, 0.15)
NAME_POOL = 1500


@dataclass(slots=True)
class ShardMembers:
    """Column arrays, one row per member of the shard, in enrolment order."""

    member_ids: list[uuid.UUID]
    enrolled_s: np.ndarray
    acquiring: np.ndarray  # merchant index
    acquiring_store: np.ndarray  # store index within that merchant
    rate_per_day: np.ndarray  # lambda / 7
    dropout: np.ndarray  # p
    repeat_budget: np.ndarray  # repeat purchases before dropout (geometric)
    threshold: np.ndarray  # redeem when available points reach it
    prefers_points_and_cash: np.ndarray
    referrer: np.ndarray  # index within the shard, or -1
    profile_stage: np.ndarray  # 0: complete at enrolment, 1: completed later, 2: never
    profile_completed_s: np.ndarray
    given_names: list[str]
    family_names: list[str]
    birth_dates: list
    emails: list[str | None]
    phones: list[str | None]
    cards: list[str]
    consent_email: np.ndarray
    consent_sms: np.ndarray
    arms: list[dict[int, str]]  # campaign index -> arm, for members targeted at launch
    churned_by_spike: np.ndarray
    alive_at_end: np.ndarray


@dataclass(slots=True)
class Purchases:
    """Column arrays, one row per purchase, ordered by member then time."""

    member: np.ndarray
    at_s: np.ndarray
    merchant: np.ndarray
    store: np.ndarray
    amount_minor: np.ndarray
    excluded_category: np.ndarray  # index into the industry's excluded lines, or -1
    excluded_minor: np.ndarray
    refund_at_s: np.ndarray  # -1: never refunded
    refund_minor: np.ndarray
    online: np.ndarray
    campaign_extra: np.ndarray  # campaign index whose lift caused this visit, or -1


def draw_members(network: Network, shard: int, first_index: int, count: int) -> ShardMembers:
    config, calendar = network.config, network.calendar
    rng = np.random.default_rng([config.seed, 1, shard])
    truth = config.truth
    # Growth: the enrolment density rises linearly to twice its starting value.
    u = rng.random(count)
    enrol_fraction = np.sqrt(1 + 3 * u) - 1  # inverse CDF of density (1 + x) on [0, 1]
    enrolled = calendar.start_s + (enrol_fraction * (calendar.days * DAY - 3600)).astype(np.int64)
    enrolled.sort()
    merchant_weights = np.array([m.popularity for m in network.merchants])
    merchant_weights /= merchant_weights.sum()
    acquiring = rng.choice(len(network.merchants), size=count, p=merchant_weights)
    acquiring_store = np.array(
        [rng.integers(len(network.merchants[m].store_ids)) for m in acquiring], dtype=np.int64
    )
    rate_per_week = rng.gamma(truth.r, 1.0 / truth.alpha, size=count)
    dropout = rng.beta(truth.a, truth.b, size=count)
    repeat_budget = rng.geometric(np.clip(dropout, 1e-9, 1.0))
    threshold = REDEMPTION_THRESHOLDS[
        rng.choice(len(REDEMPTION_THRESHOLDS), size=count, p=THRESHOLD_WEIGHTS)
    ]
    prefers_points_and_cash = rng.random(count) < 0.6
    referrer = np.full(count, -1, dtype=np.int64)
    referred = np.flatnonzero(rng.random(count) < config.referral_rate)
    for index in referred:
        if index > 0:
            referrer[index] = int(rng.integers(index))  # an earlier member of the shard
    profile_stage = rng.choice(3, size=count, p=(0.6, 0.15, 0.25))
    completed = enrolled + (rng.exponential(30.0, size=count) * DAY).astype(np.int64) + 60
    completed = np.where(profile_stage == 1, completed, -1)
    completed = np.where(completed >= calendar.end_s, -1, completed)
    profile_stage = np.where((profile_stage == 1) & (completed < 0), 2, profile_stage)

    fake = Faker(network.config.locale)
    fake.seed_instance(config.seed * 1000 + shard)
    given_pool = [fake.first_name() for _ in range(NAME_POOL)]
    family_pool = [fake.last_name() for _ in range(NAME_POOL)]
    user_pool = [fake.user_name().lower() for _ in range(NAME_POOL)]
    domains = ["example.com", "example.net", "example.org", "mail.example"]
    given_idx = rng.integers(NAME_POOL, size=count)
    family_idx = rng.integers(NAME_POOL, size=count)
    birth_days = rng.integers(18 * 365, 80 * 365, size=count)
    has_email = rng.random(count) < 0.85
    has_phone = rng.random(count) < 0.7
    phone_template = _phone_template(network.region)
    cards, emails, phones, births = [], [], [], []
    for offset in range(count):
        global_index = first_index + offset
        cards.append(_card(network, global_index))
        stage = profile_stage[offset]
        # An incomplete profile lacks its contact details; a later completion adds an e-mail.
        emails.append(
            f"{user_pool[given_idx[offset]]}.{global_index:x}@{domains[global_index % 4]}"
            if has_email[offset] or stage != 2
            else None
        )
        phones.append(phone_template(global_index) if has_phone[offset] and stage == 0 else None)
        births.append(
            calendar.start.date() - timedelta(days=int(birth_days[offset])) if stage != 2 else None
        )
    member_ids = [uuid.UUID(bytes=rng.bytes(16), version=4) for _ in range(count)]
    arms = _assign_arms(network, member_ids, enrolled)
    return ShardMembers(
        member_ids=member_ids,
        enrolled_s=enrolled,
        acquiring=acquiring,
        acquiring_store=acquiring_store,
        rate_per_day=rate_per_week / 7.0,
        dropout=dropout,
        repeat_budget=repeat_budget,
        threshold=threshold,
        prefers_points_and_cash=prefers_points_and_cash,
        referrer=referrer,
        profile_stage=profile_stage,
        profile_completed_s=completed,
        given_names=[given_pool[i] for i in given_idx],
        family_names=[family_pool[i] for i in family_idx],
        birth_dates=births,
        emails=emails,
        phones=phones,
        cards=cards,
        consent_email=rng.random(count) < 0.55,
        consent_sms=rng.random(count) < 0.35,
        arms=arms,
        churned_by_spike=np.zeros(count, dtype=bool),
        alive_at_end=np.ones(count, dtype=bool),
    )


def _card(network: Network, global_index: int) -> str:
    # The digit after the programme prefix marks seeded cards; the rest is the member's
    # index, so seeded cards are unique by construction.
    prefix = network.card_prefix
    body = f"{prefix}9{global_index:0{CARD_LENGTH - len(prefix) - 2}d}"
    return body + luhn.calc_check_digit(body)


def _phone_template(region: str):
    import phonenumbers

    example = phonenumbers.example_number_for_type(region, phonenumbers.PhoneNumberType.MOBILE)
    e164 = phonenumbers.format_number(example, phonenumbers.PhoneNumberFormat.E164)
    stem = e164[:-6]

    def phone(global_index: int) -> str | None:
        if global_index >= 1_000_000:
            return None  # six free digits: unique for the first million members
        return f"{stem}{(global_index * 7_919 + 12_345) % 1_000_000:06d}"

    return phone


def _assign_arms(network: Network, member_ids, enrolled) -> list[dict[int, str]]:
    """Members enrolled before a campaign's launch are its targeted list, assigned then."""
    arms: list[dict[int, str]] = []
    global_bps = network.rules.global_holdout_bps
    for member_id, enrolled_s in zip(member_ids, enrolled, strict=True):
        assigned: dict[int, str] = {}
        if not in_global_holdout(member_id, global_bps):
            for campaign in network.campaigns:
                if enrolled_s < campaign.start_s:
                    assigned[campaign.index] = arm(member_id, campaign.salt, campaign.holdout_bps)
        arms.append(assigned)
    return arms


def draw_purchases(network: Network, shard: int, members: ShardMembers) -> Purchases:
    """Repeat purchases on a daily grid (Poisson per member-day), then the first purchase
    at enrolment; members are processed in blocks to bound memory."""
    rng = np.random.default_rng([network.config.seed, 2, shard])
    calendar = network.calendar
    days = calendar.days
    count = len(members.member_ids)
    enrol_day = (members.enrolled_s - calendar.start_s) // DAY
    spike = network.incident("churn_spike")
    spike_day = (spike.start_s - calendar.start_s) // DAY if spike else days
    rows_member, rows_day, rows_campaign = [], [], []
    block = 2048
    day_index = np.arange(days)
    for first in range(0, count, block):
        last = min(first + block, count)
        rate = members.rate_per_day[first:last, None] * calendar.season[None, :]
        after_enrolment = day_index[None, :] > enrol_day[first:last, None]
        counts = rng.poisson(rate * after_enrolment)
        # BG/NBD dropout: only the first `repeat_budget` purchases happen.
        before = np.cumsum(counts, axis=1) - counts
        budget = members.repeat_budget[first:last, None]
        counts = np.clip(np.minimum(counts, budget - before), 0, None)
        reached = (before + counts) >= budget
        death_day = np.where(reached.any(axis=1), reached.argmax(axis=1), days)
        # Incident: a share of the members still alive drop out on the spike day.
        if spike is not None:
            alive_then = (death_day > spike_day) & (enrol_day[first:last] < spike_day)
            churned = alive_then & (rng.random(last - first) < spike.magnitude)
            members.churned_by_spike[first:last] = churned
            counts[churned, spike_day:] = 0
            death_day = np.where(churned, spike_day, death_day)
        members.alive_at_end[first:last] = death_day >= days
        for campaign in network.campaigns:
            if campaign.visit_lift <= 0:
                continue
            treated = np.array(
                [members.arms[i].get(campaign.index) == "treatment" for i in range(first, last)]
            )
            if not treated.any():
                continue
            start_day = (campaign.start_s - calendar.start_s) // DAY
            end_day = (campaign.end_s - calendar.start_s) // DAY
            window = (day_index >= start_day) & (day_index < end_day)
            alive = day_index[None, :] < death_day[:, None]
            extra_rate = rate * campaign.visit_lift * window[None, :] * alive * treated[:, None]
            extra = rng.poisson(extra_rate * after_enrolment)
            member_idx, day_idx = np.nonzero(extra)
            repeats = extra[member_idx, day_idx]
            rows_member.append(np.repeat(member_idx + first, repeats))
            rows_day.append(np.repeat(day_idx, repeats))
            rows_campaign.append(np.full(int(repeats.sum()), campaign.index))
        member_idx, day_idx = np.nonzero(counts)
        repeats = counts[member_idx, day_idx]
        rows_member.append(np.repeat(member_idx + first, repeats))
        rows_day.append(np.repeat(day_idx, repeats))
        rows_campaign.append(np.full(int(repeats.sum()), -1))
    # The first purchase: at the acquiring merchant, right after enrolment.
    member = np.concatenate([np.arange(count), *rows_member])
    first_purchase = np.concatenate(
        [np.ones(count, dtype=bool)] + [np.zeros(len(chunk), dtype=bool) for chunk in rows_member]
    )
    day = np.concatenate([enrol_day, *rows_day])
    campaign_extra = np.concatenate([np.full(count, -1), *rows_campaign])
    merchant = _choose_merchants(network, members, rng, member, day, campaign_extra)
    merchant[first_purchase] = members.acquiring
    industries = [m.industry for m in network.merchants]
    peak = np.array([industry.peak_hour for industry in industries])[merchant]
    spread = np.array([industry.hour_spread for industry in industries])[merchant]
    local_hour = np.clip(rng.normal(peak, spread), 6.0, 23.5)
    at_s = (
        calendar.start_s
        + day * DAY
        + ((local_hour - network.utc_offset_hours) * 3600).astype(np.int64)
    )
    at_s = np.clip(at_s, calendar.start_s, calendar.end_s - 60)
    at_s[first_purchase] = members.enrolled_s + 30
    order = np.lexsort((at_s, member))
    member, at_s, merchant, campaign_extra = (
        member[order],
        at_s[order],
        merchant[order],
        campaign_extra[order],
    )
    first_purchase = first_purchase[order]
    # A purchase never precedes its member's enrolment (a day-grid time may).
    at_s = np.maximum(at_s, members.enrolled_s[member] + 30)
    # Incident: a partner's feed stops; its purchases in the window never reach the ledger.
    feed_stop = network.incident("feed_stop")
    keep = np.ones(len(member), dtype=bool)
    if feed_stop is not None:
        keep = ~(
            (merchant == feed_stop.merchant)
            & (at_s >= feed_stop.start_s)
            & (at_s < feed_stop.end_s)
            & ~first_purchase
        )
    member, at_s, merchant, campaign_extra = (
        member[keep],
        at_s[keep],
        merchant[keep],
        campaign_extra[keep],
    )
    return _baskets(network, members, rng, member, at_s, merchant, campaign_extra)


def _choose_merchants(network, members, rng, member, day, campaign_extra) -> np.ndarray:
    merchant_count = len(network.merchants)
    popularity = np.array([m.popularity for m in network.merchants])
    popularity = popularity / popularity.sum()
    count = len(members.member_ids)
    # Favourites: the acquiring merchant plus 0-3 others picked by popularity.
    favourite_count = rng.choice(FAVOURITE_COUNTS, size=count, p=FAVOURITE_WEIGHTS)
    favourites = rng.choice(merchant_count, size=(count, 4), p=popularity)
    favourites[:, 0] = members.acquiring
    weights = rng.dirichlet(np.ones(4), size=count)
    weights[:, 0] += 0.5
    weights[np.arange(4)[None, :] >= favourite_count[:, None]] = 0.0
    weights /= weights.sum(axis=1, keepdims=True)
    cumulative = np.cumsum(weights, axis=1)[member]
    pick = (rng.random(len(member))[:, None] > cumulative).sum(axis=1)
    chosen = favourites[member, np.minimum(pick, 3)]
    # Cross-shopping outside the favourites grows from 5% to 20% over the first year.
    tenure_days = day - (members.enrolled_s[member] - network.calendar.start_s) // DAY
    explore = rng.random(len(member)) < 0.05 + 0.15 * np.clip(tenure_days / 365.0, 0, 1)
    chosen = np.where(explore, rng.choice(merchant_count, size=len(member), p=popularity), chosen)
    # Campaign visits go to the campaign's partners.
    for campaign in network.campaigns:
        if campaign.merchants:
            mask = campaign_extra == campaign.index
            chosen[mask] = rng.choice(np.array(campaign.merchants), size=int(mask.sum()))
    return chosen


def _baskets(network, members, rng, member, at_s, merchant, campaign_extra) -> Purchases:
    count = len(member)
    industries = [m.industry for m in network.merchants]
    median = np.array([industry.basket_median for industry in industries])[merchant]
    sigma = np.array([industry.basket_sigma for industry in industries])[merchant]
    spend_level = rng.lognormal(0.0, 0.3, size=len(members.member_ids))[member]
    amount = median * spend_level * rng.lognormal(0.0, sigma)
    amount_minor = np.maximum((amount * network.currency_scale).round().astype(np.int64), 50)
    excluded_category = np.full(count, -1)
    excluded_minor = np.zeros(count, dtype=np.int64)
    draw = rng.random(count)
    for index, industry in enumerate(industries):
        at_merchant = merchant == index
        threshold = 0.0
        for line, (_, share, probability) in enumerate(industry.excluded_lines):
            hit = at_merchant & (draw >= threshold) & (draw < threshold + probability)
            excluded_category[hit] = line
            excluded_minor[hit] = (amount_minor[hit] * share).astype(np.int64)
            threshold += probability
    refunded = rng.random(count) < network.config.refund_rate
    delay = (rng.lognormal(np.log(4.0), 1.0, size=count) * DAY).astype(np.int64) + 600
    refund_at = np.where(refunded, at_s + delay, -1)
    refund_at = np.where(refund_at >= network.calendar.end_s, -1, refund_at)
    full = rng.random(count) < 0.55
    partial = (amount_minor * rng.uniform(0.1, 0.9, size=count)).astype(np.int64)
    refund_minor = np.where(full, amount_minor, np.maximum(partial, 1))
    online_share = np.array([industry.online_share for industry in industries])[merchant]
    online = rng.random(count) < online_share
    store_counts = np.array([len(m.store_ids) for m in network.merchants])[merchant]
    store = (rng.random(count) * store_counts).astype(np.int64)
    return Purchases(
        member=member,
        at_s=at_s,
        merchant=merchant,
        store=store,
        amount_minor=amount_minor,
        excluded_category=excluded_category,
        excluded_minor=excluded_minor,
        refund_at_s=refund_at,
        refund_minor=refund_minor,
        online=online,
        campaign_extra=campaign_extra,
    )
