"""API keys: HQ issues them; HQ or the owning merchant lists, rotates and revokes them."""

from __future__ import annotations

import uuid

from litestar import Controller, get, post
from litestar.params import FromPath, JSONBody
from sqlalchemy.ext.asyncio import AsyncConnection

from api.auth import hq_admin, writer
from api.dependencies import Caller, Transaction
from api.problems import problem_responses
from api.schemas.api_keys import (
    ApiKeyOut,
    HqKeyCreate,
    IssuedApiKeyOut,
    KeyRotate,
    MerchantKeyCreate,
)
from api.wire import to_wire
from shared import api_keys, merchants
from shared.access import Principal, Role
from shared.errors import NotFound


async def _owned_key(transaction: AsyncConnection, principal: Principal, key_id: uuid.UUID):
    key = await api_keys.get_key(transaction, key_id)
    if not principal.is_hq and key.merchant_id != principal.merchant_id:
        raise NotFound(f"API key {key_id} does not exist.")
    return key


class ApiKeyController(Controller):
    tags = ["API keys"]

    @post(
        "/v1/merchants/{merchant_id:uuid}/api-keys",
        guards=[hq_admin],
        summary="Issue a merchant API key (the secret is returned once)",
        responses=problem_responses(400, 401, 403, 404, 413),
    )
    async def issue_merchant_key(
        self,
        merchant_id: FromPath[uuid.UUID],
        data: JSONBody[MerchantKeyCreate],
        transaction: Transaction,
        principal: Caller,
    ) -> IssuedApiKeyOut:
        issued = await api_keys.issue_key(
            transaction, principal, role=Role.MERCHANT, label=data.label, merchant_id=merchant_id
        )
        return to_wire(issued, IssuedApiKeyOut)

    @get(
        "/v1/merchants/{merchant_id:uuid}/api-keys",
        summary="List a merchant's keys (never their secrets)",
        responses=problem_responses(401, 404),
    )
    async def list_merchant_keys(
        self, merchant_id: FromPath[uuid.UUID], transaction: Transaction, principal: Caller
    ) -> list[ApiKeyOut]:
        # Also a 404 for HQ when the merchant does not exist (an empty list would hide a typo).
        await merchants.get_merchant(transaction, principal, merchant_id)
        keys = await api_keys.list_keys(transaction, merchant_id=merchant_id)
        return [to_wire(key, ApiKeyOut) for key in keys]

    @post(
        "/v1/hq/api-keys",
        guards=[hq_admin],
        summary="Issue an HQ key (hq_admin or hq_analyst)",
        responses=problem_responses(400, 401, 403, 413),
    )
    async def issue_hq_key(
        self, data: JSONBody[HqKeyCreate], transaction: Transaction, principal: Caller
    ) -> IssuedApiKeyOut:
        issued = await api_keys.issue_key(
            transaction, principal, role=Role(data.role), label=data.label
        )
        return to_wire(issued, IssuedApiKeyOut)

    @get(
        "/v1/hq/api-keys",
        guards=[hq_admin],
        summary="List HQ keys",
        responses=problem_responses(401, 403),
    )
    async def list_hq_keys(self, transaction: Transaction) -> list[ApiKeyOut]:
        return [
            to_wire(key, ApiKeyOut) for key in await api_keys.list_keys(transaction, hq_only=True)
        ]

    @post(
        "/v1/api-keys/{key_id:uuid}/rotate",
        guards=[writer],
        summary="Replace a key; the old one keeps working for `graceSeconds`",
        responses=problem_responses(400, 401, 403, 404, 413, 422),
    )
    async def rotate_key(
        self,
        key_id: FromPath[uuid.UUID],
        data: JSONBody[KeyRotate],
        transaction: Transaction,
        principal: Caller,
    ) -> IssuedApiKeyOut:
        await _owned_key(transaction, principal, key_id)
        issued = await api_keys.rotate_key(transaction, principal, key_id, data.grace_seconds)
        return to_wire(issued, IssuedApiKeyOut)

    @post(
        "/v1/api-keys/{key_id:uuid}/revoke",
        guards=[writer],
        status_code=200,
        summary="Revoke a key at once (idempotent)",
        responses=problem_responses(401, 403, 404),
    )
    async def revoke_key(
        self, key_id: FromPath[uuid.UUID], transaction: Transaction, principal: Caller
    ) -> ApiKeyOut:
        await _owned_key(transaction, principal, key_id)
        return to_wire(await api_keys.revoke_key(transaction, principal, key_id), ApiKeyOut)
