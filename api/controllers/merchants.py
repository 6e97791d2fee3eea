"""HQ manages partner merchants, their commercial terms and stores."""

from __future__ import annotations

import uuid
from decimal import Decimal
from typing import Literal

from litestar import Controller, get, patch, post
from litestar.params import FromPath, FromQuery, JSONBody

from api.auth import hq_admin, hq_reader, writer
from api.dependencies import Caller, Config, Transaction
from api.problems import problem_responses
from api.schemas.common import Limit, Offset
from api.schemas.merchants import (
    MerchantCreate,
    MerchantOut,
    MerchantPage,
    MerchantUpdate,
    StoreCreate,
    StoreOut,
    StoreUpdate,
)
from api.wire import changes_of, to_wire
from shared import merchants
from shared.errors import NotFound

_DECIMAL_FIELDS = {"earn_rate", "issuance_price", "redemption_rate"}


class MerchantController(Controller):
    path = "/v1/merchants"
    tags = ["Merchants"]

    @post(
        guards=[hq_admin],
        summary="Create a merchant with its commercial terms",
        responses=problem_responses(400, 401, 403, 413, 422),
    )
    async def create_merchant(
        self,
        data: JSONBody[MerchantCreate],
        transaction: Transaction,
        principal: Caller,
        settings: Config,
    ) -> MerchantOut:
        merchant = await merchants.create_merchant(
            transaction,
            principal,
            name=data.name,
            industry=data.industry,
            currency=data.currency,
            earn_rate=Decimal(data.earn_rate),
            issuance_price=Decimal(data.issuance_price),
            redemption_rate=Decimal(data.redemption_rate),
            allowed_currencies=settings.currencies,
            pending_days=data.pending_days,
        )
        return to_wire(merchant, MerchantOut)

    @get(guards=[hq_reader], summary="List merchants", responses=problem_responses(400, 401, 403))
    async def list_merchants(
        self,
        transaction: Transaction,
        status: FromQuery[Literal["active", "suspended"] | None] = None,
        limit: FromQuery[Limit] = 100,
        offset: FromQuery[Offset] = 0,
    ) -> MerchantPage:
        items, total = await merchants.list_merchants(
            transaction, status=status, limit=limit, offset=offset
        )
        return MerchantPage(
            items=[to_wire(item, MerchantOut) for item in items],
            total=total,
            limit=limit,
            offset=offset,
        )

    @get(
        "/{merchant_id:uuid}",
        summary="Read a merchant (merchants: their own only)",
        responses=problem_responses(401, 404),
    )
    async def get_merchant(
        self, merchant_id: FromPath[uuid.UUID], transaction: Transaction, principal: Caller
    ) -> MerchantOut:
        return to_wire(
            await merchants.get_merchant(transaction, principal, merchant_id), MerchantOut
        )

    @patch(
        "/{merchant_id:uuid}",
        guards=[hq_admin],
        summary="Change a merchant's name or terms",
        responses=problem_responses(400, 401, 403, 404, 413, 422),
    )
    async def update_merchant(
        self,
        merchant_id: FromPath[uuid.UUID],
        data: JSONBody[MerchantUpdate],
        transaction: Transaction,
        principal: Caller,
        settings: Config,
    ) -> MerchantOut:
        changes = {
            key: Decimal(value) if key in _DECIMAL_FIELDS else value
            for key, value in changes_of(data).items()
        }
        merchant = await merchants.update_merchant(
            transaction, principal, merchant_id, changes, settings.currencies
        )
        return to_wire(merchant, MerchantOut)

    @post(
        "/{merchant_id:uuid}/suspend",
        guards=[hq_admin],
        status_code=200,
        summary="Suspend a merchant: its keys keep read access, writes are refused",
        responses=problem_responses(401, 403, 404),
    )
    async def suspend_merchant(
        self, merchant_id: FromPath[uuid.UUID], transaction: Transaction, principal: Caller
    ) -> MerchantOut:
        merchant = await merchants.set_merchant_status(
            transaction, principal, merchant_id, "suspended"
        )
        return to_wire(merchant, MerchantOut)

    @post(
        "/{merchant_id:uuid}/reactivate",
        guards=[hq_admin],
        status_code=200,
        summary="Reactivate a suspended merchant",
        responses=problem_responses(401, 403, 404),
    )
    async def reactivate_merchant(
        self, merchant_id: FromPath[uuid.UUID], transaction: Transaction, principal: Caller
    ) -> MerchantOut:
        merchant = await merchants.set_merchant_status(
            transaction, principal, merchant_id, "active"
        )
        return to_wire(merchant, MerchantOut)

    @post(
        "/{merchant_id:uuid}/stores",
        guards=[writer],
        summary="Open a store (HQ admins, or the merchant for itself)",
        responses=problem_responses(400, 401, 403, 404, 409, 413, 422),
    )
    async def create_store(
        self,
        merchant_id: FromPath[uuid.UUID],
        data: JSONBody[StoreCreate],
        transaction: Transaction,
        principal: Caller,
    ) -> StoreOut:
        store = await merchants.create_store(
            transaction,
            principal,
            merchant_id,
            code=data.code,
            name=data.name,
            city=data.city,
            country=data.country,
            timezone=data.timezone,
        )
        return to_wire(store, StoreOut)

    @get(
        "/{merchant_id:uuid}/stores",
        summary="List a merchant's stores",
        responses=problem_responses(401, 404),
    )
    async def list_stores(
        self, merchant_id: FromPath[uuid.UUID], transaction: Transaction, principal: Caller
    ) -> list[StoreOut]:
        stores = await merchants.list_stores(transaction, principal, merchant_id)
        return [to_wire(store, StoreOut) for store in stores]

    @patch(
        "/{merchant_id:uuid}/stores/{store_id:uuid}",
        guards=[writer],
        summary="Change or close a store",
        responses=problem_responses(400, 401, 403, 404, 413, 422),
    )
    async def update_store(
        self,
        merchant_id: FromPath[uuid.UUID],
        store_id: FromPath[uuid.UUID],
        data: JSONBody[StoreUpdate],
        transaction: Transaction,
        principal: Caller,
    ) -> StoreOut:
        if not principal.sees_merchant(merchant_id):
            raise NotFound(f"Merchant {merchant_id} does not exist.")
        store = await merchants.update_store(
            transaction, principal, merchant_id, store_id, changes_of(data)
        )
        return to_wire(store, StoreOut)
