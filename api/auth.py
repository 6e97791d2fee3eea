"""API-key authentication (middleware) and role guards (plain functions).

The guards are coroutines although they never await: Litestar runs a synchronous guard in a
worker thread, and that hand-off was 13 % of an API worker's CPU samples under the earn
benchmark (docs/benchmarks.md).
"""

from __future__ import annotations

from litestar.connection import ASGIConnection
from litestar.handlers.base import BaseRouteHandler
from litestar.middleware import AbstractAuthenticationMiddleware, AuthenticationResult
from sqlalchemy.ext.asyncio import AsyncEngine

from shared import api_keys
from shared.access import Principal, Role
from shared.errors import Forbidden
from shared.settings import Settings

PUBLIC_PATHS = {"/health", "/ready", "/schema", "/problems"}


def presented_key(connection: ASGIConnection) -> str | None:
    authorization = connection.headers.get("authorization")
    if authorization:
        scheme, _, credentials = authorization.partition(" ")
        if scheme.lower() == "bearer":
            return credentials.strip()
        return "<malformed>"  # another scheme: treated as a malformed key
    return connection.headers.get("x-api-key")


class ApiKeyAuthentication(AbstractAuthenticationMiddleware):
    async def authenticate_request(self, connection: ASGIConnection) -> AuthenticationResult:
        presented = presented_key(connection)
        principal = api_keys.principal_cache.get(presented)
        if principal is None:
            engine: AsyncEngine = connection.app.state.engine
            settings: Settings = connection.app.state.settings
            async with engine.begin() as database:
                principal = await api_keys.authenticate(
                    database, presented, settings.api_key_last_used_resolution_seconds
                )
            api_keys.principal_cache.put(presented, principal, settings.api_key_cache_seconds)
        return AuthenticationResult(user=principal, auth=principal.key_id)


def _principal(connection: ASGIConnection) -> Principal:
    return connection.user


async def hq_admin(connection: ASGIConnection, _: BaseRouteHandler) -> None:
    if _principal(connection).role is not Role.HQ_ADMIN:
        raise Forbidden("This operation needs an hq_admin key.")


async def hq_reader(connection: ASGIConnection, _: BaseRouteHandler) -> None:
    if not _principal(connection).is_hq:
        raise Forbidden("This operation needs an HQ key (hq_admin or hq_analyst).")


async def writer(connection: ASGIConnection, _: BaseRouteHandler) -> None:
    """Merchants and HQ admins write; analysts only read."""
    if _principal(connection).role is Role.HQ_ANALYST:
        raise Forbidden("hq_analyst keys are read-only.")


async def merchant_only(connection: ASGIConnection, _: BaseRouteHandler) -> None:
    if _principal(connection).role is not Role.MERCHANT:
        raise Forbidden("This operation needs a merchant key.")
