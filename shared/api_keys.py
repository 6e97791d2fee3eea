"""API keys: issued once, stored as a hash, found by prefix, rotated with grace, revoked.

Key shape: `coal_<12-char prefix>_<43-char secret>`. The prefix is stored in clear for
lookup and for support ("which key is this?"); the whole key is stored as SHA-256. A slow
password hash (argon2) would add tens of milliseconds to every POS call for nothing: these
keys carry 256 bits of randomness, so a fast hash is already beyond brute force (the same
choice GitHub and Stripe tokens make). Comparison is constant-time.

`last_used_at` is written at most once per resolution window per key, with a conditional
UPDATE, so a busy POS key does not turn its row into a hot row.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import secrets
import time
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import func, insert, or_, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from shared import audit
from shared.access import Principal, Role
from shared.errors import InvalidInput, NotFound, Unauthenticated
from shared.tables import api_keys, merchants

KEY_PATTERN = re.compile(r"^coal_([a-z2-7]{12})_([A-Za-z0-9_\-]{43})$")


@dataclass(frozen=True, slots=True)
class ApiKey:
    key_id: uuid.UUID
    prefix: str
    role: str
    merchant_id: uuid.UUID | None
    label: str
    created_at: datetime
    last_used_at: datetime | None
    expires_at: datetime | None
    revoked_at: datetime | None


@dataclass(frozen=True, slots=True)
class IssuedKey:
    """The only object that ever holds the secret; it is shown once and not stored."""

    key: ApiKey
    secret: str


def new_secret() -> tuple[str, str]:
    prefix = base64.b32encode(secrets.token_bytes(10)).decode().lower()[:12]
    return prefix, f"coal_{prefix}_{secrets.token_urlsafe(32)}"


def hash_secret(secret: str) -> bytes:
    return hashlib.sha256(secret.encode()).digest()


def _key(row) -> ApiKey:
    return ApiKey(
        key_id=row.key_id,
        prefix=row.prefix,
        role=row.role,
        merchant_id=row.merchant_id,
        label=row.label,
        created_at=row.created_at,
        last_used_at=row.last_used_at,
        expires_at=row.expires_at,
        revoked_at=row.revoked_at,
    )


_COLUMNS = (
    api_keys.c.key_id,
    api_keys.c.prefix,
    api_keys.c.role,
    api_keys.c.merchant_id,
    api_keys.c.label,
    api_keys.c.created_at,
    api_keys.c.last_used_at,
    api_keys.c.expires_at,
    api_keys.c.revoked_at,
)


async def issue_key(
    connection: AsyncConnection,
    actor: Principal,
    *,
    role: Role,
    label: str,
    merchant_id: uuid.UUID | None = None,
) -> IssuedKey:
    if (role is Role.MERCHANT) != (merchant_id is not None):
        raise InvalidInput("Merchant keys belong to one merchant; HQ keys to none.")
    if merchant_id is not None:
        exists = await connection.scalar(
            select(merchants.c.merchant_id).where(merchants.c.merchant_id == merchant_id)
        )
        if exists is None:
            raise NotFound(f"Merchant {merchant_id} does not exist.")
    prefix, secret = new_secret()
    row = (
        await connection.execute(
            insert(api_keys)
            .values(
                key_id=uuid.uuid4(),
                prefix=prefix,
                secret_hash=hash_secret(secret),
                role=role.value,
                merchant_id=merchant_id,
                label=label,
                created_by_key_id=actor.key_id,
            )
            .returning(*_COLUMNS)
        )
    ).one()
    await audit.record(
        connection,
        actor,
        "api_key.issued",
        "api_key",
        row.key_id,
        {
            "role": role.value,
            "merchantId": str(merchant_id) if merchant_id else None,
            "label": label,
        },
    )
    return IssuedKey(key=_key(row), secret=secret)


class PrincipalCache:
    """Recently authenticated keys, per process: a POS firing requests back to back skips the
    key lookup. Revoking or rotating a key forgets it here at once; other API processes
    notice within `ttl_seconds` (COALITION_API_KEY_CACHE_SECONDS, 0 disables the cache)."""

    def __init__(self) -> None:
        self._entries: dict[bytes, tuple[Principal, float]] = {}

    def get(self, presented: str | None) -> Principal | None:
        if not presented:
            return None
        entry = self._entries.get(hash_secret(presented))
        if entry is None or entry[1] < time.monotonic():
            return None
        return entry[0]

    def put(self, presented: str, principal: Principal, ttl_seconds: float) -> None:
        if ttl_seconds > 0:
            if len(self._entries) > 10_000:
                self._entries.clear()
            self._entries[hash_secret(presented)] = (principal, time.monotonic() + ttl_seconds)

    def forget(self, key_id: uuid.UUID) -> None:
        for digest, (principal, _) in list(self._entries.items()):
            if principal.key_id == key_id:
                self._entries.pop(digest, None)


principal_cache = PrincipalCache()


async def authenticate(
    connection: AsyncConnection, presented: str | None, last_used_resolution_seconds: int = 60
) -> Principal:
    """Resolve a presented key to a principal, or raise Unauthenticated (never says which)."""
    if not presented:
        raise Unauthenticated("No API key: send `Authorization: Bearer <key>` or `X-API-Key`.")
    match = KEY_PATTERN.match(presented)
    if match is None:
        raise Unauthenticated("The API key is malformed.")
    row = (
        await connection.execute(
            select(
                api_keys.c.key_id,
                api_keys.c.secret_hash,
                api_keys.c.role,
                api_keys.c.merchant_id,
                api_keys.c.revoked_at,
                api_keys.c.expires_at,
                api_keys.c.last_used_at,
                func.now().label("now"),
            ).where(api_keys.c.prefix == match.group(1))
        )
    ).one_or_none()
    if row is None or not hmac.compare_digest(row.secret_hash, hash_secret(presented)):
        raise Unauthenticated("The API key is not known.")
    if row.revoked_at is not None and row.revoked_at <= row.now:
        raise Unauthenticated("The API key has been revoked.")
    if row.expires_at is not None and row.expires_at <= row.now:
        raise Unauthenticated("The API key has expired (it was rotated).")
    window = timedelta(seconds=last_used_resolution_seconds)
    if row.last_used_at is None or row.last_used_at < row.now - window:
        await connection.execute(
            update(api_keys)
            .where(
                api_keys.c.key_id == row.key_id,
                or_(
                    api_keys.c.last_used_at.is_(None), api_keys.c.last_used_at < func.now() - window
                ),
            )
            .values(last_used_at=func.now())
        )
    return Principal(role=Role(row.role), key_id=row.key_id, merchant_id=row.merchant_id)


async def list_keys(
    connection: AsyncConnection, *, merchant_id: uuid.UUID | None = None, hq_only: bool = False
) -> list[ApiKey]:
    query = select(*_COLUMNS).order_by(api_keys.c.created_at, api_keys.c.key_id)
    if merchant_id is not None:
        query = query.where(api_keys.c.merchant_id == merchant_id)
    elif hq_only:
        query = query.where(api_keys.c.merchant_id.is_(None))
    return [_key(row) for row in await connection.execute(query)]


async def _lock_live_key(connection: AsyncConnection, key_id: uuid.UUID):
    row = (
        await connection.execute(
            select(api_keys).where(api_keys.c.key_id == key_id).with_for_update()
        )
    ).one_or_none()
    if row is None:
        raise NotFound(f"API key {key_id} does not exist.")
    return row


async def revoke_key(connection: AsyncConnection, actor: Principal, key_id: uuid.UUID) -> ApiKey:
    """Idempotent: revoking a revoked key keeps its first revocation time."""
    await _lock_live_key(connection, key_id)
    row = (
        await connection.execute(
            update(api_keys)
            .where(api_keys.c.key_id == key_id)
            .values(revoked_at=func.coalesce(api_keys.c.revoked_at, func.now()))
            .returning(*_COLUMNS)
        )
    ).one()
    await audit.record(connection, actor, "api_key.revoked", "api_key", key_id)
    principal_cache.forget(key_id)
    return _key(row)


async def rotate_key(
    connection: AsyncConnection, actor: Principal, key_id: uuid.UUID, grace_seconds: int = 0
) -> IssuedKey:
    """A new key with the same role, merchant and label; the old one stops working after
    `grace_seconds`, so a fleet of tills can switch over without an outage."""
    old = await _lock_live_key(connection, key_id)
    if old.revoked_at is not None:
        raise InvalidInput("A revoked key cannot be rotated; issue a new one.")
    if old.replaced_by_key_id is not None:
        raise InvalidInput("This key was already rotated; rotate its replacement.")
    issued = await issue_key(
        connection, actor, role=Role(old.role), label=old.label, merchant_id=old.merchant_id
    )
    ends = func.now() + timedelta(seconds=grace_seconds)
    await connection.execute(
        update(api_keys)
        .where(api_keys.c.key_id == key_id)
        .values(
            replaced_by_key_id=issued.key.key_id,
            expires_at=func.least(func.coalesce(api_keys.c.expires_at, ends), ends),
        )
    )
    if grace_seconds == 0:
        principal_cache.forget(key_id)
    await audit.record(
        connection,
        actor,
        "api_key.rotated",
        "api_key",
        key_id,
        {"replacedBy": str(issued.key.key_id), "graceSeconds": grace_seconds},
    )
    return issued


async def get_key(connection: AsyncConnection, key_id: uuid.UUID) -> ApiKey:
    row = (
        await connection.execute(select(*_COLUMNS).where(api_keys.c.key_id == key_id))
    ).one_or_none()
    if row is None:
        raise NotFound(f"API key {key_id} does not exist.")
    return _key(row)
