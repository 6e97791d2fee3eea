"""Campaign definitions: create, change while draft, schedule, cancel, read (issue 6).

Owners: HQ (owner_merchant_id NULL, HQ admin keys) or one merchant. A merchant key creates
campaigns owned and funded by its merchant, whose only participating merchant is itself;
it sees its own campaigns only (any other campaign, HQ's included, is a 404, so that
existence does not leak).

Lifecycle: draft -> scheduled -> (running -> ended, by the clock) and draft / scheduled /
running -> cancelled. Only `draft`, `scheduled` and `cancelled` are ever written here;
`running` and `ended` are the *effective* status, computed at read time from the
database's `now()`: a scheduled campaign whose starts_at has passed reads as running, and
one whose ends_at has passed reads as ended. No job has to flip the stored status. (The
seed writes `running` / `ended` directly; a stored `running` is treated like `scheduled`,
so it too reads as ended once past ends_at.)

Term validation per kind is a set of pure functions (`validate_terms`), unit-tested
without a database; they return the terms in canonical form (decimal strings normalised).
"""

from __future__ import annotations

import secrets
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal, InvalidOperation
from typing import Any

from sqlalchemy import case, func, insert, literal, select, update
from sqlalchemy.dialects import postgresql
from sqlalchemy.ext.asyncio import AsyncConnection

from shared import audit
from shared.access import Principal
from shared.campaigns import budget
from shared.errors import CampaignNotDraft, Conflict, InvalidInput, MerchantNotActive, NotFound
from shared.tables import campaign_targets, campaigns, members, merchants

KINDS = ("multiplier", "fixed_bonus", "spend_threshold", "cross_merchant", "win_back")
STATUSES = ("draft", "scheduled", "running", "ended", "cancelled")
CANCELLABLE = ("draft", "scheduled", "running")

MAX_POINTS = 1_000_000_000
MAX_MINOR = 1_000_000_000_000
MAX_MULTIPLIER = Decimal("100")
MAX_DISTINCT_PARTNERS = 1_000
MAX_LAPSED_DAYS = 3_650


# --- Terms (pure) --------------------------------------------------------------------------


def _int(terms: dict[str, Any], key: str, *, minimum: int, maximum: int) -> int:
    if key not in terms:
        raise InvalidInput(f"The terms need {key!r}.", field=f"terms.{key}")
    value = terms[key]
    # bool is an int in Python; a JSON true is not a number of points.
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidInput(f"terms.{key} must be an integer.", field=f"terms.{key}")
    if not minimum <= value <= maximum:
        raise InvalidInput(
            f"terms.{key} must be between {minimum} and {maximum}.", field=f"terms.{key}"
        )
    return value


def _multiplier(terms: dict[str, Any], key: str = "multiplier") -> str:
    if key not in terms:
        raise InvalidInput(f"The terms need {key!r}.", field=f"terms.{key}")
    value = terms[key]
    if not isinstance(value, str) or len(value) > 16:
        raise InvalidInput(
            f'terms.{key} must be a decimal string such as "2" or "1.5".', field=f"terms.{key}"
        )
    try:
        number = Decimal(value)
    except InvalidOperation:
        raise InvalidInput(f"terms.{key} is not a decimal number.", field=f"terms.{key}") from None
    if not number.is_finite() or number.as_tuple().exponent < -4:  # type: ignore[operator]
        raise InvalidInput(f"terms.{key} allows at most 4 decimal places.", field=f"terms.{key}")
    if not Decimal(1) < number <= MAX_MULTIPLIER:
        raise InvalidInput(
            f"terms.{key} must be greater than 1 and at most {MAX_MULTIPLIER}.",
            field=f"terms.{key}",
        )
    # Canonical form: no exponent, no trailing zeros ("2.50" -> "2.5", "2.0" -> "2").
    text = format(number, "f")
    return text.rstrip("0").rstrip(".") if "." in text else text


def _only(terms: dict[str, Any], allowed: Iterable[str], kind: str) -> None:
    unknown = sorted(set(terms) - set(allowed))
    if unknown:
        raise InvalidInput(
            f"Unknown terms for a {kind} campaign: {', '.join(unknown)}.",
            allowed=sorted(allowed),
        )


def multiplier_terms(terms: dict[str, Any]) -> dict[str, Any]:
    """{"multiplier": "2"}: base points at participating merchants times the multiplier
    (the excess is the campaign's bonus)."""
    _only(terms, ("multiplier",), "multiplier")
    return {"multiplier": _multiplier(terms)}


def fixed_bonus_terms(terms: dict[str, Any]) -> dict[str, Any]:
    """{"bonusPoints": 50, "minSpendMinor": 500}: a fixed bonus per qualifying purchase."""
    _only(terms, ("bonusPoints", "minSpendMinor"), "fixed_bonus")
    return {
        "bonusPoints": _int(terms, "bonusPoints", minimum=1, maximum=MAX_POINTS),
        "minSpendMinor": _int(terms, "minSpendMinor", minimum=0, maximum=MAX_MINOR)
        if "minSpendMinor" in terms
        else 0,
    }


def spend_threshold_terms(terms: dict[str, Any]) -> dict[str, Any]:
    """{"thresholdMinor": 10000, "bonusPoints": 500}: a bonus once cumulative spend in the
    campaign reaches the threshold."""
    _only(terms, ("thresholdMinor", "bonusPoints"), "spend_threshold")
    return {
        "thresholdMinor": _int(terms, "thresholdMinor", minimum=1, maximum=MAX_MINOR),
        "bonusPoints": _int(terms, "bonusPoints", minimum=1, maximum=MAX_POINTS),
    }


def cross_merchant_terms(terms: dict[str, Any]) -> dict[str, Any]:
    """{"distinctPartners": 3, "bonusPoints": 300}: a bonus for earning at N partners."""
    _only(terms, ("distinctPartners", "bonusPoints"), "cross_merchant")
    return {
        "distinctPartners": _int(
            terms, "distinctPartners", minimum=2, maximum=MAX_DISTINCT_PARTNERS
        ),
        "bonusPoints": _int(terms, "bonusPoints", minimum=1, maximum=MAX_POINTS),
    }


def win_back_terms(terms: dict[str, Any]) -> dict[str, Any]:
    """{"lapsedDays": 90, "multiplier": "2"} or {"lapsedDays": 90, "bonusPoints": 200}:
    members with no earn for `lapsedDays` get the reward on their next purchase."""
    _only(terms, ("lapsedDays", "multiplier", "bonusPoints"), "win_back")
    lapsed = _int(terms, "lapsedDays", minimum=1, maximum=MAX_LAPSED_DAYS)
    if ("multiplier" in terms) == ("bonusPoints" in terms):
        raise InvalidInput(
            "A win_back campaign rewards with exactly one of multiplier or bonusPoints.",
            field="terms",
        )
    if "multiplier" in terms:
        return {"lapsedDays": lapsed, "multiplier": _multiplier(terms)}
    return {
        "lapsedDays": lapsed,
        "bonusPoints": _int(terms, "bonusPoints", minimum=1, maximum=MAX_POINTS),
    }


TERM_VALIDATORS = {
    "multiplier": multiplier_terms,
    "fixed_bonus": fixed_bonus_terms,
    "spend_threshold": spend_threshold_terms,
    "cross_merchant": cross_merchant_terms,
    "win_back": win_back_terms,
}


def validate_terms(kind: str, terms: Any) -> dict[str, Any]:
    """The terms in canonical form, or InvalidInput (422) naming the field at fault."""
    validator = TERM_VALIDATORS.get(kind)
    if validator is None:
        raise InvalidInput(f"Unknown campaign kind {kind!r}.", allowed=list(KINDS))
    if not isinstance(terms, dict):
        raise InvalidInput("The terms must be a JSON object.", field="terms")
    return validator(terms)


def validate_window(starts_at: datetime, ends_at: datetime) -> None:
    if ends_at <= starts_at:
        raise InvalidInput("endsAt must be after startsAt.", field="endsAt")


AUDIENCES = ("triggered", "enrolled_before_start", "listed")


def validate_audience(audience: str) -> None:
    if audience not in AUDIENCES:
        raise InvalidInput(f"Unknown audience {audience!r}.", field="audience", allowed=AUDIENCES)


def validate_limits(
    *, holdout_bps: int, per_member_cap_points: int | None, budget_points: int | None
) -> None:
    if not 0 <= holdout_bps <= 10_000:
        raise InvalidInput("holdoutBps must be between 0 and 10000.", field="holdoutBps")
    for name, value in (
        ("perMemberCapPoints", per_member_cap_points),
        ("budgetPoints", budget_points),
    ):
        if value is not None and not 1 <= value <= MAX_POINTS * 1000:
            raise InvalidInput(f"{name} must be a positive number of points.", field=name)


# The database's now(): every read and every decision uses the same clock.
effective_status_sql = case(
    (
        campaigns.c.status.in_(("scheduled", "running")),
        case(
            (func.now() >= campaigns.c.ends_at, literal("ended")),
            (func.now() >= campaigns.c.starts_at, literal("running")),
            else_=literal("scheduled"),
        ),
    ),
    else_=campaigns.c.status,
)


# --- Persistence ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Campaign:
    campaign_id: uuid.UUID
    name: str
    owner_merchant_id: uuid.UUID | None
    kind: str
    status: str  # effective status (see the module docstring)
    starts_at: datetime
    ends_at: datetime
    terms: dict[str, Any]
    merchant_ids: list[uuid.UUID]
    tiers: list[str]
    holdout_bps: int
    per_member_cap_points: int | None
    budget_points: int | None
    audience: str
    launched_at: datetime | None
    created_at: datetime
    updated_at: datetime


_COLUMNS = [column for column in campaigns.c if column.name not in ("status", "salt")]


def _campaign(row) -> Campaign:
    return Campaign(
        campaign_id=row.campaign_id,
        name=row.name,
        owner_merchant_id=row.owner_merchant_id,
        kind=row.kind,
        status=row.effective_status,
        starts_at=row.starts_at,
        ends_at=row.ends_at,
        terms=dict(row.terms),
        merchant_ids=list(row.merchant_ids),
        tiers=list(row.tiers),
        holdout_bps=int(row.holdout_bps),
        per_member_cap_points=row.per_member_cap_points,
        budget_points=row.budget_points,
        audience=row.audience,
        launched_at=row.launched_at,
        created_at=row.created_at,
        updated_at=row.updated_at,
    )


def _visible(viewer: Principal):
    """HQ sees every campaign; a merchant only those it owns."""
    if viewer.is_hq:
        return literal(True)
    return campaigns.c.owner_merchant_id == viewer.merchant_id


async def _require_active(connection: AsyncConnection, actor: Principal) -> None:
    """A suspended merchant keeps read access to its campaigns but cannot change them."""
    if actor.is_hq:
        return
    status = await connection.scalar(
        select(merchants.c.status).where(merchants.c.merchant_id == actor.require_merchant())
    )
    if status != "active":
        raise MerchantNotActive("The merchant is suspended: it keeps read access only.")


def _not_found(campaign_id: uuid.UUID) -> NotFound:
    return NotFound(f"Campaign {campaign_id} does not exist.")


async def _participants(
    connection: AsyncConnection, actor: Principal, merchant_ids: Sequence[uuid.UUID]
) -> list[uuid.UUID]:
    """Participating merchants: a merchant's campaign runs at that merchant only; HQ may
    list any existing merchants (empty: every partner)."""
    unique = list(dict.fromkeys(merchant_ids))
    if not actor.is_hq:
        own = actor.require_merchant()
        if any(merchant_id != own for merchant_id in unique):
            raise InvalidInput(
                "A merchant's campaign runs at that merchant only.", field="merchantIds"
            )
        return [own]
    if unique:
        found = set(
            await connection.scalars(
                select(merchants.c.merchant_id).where(merchants.c.merchant_id.in_(unique))
            )
        )
        missing = [str(merchant_id) for merchant_id in unique if merchant_id not in found]
        if missing:
            raise InvalidInput(
                f"Unknown merchants: {', '.join(missing)}.", field="merchantIds", unknown=missing
            )
    return unique


def _check_tiers(tiers: Sequence[str], allowed_tiers: Sequence[str]) -> list[str]:
    unknown = [tier for tier in tiers if tier not in allowed_tiers]
    if unknown:
        raise InvalidInput(
            f"Unknown tiers: {', '.join(unknown)}.", field="tiers", allowed=list(allowed_tiers)
        )
    return list(dict.fromkeys(tiers))


async def create_campaign(
    connection: AsyncConnection,
    actor: Principal,
    *,
    name: str,
    kind: str,
    starts_at: datetime,
    ends_at: datetime,
    terms: dict[str, Any],
    allowed_tiers: Sequence[str],
    merchant_ids: Sequence[uuid.UUID] = (),
    tiers: Sequence[str] = (),
    holdout_bps: int = 0,
    per_member_cap_points: int | None = None,
    budget_points: int | None = None,
    audience: str = "triggered",
) -> Campaign:
    """A draft campaign. HQ keys create HQ-funded campaigns; a merchant key creates one
    owned and funded by its merchant. The arm salt is random and never changes."""
    canonical = validate_terms(kind, terms)
    validate_window(starts_at, ends_at)
    validate_audience(audience)
    validate_limits(
        holdout_bps=holdout_bps,
        per_member_cap_points=per_member_cap_points,
        budget_points=budget_points,
    )
    owner = None if actor.is_hq else actor.require_merchant()
    await _require_active(connection, actor)
    participants = await _participants(connection, actor, merchant_ids)
    row = (
        await connection.execute(
            insert(campaigns)
            .values(
                campaign_id=uuid.uuid4(),
                name=name,
                owner_merchant_id=owner,
                kind=kind,
                status="draft",
                starts_at=starts_at,
                ends_at=ends_at,
                terms=canonical,
                merchant_ids=participants,
                tiers=_check_tiers(tiers, allowed_tiers),
                holdout_bps=holdout_bps,
                salt=secrets.token_hex(16),
                per_member_cap_points=per_member_cap_points,
                budget_points=budget_points,
                audience=audience,
            )
            .returning(*_COLUMNS, effective_status_sql.label("effective_status"))
        )
    ).one()
    await audit.record(
        connection,
        actor,
        "campaign.created",
        "campaign",
        row.campaign_id,
        {"kind": kind, "ownerMerchantId": str(owner) if owner else None},
    )
    return _campaign(row)


async def get_campaign(
    connection: AsyncConnection, viewer: Principal, campaign_id: uuid.UUID
) -> Campaign:
    row = (
        await connection.execute(
            select(*_COLUMNS, effective_status_sql.label("effective_status")).where(
                campaigns.c.campaign_id == campaign_id, _visible(viewer)
            )
        )
    ).one_or_none()
    if row is None:
        raise _not_found(campaign_id)
    return _campaign(row)


async def list_campaigns(
    connection: AsyncConnection,
    viewer: Principal,
    *,
    status: str | None = None,
    owner: str | None = None,
    owner_merchant_id: uuid.UUID | None = None,
    limit: int = 100,
    offset: int = 0,
) -> tuple[list[Campaign], int]:
    """Filters: effective status; owner "hq" (network-funded) or "merchant" (any merchant);
    owner_merchant_id (one merchant). A merchant key only ever lists its own."""
    conditions = [_visible(viewer)]
    if status is not None:
        conditions.append(effective_status_sql == status)
    if owner == "hq":
        conditions.append(campaigns.c.owner_merchant_id.is_(None))
    elif owner == "merchant":
        conditions.append(campaigns.c.owner_merchant_id.is_not(None))
    if owner_merchant_id is not None:
        conditions.append(campaigns.c.owner_merchant_id == owner_merchant_id)
    rows = await connection.execute(
        select(*_COLUMNS, effective_status_sql.label("effective_status"))
        .where(*conditions)
        .order_by(campaigns.c.starts_at.desc(), campaigns.c.campaign_id)
        .limit(limit)
        .offset(offset)
    )
    total = await connection.scalar(select(func.count()).select_from(campaigns).where(*conditions))
    return [_campaign(row) for row in rows], int(total or 0)


async def _lock(connection: AsyncConnection, actor: Principal, campaign_id: uuid.UUID):
    """The campaign row, locked for the change, with its effective status and the DB now."""
    await _require_active(connection, actor)
    row = (
        await connection.execute(
            select(
                *_COLUMNS,
                effective_status_sql.label("effective_status"),
                func.now().label("db_now"),
            )
            .where(campaigns.c.campaign_id == campaign_id, _visible(actor))
            .with_for_update()
        )
    ).one_or_none()
    if row is None:
        raise _not_found(campaign_id)
    return row


_UPDATABLE = {
    "name",
    "kind",
    "starts_at",
    "ends_at",
    "terms",
    "merchant_ids",
    "tiers",
    "holdout_bps",
    "per_member_cap_points",
    "budget_points",
    "audience",
}


async def update_campaign(
    connection: AsyncConnection,
    actor: Principal,
    campaign_id: uuid.UUID,
    changes: dict[str, Any],
    allowed_tiers: Sequence[str],
) -> Campaign:
    """Changes a draft (any other status: 409 campaign-not-draft). The merged definition is
    validated as a whole: changing the kind needs terms valid for the new kind."""
    unknown = set(changes) - _UPDATABLE
    if unknown:
        raise InvalidInput(f"Cannot change {', '.join(sorted(unknown))}.")
    current = await _lock(connection, actor, campaign_id)
    if current.effective_status != "draft":
        raise CampaignNotDraft(
            f"Campaign {campaign_id} is {current.effective_status}; only a draft can change.",
            campaignStatus=current.effective_status,
        )
    if not changes:
        return _campaign(current)
    merged = {field: getattr(current, field) for field in _UPDATABLE} | changes
    values = dict(changes)
    if "kind" in changes or "terms" in changes:
        values["terms"] = validate_terms(merged["kind"], merged["terms"])
    validate_window(merged["starts_at"], merged["ends_at"])
    validate_audience(merged["audience"])
    validate_limits(
        holdout_bps=merged["holdout_bps"],
        per_member_cap_points=merged["per_member_cap_points"],
        budget_points=merged["budget_points"],
    )
    if "merchant_ids" in changes:
        values["merchant_ids"] = await _participants(connection, actor, changes["merchant_ids"])
    if "tiers" in changes:
        values["tiers"] = _check_tiers(changes["tiers"], allowed_tiers)
    row = (
        await connection.execute(
            update(campaigns)
            .where(campaigns.c.campaign_id == campaign_id)
            .values(**values, updated_at=func.now())
            .returning(*_COLUMNS, effective_status_sql.label("effective_status"))
        )
    ).one()
    await audit.record(
        connection, actor, "campaign.updated", "campaign", campaign_id, {"fields": sorted(changes)}
    )
    return _campaign(row)


async def schedule_campaign(
    connection: AsyncConnection, actor: Principal, campaign_id: uuid.UUID
) -> Campaign:
    """draft -> scheduled, when starts_at is still ahead of the database's now()."""
    current = await _lock(connection, actor, campaign_id)
    if current.effective_status != "draft":
        raise CampaignNotDraft(
            f"Campaign {campaign_id} is {current.effective_status}; only a draft is scheduled.",
            campaignStatus=current.effective_status,
        )
    if current.starts_at <= current.db_now:
        raise InvalidInput(
            "startsAt has passed: move it into the future before scheduling.",
            field="startsAt",
            startsAt=current.starts_at.isoformat(),
            now=current.db_now.isoformat(),
        )
    validate_window(current.starts_at, current.ends_at)
    row = await _set_status(connection, campaign_id, "scheduled")
    await budget.open_budget(connection, campaign_id, row.budget_points)
    await audit.record(connection, actor, "campaign.scheduled", "campaign", campaign_id)
    return _campaign(row)


async def cancel_campaign(
    connection: AsyncConnection, actor: Principal, campaign_id: uuid.UUID
) -> Campaign:
    """draft / scheduled / running -> cancelled; an ended or cancelled campaign: 409."""
    current = await _lock(connection, actor, campaign_id)
    if current.effective_status not in CANCELLABLE:
        raise Conflict(
            f"Campaign {campaign_id} is {current.effective_status} and cannot be cancelled.",
            campaignStatus=current.effective_status,
        )
    row = await _set_status(connection, campaign_id, "cancelled")
    await audit.record(
        connection,
        actor,
        "campaign.cancelled",
        "campaign",
        campaign_id,
        {"from": current.effective_status},
    )
    return _campaign(row)


async def _set_status(connection: AsyncConnection, campaign_id: uuid.UUID, status: str):
    return (
        await connection.execute(
            update(campaigns)
            .where(campaigns.c.campaign_id == campaign_id)
            .values(status=status, updated_at=func.now())
            .returning(*_COLUMNS, effective_status_sql.label("effective_status"))
        )
    ).one()


MAX_TARGETS_PER_CALL = 10_000


@dataclass(frozen=True, slots=True)
class TargetsAdded:
    added: int
    listed: int  # members on the list now
    unknown_member_ids: list[uuid.UUID]


async def add_targets(
    connection: AsyncConnection,
    actor: Principal,
    campaign_id: uuid.UUID,
    member_ids: Sequence[uuid.UUID],
) -> TargetsAdded:
    """Add members to a 'listed' draft campaign's target list (a segment, e.g. the at-risk
    list downloaded from the dashboard). Adding a member twice changes nothing; unknown or
    merged-away ids are reported and not added."""
    if len(member_ids) > MAX_TARGETS_PER_CALL:
        raise InvalidInput(f"At most {MAX_TARGETS_PER_CALL:,} members per call.", field="memberIds")
    current = await _lock(connection, actor, campaign_id)
    if current.effective_status != "draft":
        raise CampaignNotDraft(
            f"Campaign {campaign_id} is {current.effective_status}; only a draft's list changes.",
            campaignStatus=current.effective_status,
        )
    if current.audience != "listed":
        raise InvalidInput(
            "Only a campaign whose audience is 'listed' has a target list.", field="audience"
        )
    wanted = list(dict.fromkeys(member_ids))
    known = set(
        (
            await connection.execute(
                select(members.c.member_id).where(
                    members.c.member_id.in_(wanted), members.c.merged_into_member_id.is_(None)
                )
            )
        ).scalars()
    )
    rows = [{"member_id": m, "campaign_id": campaign_id} for m in wanted if m in known]
    added = 0
    if rows:
        added = len(
            (
                await connection.execute(
                    postgresql.insert(campaign_targets)
                    .values(rows)
                    .on_conflict_do_nothing()
                    .returning(campaign_targets.c.member_id)
                )
            ).all()
        )
    listed = await connection.scalar(
        select(func.count()).where(campaign_targets.c.campaign_id == campaign_id)
    )
    await audit.record(
        connection, actor, "campaign.targets_added", "campaign", campaign_id, {"added": added}
    )
    return TargetsAdded(added, int(listed), [m for m in wanted if m not in known])
