"""Partner merchants, their commercial terms and their stores (small reference tables)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import func, insert, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection

from shared import audit
from shared.access import Principal
from shared.errors import Conflict, InvalidInput, MerchantNotActive, NotFound
from shared.tables import merchants, stores

# The merchant id that stands for the network itself, which no merchant row has: HQ as the
# issuer or redeemer of points it funded itself, and the merchant of network-wide rows.
NETWORK = uuid.UUID(int=0)

INDUSTRIES = (
    "grocery", "coffee", "fuel", "pharmacy", "cinema", "restaurant", "fashion", "travel",
    "electronics", "home", "beauty", "books", "other",
)  # fmt: skip


@dataclass(frozen=True, slots=True)
class Merchant:
    merchant_id: uuid.UUID
    name: str
    industry: str
    status: str
    currency: str
    earn_rate: Decimal
    issuance_price: Decimal
    redemption_rate: Decimal
    pending_days: int
    created_at: datetime
    updated_at: datetime


@dataclass(frozen=True, slots=True)
class Store:
    store_id: uuid.UUID
    merchant_id: uuid.UUID
    code: str
    name: str
    city: str | None
    country: str | None
    timezone: str
    status: str
    created_at: datetime


def _merchant(row) -> Merchant:
    return Merchant(**{field: getattr(row, field) for field in Merchant.__slots__})


def _store(row) -> Store:
    return Store(**{field: getattr(row, field) for field in Store.__slots__})


def validate_terms(
    *, industry: str | None = None, currency: str | None = None, allowed_currencies: list[str]
) -> None:
    if industry is not None and industry not in INDUSTRIES:
        raise InvalidInput(f"Unknown industry {industry!r}.", allowed=list(INDUSTRIES))
    if currency is not None and currency not in allowed_currencies:
        raise InvalidInput(
            f"The program does not settle in {currency!r}.", allowed=allowed_currencies
        )


async def create_merchant(
    connection: AsyncConnection,
    actor: Principal,
    *,
    name: str,
    industry: str,
    currency: str,
    earn_rate: Decimal,
    issuance_price: Decimal,
    redemption_rate: Decimal,
    allowed_currencies: list[str],
    pending_days: int = 0,
) -> Merchant:
    validate_terms(industry=industry, currency=currency, allowed_currencies=allowed_currencies)
    row = (
        await connection.execute(
            insert(merchants)
            .values(
                merchant_id=uuid.uuid4(),
                name=name,
                industry=industry,
                currency=currency,
                earn_rate=earn_rate,
                issuance_price=issuance_price,
                redemption_rate=redemption_rate,
                pending_days=pending_days,
            )
            .returning(merchants)
        )
    ).one()
    await audit.record(connection, actor, "merchant.created", "merchant", row.merchant_id)
    return _merchant(row)


async def get_merchant(
    connection: AsyncConnection, viewer: Principal, merchant_id: uuid.UUID
) -> Merchant:
    if not viewer.sees_merchant(merchant_id):
        raise NotFound(f"Merchant {merchant_id} does not exist.")
    row = (
        await connection.execute(select(merchants).where(merchants.c.merchant_id == merchant_id))
    ).one_or_none()
    if row is None:
        raise NotFound(f"Merchant {merchant_id} does not exist.")
    return _merchant(row)


async def list_merchants(
    connection: AsyncConnection, *, status: str | None, limit: int, offset: int
) -> tuple[list[Merchant], int]:
    query = select(merchants)
    count = select(func.count()).select_from(merchants)
    if status is not None:
        query = query.where(merchants.c.status == status)
        count = count.where(merchants.c.status == status)
    rows = await connection.execute(
        query.order_by(merchants.c.name, merchants.c.merchant_id).limit(limit).offset(offset)
    )
    return [_merchant(row) for row in rows], await connection.scalar(count)


async def update_merchant(
    connection: AsyncConnection,
    actor: Principal,
    merchant_id: uuid.UUID,
    changes: dict[str, Any],
    allowed_currencies: list[str],
) -> Merchant:
    """Changes terms going forward; past transactions keep the terms they were posted with."""
    validate_terms(
        industry=changes.get("industry"),
        currency=changes.get("currency"),
        allowed_currencies=allowed_currencies,
    )
    if not changes:
        return await get_merchant(connection, actor, merchant_id)
    row = (
        await connection.execute(
            update(merchants)
            .where(merchants.c.merchant_id == merchant_id)
            .values(**changes, updated_at=func.now())
            .returning(merchants)
        )
    ).one_or_none()
    if row is None:
        raise NotFound(f"Merchant {merchant_id} does not exist.")
    await audit.record(
        connection,
        actor,
        "merchant.updated",
        "merchant",
        merchant_id,
        {key: str(value) for key, value in changes.items()},
    )
    return _merchant(row)


async def set_merchant_status(
    connection: AsyncConnection, actor: Principal, merchant_id: uuid.UUID, status: str
) -> Merchant:
    row = (
        await connection.execute(
            update(merchants)
            .where(merchants.c.merchant_id == merchant_id)
            .values(status=status, updated_at=func.now())
            .returning(merchants)
        )
    ).one_or_none()
    if row is None:
        raise NotFound(f"Merchant {merchant_id} does not exist.")
    await audit.record(connection, actor, f"merchant.{status}", "merchant", merchant_id)
    return _merchant(row)


async def create_store(
    connection: AsyncConnection,
    actor: Principal,
    merchant_id: uuid.UUID,
    *,
    code: str,
    name: str,
    city: str | None,
    country: str | None,
    timezone: str,
) -> Store:
    merchant = await get_merchant(connection, actor, merchant_id)
    if not actor.is_hq and merchant.status != "active":
        raise MerchantNotActive("The merchant is suspended: it keeps read access only.")
    _check_timezone(timezone)
    try:
        async with connection.begin_nested():
            row = (
                await connection.execute(
                    insert(stores)
                    .values(
                        store_id=uuid.uuid4(),
                        merchant_id=merchant_id,
                        code=code,
                        name=name,
                        city=city,
                        country=country,
                        timezone=timezone,
                    )
                    .returning(stores)
                )
            ).one()
    except IntegrityError:
        raise Conflict(f"The merchant already has a store with code {code!r}.") from None
    await audit.record(connection, actor, "store.created", "store", row.store_id)
    return _store(row)


async def list_stores(
    connection: AsyncConnection, viewer: Principal, merchant_id: uuid.UUID
) -> list[Store]:
    await get_merchant(connection, viewer, merchant_id)
    rows = await connection.execute(
        select(stores).where(stores.c.merchant_id == merchant_id).order_by(stores.c.code)
    )
    return [_store(row) for row in rows]


async def update_store(
    connection: AsyncConnection,
    actor: Principal,
    merchant_id: uuid.UUID,
    store_id: uuid.UUID,
    changes: dict[str, Any],
) -> Store:
    await get_merchant(connection, actor, merchant_id)
    if "timezone" in changes:
        _check_timezone(changes["timezone"])
    row = (
        await connection.execute(
            update(stores)
            .where(stores.c.store_id == store_id, stores.c.merchant_id == merchant_id)
            .values(**changes, updated_at=func.now())
            .returning(stores)
        )
    ).one_or_none()
    if row is None:
        raise NotFound(f"Store {store_id} does not exist.")
    await audit.record(connection, actor, "store.updated", "store", store_id)
    return _store(row)


def _check_timezone(name: str) -> None:
    from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

    try:
        ZoneInfo(name)
    # OSError: a region directory of the tz database ("Europe") is opened as if it were a zone.
    except (ZoneInfoNotFoundError, ValueError, OSError):
        raise InvalidInput(f"Unknown IANA time zone {name!r}.") from None


@dataclass(frozen=True, slots=True)
class Terms:
    merchant_id: uuid.UUID
    currency: str
    earn_rate: Decimal
    pending_days: int


def posting_terms(merchant_id: uuid.UUID, row: Any | None) -> Terms:
    """The terms a transaction is posted with, from the merchant's status, currency,
    earn_rate and pending_days (`row`, None when there is no such merchant); a suspended
    merchant cannot transact."""
    if row is None:
        raise NotFound(f"Merchant {merchant_id} does not exist.")
    if row.status != "active":
        raise MerchantNotActive("The merchant is suspended and cannot post transactions.")
    return Terms(merchant_id, row.currency, row.earn_rate, int(row.pending_days))


async def transacting_terms(connection: AsyncConnection, merchant_id: uuid.UUID) -> Terms:
    """The terms a transaction is posted with; a suspended merchant cannot transact."""
    row = (
        await connection.execute(
            select(
                merchants.c.status,
                merchants.c.currency,
                merchants.c.earn_rate,
                merchants.c.pending_days,
            ).where(merchants.c.merchant_id == merchant_id)
        )
    ).one_or_none()
    return posting_terms(merchant_id, row)
