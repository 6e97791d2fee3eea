"""A member's points as members, merchants and HQ read them; HQ adjustments."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Literal

from litestar import Controller, Request, Response, get, post
from litestar.params import FromPath, FromQuery, JSONBody

from api.auth import hq_admin, hq_reader
from api.dependencies import Caller, Config, Transaction
from api.idempotency import run_once
from api.problems import problem_responses
from api.schemas.common import Limit, Offset
from api.schemas.ledger import (
    AdjustmentIn,
    BalanceOut,
    CorrectionOut,
    ExpiringOut,
    HistoryEntryOut,
    HistoryPage,
    LotOut,
    TierProgressOut,
    TransferIn,
    TransferOut,
)
from api.wire import to_wire
from shared.ledger import corrections, expiry, reads, tiers, transfers

Kind = Literal[
    "earn",
    "behaviour",
    "redeem",
    "capture",
    "refund",
    "reversal",
    "expiry",
    "adjustment",
    "transfer_out",
    "transfer_in",
    "merge_out",
    "merge_in",
]


class MemberPointsController(Controller):
    path = "/v1/members/{member_id:uuid}"
    tags = ["Points"]

    @get(
        "/balance",
        summary="Total, available, pending, held, debt and next expiry",
        responses=problem_responses(401, 404),
    )
    async def balance(self, member_id: FromPath[uuid.UUID], transaction: Transaction) -> BalanceOut:
        return to_wire(await reads.balance(transaction, member_id), BalanceOut)

    @get(
        "/history",
        summary="Ledger transactions, newest first (merchants: their own only)",
        responses=problem_responses(400, 401, 404),
    )
    async def history(
        self,
        member_id: FromPath[uuid.UUID],
        transaction: Transaction,
        principal: Caller,
        kind: FromQuery[list[Kind] | None] = None,
        merchant_id: FromQuery[uuid.UUID | None] = None,
        posted_from: FromQuery[datetime | None] = None,
        posted_to: FromQuery[datetime | None] = None,
        limit: FromQuery[Limit] = 50,
        offset: FromQuery[Offset] = 0,
    ) -> HistoryPage:
        network_balance = await reads.balance(transaction, member_id)
        entries, total = await reads.history(
            transaction,
            principal,
            member_id,
            kinds=kind,
            merchant_id=merchant_id,
            posted_from=posted_from,
            posted_to=posted_to,
            limit=limit,
            offset=offset,
        )
        return HistoryPage(
            items=[to_wire(entry, HistoryEntryOut) for entry in entries],
            total=total,
            limit=limit,
            offset=offset,
            network_balance=to_wire(network_balance, BalanceOut),
        )

    @get(
        "/lots",
        summary="Open lots with their expiry, first to expire first",
        responses=problem_responses(401, 404),
    )
    async def lots(self, member_id: FromPath[uuid.UUID], transaction: Transaction) -> list[LotOut]:
        return [to_wire(lot, LotOut) for lot in await reads.open_lots(transaction, member_id)]

    @get(
        "/tier-progress",
        summary="Why the member holds its tier and what the next one needs",
        responses=problem_responses(401, 404),
    )
    async def tier_progress(
        self, member_id: FromPath[uuid.UUID], transaction: Transaction, settings: Config
    ) -> TierProgressOut:
        return to_wire(
            await tiers.progress(transaction, member_id, settings.program), TierProgressOut
        )

    @post(
        "/adjustments",
        guards=[hq_admin],
        summary="HQ: credit or debit points with a reason",
        responses=problem_responses(
            400,
            401,
            403,
            404,
            409,
            413,
            422,
            slugs={
                400: ["invalid-request", "idempotency-key-required"],
                409: ["idempotency-key-reused", "insufficient-points", "member-not-active"],
            },
        ),
    )
    async def adjust(
        self,
        request: Request,
        member_id: FromPath[uuid.UUID],
        data: JSONBody[AdjustmentIn],
    ) -> Response[CorrectionOut]:
        async def operation(transaction, principal, settings) -> CorrectionOut:
            result = await corrections.adjust(
                transaction,
                principal,
                member_id=member_id,
                points=data.points,
                reason=data.reason,
                rules=settings.program,
            )
            return to_wire(result, CorrectionOut)

        return await run_once(request, data, operation)


class HqPointsController(Controller):
    tags = ["Points"]

    @post(
        "/v1/hq/transfers",
        guards=[hq_admin],
        summary="HQ: move points between two members (when the program enables transfers)",
        responses=problem_responses(
            400,
            401,
            403,
            404,
            409,
            413,
            422,
            slugs={
                400: ["invalid-request", "idempotency-key-required"],
                403: ["forbidden", "feature-disabled"],
                409: ["idempotency-key-reused", "insufficient-points", "member-not-active"],
            },
        ),
    )
    async def transfer(
        self,
        request: Request,
        data: JSONBody[TransferIn],
    ) -> Response[TransferOut]:
        async def operation(transaction, principal, settings) -> TransferOut:
            result = await transfers.transfer(
                transaction,
                principal,
                from_member_id=data.from_member_id,
                to_member_id=data.to_member_id,
                points=data.points,
                reason=data.reason,
                rules=settings.program,
            )
            return to_wire(result, TransferOut)

        return await run_once(request, data, operation)

    @get(
        "/v1/hq/expiring-points",
        guards=[hq_reader],
        summary="Members with points expiring within `days` (reminders, win-back)",
        responses=problem_responses(400, 401, 403),
    )
    async def expiring(
        self,
        transaction: Transaction,
        days: FromQuery[int] = 30,
        limit: FromQuery[Limit] = 100,
        offset: FromQuery[Offset] = 0,
    ) -> list[ExpiringOut]:
        rows = await expiry.expiring_within(
            transaction, days=max(min(days, 366), 1), limit=limit, offset=offset
        )
        return [to_wire(row, ExpiringOut) for row in rows]
