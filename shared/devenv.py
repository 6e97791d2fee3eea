"""Bootstrap a fresh machine (only Python 3.11+ needed) and run the product or the tests.

    python3 -m shared.devenv up      # venv, locked install, embedded PostgreSQL, demo, API + dashboard
    python3 -m shared.devenv test    # venv, locked install, Chromium (apt, if root), the whole test suite

Standard library only: this runs before anything is installed. The install is pinned by
uv.lock (uv, fetched from PyPI into the venv, is fast); if uv cannot be installed, pip
installs the same pins from requirements.lock (exported from uv.lock, with hashes).
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
VENV = ROOT / ".venv"
BIN = VENV / ("Scripts" if os.name == "nt" else "bin")
PYTHON = BIN / "python"
STAMP = VENV / ".coalition-install-stamp"
UV_VERSION = "0.13.9"


def _log(message: str) -> None:
    print(f"[devenv] {message}", file=sys.stderr, flush=True)


def _lock_digest() -> str:
    digest = hashlib.sha256()
    for name in ("pyproject.toml", "uv.lock", "requirements.lock"):
        path = ROOT / name
        if path.exists():
            digest.update(path.read_bytes())
    return digest.hexdigest()


def _run(*command: str | Path, **kwargs) -> None:
    subprocess.run([str(part) for part in command], check=True, cwd=ROOT, **kwargs)


def ensure_environment() -> None:
    if sys.version_info < (3, 11):  # noqa: UP036 - run by whatever python3 the machine has
        sys.exit(f"Python 3.11+ is required (this is {sys.version.split()[0]}).")
    if not PYTHON.exists():
        _log(f"creating virtualenv {VENV}")
        venv.EnvBuilder(with_pip=True).create(VENV)
    if STAMP.exists() and STAMP.read_text() == _lock_digest():
        return
    env = dict(os.environ, VIRTUAL_ENV=str(VENV), UV_PROJECT_ENVIRONMENT=str(VENV))
    quiet = ["--quiet"] if os.environ.get("CI") else []
    try:
        _run(
            PYTHON,
            "-m",
            "pip",
            "install",
            "--disable-pip-version-check",
            "--quiet",
            f"uv=={UV_VERSION}",
            env=env,
        )
        _log("installing locked dependencies with uv")
        _run(BIN / "uv", "sync", "--frozen", "--all-groups", *quiet, env=env)
    except (subprocess.CalledProcessError, FileNotFoundError):
        _log("uv unavailable: installing the same pins with pip")
        _run(
            PYTHON,
            "-m",
            "pip",
            "install",
            "--disable-pip-version-check",
            "--quiet",
            "--require-hashes",
            "-r",
            ROOT / "requirements.lock",
            env=env,
        )
        _run(
            PYTHON,
            "-m",
            "pip",
            "install",
            "--disable-pip-version-check",
            "--quiet",
            "--no-deps",
            "-e",
            ROOT,
            env=env,
        )
    STAMP.write_text(_lock_digest())


def ensure_browser() -> None:
    """Debian's Chromium for the dashboard's browser test (tests/e2e/
    test_dashboard_browser.py), installed with apt when it is missing and we may (root, as
    in CI). Never a browser download by Playwright. Without it the test is skipped (it
    fails in CI: .ci/run sets COALITION_REQUIRE_BROWSER)."""
    apt = shutil.which("apt-get")
    if shutil.which("chromium") or os.name == "nt" or apt is None:
        return
    if os.geteuid() != 0:
        _log("no chromium: the browser test will be skipped (sudo apt-get install chromium)")
        return
    _log("installing chromium (apt) for the dashboard's browser test")
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    quiet = {"stdout": subprocess.DEVNULL, "env": env}
    installed = (
        subprocess.run([apt, "update", "-qq"], **quiet).returncode == 0
        and subprocess.run(
            [apt, "install", "-y", "-qq", "--no-install-recommends", "chromium"], **quiet
        ).returncode
        == 0
    )
    if not installed:
        _log("chromium could not be installed: the browser test will say so")


def main(argv: list[str]) -> int:
    if not argv or argv[0] not in ("up", "test", "install"):
        print(__doc__)
        return 2
    ensure_environment()
    command, rest = argv[0], argv[1:]
    if command == "install":
        return 0
    if command == "up":
        arguments = [str(BIN / "coalition"), "up", *rest]
    else:
        ensure_browser()
        # Both cores by default: each xdist worker gets its own database.
        parallel = [] if any(arg.startswith("-n") for arg in rest) else ["-n", "auto"]
        arguments = [str(PYTHON), "-m", "pytest", *parallel, *rest]
    os.chdir(ROOT)
    if os.name == "nt":
        return subprocess.call(arguments)
    os.execv(arguments[0], arguments)
    return 0  # not reached


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
