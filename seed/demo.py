"""The small demo network that `coalition up` starts with: a few partners, a few members.

It goes through the same services as the API, so demo data obeys every rule. Issue 4's
bulk generator (`coalition seed`) builds large networks with known ground truth.
"""

from __future__ import annotations

import random
import secrets
from dataclasses import dataclass
from decimal import Decimal

from faker import Faker
from sqlalchemy import Connection, func, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from shared import api_keys, hq_users, members, merchants
from shared.access import SYSTEM, Role
from shared.errors import DomainError, NotFound
from shared.identifiers import IdentifierKind
from shared.settings import Settings
from shared.tables import api_keys as api_keys_table
from shared.tables import merchants as merchants_table

DEMO_KEY_LABEL = "demo"
DEMO_ADMIN_USERNAME = "demo-admin"

# name, industry, earn rate (points per unit), issuance price, redemption rate, city stores
DEMO_MERCHANTS = [
    ("Greenleaf Grocers", "grocery", "1", "0.010000", "0.008000", ["Springfield", "Riverton"]),
    ("Bean There Coffee", "coffee", "2", "0.012000", "0.008000", ["Springfield"]),
    ("Northway Fuel", "fuel", "0.5", "0.009000", "0.008000", ["Riverton", "Lakeside"]),
    ("Starlight Cinemas", "cinema", "1.5", "0.011000", "0.008500", ["Springfield"]),
    ("CarePlus Pharmacy", "pharmacy", "1", "0.010000", "0.008000", ["Lakeside"]),
    ("Thread & Needle", "fashion", "1", "0.013000", "0.008000", ["Springfield"]),
]


@dataclass(frozen=True)
class DemoCredentials:
    hq_admin_key: str
    merchant_key: str
    merchant_name: str


async def has_demo_network(connection: AsyncConnection) -> bool:
    return bool(await connection.scalar(select(func.count()).select_from(merchants_table)))


async def create_demo_network(
    connection: AsyncConnection, settings: Settings, members_count: int = 60, seed: int = 7
) -> None:
    fake = Faker("en_US")
    fake.seed_instance(seed)
    rng = random.Random(seed)
    created = []
    for name, industry, earn_rate, issuance, redemption, cities in DEMO_MERCHANTS:
        merchant = await merchants.create_merchant(
            connection,
            SYSTEM,
            name=name,
            industry=industry,
            currency="USD",
            earn_rate=Decimal(earn_rate),
            issuance_price=Decimal(issuance),
            redemption_rate=Decimal(redemption),
            allowed_currencies=settings.currencies,
        )
        stores = [
            await merchants.create_store(
                connection,
                SYSTEM,
                merchant.merchant_id,
                code=f"{city[:3].upper()}-{index + 1:03d}",
                name=f"{name} {city}",
                city=city,
                country="US",
                timezone="America/New_York",
            )
            for index, city in enumerate(cities)
        ]
        created.append((merchant, stores))
    for _ in range(members_count):
        merchant, stores = rng.choice(created)
        identifiers = [members.IdentifierInput(IdentifierKind.EMAIL, fake.unique.email())]
        if rng.random() < 0.7:
            identifiers.append(
                members.IdentifierInput(IdentifierKind.PHONE, f"+1415555{rng.randrange(10**4):04d}")
            )
        try:
            await members.enrol(
                connection,
                SYSTEM,
                merchant_id=merchant.merchant_id,
                store_id=rng.choice(stores).store_id,
                card_number=None,
                identifiers=identifiers,
                profile=members.Profile(given_name=fake.first_name(), family_name=fake.last_name()),
                consents=members.Consents(marketing_email=rng.random() < 0.6),
                card_prefix=settings.card_prefix,
                default_region=settings.default_phone_region,
            )
        except DomainError:
            continue  # a random phone number collided: that member simply gives no phone


async def issue_demo_credentials(connection: AsyncConnection) -> DemoCredentials:
    """Fresh demo keys at every start (secrets are never stored), older demo keys revoked."""
    await connection.execute(
        update(api_keys_table)
        .where(api_keys_table.c.label == DEMO_KEY_LABEL, api_keys_table.c.revoked_at.is_(None))
        .values(revoked_at=func.now())
    )
    admin = await api_keys.issue_key(connection, SYSTEM, role=Role.HQ_ADMIN, label=DEMO_KEY_LABEL)
    merchant = (
        await connection.execute(
            select(merchants_table.c.merchant_id, merchants_table.c.name)
            .order_by(merchants_table.c.name)
            .limit(1)
        )
    ).one()
    merchant_key = await api_keys.issue_key(
        connection,
        SYSTEM,
        role=Role.MERCHANT,
        label=DEMO_KEY_LABEL,
        merchant_id=merchant.merchant_id,
    )
    return DemoCredentials(admin.secret, merchant_key.secret, merchant.name)


@dataclass(frozen=True)
class DemoLogin:
    username: str
    password: str


def issue_demo_login(connection: Connection) -> DemoLogin | None:
    """The dashboard's demo admin with a fresh password at every start: passwords are
    stored hashed, so only a new one can be printed (as with the demo keys). None when the
    database has admins of its own and no demo admin (or a disabled one): whoever manages
    those users did not ask for a demo login."""
    password = secrets.token_urlsafe(12)
    try:
        demo_admin = hq_users.get_user(connection, DEMO_ADMIN_USERNAME)
    except NotFound:
        demo_admin = None
    if demo_admin is None:
        if hq_users.has_enabled_admin(connection):
            return None
        hq_users.create_user(
            connection,
            username=DEMO_ADMIN_USERNAME,
            display_name="Demo admin",
            role=hq_users.HqRole.ADMIN,
            password=password,
        )
    elif demo_admin.is_enabled:
        hq_users.set_password(connection, DEMO_ADMIN_USERNAME, password)
    else:
        return None
    return DemoLogin(DEMO_ADMIN_USERNAME, password)
