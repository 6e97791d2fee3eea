"""A hand-built ledger for the alert tests: merchants, members and transactions written
straight into the tables the metrics read (ledger_transactions, members, merchants,
member_balances), at the times a test chooses."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from sqlalchemy import Engine, insert, update

from shared.tables import ledger_transactions, member_balances, members, merchants

T0 = datetime(2026, 3, 2, tzinfo=UTC)  # a Monday
DAY = timedelta(days=1)
HOUR = timedelta(hours=1)


@dataclass
class Ledger:
    engine: Engine
    merchant_ids: dict[str, uuid.UUID] = field(default_factory=dict)

    def merchant(self, name: str, status: str = "active") -> uuid.UUID:
        merchant_id = uuid.uuid4()
        with self.engine.begin() as connection:
            connection.execute(
                insert(merchants).values(
                    merchant_id=merchant_id,
                    name=name,
                    industry="grocery",
                    currency="USD",
                    earn_rate=1,
                    issuance_price="0.01",
                    redemption_rate="0.008",
                    status=status,
                )
            )
        self.merchant_ids[name] = merchant_id
        return merchant_id

    def member(self, acquired_at: uuid.UUID, tier: str = "basic") -> uuid.UUID:
        member_id = uuid.uuid4()
        with self.engine.begin() as connection:
            connection.execute(
                insert(members).values(
                    member_id=member_id,
                    enrolled_at=T0 - 400 * DAY,
                    acquiring_merchant_id=acquired_at,
                    tier=tier,
                )
            )
            connection.execute(insert(member_balances).values(member_id=member_id, balance=0))
        return member_id

    def post(
        self,
        member_id: uuid.UUID,
        merchant_id: uuid.UUID | None,
        kind: str,
        at: datetime,
        points: int,
    ) -> None:
        with self.engine.begin() as connection:
            connection.execute(
                insert(ledger_transactions).values(
                    member_id=member_id,
                    transaction_id=uuid.uuid4(),
                    kind=kind,
                    merchant_id=merchant_id,
                    occurred_at=at,
                    posted_at=at,
                    points=points,
                )
            )
            connection.execute(
                update(member_balances)
                .where(member_balances.c.member_id == member_id)
                .values(balance=member_balances.c.balance + points)
            )

    def purchases(
        self, member_id: uuid.UUID, merchant_id: uuid.UUID, times: list[datetime], points: int = 10
    ) -> None:
        for at in times:
            self.post(member_id, merchant_id, "earn", at, points)

    def bulk(self, rows: list[dict]) -> None:
        """Many transactions at once (each row: member_id, merchant_id, kind, at, points);
        balances follow."""
        totals: dict[uuid.UUID, int] = {}
        for row in rows:
            totals[row["member_id"]] = totals.get(row["member_id"], 0) + row["points"]
        with self.engine.begin() as connection:
            connection.execute(
                insert(ledger_transactions),
                [
                    {
                        "member_id": row["member_id"],
                        "transaction_id": uuid.uuid4(),
                        "kind": row["kind"],
                        "merchant_id": row["merchant_id"],
                        "occurred_at": row["at"],
                        "posted_at": row["at"],
                        "points": row["points"],
                    }
                    for row in rows
                ],
            )
            for member_id, points in totals.items():
                connection.execute(
                    update(member_balances)
                    .where(member_balances.c.member_id == member_id)
                    .values(balance=member_balances.c.balance + points)
                )
