"""Signing in to the dashboard: passwords, roles, sign-out, disabled accounts, and the
optional identity provider (OIDC)."""

from __future__ import annotations

from sqlalchemy import create_engine
from streamlit.testing.v1 import AppTest

from dashboard import data
from shared import hq_users
from tests.dashboard.conftest import DASHBOARD, texts
from tests.dashboard.seeded_network import ADMIN, ANALYST

IDENTITY_PROVIDER = {
    "auth": {
        "redirect_uri": "http://localhost:8501/oauth2callback",
        "cookie_secret": "a random secret of enough length",
        "client_id": "coalition-hq",
        "client_secret": "secret",
        "server_metadata_url": "https://idp.example/.well-known/openid-configuration",
    }
}


def _sign_in(app, username: str, password: str):
    username_box, password_box = app.text_input
    username_box.input(username)
    password_box.input(password)
    return app.button(key="FormSubmitter:sign_in-Sign in").click().run()


def test_signed_out_visitors_see_the_sign_in_form_and_nothing_else(seeded_dashboard):
    app = seeded_dashboard()
    assert not app.exception
    assert [title.value for title in app.title] == ["Coalition HQ"]
    assert [box.label for box in app.text_input] == ["Username", "Password"]
    assert not app.metric and not app.get("plotly_chart") and not app.multiselect
    assert "Sign in with" not in " ".join(button.label for button in app.button)


def test_a_wrong_password_is_refused_and_the_right_one_opens_the_overview(seeded_dashboard):
    app = seeded_dashboard()
    username, display_name, password = ANALYST
    _sign_in(app, username, "not the password at all")
    assert app.error[0].value.startswith("Wrong username or password")
    assert "hq_user" not in app.session_state
    _sign_in(app, username.upper(), password)
    assert not app.exception
    assert [title.value for title in app.title] == ["Network overview"]
    signed_in = app.session_state["hq_user"]
    assert signed_in.username == username and signed_in.role == "analyst"
    assert f"Signed in as **{display_name}** (analyst)" in texts(app)


def test_sign_out_returns_to_the_sign_in_form(seeded_dashboard):
    app = seeded_dashboard(ADMIN[0])
    assert app.title[0].value == "Network overview"
    [sign_out] = [button for button in app.button if button.label == "Sign out"]
    sign_out.click().run()
    assert [title.value for title in app.title] == ["Coalition HQ"]
    assert "hq_user" not in app.session_state


def test_disabling_a_user_ends_their_open_session(seeded_dashboard, seeded_url):
    engine = create_engine(seeded_url)
    with engine.begin() as connection:
        hq_users.create_user(
            connection,
            username="leaving",
            display_name="Leaving Soon",
            role=hq_users.HqRole.ANALYST,
            password=None,
        )
    app = seeded_dashboard("leaving")
    assert app.title[0].value == "Network overview"
    with engine.begin() as connection:
        hq_users.disable_user(connection, "leaving")
    engine.dispose()
    data.enabled_user.clear()  # what the minute-long cache would do by itself
    app.run()
    assert [title.value for title in app.title] == ["Coalition HQ"]


def test_the_identity_provider_button_shows_only_when_configured(seeded_dashboard):
    app = AppTest.from_file(str(DASHBOARD), default_timeout=60)
    app.secrets = IDENTITY_PROVIDER
    app.run()
    assert not app.exception
    assert "Sign in with your organisation" in [button.label for button in app.button]


def test_an_identity_the_provider_verified_signs_in_with_the_hq_users_role(seeded_dashboard):
    def arriving(email: str, verified: bool = True) -> AppTest:
        app = AppTest.from_file(str(DASHBOARD), default_timeout=60)
        app.secrets = IDENTITY_PROVIDER
        app.user = {"is_logged_in": True, "email": email, "email_verified": verified}
        return app.run()

    known = arriving(ADMIN[0].upper())
    assert known.title[0].value == "Network overview"
    assert known.session_state["hq_user"].is_admin

    stranger = arriving("stranger@elsewhere.example")
    assert "hq_user" not in stranger.session_state
    assert "is not an HQ user" in stranger.warning[0].value

    unverified = arriving(ADMIN[0], verified=False)
    assert "hq_user" not in unverified.session_state
