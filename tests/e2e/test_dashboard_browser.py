"""The real dashboard in a real browser: `streamlit run` on a seeded network, driven in
Debian's Chromium with Playwright. Sign in, open every page from the sidebar, check its
title and that its charts rendered, and keep a screenshot of each page in
tests/artifacts/screenshots/ (git-ignored; CI keeps it as an artefact).

Chromium comes from the system (`apt-get install chromium`: `python3 -m shared.devenv
test` installs it when it runs as root), never from `playwright install`. Without it the
test is skipped, except in CI (.ci/run sets COALITION_REQUIRE_BROWSER), where it fails.
"""

from __future__ import annotations

import os
import re
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from tests.dashboard.seeded_network import ADMIN, seeded_network

ROOT = Path(__file__).resolve().parents[2]
SCREENSHOTS = ROOT / "tests" / "artifacts" / "screenshots"
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"

# (link in the sidebar, page title, Plotly charts the seeded network gives it)
PAGES = [
    ("Overview", "Network overview", 1),
    ("Alerts", "Alerts", 0),
    ("Retention", "Retention", 1),
    ("Churn", "Churn", 4),
    ("Activity", "Activity", 5),
    ("Redemption", "Redemption", 5),
    ("Merchants & settlement", "Merchants & settlement", 3),
    ("Campaigns", "Campaigns", 1),
]


def _screenshot(page, name: str) -> None:
    """The whole page: Streamlit scrolls inside its main block, so a full-page screenshot
    would stop at the window's edge. The window grows to the content first (twice: the
    figures re-lay themselves out in a taller window)."""
    size = page.viewport_size
    for _ in range(2):
        height = page.evaluate(
            "() => Math.max(...[...document.querySelectorAll('[data-testid=stMain] *')]"
            ".map(element => element.scrollHeight), document.body.scrollHeight)"
        )
        page.set_viewport_size({"width": size["width"], "height": max(size["height"], height)})
        page.wait_for_timeout(200)
    page.screenshot(path=SCREENSHOTS / name, full_page=True)
    page.set_viewport_size(size)


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _wait_until_healthy(url: str, process: subprocess.Popen, seconds: float = 30) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"streamlit exited with {process.returncode}")
        try:
            if httpx.get(f"{url}/_stcore/health", timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise RuntimeError("streamlit did not answer in time")


@pytest.fixture(scope="module")
def dashboard_url(database_url, tmp_path_factory):
    if not os.path.exists(CHROMIUM):
        message = "no Chromium: apt-get install chromium (python3 -m shared.devenv test does)"
        if os.environ.get("COALITION_REQUIRE_BROWSER"):  # set by .ci/run
            pytest.fail(message)
        pytest.skip(message)
    with seeded_network(database_url, "browser") as url:
        port = _free_port()
        env = dict(os.environ, DATABASE_URL=url.render_as_string(hide_password=False))
        log = (tmp_path_factory.mktemp("streamlit") / "streamlit.log").open("w")
        process = subprocess.Popen(
            [
                sys.executable, "-m", "streamlit", "run", "dashboard/app.py",
                "--server.headless", "true", "--server.port", str(port),
                "--server.address", "127.0.0.1", "--browser.gatherUsageStats", "false",
            ],
            cwd=ROOT,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )  # fmt: skip
        try:
            url = f"http://127.0.0.1:{port}"
            _wait_until_healthy(url, process)
            yield url
        finally:
            process.terminate()
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
            log.close()


def test_hq_signs_in_and_every_page_renders_in_chromium(dashboard_url):
    from playwright.sync_api import expect, sync_playwright

    # Pages query the database on first load; on two busy cores that can take seconds.
    expect.set_options(timeout=30_000)

    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    username, display_name, password = ADMIN
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True)
        try:
            page = browser.new_page(viewport={"width": 1440, "height": 1000})
            page.set_default_timeout(20_000)
            page.goto(dashboard_url)

            page.get_by_role("textbox", name="Username").fill(username)
            page.get_by_role("textbox", name="Password").fill("not the password at all")
            page.get_by_role("button", name="Sign in").click()
            expect(page.get_by_text("Wrong username or password")).to_be_visible()
            _screenshot(page, "00-sign-in-refused.png")

            page.get_by_role("textbox", name="Password").fill(password)
            page.get_by_role("button", name="Sign in").click()
            expect(page.get_by_role("heading", name="Network overview")).to_be_visible()
            expect(page.get_by_text(f"Signed in as {display_name}")).to_be_visible()

            for number, (link, title, charts) in enumerate(PAGES, start=1):
                # Sidebar links navigate inside the session (a reload would sign out).
                page.get_by_role("link", name=link, exact=True).click()
                expect(page.get_by_role("heading", name=title, exact=True)).to_be_visible()
                # Auto-waiting counts: the previous page's elements linger for a moment.
                plots = page.locator(".js-plotly-plot")
                expect(plots).to_have_count(charts)
                if charts:
                    expect(plots.first.locator(".main-svg").first).to_be_visible()
                    expect(plots.last.locator(".main-svg").first).to_be_visible()
                slug = re.sub(r"[^a-z]+", "-", link.lower()).strip("-")
                _screenshot(page, f"{number:02d}-{slug}.png")

            page.get_by_role("button", name="Sign out").click()
            expect(page.get_by_role("button", name="Sign in")).to_be_visible()
        finally:
            browser.close()
