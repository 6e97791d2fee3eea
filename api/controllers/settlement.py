"""Settlement statements for merchants (their own) and HQ (all), the clearing matrix and
HQ's view of each closed period."""

from __future__ import annotations

import csv
import io
import uuid
from datetime import datetime

from litestar import Controller, Response, get
from litestar.params import FromPath, FromQuery

from api.auth import hq_reader, merchant_only
from api.dependencies import Caller, Config, Transaction
from api.problems import problem_responses
from api.schemas.settlement import (
    ClearingCellOut,
    ClearingOut,
    LiabilityOut,
    NetworkOut,
    PeriodOut,
    StatementOut,
)
from api.wire import to_wire
from shared.settlement import liability, reads

CSV_MEDIA_TYPE = "text/csv; charset=utf-8"


async def _csv(transaction, statement: reads.StatementView) -> Response[str]:
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(reads.CSV_COLUMNS)
    writer.writerows(await reads.statement_transactions(transaction, statement))
    name = f"statement-{statement.period.label}-{statement.merchant_id}.csv"
    return Response(
        buffer.getvalue(),
        media_type=CSV_MEDIA_TYPE,
        headers={"Content-Disposition": f'attachment; filename="{name}"'},
    )


class StatementController(Controller):
    path = "/v1/statements"
    tags = ["Settlement"]
    guards = [merchant_only]

    @get("/", summary="Your statements, newest period first", responses=problem_responses(401, 403))
    async def list_own(self, transaction: Transaction, principal: Caller) -> list[StatementOut]:
        found = await reads.list_statements(transaction, merchant_id=principal.merchant_id)
        return [to_wire(statement, StatementOut) for statement in found]

    @get(
        "/{statement_id:uuid}",
        summary="One of your statements, line by line",
        responses=problem_responses(401, 403, 404),
    )
    async def read_own(
        self, statement_id: FromPath[uuid.UUID], transaction: Transaction, principal: Caller
    ) -> StatementOut:
        statement = await reads.get_statement(transaction, statement_id, principal.merchant_id)
        return to_wire(statement, StatementOut)

    @get(
        "/{statement_id:uuid}/transactions.csv",
        summary="The statement's ledger transactions, one CSV line per transaction and line",
        description="Amounts are exact decimals; each statement line rounds their sum once.",
        media_type=CSV_MEDIA_TYPE,
        responses=problem_responses(401, 403, 404),
    )
    async def csv_own(
        self, statement_id: FromPath[uuid.UUID], transaction: Transaction, principal: Caller
    ) -> Response[str]:
        statement = await reads.get_statement(transaction, statement_id, principal.merchant_id)
        return await _csv(transaction, statement)


class HqSettlementController(Controller):
    path = "/v1/hq/settlement"
    tags = ["Settlement"]
    guards = [hq_reader]

    @get("/periods", summary="Closed settlement periods", responses=problem_responses(401, 403))
    async def periods(self, transaction: Transaction) -> list[PeriodOut]:
        return [to_wire(period, PeriodOut) for period in await reads.list_periods(transaction)]

    @get(
        "/statements",
        summary="Every merchant's statements, filtered by period or merchant",
        responses=problem_responses(400, 401, 403),
    )
    async def statements(
        self,
        transaction: Transaction,
        period_id: FromQuery[uuid.UUID | None] = None,
        merchant_id: FromQuery[uuid.UUID | None] = None,
    ) -> list[StatementOut]:
        found = await reads.list_statements(
            transaction, merchant_id=merchant_id, period_id=period_id
        )
        return [to_wire(statement, StatementOut) for statement in found]

    @get(
        "/statements/{statement_id:uuid}",
        summary="One statement",
        responses=problem_responses(401, 403, 404),
    )
    async def statement(
        self, statement_id: FromPath[uuid.UUID], transaction: Transaction
    ) -> StatementOut:
        return to_wire(await reads.get_statement(transaction, statement_id, None), StatementOut)

    @get(
        "/statements/{statement_id:uuid}/transactions.csv",
        summary="A statement's ledger transactions as CSV",
        media_type=CSV_MEDIA_TYPE,
        responses=problem_responses(401, 403, 404),
    )
    async def statement_csv(
        self, statement_id: FromPath[uuid.UUID], transaction: Transaction
    ) -> Response[str]:
        return await _csv(transaction, await reads.get_statement(transaction, statement_id, None))

    @get(
        "/periods/{period_id:uuid}/clearing",
        summary="Points earned at one partner and redeemed at another, in points and money",
        responses=problem_responses(401, 403, 404),
    )
    async def clearing(
        self, period_id: FromPath[uuid.UUID], transaction: Transaction
    ) -> ClearingOut:
        cells = await reads.clearing(transaction, period_id)
        return ClearingOut(period_id, [to_wire(cell, ClearingCellOut) for cell in cells])

    @get(
        "/liability",
        summary="The points liability, expected breakage and its monthly roll-forward",
        description="`as_of` defaults to now; the last roll-forward month runs to it.",
        responses=problem_responses(400, 401, 403),
    )
    async def liability(
        self, transaction: Transaction, settings: Config, as_of: FromQuery[datetime | None] = None
    ) -> LiabilityOut:
        report = await liability.liability_report(transaction, settings.program, as_of)
        return to_wire(report, LiabilityOut)

    @get(
        "/periods/{period_id:uuid}/network",
        summary="HQ's revenue and network-funded costs for the period",
        responses=problem_responses(401, 403, 404),
    )
    async def network(
        self, period_id: FromPath[uuid.UUID], transaction: Transaction, settings: Config
    ) -> NetworkOut:
        view = await reads.network_view(transaction, period_id, settings.program)
        return to_wire(view, NetworkOut)
