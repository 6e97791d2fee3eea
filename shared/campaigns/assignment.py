"""Randomised holdouts: which arm a member is in, from a hash of (campaign salt, member).

Deterministic and stateless, so the earn path, the seed and the effect analysis agree on
a member's arm without coordination, and a member keeps the same arm for the whole
campaign. The assignment is also recorded (campaign_assignments) when the member first
becomes eligible, so the analysis compares exactly the arms that were served.

Buckets are basis points (0-9999): a holdout of 10% is `holdout_bps=1000`.
"""

from __future__ import annotations

import hashlib
import uuid
from typing import Literal

Arm = Literal["treatment", "holdout"]
BUCKETS = 10_000
GLOBAL_HOLDOUT_SALT = "coalition-global-holdout"


def bucket(member_id: uuid.UUID, salt: str) -> int:
    digest = hashlib.sha256(salt.encode() + member_id.bytes).digest()
    return int.from_bytes(digest[:8], "big") % BUCKETS


def arm(member_id: uuid.UUID, salt: str, holdout_bps: int) -> Arm:
    return "holdout" if bucket(member_id, salt) < holdout_bps else "treatment"


def in_global_holdout(member_id: uuid.UUID, global_holdout_bps: int) -> bool:
    """The persistent share of members who receive no campaign at all (a program setting),
    kept aside to measure the long-run effect of the whole campaign programme."""
    return bucket(member_id, GLOBAL_HOLDOUT_SALT) < global_holdout_bps
