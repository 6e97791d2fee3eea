"""`coalition users` and the demo admin `coalition up` prints, on the test database."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from seed.demo import DEMO_ADMIN_USERNAME, issue_demo_login
from shared import hq_users
from shared.cli import app
from shared.settings import get_settings

PASSWORD = "a long enough passphrase"


@pytest.fixture
def product_database(database_url, monkeypatch):
    """The CLI's product database is the test database (in process: faster than a child)."""
    monkeypatch.setenv("DATABASE_URL", database_url.render_as_string(hide_password=False))
    monkeypatch.setenv("COLUMNS", "200")  # rich wraps tables at 80 columns without a terminal
    get_settings.cache_clear()
    yield database_url
    get_settings.cache_clear()


def _users(*arguments: str, stdin: str = ""):
    return CliRunner().invoke(app, ["users", *arguments], input=stdin)


def test_users_are_added_listed_given_a_new_password_and_disabled(product_database, clean_database):
    added = _users(
        "add",
        "grace@hq.example",
        "--role",
        "admin",
        "--display-name",
        "Grace Hopper",
        "--password-stdin",
        stdin=PASSWORD + "\n",
    )
    assert added.exit_code == 0, added.output
    assert PASSWORD not in added.output
    with clean_database.begin() as connection:
        user = hq_users.authenticate(connection, "grace@hq.example", PASSWORD)
    assert user is not None and user.is_admin and user.display_name == "Grace Hopper"

    listed = _users("list")
    assert listed.exit_code == 0 and "grace@hq.example" in listed.output
    assert "Grace Hopper" in listed.output and "enabled" in listed.output

    changed = _users(
        "set-password",
        "grace@hq.example",
        "--password-stdin",
        stdin="another long passphrase\n",
    )
    assert changed.exit_code == 0, changed.output
    with clean_database.begin() as connection:
        assert hq_users.authenticate(connection, "grace@hq.example", PASSWORD) is None
        assert hq_users.authenticate(connection, "grace@hq.example", "another long passphrase")

    disabled = _users("disable", "grace@hq.example")
    assert disabled.exit_code == 0, disabled.output
    with clean_database.begin() as connection:
        assert hq_users.enabled_user(connection, "grace@hq.example") is None


def test_users_add_refuses_an_unknown_role_a_short_password_and_a_duplicate(
    product_database, clean_database
):
    assert _users("add", "linus", "--role", "root", "--no-password").exit_code == 2
    assert _users("add", "has space", "--password-stdin", stdin=PASSWORD).exit_code == 2
    short = _users("add", "linus", "--password-stdin", stdin="short\n")
    assert short.exit_code == 1 and "at least 12 characters" in short.output
    assert _users("add", "linus", "--no-password").exit_code == 0
    duplicate = _users("add", "LINUS", "--no-password")
    assert duplicate.exit_code == 1 and "exists already" in duplicate.output


def test_the_demo_admin_gets_a_fresh_password_at_every_start(clean_database):
    with clean_database.begin() as connection:
        first = issue_demo_login(connection)
        second = issue_demo_login(connection)
        assert first.username == second.username == DEMO_ADMIN_USERNAME
        assert first.password != second.password
        assert hq_users.authenticate(connection, DEMO_ADMIN_USERNAME, first.password) is None
        assert hq_users.authenticate(connection, DEMO_ADMIN_USERNAME, second.password).is_admin


def test_no_demo_admin_is_added_where_admins_exist_already(clean_database):
    with clean_database.begin() as connection:
        hq_users.create_user(
            connection,
            username="ops",
            display_name="",
            role=hq_users.HqRole.ADMIN,
            password=PASSWORD,
        )
        assert issue_demo_login(connection) is None
        assert [user.username for user in hq_users.list_users(connection)] == ["ops"]
