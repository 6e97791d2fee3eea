"""HTTP side of exactly-once writes (the rules live in shared/idempotency.py)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import msgspec
from litestar import MediaType, Request, Response
from sqlalchemy.ext.asyncio import AsyncConnection

from shared import idempotency
from shared.access import Principal

REPLAY_HEADER = "Idempotent-Replayed"


async def run_once(
    request: Request,
    transaction: AsyncConnection,
    principal: Principal,
    data: msgspec.Struct,
    operation: Callable[[], Awaitable[msgspec.Struct]],
    status_code: int = 201,
) -> Response:
    """Claim the key, run the operation, store and return its response (or replay it)."""
    key = idempotency.resolve_key(
        request.headers.get("idempotency-key"), getattr(data, "reference", None), request.url.path
    )
    # The decoded body, re-encoded: the same request in other whitespace is the same request.
    fingerprint = idempotency.request_fingerprint(
        request.method, request.url.path, msgspec.json.encode(data)
    )
    scope = idempotency.scope_of(principal)
    stored = await idempotency.claim(transaction, scope, key, fingerprint)
    if stored is not None:
        return Response(
            content=stored.body,
            status_code=stored.status_code,
            media_type=MediaType.JSON,
            headers={REPLAY_HEADER: "true"},
        )
    body = msgspec.json.encode(await operation())
    await idempotency.complete(transaction, scope, key, status_code, body)
    return Response(content=body, status_code=status_code, media_type=MediaType.JSON)
