"""The CLI installs the default alert rules and runs the alert job."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from shared.alerts.defaults import DEFAULT_RULES
from tests.integration.alerts_support import Ledger

ROOT = Path(__file__).resolve().parents[2]


def test_the_cli_installs_the_defaults_and_runs_the_alert_job(database_url, clean_database):
    env = dict(os.environ, DATABASE_URL=database_url.render_as_string(hide_password=False))

    def coalition(*arguments):
        return subprocess.run(
            [sys.executable, "-m", "shared.cli", *arguments],
            cwd=ROOT, env=env, capture_output=True, text=True, timeout=120,
        )  # fmt: skip

    Ledger(clean_database).merchant("North")  # the per-merchant rule has a scope key
    installed = coalition("alerts", "install-defaults")
    assert installed.returncode == 0, installed.stderr
    assert f"{len(DEFAULT_RULES)} default alert rules installed" in installed.stderr
    first, again = coalition("jobs", "alerts"), coalition("jobs", "alerts")
    assert first.returncode == 0, first.stderr
    assert f"alert rules evaluated: {len(DEFAULT_RULES)} of {len(DEFAULT_RULES)}" in first.stderr
    assert f"alert rules evaluated: 0 of {len(DEFAULT_RULES)}" in again.stderr  # same tick
