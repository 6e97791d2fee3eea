"""Exactly-once writes: the key is recorded, with the response, by the write's own transaction.

1. The operation runs in its transaction.
2. `record` inserts (scope, key, request hash, status code, response body) with
   ON CONFLICT DO NOTHING, as that transaction's last statement. A concurrent request with
   the same key blocks on the primary key until the first one commits or rolls back; then
   it either finds the key taken, or (after a rollback) records its own response.
3. A request that finds the key taken rolls back its own effect and replays the stored
   response byte for byte; the same key with a different request is a 409
   `idempotency-key-reused`. Exactly one effect, whatever the timing.
4. A request that fails (a 4xx problem) also looks for a stored response: a retry of a
   redemption that succeeded may now find too few points, and must get the original answer.

Recording at the end rather than claiming at the start saves a statement and an update
of the record on every write (the till's earn is the hot path); a duplicate, which is rare,
pays by running the operation again before it is rolled back.

Failed requests roll back and leave the key free, so a retry runs again: nothing was
written the first time, and the member's balance may have changed since.
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


_RECORD_SQL = """
INSERT INTO idempotency_records (scope_id, idempotency_key, request_hash, status_code, response_body)
VALUES ($1, $2, $3, $4, $5)
ON CONFLICT DO NOTHING RETURNING scope_id
"""
_STORED_SQL = """
SELECT request_hash, status_code, response_body FROM idempotency_records
WHERE scope_id = $1 AND idempotency_key = $2
"""


async def record(
    connection: AsyncConnection,
    scope_id: uuid.UUID,
    key: str,
    fingerprint: bytes,
    status_code: int,
    body: bytes,
) -> bool:
    """True: the key is this request's (commit); False: another request has it (roll back)."""
    database = await driver(connection)
    recorded = await database.fetchval(_RECORD_SQL, scope_id, key, fingerprint, status_code, body)
    return recorded is not None


async def stored_response(
    connection: AsyncConnection, scope_id: uuid.UUID, key: str, fingerprint: bytes
) -> StoredResponse | None:
    """The response recorded for this key, if any; a different request under it is an error."""
    row = await (await driver(connection)).fetchrow(_STORED_SQL, scope_id, key)
    if row is None:
        return None
    if row["request_hash"] != fingerprint:
        raise IdempotencyKeyReused(
            "This Idempotency-Key was used for a different request; use a new key."
        )
    return StoredResponse(int(row["status_code"]), row["response_body"])
