"""Who is at the dashboard: sign-in, the signed-in user and their role, sign-out.

Sign-in is a username and password checked against the HQ users (shared/hq_users.py,
argon2) or, when `.streamlit/secrets.toml` has an `[auth]` section, the organisation's
identity provider through st.login (OIDC): the provider vouches for the e-mail address,
and the HQ user of that name gives the role, so an identity alone opens nothing.

The signed-in user lives in st.session_state, on the server, for the browser tab's
session: a reload starts a new session and asks again. Every run re-reads the account
(cached for a minute), so disabling a user or changing a role reaches open sessions.
Analysts read; admins may also change things: a page puts its admin controls after
`require_admin`, which stops the page there for analysts.
"""

from __future__ import annotations

import streamlit as st

from dashboard import data
from shared.hq_users import HqUser

SESSION_KEY = "hq_user"


def current_user() -> HqUser | None:
    remembered = st.session_state.get(SESSION_KEY)
    if remembered is None:
        return None
    user = data.enabled_user(remembered.username)
    if user is None:
        st.session_state.pop(SESSION_KEY, None)
        return None
    st.session_state[SESSION_KEY] = user  # a role or a name changed since the sign-in
    return user


def require_admin(action: str) -> HqUser:
    """The signed-in admin; for anyone else the page says what only admins may do and
    stops here, so the controls that follow are never rendered for them."""
    user = current_user()
    if user is None or not user.is_admin:
        st.caption(f":material/lock: Only HQ admins can {action}.")
        st.stop()
    return user


def identity_providers() -> list[str | None]:
    """The OIDC providers configured in secrets.toml: None is the unnamed one (client_id
    directly under [auth]), names are [auth.<name>] sections."""
    if not st.secrets.load_if_toml_exists() or "auth" not in st.secrets:
        return []
    settings = st.secrets["auth"]
    providers: list[str | None] = [None] if "client_id" in settings else []
    providers += [
        name for name, value in settings.items() if hasattr(value, "keys") and "client_id" in value
    ]
    return providers


def _remember(user: HqUser) -> None:
    st.session_state[SESSION_KEY] = user
    st.rerun()


def _sign_in_with_identity_provider(providers: list[str | None]) -> None:
    if st.user.get("is_logged_in", False):
        email = st.user.get("email")
        verified = st.user.get("email_verified", True) is not False
        user = data.sign_in_verified(email) if email and verified else None
        if user is not None:
            _remember(user)
        st.warning(
            f"{email or 'This account'} is not an HQ user of this dashboard. An admin can "
            f"add it: `coalition users add {email or '<e-mail>'} --no-password --role analyst`."
        )
        st.button("Sign out of the identity provider", on_click=st.logout)
        return
    for provider in providers:
        label = f"Sign in with {provider.title()}" if provider else "Sign in with your organisation"
        if st.button(label, key=f"sign_in_{provider or 'default'}", icon=":material/badge:"):
            st.login(provider) if provider else st.login()
    st.caption("or with a password:")


def sign_in_screen() -> None:
    """The only page until someone signs in: a narrow column in the middle."""
    _, middle, _ = st.columns([1, 1.4, 1])
    with middle:
        st.title("Coalition HQ")
        st.caption(
            "The network's dashboard, for HQ staff. No account? An HQ admin creates one "
            "with `coalition users add`."
        )
        providers = identity_providers()
        if providers:
            _sign_in_with_identity_provider(providers)
        with st.form("sign_in"):
            username = st.text_input("Username", autocomplete="username")
            password = st.text_input("Password", type="password", autocomplete="current-password")
            submitted = st.form_submit_button("Sign in", type="primary")
        if submitted:
            user = data.authenticate(username, password)
            if user is None:
                # One message whatever the reason: the screen does not reveal who exists.
                st.error("Wrong username or password, or the account is disabled.")
            else:
                _remember(user)


def account_in_sidebar(user: HqUser) -> None:
    with st.sidebar:
        st.divider()
        st.caption(f"Signed in as **{user.display_name}** ({user.role})")
        if st.button("Sign out", icon=":material/logout:"):
            st.session_state.pop(SESSION_KEY, None)
            if identity_providers() and st.user.get("is_logged_in", False):
                st.logout()  # also forgets the identity provider's cookie
            st.rerun()
