"""Which of the first lots by expiry a spend may plan from (redemption.enough_first_lots)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest

from shared.ledger import redemption
from shared.ledger.journal import OpenLot

NOW = datetime(2026, 12, 1, tzinfo=UTC)


def lot(expires_in_days: int, free: int) -> OpenLot:
    return OpenLot(
        uuid.uuid4(), "base", None, None, NOW, NOW, NOW + timedelta(days=expires_in_days),
        free, free, 0,
    )  # fmt: skip


@pytest.fixture(autouse=True)
def four_lots_read(monkeypatch):
    monkeypatch.setattr(redemption, "FIRST_LOTS_READ", 4)


def test_fewer_lots_than_read_are_all_the_member_has():
    lots = [lot(1, 10), lot(2, 10), lot(3, 10)]
    assert redemption.enough_first_lots(lots, 1_000) == lots


def test_a_full_read_keeps_the_lots_expiring_before_the_last_one_read():
    # The last lot read may share its expiry with lots not read: it and its peers go.
    lots = [lot(1, 10), lot(2, 10), lot(3, 10), lot(3, 10)]
    assert redemption.enough_first_lots(lots, 20) == lots[:2]


def test_a_full_read_that_cannot_pay_asks_for_every_lot():
    lots = [lot(1, 10), lot(2, 10), lot(3, 10), lot(3, 10)]
    assert redemption.enough_first_lots(lots, 21) is None


def test_the_order_of_the_lots_read_does_not_matter():
    lots = [lot(3, 10), lot(1, 10), lot(4, 10), lot(2, 10)]
    assert redemption.enough_first_lots(lots, 30) == [lots[0], lots[1], lots[3]]
