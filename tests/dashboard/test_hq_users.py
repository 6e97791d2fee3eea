"""HQ dashboard users on the test database: argon2 hashes, sign-in, disabling, rehashing."""

from __future__ import annotations

import pytest
from argon2 import PasswordHasher
from sqlalchemy import select

from shared import hq_users
from shared.access import Role
from shared.errors import Conflict, InvalidInput, NotFound
from shared.hq_users import HqRole
from shared.tables import audit_log
from shared.tables import hq_users as hq_users_table

# Cheap parameters keep the tests fast; the product uses argon2-cffi's defaults.
FAST = PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1)
PASSWORD = "correct horse battery"


@pytest.fixture
def connection(clean_database):
    with clean_database.begin() as connection:
        yield connection


def _add(connection, username="Ada.Lovelace@HQ.example", role=HqRole.ANALYST, password=PASSWORD):
    return hq_users.create_user(
        connection,
        username=username,
        display_name="Ada Lovelace",
        role=role,
        password=password,
        hasher=FAST,
    )


def _stored_hash(connection, username):
    return connection.scalar(
        select(hq_users_table.c.password_hash).where(hq_users_table.c.username == username)
    )


def test_a_password_is_stored_as_an_argon2id_hash_and_verified(connection):
    user = _add(connection)
    assert user.username == "ada.lovelace@hq.example"  # normalised
    stored = _stored_hash(connection, user.username)
    assert stored.startswith("$argon2id$") and PASSWORD not in stored
    assert (
        hq_users.authenticate(connection, "ada.lovelace@hq.example", "wrong password!", hasher=FAST)
        is None
    )
    signed_in = hq_users.authenticate(connection, " ADA.LOVELACE@hq.example", PASSWORD, hasher=FAST)
    assert signed_in is not None and signed_in.last_login_at is not None
    assert signed_in.principal.role is Role.HQ_ANALYST and not signed_in.is_admin


def test_unknown_users_and_passwordless_users_cannot_sign_in_with_a_password(connection):
    _add(connection, username="oidc-only", password=None)
    assert hq_users.authenticate(connection, "nobody", PASSWORD, hasher=FAST) is None
    assert hq_users.authenticate(connection, "not a valid name!", PASSWORD, hasher=FAST) is None
    assert hq_users.authenticate(connection, "oidc-only", "", hasher=FAST) is None
    assert hq_users.sign_in_verified(connection, "oidc-only").username == "oidc-only"
    assert hq_users.sign_in_verified(connection, "nobody@hq.example") is None


def test_a_disabled_user_cannot_sign_in_and_is_no_longer_enabled(connection):
    user = _add(connection, role=HqRole.ADMIN)
    assert hq_users.enabled_user(connection, user.username).is_admin
    disabled = hq_users.disable_user(connection, user.username)
    assert disabled.disabled_at is not None
    assert hq_users.disable_user(connection, user.username) == disabled  # idempotent
    assert hq_users.authenticate(connection, user.username, PASSWORD, hasher=FAST) is None
    assert hq_users.sign_in_verified(connection, user.username) is None
    assert hq_users.enabled_user(connection, user.username) is None
    assert not hq_users.has_enabled_admin(connection)


def test_a_hash_made_with_other_parameters_is_replaced_at_the_next_sign_in(connection):
    user = _add(connection)
    old = _stored_hash(connection, user.username)
    stronger = PasswordHasher(time_cost=2, memory_cost=2048, parallelism=1)
    assert stronger.check_needs_rehash(old)
    assert hq_users.authenticate(connection, user.username, PASSWORD, hasher=stronger)
    new = _stored_hash(connection, user.username)
    assert new != old and not stronger.check_needs_rehash(new)
    assert stronger.verify(new, PASSWORD)
    # Same parameters: the hash stays.
    assert hq_users.authenticate(connection, user.username, PASSWORD, hasher=stronger)
    assert _stored_hash(connection, user.username) == new


def test_set_password_replaces_the_old_one(connection):
    user = _add(connection)
    hq_users.set_password(connection, user.username, "a brand new passphrase", hasher=FAST)
    assert hq_users.authenticate(connection, user.username, PASSWORD, hasher=FAST) is None
    assert hq_users.authenticate(connection, user.username, "a brand new passphrase", hasher=FAST)


def test_bad_usernames_short_passwords_and_duplicates_are_refused(connection):
    _add(connection, username="grace")
    with pytest.raises(Conflict):
        _add(connection, username="GRACE")
    with pytest.raises(InvalidInput):
        _add(connection, username="has space")
    with pytest.raises(InvalidInput):
        _add(connection, username="linus", password="short")
    with pytest.raises(NotFound):
        hq_users.set_password(connection, "nobody", PASSWORD, hasher=FAST)
    assert [user.username for user in hq_users.list_users(connection)] == ["grace"]


def test_user_management_and_sign_ins_are_audited(connection):
    user = _add(connection)
    hq_users.authenticate(connection, user.username, PASSWORD, hasher=FAST)
    hq_users.disable_user(connection, user.username)
    actions = connection.scalars(
        select(audit_log.c.action)
        .where(audit_log.c.subject_id == str(user.user_id))
        .order_by(audit_log.c.audit_id)
    ).all()
    assert actions == ["hq_user.created", "hq_user.signed_in", "hq_user.disabled"]
