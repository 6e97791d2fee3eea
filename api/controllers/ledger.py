"""The merchant's till: earn, redeem, holds, refunds and reversals, each exactly once."""

from __future__ import annotations

import uuid

from litestar import Controller, Request, Response, get, post
from litestar.params import FromPath, JSONBody

from api.auth import merchant_only
from api.dependencies import Caller, Transaction
from api.idempotency import run_once
from api.problems import problem_responses
from api.schemas.ledger import (
    CaptureIn,
    CorrectionOut,
    EarnIn,
    EarnOut,
    EmptyIn,
    HoldIn,
    HoldOut,
    RedeemIn,
    RedemptionOut,
    RefundIn,
)
from api.wire import to_wire
from shared.ledger import corrections, earning, redemption
from shared.ledger.rules import LineItem
from shared.members import MemberRef

_IDEMPOTENCY = {
    400: ["invalid-request", "idempotency-key-required"],
    409: ["idempotency-key-reused"],
}
_MEMBER_WRITE = {
    **_IDEMPOTENCY,
    404: ["not-found"],
    409: ["idempotency-key-reused", "member-not-active"],
    403: ["forbidden", "merchant-not-active"],
    422: ["invalid-input", "invalid-identifier", "currency-mismatch"],
}
_SPEND = {
    **_MEMBER_WRITE,
    409: ["idempotency-key-reused", "member-not-active", "insufficient-points"],
    422: ["invalid-input", "invalid-identifier", "currency-mismatch", "below-minimum-redemption"],
}
_ALL = (400, 401, 403, 404, 409, 413, 422)


def _member_ref(data) -> MemberRef:
    return MemberRef(data.member.kind, data.member.value)


class LedgerController(Controller):
    tags = ["Points"]
    guards = [merchant_only]

    @post(
        "/v1/earn",
        summary="Award points for a purchase (idempotent)",
        responses=problem_responses(*_ALL, slugs=_MEMBER_WRITE),
    )
    async def earn(
        self,
        request: Request,
        data: JSONBody[EarnIn],
    ) -> Response[EarnOut]:
        async def operation(transaction, principal, settings) -> EarnOut:
            result = await earning.earn(
                transaction,
                principal,
                merchant_id=principal.require_merchant(),
                member_ref=_member_ref(data),
                default_region=settings.default_phone_region,
                amount_minor=data.amount_minor,
                currency=data.currency,
                occurred_at=data.occurred_at,
                store_id=data.store_id,
                line_items=[LineItem(item.amount_minor, item.category) for item in data.line_items],
                external_reference=data.reference,
                rules=settings.program,
            )
            return to_wire(result, EarnOut)

        return await run_once(request, data, operation)

    @post(
        "/v1/redemptions",
        summary="Spend points as tender, or points + cash (idempotent)",
        responses=problem_responses(*_ALL, slugs=_SPEND),
    )
    async def redeem(
        self,
        request: Request,
        data: JSONBody[RedeemIn],
    ) -> Response[RedemptionOut]:
        async def operation(transaction, principal, settings) -> RedemptionOut:
            result = await redemption.redeem(
                transaction,
                principal,
                merchant_id=principal.require_merchant(),
                member_ref=_member_ref(data),
                default_region=settings.default_phone_region,
                points=data.points,
                purchase_amount_minor=data.purchase_amount_minor,
                currency=data.currency,
                store_id=data.store_id,
                external_reference=data.reference,
                rules=settings.program,
            )
            return to_wire(result, RedemptionOut)

        return await run_once(request, data, operation)

    @post(
        "/v1/holds",
        summary="Reserve points for a later capture (idempotent)",
        responses=problem_responses(*_ALL, slugs=_SPEND),
    )
    async def create_hold(
        self,
        request: Request,
        data: JSONBody[HoldIn],
    ) -> Response[HoldOut]:
        async def operation(transaction, principal, settings) -> HoldOut:
            hold = await redemption.create_hold(
                transaction,
                principal,
                merchant_id=principal.require_merchant(),
                member_ref=_member_ref(data),
                default_region=settings.default_phone_region,
                points=data.points,
                ttl_seconds=data.ttl_seconds,
                store_id=data.store_id,
                external_reference=data.reference,
                rules=settings.program,
            )
            return to_wire(hold, HoldOut)

        return await run_once(request, data, operation)

    @get(
        "/v1/holds/{hold_id:uuid}",
        summary="Read a hold",
        responses=problem_responses(401, 403, 404),
    )
    async def get_hold(
        self, hold_id: FromPath[uuid.UUID], transaction: Transaction, principal: Caller
    ) -> HoldOut:
        hold = await redemption.get_hold(transaction, principal.require_merchant(), hold_id)
        return to_wire(hold, HoldOut)

    @post(
        "/v1/holds/{hold_id:uuid}/capture",
        summary="Capture all or part of a hold, once",
        responses=problem_responses(
            *_ALL, slugs={**_IDEMPOTENCY, 409: ["idempotency-key-reused", "hold-not-active"]}
        ),
    )
    async def capture(
        self,
        request: Request,
        hold_id: FromPath[uuid.UUID],
        data: JSONBody[CaptureIn],
    ) -> Response[RedemptionOut]:
        async def operation(transaction, principal, settings) -> RedemptionOut:
            result = await redemption.capture_hold(
                transaction,
                principal,
                merchant_id=principal.require_merchant(),
                hold_id=hold_id,
                points=data.points,
                rules=settings.program,
            )
            return to_wire(result, RedemptionOut)

        return await run_once(request, data, operation)

    @post(
        "/v1/holds/{hold_id:uuid}/void",
        summary="Release a hold's points",
        responses=problem_responses(
            *_ALL, slugs={**_IDEMPOTENCY, 409: ["idempotency-key-reused", "hold-not-active"]}
        ),
    )
    async def void(
        self,
        request: Request,
        hold_id: FromPath[uuid.UUID],
        data: JSONBody[EmptyIn],
    ) -> Response[HoldOut]:
        async def operation(transaction, principal, settings) -> HoldOut:
            hold = await redemption.void_hold(
                transaction, principal, merchant_id=principal.require_merchant(), hold_id=hold_id
            )
            return to_wire(hold, HoldOut)

        return await run_once(request, data, operation, status_code=200)

    @post(
        "/v1/transactions/{transaction_id:uuid}/refunds",
        summary="Refund all or part of a purchase: its points are clawed back proportionally",
        description="What the purchase's lots no longer hold becomes the member's debt. When "
        "the member has since been merged into another, the survivor's copies of the lots are "
        "clawed back and any debt is the survivor's (`memberId` in the response).",
        responses=problem_responses(
            *_ALL,
            slugs={**_IDEMPOTENCY, 422: ["invalid-input", "refund-exceeds-purchase"]},
        ),
    )
    async def refund(
        self,
        request: Request,
        transaction_id: FromPath[uuid.UUID],
        data: JSONBody[RefundIn],
    ) -> Response[CorrectionOut]:
        async def operation(transaction, principal, settings) -> CorrectionOut:
            result = await corrections.refund(
                transaction,
                principal,
                merchant_id=principal.require_merchant(),
                earn_transaction_id=transaction_id,
                amount_minor=data.amount_minor,
                external_reference=data.reference,
            )
            return to_wire(result, CorrectionOut)

        return await run_once(request, data, operation)

    @post(
        "/v1/transactions/{transaction_id:uuid}/reversal",
        summary="Reverse a redemption once: its points return to their original lots",
        responses=problem_responses(
            *_ALL,
            slugs={
                **_IDEMPOTENCY,
                409: ["idempotency-key-reused", "already-reversed", "member-not-active"],
            },
        ),
    )
    async def reverse(
        self,
        request: Request,
        transaction_id: FromPath[uuid.UUID],
        data: JSONBody[EmptyIn],
    ) -> Response[CorrectionOut]:
        async def operation(transaction, principal, settings) -> CorrectionOut:
            result = await corrections.reverse_redemption(
                transaction,
                principal,
                merchant_id=principal.require_merchant(),
                redemption_transaction_id=transaction_id,
                external_reference=data.reference,
                rules=settings.program,
            )
            return to_wire(result, CorrectionOut)

        return await run_once(request, data, operation)
