"""The embedded PostgreSQL: started once, shared by concurrent processes, stopped by the last
one; never started when DATABASE_URL is set."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

from shared.database.bootstrap import database_url
from shared.settings import Settings

ROOT = Path(__file__).resolve().parents[2]

HOLD_SERVER = """
import sys, time
from shared.database.bootstrap import database_url
from shared.settings import Settings
from sqlalchemy import create_engine, text
url = database_url(Settings())
with create_engine(url).connect() as connection:
    print(connection.execute(text("select pg_postmaster_start_time()")).scalar(), flush=True)
time.sleep(float(sys.argv[1]))
"""


def _spawn(data_dir: Path, hold_seconds: float) -> subprocess.Popen:
    env = {key: value for key, value in os.environ.items() if key != "DATABASE_URL"}
    env["COALITION_DATA_DIR"] = str(data_dir)
    return subprocess.Popen(
        [sys.executable, "-c", HOLD_SERVER, str(hold_seconds)],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def test_second_start_reuses_the_running_server_and_the_last_process_stops_it(tmp_path):
    first = _spawn(tmp_path, hold_seconds=4)
    first_started = first.stdout.readline().strip()
    second = _spawn(tmp_path, hold_seconds=0.5)
    second_started = second.stdout.readline().strip()
    assert second.wait(timeout=60) == 0, second.stderr.read()
    assert first_started and first_started == second_started  # one and the same postmaster
    pid_file = tmp_path / "pgdata" / "postmaster.pid"
    assert pid_file.exists()  # the first process still uses it
    assert first.wait(timeout=60) == 0, first.stderr.read()
    deadline = time.monotonic() + 10
    while pid_file.exists() and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not pid_file.exists()


def test_database_url_set_means_no_embedded_server(tmp_path):
    settings = Settings(
        DATABASE_URL="postgresql://someone:secret@db.invalid:5432/coalition",
        COALITION_DATA_DIR=str(tmp_path / "never"),
    )
    url = database_url(settings)
    assert url.host == "db.invalid" and url.database == "coalition"
    assert url.drivername == "postgresql+psycopg"
    assert not (tmp_path / "never").exists()
