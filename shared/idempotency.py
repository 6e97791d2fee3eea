"""Exactly-once writes: the idempotency key is claimed in the same transaction as the effect.

1. `claim` inserts (scope, key, request hash) with ON CONFLICT DO NOTHING. A concurrent
   request with the same key blocks on the primary key until the first one commits or
   rolls back; then it either sees the stored response, or (after a rollback) wins the
   claim itself. Exactly one effect, whatever the timing.
2. The operation runs; `complete` stores the status code and the encoded response body.
3. A replay with the same request returns the stored response byte for byte; the same
   key with a different request is a 409 `idempotency-key-reused`.

Failed requests (4xx problems) roll back with the claim, so a retry runs again: nothing
was written the first time, and the member's balance may have changed since.
"""

from __future__ import annotations

import hashlib
import uuid
from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncConnection

from shared.access import Principal
from shared.database.driver import driver
from shared.errors import IdempotencyKeyRequired, IdempotencyKeyReused, InvalidInput

HQ_SCOPE = uuid.UUID(int=0)
MAX_KEY_LENGTH = 255


@dataclass(frozen=True, slots=True)
class StoredResponse:
    status_code: int
    body: bytes


def request_fingerprint(method: str, path: str, body: bytes) -> bytes:
    return hashlib.sha256(method.encode() + b" " + path.encode() + b"\n" + body).digest()


def scope_of(principal: Principal) -> uuid.UUID:
    return principal.merchant_id or HQ_SCOPE


def resolve_key(header_value: str | None, reference: str | None, operation: str) -> str:
    """The header as sent; a body `reference` is namespaced by `operation`, because a till
    naturally reuses its basket number for the earn and the redemption of one basket."""
    key = header_value or reference
    if not key:
        raise IdempotencyKeyRequired(
            "Send an Idempotency-Key header (or a `reference`: your own transaction id)."
        )
    if len(key) > MAX_KEY_LENGTH or not key.isprintable():
        raise InvalidInput(f"An idempotency key is 1-{MAX_KEY_LENGTH} printable characters.")
    return key if header_value else f"{operation}:{reference}"


_CLAIM_SQL = """
INSERT INTO idempotency_records (scope_id, idempotency_key, request_hash) VALUES ($1, $2, $3)
ON CONFLICT DO NOTHING RETURNING scope_id
"""
_STORED_SQL = """
SELECT request_hash, status_code, response_body FROM idempotency_records
WHERE scope_id = $1 AND idempotency_key = $2
"""
_COMPLETE_SQL = """
UPDATE idempotency_records SET status_code = $3, response_body = $4
WHERE scope_id = $1 AND idempotency_key = $2
"""


async def claim(
    connection: AsyncConnection, scope_id: uuid.UUID, key: str, fingerprint: bytes
) -> StoredResponse | None:
    """None: this request owns the key and must run; otherwise the response to replay."""
    database = await driver(connection)
    if await database.fetchval(_CLAIM_SQL, scope_id, key, fingerprint) is not None:
        return None
    row = await database.fetchrow(_STORED_SQL, scope_id, key)
    if row["request_hash"] != fingerprint:
        raise IdempotencyKeyReused(
            "This Idempotency-Key was used for a different request; use a new key."
        )
    return StoredResponse(int(row["status_code"]), row["response_body"])


async def complete(
    connection: AsyncConnection, scope_id: uuid.UUID, key: str, status_code: int, body: bytes
) -> None:
    await (await driver(connection)).execute(_COMPLETE_SQL, scope_id, key, status_code, body)
