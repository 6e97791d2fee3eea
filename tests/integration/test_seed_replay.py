"""Bulk mode writes what the ledger services would have written.

A small seeded network is replayed in memory (the rows bulk mode COPYs) while the replay
logs the service calls it stands for; the same calls are then played through the real
services, in time order, on a database whose `now()` is a test clock set to each call's
time. The two sets of tables must agree member by member: transactions, postings, lots,
allocations, holds, balances, tiers, identifiers.

Ids differ between the two (the services draw random UUIDs), so rows are compared after
replacing ids by their position in the member's history. Lots that no rule can tell apart
(same source, issuer, funder and times: an enrolment bonus and a profile bonus granted in
the same second) are compared as a group, because which of them a redemption drains first
is decided by their random ids.
"""

from __future__ import annotations

import json
import uuid
from collections import defaultdict
from contextlib import contextmanager
from datetime import UTC, datetime
from unittest import mock

import psycopg
import pytest

from seed.behaviour import draw_members, draw_purchases
from seed.bulk import Sink, insert_network
from seed.config import SeedConfig
from seed.loading import COLUMNS
from seed.network import build_network, moment
from seed.replay import ShardReplay
from shared import members as members_service
from shared.access import SYSTEM, Principal, Role
from shared.campaigns.launch import launch_due_campaigns
from shared.database.urls import libpq_conninfo
from shared.identifiers import IdentifierKind
from shared.ledger import corrections, earning, expiry, redemption, tiers
from shared.ledger.rules import LineItem
from shared.members import Consents, IdentifierInput, MemberRef, Profile
from tests.integration.clock import clock_engine, set_clock


def replayed_network(test_settings):
    config = SeedConfig(
        members=60, months=14, merchants=6, seed=11,
        end=datetime(2026, 6, 1, tzinfo=UTC), refund_rate=0.1, reversal_rate=0.2,
        referral_rate=0.3,
    )  # fmt: skip
    network = build_network(config, test_settings.program, test_settings.card_prefix)
    shard_members = draw_members(network, 0, 0, config.members)
    purchases = draw_purchases(network, 0, shard_members)
    replay = ShardReplay(network, shard_members, purchases, 0)
    replay.actions = []
    for index in range(config.members - 1, -1, -1):
        replay.replay(index)
    sink = Sink(None)
    sink.write(replay.rows)
    return network, shard_members, replay.actions, sink.kept


@contextmanager
def same_member_id(member_id: uuid.UUID):
    """enrol's first uuid4() is the new member's id; later ones stay random."""
    real, ids = uuid.uuid4, [member_id]
    with mock.patch("uuid.uuid4", lambda: ids.pop() if ids else real()):
        yield


class ServicePlayer:
    """Plays the replay's action log through the services at the logged times."""

    def __init__(self, engine, network, shard_members, rules, settings):
        self.engine = engine
        self.network = network
        self.members = shard_members
        self.rules = rules
        self.settings = settings
        self.member_ids: dict[uuid.UUID, uuid.UUID] = {}  # bulk member -> service member
        self.service_ids: dict[int, uuid.UUID] = {}  # id(replay object) -> service id
        self.jobs_run: set[int] = set()

    async def at(self, epoch_seconds: int, call):
        await set_clock(self.engine, moment(epoch_seconds))
        async with self.engine.begin() as connection:
            return await call(connection)

    def ref(self, ledger) -> MemberRef:
        return MemberRef("member_id", str(self.member_ids[ledger.member_id]))

    async def play(self, action: tuple) -> None:
        at, name, ledger, *arguments = action
        if name == "jobs":
            if at not in self.jobs_run:
                self.jobs_run.add(at)
                await self.run_jobs(at)
            return
        handler = getattr(self, f"play_{name}")
        await handler(at, ledger, *arguments)

    async def run_jobs(self, at: int) -> None:
        await set_clock(self.engine, moment(at))
        await launch_due_campaigns(self.engine, self.rules.global_holdout_bps)
        await redemption.finalise_expired_holds(self.engine)
        await expiry.expire_due_lots(self.engine)
        await tiers.requalify_due(self.engine, self.rules)

    async def play_enrol(self, at, ledger, index, merchant) -> None:
        m = self.members
        identifiers = []
        if m.profile_stage[index] != 1 and m.emails[index] is not None:
            identifiers.append(IdentifierInput(IdentifierKind.EMAIL, m.emails[index]))
        if m.phones[index] is not None:
            identifiers.append(IdentifierInput(IdentifierKind.PHONE, m.phones[index]))
        referrer = int(m.referrer[index])

        async def call(connection):
            return await members_service.enrol(
                connection, SYSTEM, merchant_id=merchant.merchant_id,
                store_id=merchant.store_ids[int(m.acquiring_store[index])],
                card_number=m.cards[index], identifiers=identifiers,
                profile=Profile(m.given_names[index], m.family_names[index], m.birth_dates[index],
                                self.network.config.locale),
                consents=Consents(bool(m.consent_email[index]), bool(m.consent_sms[index])),
                card_prefix=self.settings.card_prefix, default_region=self.network.region,
                rules=self.rules,
                referred_by=MemberRef("member_id", str(self.member_ids[m.member_ids[referrer]]))
                if referrer >= 0 else None,
            )  # fmt: skip

        # Campaign arms are a hash of the member id: the member gets the bulk member's id.
        with same_member_id(ledger.member_id):
            view = await self.at(at, call)
        assert view.member_id == ledger.member_id
        self.member_ids[ledger.member_id] = view.member_id

    async def play_attach_email(self, at, ledger, index, merchant) -> None:
        actor = Principal(Role.MERCHANT, None, merchant.merchant_id)
        item = IdentifierInput(IdentifierKind.EMAIL, self.members.emails[index])
        await self.at(at, lambda connection: members_service.attach_identifier(
            connection, actor, self.member_ids[ledger.member_id], item, self.network.region,
            self.rules,
        ))  # fmt: skip

    def merchant(self, merchant) -> Principal:
        return Principal(Role.MERCHANT, None, merchant.merchant_id)

    async def play_earn(self, at, ledger, merchant, store_id, amount, line_items, earn) -> None:
        result = await self.at(at, lambda connection: earning.earn(
            connection, self.merchant(merchant), merchant_id=merchant.merchant_id,
            member_ref=self.ref(ledger), default_region=self.network.region,
            amount_minor=amount, currency=self.rules.currency, occurred_at=moment(at),
            store_id=uuid.UUID(str(store_id)),
            line_items=[LineItem(line_amount, category) for line_amount, category in line_items],
            external_reference=None, rules=self.rules,
        ))  # fmt: skip
        self.service_ids[id(earn)] = result.transaction_id

    async def play_redeem(self, at, ledger, merchant, store_id, points, purchase, made) -> None:
        result = await self.at(at, lambda connection: redemption.redeem(
            connection, self.merchant(merchant), merchant_id=merchant.merchant_id,
            member_ref=self.ref(ledger), default_region=self.network.region, points=points,
            purchase_amount_minor=purchase, currency=self.rules.currency,
            store_id=uuid.UUID(str(store_id)), external_reference=None, rules=self.rules,
        ))  # fmt: skip
        self.service_ids[id(made)] = result.transaction_id

    async def play_hold(self, at, ledger, merchant, store_id, points, hold) -> None:
        view = await self.at(at, lambda connection: redemption.create_hold(
            connection, self.merchant(merchant), merchant_id=merchant.merchant_id,
            member_ref=self.ref(ledger), default_region=self.network.region, points=points,
            ttl_seconds=None, store_id=uuid.UUID(str(store_id)), external_reference=None,
            rules=self.rules,
        ))  # fmt: skip
        self.service_ids[id(hold)] = view.hold_id

    async def play_capture(self, at, ledger, hold, points, made) -> None:
        result = await self.at(at, lambda connection: redemption.capture_hold(
            connection, self.merchant(hold.merchant), merchant_id=hold.merchant.merchant_id,
            hold_id=self.service_ids[id(hold)], points=points, rules=self.rules,
        ))  # fmt: skip
        self.service_ids[id(made)] = result.transaction_id

    async def play_void(self, at, ledger, hold) -> None:
        await self.at(at, lambda connection: redemption.void_hold(
            connection, self.merchant(hold.merchant), merchant_id=hold.merchant.merchant_id,
            hold_id=self.service_ids[id(hold)],
        ))  # fmt: skip

    async def play_refund(self, at, ledger, earn, amount) -> None:
        await self.at(at, lambda connection: corrections.refund(
            connection, self.merchant(earn.merchant), merchant_id=earn.merchant.merchant_id,
            earn_transaction_id=self.service_ids[id(earn)], amount_minor=amount,
            external_reference=None,
        ))  # fmt: skip

    async def play_reverse(self, at, ledger, made) -> None:
        await self.at(at, lambda connection: corrections.reverse_redemption(
            connection, self.merchant(made.merchant), merchant_id=made.merchant.merchant_id,
            redemption_transaction_id=self.service_ids[id(made)], external_reference=None,
            rules=self.rules,
        ))  # fmt: skip


# --- comparison ---------------------------------------------------------------------------

TABLES = ("ledger_transactions", "postings", "lots", "allocations", "holds",
          "hold_reservations", "member_balances", "members", "member_identifiers",
          "campaign_assignments")  # fmt: skip


def as_dicts(kept: dict[str, list]) -> dict[str, list[dict]]:
    return {
        table: [dict(zip(COLUMNS[table], (_plain(v) for v in row), strict=True)) for row in rows]
        for table, rows in kept.items()
        if table in TABLES
    }


def _plain(value):
    """Ids as text, the way read_tables gives them (the replay writes some ids as text)."""
    return str(value) if isinstance(value, uuid.UUID) else value


def read_tables(sync_url) -> dict[str, list[dict]]:
    tables = {}
    with psycopg.connect(libpq_conninfo(sync_url)) as connection:
        for table in TABLES:
            cursor = connection.execute(f"SELECT {', '.join(COLUMNS[table])} FROM {table}")
            tables[table] = [
                {
                    column: (str(value) if isinstance(value, uuid.UUID) else value)
                    for column, value in zip(COLUMNS[table], row, strict=True)
                }
                for row in cursor.fetchall()
            ]
    return tables


def canonical(tables: dict[str, list[dict]], member_label: dict[str, str]) -> dict[str, dict]:
    """Per member label: the member's rows with every id replaced by a positional label."""
    by_member: dict[str, dict[str, list]] = defaultdict(lambda: defaultdict(list))
    for table, rows in tables.items():
        for row in rows:
            by_member[member_label[row["member_id"]]][table].append(row)
    names = dict(member_label)  # every id, network-wide: details point across members
    for label, t in by_member.items():
        t["ledger_transactions"].sort(
            key=lambda r: (r["posted_at"], r["kind"], r["reason"] or "", r["points"],
                           r["amount_minor"] or 0),
        )  # fmt: skip
        for position, row in enumerate(t["ledger_transactions"]):
            names[row["transaction_id"]] = f"{label}/tx{position}"
        for lot in t["lots"]:
            names[lot["lot_id"]] = f"{names[lot['transaction_id']]}/{lot['source']}"
        t["holds"].sort(key=lambda r: (r["created_at"], r["points"]))
        for position, hold in enumerate(t["holds"]):
            names[hold["hold_id"]] = f"{label}/hold{position}"
    return {label: _canonical_member(t, names) for label, t in by_member.items()}


def _canonical_member(t: dict[str, list], names: dict[str, str]) -> dict:
    transactions = t["ledger_transactions"]
    lot_rows = t["lots"]
    holds = t["holds"]

    def rename(value):
        if isinstance(value, dict):
            return {names.get(k, k): rename(v) for k, v in value.items()}
        if isinstance(value, list):
            return [rename(v) for v in value]
        return names.get(value, value) if isinstance(value, str) else value

    def signature(lot):
        return (lot["source"], lot["issuing_merchant_id"], lot["funder_merchant_id"],
                lot["campaign_id"], lot["earned_at"], lot["available_at"], lot["expires_at"])  # fmt: skip

    lots_by_id = {lot["lot_id"]: lot for lot in lot_rows}
    lot_groups: dict[tuple, list[int]] = defaultdict(lambda: [0, 0, 0, 0, 0])
    for lot in lot_rows:
        group = lot_groups[signature(lot)]
        for i, column in enumerate(("original", "remaining", "reserved", "clawed_back")):
            group[i] += lot[column]
        group[4] += 1
    allocations: dict[tuple, int] = defaultdict(int)
    for row in t["allocations"]:
        key = (names[row["transaction_id"]], row["kind"], signature(lots_by_id[row["lot_id"]]),
               row["redeeming_merchant_id"], row["posted_at"])  # fmt: skip
        allocations[key] += row["points"]
    postings = defaultdict(list)
    for row in t["postings"]:
        postings[names[row["transaction_id"]]].append(
            (row["account"], row["merchant_id"] or "", row["amount"], row["posted_at"])
        )
    reservations = defaultdict(int)
    for row in t["hold_reservations"]:
        reservations[(names[row["hold_id"]], signature(lots_by_id[row["lot_id"]]))] += row["points"]
    member = t["members"][0]
    balance = t["member_balances"][0]
    return {
        "transactions": [
            {
                **{
                    k: v
                    for k, v in row.items()
                    if k not in ("member_id", "transaction_id", "details")
                },
                "original_transaction_id": names.get(row["original_transaction_id"]),
                "hold_id": names.get(row["hold_id"]),
                "details": rename(
                    json.loads(row["details"])
                    if isinstance(row["details"], str)
                    else row["details"]
                ),
            }
            for row in transactions
        ],  # fmt: skip
        "postings": {tx: sorted(rows) for tx, rows in postings.items()},
        "lots": dict(lot_groups),
        "allocations": {key: points for key, points in allocations.items() if points},
        "holds": [
            {
                **{k: v for k, v in hold.items() if k not in ("member_id", "hold_id")},
                "capture_transaction_id": names.get(hold["capture_transaction_id"]),
            }
            for hold in holds
        ],  # fmt: skip
        "reservations": dict(reservations),
        "balance": {k: v for k, v in balance.items() if k not in ("member_id", "updated_at")},
        "member": {
            k: names.get(v, v) if isinstance(v, str) else v
            for k, v in member.items()
            if k
            in (
                "tier",
                "tier_since",
                "tier_valid_until",
                "enrolled_at",
                "status",
                "acquiring_merchant_id",
                "acquiring_store_id",
                "referred_by_member_id",
                "given_name",
                "family_name",
                "birth_date",
            )
        },  # fmt: skip
        "identifiers": sorted((row["kind"], row["value"]) for row in t["member_identifiers"]),
        # Bulk mode assigns at the launch instant, the services when the launch job runs.
        "arms": sorted((row["campaign_id"], row["arm"]) for row in t["campaign_assignments"]),
    }


@pytest.mark.slow
async def test_bulk_rows_equal_what_the_services_write(database_url, test_settings, clean_database):
    network, shard_members, actions, kept = replayed_network(test_settings)
    assert {action[1] for action in actions} >= {
        "enrol",
        "earn",
        "redeem",
        "hold",
        "capture",
        "refund",
        "reverse",
        "jobs",
        "attach_email",
    }, "the scenario exercises every kind of service call"
    with psycopg.connect(libpq_conninfo(database_url)) as connection:
        insert_network(connection, network)
        # Bulk rows come with the launch's assignments; here the launch job makes them.
        connection.execute("UPDATE campaigns SET launched_at = NULL")
    async with clock_engine(database_url) as engine:
        player = ServicePlayer(engine, network, shard_members, network.rules, test_settings)
        ordered = sorted(enumerate(actions), key=lambda item: (item[1][0], item[0]))
        for _, action in ordered:
            await player.play(action)

    bulk_tables = as_dicts(kept)
    service_tables = read_tables(database_url)
    bulk_labels = {str(m): f"member{i}" for i, m in enumerate(shard_members.member_ids)}
    service_labels = {
        str(player.member_ids[m]): f"member{i}" for i, m in enumerate(shard_members.member_ids)
    }
    bulk = canonical(bulk_tables, bulk_labels)
    services = canonical(service_tables, service_labels)
    assert bulk.keys() == services.keys()
    mismatches = [
        (label, part)
        for label in sorted(bulk)
        for part in bulk[label]
        if bulk[label][part] != services[label][part]
    ]
    if mismatches:
        label, part = mismatches[0]
        detail = _first_difference(bulk[label][part], services[label][part])
        pytest.fail(f"{len(mismatches)} differences; first: {label} {part}: {detail}")
    campaign_lots = [lot for lot in bulk_tables["lots"] if lot["source"] == "campaign"]
    assert {lot["campaign_id"] for lot in campaign_lots} == {
        str(campaign.campaign_id) for campaign in network.campaigns
    }, "every seeded campaign awards bonus lots in the scenario"
    assert {arm for v in bulk.values() for _, arm in v["arms"]} == {"treatment", "holdout"}
    assert sum(len(v["transactions"]) for v in bulk.values()) == len(
        service_tables["ledger_transactions"]
    )


def _first_difference(bulk, services):
    if isinstance(bulk, list) and isinstance(services, list):
        for position, (a, b) in enumerate(zip(bulk, services, strict=False)):
            if a != b:
                return f"item {position}: bulk {a} != services {b}"
        return f"lengths {len(bulk)} != {len(services)}"
    if isinstance(bulk, dict) and isinstance(services, dict):
        for key in sorted(set(bulk) | set(services), key=str):
            if bulk.get(key) != services.get(key):
                return f"key {key}: bulk {bulk.get(key)} != services {services.get(key)}"
    return f"bulk {bulk} != services {services}"
