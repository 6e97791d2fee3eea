"""HTTP side of exactly-once writes (the rules live in shared/idempotency.py)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import msgspec
from litestar import MediaType, Request, Response
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from shared import idempotency
from shared.access import Principal
from shared.settings import Settings

REPLAY_HEADER = "Idempotent-Replayed"

Operation = Callable[[AsyncConnection, Principal, Settings], Awaitable[msgspec.Struct]]


async def run_once(
    request: Request, data: msgspec.Struct, operation: Operation, status_code: int = 201
) -> Response:
    """Claim the key, run the operation, store and return its response (or replay it): one
    transaction, committed before the response is sent and rolled back by any error.

    The write opens that transaction itself rather than taking the `transaction`, `principal`
    and `settings` dependencies: Litestar resolves independent dependencies in an anyio task
    group, which cost a till's request more than its routing, guards and body decoding.
    """
    principal: Principal = request.user
    settings: Settings = request.app.state.settings
    engine: AsyncEngine = request.app.state.engine
    key = idempotency.resolve_key(
        request.headers.get("idempotency-key"), getattr(data, "reference", None), request.url.path
    )
    # The decoded body, re-encoded: the same request in other whitespace is the same request.
    fingerprint = idempotency.request_fingerprint(
        request.method, request.url.path, msgspec.json.encode(data)
    )
    scope = idempotency.scope_of(principal)
    async with engine.begin() as transaction:
        stored = await idempotency.claim(transaction, scope, key, fingerprint)
        if stored is not None:
            return Response(
                content=stored.body,
                status_code=stored.status_code,
                media_type=MediaType.JSON,
                headers={REPLAY_HEADER: "true"},
            )
        body = msgspec.json.encode(await operation(transaction, principal, settings))
        await idempotency.complete(transaction, scope, key, status_code, body)
    return Response(content=body, status_code=status_code, media_type=MediaType.JSON)
