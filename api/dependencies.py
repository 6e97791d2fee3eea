"""Request-scoped dependencies: one database transaction per request, the caller, settings."""

from __future__ import annotations

from collections.abc import AsyncIterator

from litestar import Request
from litestar.datastructures import State
from litestar.di import NamedDependency
from sqlalchemy.ext.asyncio import AsyncConnection

from shared.access import Principal
from shared.settings import Settings


async def provide_transaction(state: State) -> AsyncIterator[AsyncConnection]:
    """Commits after the handler returned and before the response is sent; any exception
    (a domain error included) is thrown in here and rolls everything back."""
    async with state.engine.begin() as connection:
        yield connection


def provide_principal(request: Request) -> Principal:
    return request.user


def provide_settings(state: State) -> Settings:
    return state.settings


# Handler parameter types: the name of the parameter selects the provider.
Transaction = NamedDependency[AsyncConnection]
Caller = NamedDependency[Principal]
Config = NamedDependency[Settings]
