"""HTTP side of exactly-once writes (the rules live in shared/idempotency.py)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import msgspec
from litestar import MediaType, Request, Response
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from shared import idempotency
from shared.access import Principal
from shared.errors import DomainError
from shared.settings import Settings

REPLAY_HEADER = "Idempotent-Replayed"

Operation = Callable[[AsyncConnection, Principal, Settings], Awaitable[msgspec.Struct]]


class _KeyTaken(Exception):
    """Raised inside the write's transaction to roll back its effect: the key has another."""


async def run_once(
    request: Request, data: msgspec.Struct, operation: Operation, status_code: int = 201
) -> Response:
    """Run the operation and record its response under the key in one transaction, committed
    before the response is sent; or replay the response the key already has.

    The write opens that transaction itself rather than taking the `transaction`, `principal`
    and `settings` dependencies: Litestar resolves independent dependencies in an anyio task
    group, which was 8 % of an API worker's CPU samples under the earn benchmark.
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
    try:
        async with engine.begin() as transaction:
            body = msgspec.json.encode(await operation(transaction, principal, settings))
            if not await idempotency.record(
                transaction, scope, key, fingerprint, status_code, body
            ):
                raise _KeyTaken
    except (_KeyTaken, DomainError) as error:
        async with engine.connect() as connection:
            stored = await idempotency.stored_response(connection, scope, key, fingerprint)
        if stored is not None:
            return Response(
                content=stored.body,
                status_code=stored.status_code,
                media_type=MediaType.JSON,
                headers={REPLAY_HEADER: "true"},
            )
        if isinstance(error, _KeyTaken):  # taken, then gone (a purge of old keys): free again
            return await run_once(request, data, operation, status_code)
        raise
    return Response(content=body, status_code=status_code, media_type=MediaType.JSON)
