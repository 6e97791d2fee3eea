"""HQ dashboard users: who may sign in to the dashboard, and what they may do there.

Roles: analysts read every page; admins may also change things (the dashboard asks
`HqUser.is_admin` through its `require_admin`). Users are managed with `coalition users`
and are never deleted, only disabled, so the audit log keeps pointing at someone.

Passwords are hashed with argon2id (argon2-cffi's default parameters: RFC 9106's
low-memory profile). A hash made with other parameters (older defaults, or a hasher
configured differently) is replaced at the next successful sign-in, when the clear
password is at hand. A user without a password signs in only through the identity
provider (OIDC): the provider vouches for the username, the role still comes from here.

Functions take a sync connection inside the caller's transaction (the CLI and the
dashboard use psycopg).
"""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from functools import cache

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import Connection, func, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert

from shared import audit
from shared.access import SYSTEM, Principal, Role
from shared.errors import Conflict, InvalidInput, NotFound
from shared.tables import hq_users

MIN_PASSWORD_LENGTH = 12
# argon2 hashes any length; the bound keeps a sign-in form from hashing megabytes.
MAX_PASSWORD_LENGTH = 1024
# Plain names or e-mail addresses (what an OIDC provider asserts), lower-case.
USERNAME_PATTERN = re.compile(r"^[a-z0-9][a-z0-9._@+-]{0,253}$")

DEFAULT_HASHER = PasswordHasher()


class HqRole(StrEnum):
    ANALYST = "analyst"  # reads every page
    ADMIN = "admin"  # may also change things


@dataclass(frozen=True, slots=True)
class HqUser:
    user_id: uuid.UUID
    username: str
    display_name: str
    role: HqRole
    has_password: bool
    created_at: datetime
    password_changed_at: datetime | None
    last_login_at: datetime | None
    disabled_at: datetime | None

    @property
    def is_admin(self) -> bool:
        return self.role is HqRole.ADMIN

    @property
    def is_enabled(self) -> bool:
        return self.disabled_at is None

    @property
    def principal(self) -> Principal:
        """What the user acts as in the domain services (no API key behind it)."""
        return Principal(
            role=Role.HQ_ADMIN if self.is_admin else Role.HQ_ANALYST,
            key_id=None,
            hq_user_id=self.user_id,
        )


_COLUMNS = (
    hq_users.c.user_id,
    hq_users.c.username,
    hq_users.c.display_name,
    hq_users.c.role,
    hq_users.c.password_hash.is_not(None).label("has_password"),
    hq_users.c.created_at,
    hq_users.c.password_changed_at,
    hq_users.c.last_login_at,
    hq_users.c.disabled_at,
)


def _user(row) -> HqUser:
    return HqUser(
        user_id=row.user_id,
        username=row.username,
        display_name=row.display_name,
        role=HqRole(row.role),
        has_password=row.has_password,
        created_at=row.created_at,
        password_changed_at=row.password_changed_at,
        last_login_at=row.last_login_at,
        disabled_at=row.disabled_at,
    )


def normalise_username(raw: str) -> str:
    username = raw.strip().lower()
    if not USERNAME_PATTERN.match(username):
        raise InvalidInput(
            "A username is 1 to 254 characters: letters, digits and . _ @ + - "
            "(an e-mail address works), starting with a letter or a digit.",
            field="username",
        )
    return username


def check_password(password: str) -> str:
    if len(password) < MIN_PASSWORD_LENGTH:
        raise InvalidInput(
            f"A password has at least {MIN_PASSWORD_LENGTH} characters.", field="password"
        )
    if len(password) > MAX_PASSWORD_LENGTH:
        raise InvalidInput(
            f"A password has at most {MAX_PASSWORD_LENGTH} characters.", field="password"
        )
    return password


def create_user(
    connection: Connection,
    *,
    username: str,
    display_name: str,
    role: HqRole,
    password: str | None,
    hasher: PasswordHasher = DEFAULT_HASHER,
    actor: Principal = SYSTEM,
) -> HqUser:
    """A new user; `password=None` makes an identity-provider-only user."""
    name = normalise_username(username)
    display = display_name.strip() or name
    password_hash = hasher.hash(check_password(password)) if password is not None else None
    row = connection.execute(
        pg_insert(hq_users)
        .values(
            user_id=uuid.uuid4(),
            username=name,
            display_name=display,
            role=HqRole(role).value,
            password_hash=password_hash,
            password_changed_at=func.now() if password_hash else None,
        )
        .on_conflict_do_nothing(index_elements=[hq_users.c.username])
        .returning(*_COLUMNS)
    ).one_or_none()
    if row is None:
        raise Conflict(f"The HQ user {name!r} exists already.", field="username")
    audit.record_sync(
        connection, actor, "hq_user.created", "hq_user", row.user_id, {"role": row.role}
    )
    return _user(row)


def get_user(connection: Connection, username: str) -> HqUser:
    row = connection.execute(
        select(*_COLUMNS).where(hq_users.c.username == normalise_username(username))
    ).one_or_none()
    if row is None:
        raise NotFound(f"There is no HQ user {username!r}.")
    return _user(row)


def list_users(connection: Connection) -> list[HqUser]:
    return [_user(row) for row in connection.execute(select(*_COLUMNS).order_by("username"))]


def has_enabled_admin(connection: Connection) -> bool:
    return bool(
        connection.scalar(
            select(func.count())
            .select_from(hq_users)
            .where(hq_users.c.role == HqRole.ADMIN.value, hq_users.c.disabled_at.is_(None))
        )
    )


@cache
def _decoy_hash(hasher: PasswordHasher) -> str:
    return hasher.hash("a password nobody has")


def authenticate(
    connection: Connection,
    username: str,
    password: str,
    *,
    hasher: PasswordHasher = DEFAULT_HASHER,
) -> HqUser | None:
    """The enabled user whose password this is, with its sign-in recorded; otherwise None,
    whatever the reason (unknown, disabled, no password, wrong password), so the sign-in
    screen cannot be used to learn which usernames exist."""
    try:
        name = normalise_username(username)
    except InvalidInput:
        name = None
    row = None
    if name is not None and len(password) <= MAX_PASSWORD_LENGTH:
        row = connection.execute(
            select(hq_users.c.user_id, hq_users.c.password_hash)
            .where(hq_users.c.username == name, hq_users.c.disabled_at.is_(None))
            .with_for_update()
        ).one_or_none()
    stored = row.password_hash if row is not None else None
    try:
        # Refused sign-ins cost one verification too: response times tell nothing either.
        hasher.verify(stored or _decoy_hash(hasher), password[:MAX_PASSWORD_LENGTH])
    except (VerificationError, InvalidHashError):
        return None
    if stored is None:
        return None
    values = {"last_login_at": func.now()}
    if hasher.check_needs_rehash(stored):
        values["password_hash"] = hasher.hash(password)
    return _signed_in(connection, row.user_id, values, method="password")


def sign_in_verified(connection: Connection, username: str) -> HqUser | None:
    """Sign-in through the identity provider, which has checked who this is: the enabled
    user of that name, with its sign-in recorded, or None."""
    try:
        name = normalise_username(username)
    except InvalidInput:
        return None
    user_id = connection.scalar(
        select(hq_users.c.user_id).where(
            hq_users.c.username == name, hq_users.c.disabled_at.is_(None)
        )
    )
    if user_id is None:
        return None
    return _signed_in(connection, user_id, {"last_login_at": func.now()}, method="oidc")


def _signed_in(connection: Connection, user_id: uuid.UUID, values: dict, method: str) -> HqUser:
    row = connection.execute(
        update(hq_users).where(hq_users.c.user_id == user_id).values(**values).returning(*_COLUMNS)
    ).one()
    user = _user(row)
    details = {"method": method, "rehashed": "password_hash" in values}
    audit.record_sync(connection, user.principal, "hq_user.signed_in", "hq_user", user_id, details)
    return user


def enabled_user(connection: Connection, username: str) -> HqUser | None:
    """The user as it is now, if still enabled (a session re-checks it: disabling a user or
    changing a role takes effect in open sessions)."""
    row = connection.execute(
        select(*_COLUMNS).where(hq_users.c.username == username, hq_users.c.disabled_at.is_(None))
    ).one_or_none()
    return _user(row) if row is not None else None


def set_password(
    connection: Connection,
    username: str,
    password: str,
    *,
    hasher: PasswordHasher = DEFAULT_HASHER,
    actor: Principal = SYSTEM,
) -> HqUser:
    user = get_user(connection, username)
    row = connection.execute(
        update(hq_users)
        .where(hq_users.c.user_id == user.user_id)
        .values(password_hash=hasher.hash(check_password(password)), password_changed_at=func.now())
        .returning(*_COLUMNS)
    ).one()
    audit.record_sync(connection, actor, "hq_user.password_set", "hq_user", user.user_id)
    return _user(row)


def disable_user(connection: Connection, username: str, *, actor: Principal = SYSTEM) -> HqUser:
    """Disabled users cannot sign in; open sessions end at their next check. Idempotent."""
    user = get_user(connection, username)
    if not user.is_enabled:
        return user
    row = connection.execute(
        update(hq_users)
        .where(hq_users.c.user_id == user.user_id)
        .values(disabled_at=func.now())
        .returning(*_COLUMNS)
    ).one()
    audit.record_sync(connection, actor, "hq_user.disabled", "hq_user", user.user_id)
    return _user(row)
