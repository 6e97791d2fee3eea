"""Rows for the analytics tests, inserted straight into the tables the rollups read
(members, balances, ledger transactions, allocations): a story told event by event, at
local times in New York."""

from __future__ import annotations

import uuid
from datetime import datetime
from zoneinfo import ZoneInfo

from sqlalchemy import text

ZONE = "America/New_York"


def local(day: str, hour: int = 12, minute: int = 0) -> datetime:
    return datetime.fromisoformat(day).replace(hour=hour, minute=minute, tzinfo=ZoneInfo(ZONE))


class Story:
    """Inserts the rows of the story, one helper per kind of event."""

    def __init__(self, connection) -> None:
        self.connection = connection

    def merchant(self, merchant_id: uuid.UUID, name: str) -> None:
        self.connection.execute(
            text(
                "INSERT INTO merchants (merchant_id, name, industry, currency, earn_rate,"
                " issuance_price, redemption_rate) VALUES (:id, :name, 'grocery', 'USD', 1,"
                " 0.01, 0.008)"
            ),
            {"id": merchant_id, "name": name},
        )

    def member(self, member_id, day: str, merchant, tier: str, balance: int) -> None:
        enrolled = local(day, 9)
        self.connection.execute(
            text(
                "INSERT INTO members (member_id, tier, enrolled_at, acquiring_merchant_id,"
                " created_at, updated_at) VALUES (:id, :tier, :at, :merchant, :at, :at)"
            ),
            {"id": member_id, "tier": tier, "at": enrolled, "merchant": merchant},
        )
        self.connection.execute(
            text("INSERT INTO member_balances (member_id, balance) VALUES (:id, :balance)"),
            {"id": member_id, "balance": balance},
        )

    def transaction(self, member_id, kind: str, at: datetime, merchant, points: int,
                    amount_minor: int | None = None) -> uuid.UUID:  # fmt: skip
        transaction_id = uuid.uuid4()
        self.connection.execute(
            text(
                "INSERT INTO ledger_transactions (member_id, transaction_id, kind, merchant_id,"
                " occurred_at, posted_at, points, amount_minor) VALUES (:member, :id, :kind,"
                " :merchant, :at, :at, :points, :amount)"
            ),
            {
                "member": member_id, "id": transaction_id, "kind": kind, "merchant": merchant,
                "at": at, "points": points, "amount": amount_minor,
            },
        )  # fmt: skip
        return transaction_id

    def allocations(self, member_id, transaction_id, kind: str, at: datetime, redeemer,
                    taken: list[tuple[uuid.UUID | None, int]]) -> None:  # fmt: skip
        for issuer, points in taken:
            self.connection.execute(
                text(
                    "INSERT INTO allocations (member_id, transaction_id, lot_id, kind, points,"
                    " issuing_merchant_id, redeeming_merchant_id, posted_at) VALUES (:member,"
                    " :tx, :lot, :kind, :points, :issuer, :redeemer, :at)"
                ),
                {
                    "member": member_id, "tx": transaction_id, "lot": uuid.uuid4(),
                    "kind": kind, "points": points, "issuer": issuer, "redeemer": redeemer,
                    "at": at,
                },
            )  # fmt: skip

    def purchase(self, member_id, day: str, merchant, amount_minor: int, **time) -> None:
        at = local(day, **time) if time else local(day)
        self.transaction(member_id, "earn", at, merchant, amount_minor // 100, amount_minor)

    def redeem(self, member_id, day: str, merchant, taken, kind: str = "redeem") -> uuid.UUID:
        at = local(day, 13)
        points = sum(p for _, p in taken)
        transaction_id = self.transaction(member_id, kind, at, merchant, -points)
        self.allocations(member_id, transaction_id, "redemption", at, merchant, taken)
        return transaction_id
