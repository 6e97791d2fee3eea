"""The README's first command, end to end: `coalition up` on a brand-new embedded database."""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
from pathlib import Path

from shared.api_keys import KEY_PATTERN

ROOT = Path(__file__).resolve().parents[2]


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_up_starts_api_and_dashboard_on_a_fresh_embedded_database(tmp_path):
    env = {key: value for key, value in os.environ.items() if key != "DATABASE_URL"}
    env["COALITION_DATA_DIR"] = str(tmp_path / "state")
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "shared.cli",
            "up",
            "--exit-after-start",
            "--api-port",
            str(_free_port()),
            "--dashboard-port",
            str(_free_port()),
        ],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    keys = re.findall(r"API key.*?\s(coal_\S+)", result.stdout)
    assert len(keys) == 2 and all(KEY_PATTERN.match(key) for key in keys)
    assert "http://127.0.0.1:" in result.stdout
    # A demo admin for the dashboard, with a password that works.
    [(username, password)] = re.findall(r"Dashboard sign-in\s+(\S+)  /  (\S+)", result.stdout)
    assert username == "demo-admin" and len(password) >= 12
    # The server was stopped on exit: no postmaster is left behind.
    assert not (tmp_path / "state" / "pgdata" / "postmaster.pid").exists()
