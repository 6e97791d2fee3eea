"""What a seed run builds: size, period, randomness, and the true parameters of the network.

Profiles name the sizes we use: `demo` is what `coalition up` starts with, `benchmark` is
the 1M-member network of the bulk-load target, `test` is small enough for the suite.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, datetime, timedelta

SHARD_MEMBERS = 65_536  # members per shard: the unit of randomness, parallelism and COPY


@dataclass(frozen=True, slots=True)
class BgNbdTruth:
    """The BG/NBD story (Fader, Hardie & Lee 2005), time in weeks: while alive, a member
    buys at rate lambda ~ Gamma(r, alpha); after each purchase they drop out with
    probability p ~ Beta(a, b)."""

    r: float = 1.2
    alpha: float = 1.8
    a: float = 0.9
    b: float = 5.5


@dataclass(frozen=True, slots=True)
class CampaignTruth:
    key: str
    name: str
    kind: str  # multiplier | fixed_bonus
    funded_by: str  # "hq" or an industry name: its first merchant owns and funds it
    start_fraction: float  # where in the period it starts
    days: int
    holdout_bps: int
    visit_lift: float  # TRUE relative increase of treated members' visit rate in the window
    terms: dict = field(default_factory=dict)


DEFAULT_CAMPAIGNS = (
    CampaignTruth(
        "double-points", "Double points fortnight", "multiplier", "hq",
        0.45, 28, 1000, 0.10, {"multiplier": "2"},
    ),
    CampaignTruth(
        "coffee-week", "Coffee bonus weeks", "fixed_bonus", "coffee",
        0.62, 14, 2000, 0.15, {"bonusPoints": 25, "minSpendMinor": 400},
    ),
    CampaignTruth(
        "autumn-boost", "Autumn boost", "multiplier", "hq",
        0.80, 21, 5000, 0.0, {"multiplier": "1.5"},
    ),
)  # fmt: skip


@dataclass(frozen=True, slots=True)
class SeedConfig:
    members: int = 2_000
    months: int = 12
    merchants: int = 12
    seed: int = 1
    locale: str = "en_US"
    end: datetime | None = None  # exclusive end of history; default: today 00:00 UTC
    incidents: bool = True
    truth: BgNbdTruth = BgNbdTruth()
    campaigns: tuple[CampaignTruth, ...] = DEFAULT_CAMPAIGNS
    refund_rate: float = 0.02
    referral_rate: float = 0.08
    reversal_rate: float = 0.005
    workers: int = 0  # processes; 0: one per CPU. The data do not depend on it.
    # Members per shard: each shard has its own random streams, so this is part of what
    # the data depend on (unlike `workers`).
    shard_members: int = SHARD_MEMBERS

    def resolved_end(self) -> datetime:
        if self.end is not None:
            return self.end.astimezone(UTC)
        today = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
        return today

    def as_dict(self) -> dict:
        values = asdict(self)
        values["end"] = self.resolved_end().isoformat()
        return values


PROFILES = {
    "test": SeedConfig(members=400, months=14, merchants=10),
    "demo": SeedConfig(members=3_000, months=14, merchants=14),
    "benchmark": SeedConfig(members=1_000_000, months=12, merchants=40),
}


def profile(name: str, **overrides) -> SeedConfig:
    given = {key: value for key, value in overrides.items() if value is not None}
    return replace(PROFILES[name], **given)


def day_start(moment: datetime) -> datetime:
    return moment.replace(hour=0, minute=0, second=0, microsecond=0)


ONE_DAY = timedelta(days=1)
