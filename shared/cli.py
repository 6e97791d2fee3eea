"""The `coalition` command: run the product, migrate, manage keys, seed.

`coalition up` is what the README's first command ends in: database (embedded unless
DATABASE_URL is set), migrations, demo network, then the API and the dashboard as child
processes, stopped together on Ctrl-C or SIGTERM.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
import time
from datetime import datetime
from typing import Annotated

import typer
from rich.console import Console

from seed.command import seed_app
from shared.settings import PROJECT_ROOT, get_settings

app = typer.Typer(help="Coalition loyalty network.", no_args_is_help=True, add_completion=False)
db_app = typer.Typer(help="Database: migrations and the embedded server.", no_args_is_help=True)
keys_app = typer.Typer(help="API keys.", no_args_is_help=True)
app.add_typer(db_app, name="db")
app.add_typer(keys_app, name="keys")
app.add_typer(seed_app, name="seed")
console = Console(stderr=True)


def _database_url():
    from shared.database.bootstrap import database_url

    return database_url(get_settings())


def _run_async(coroutine_factory):
    """Run `coroutine_factory(connection)` in one committed transaction on the product DB."""
    from sqlalchemy.ext.asyncio import create_async_engine

    from shared.database.bootstrap import async_url

    async def main():
        engine = create_async_engine(async_url(_database_url()))
        try:
            async with engine.begin() as connection:
                return await coroutine_factory(connection)
        finally:
            await engine.dispose()

    return asyncio.run(main())


@db_app.command("upgrade")
def db_upgrade(revision: str = typer.Argument("head")) -> None:
    """Apply migrations up to REVISION (default: head)."""
    from shared.database.migrate import current_revision, upgrade

    url = _database_url()
    upgrade(url, revision)
    console.print(f"database at revision [bold]{current_revision(url)}[/bold]")


@db_app.command("current")
def db_current() -> None:
    """Print the database's migration revision."""
    from shared.database.migrate import current_revision

    typer.echo(current_revision(_database_url()) or "none")


@db_app.command("url")
def db_url() -> None:
    """Print the database URL (starting the embedded server if needed)."""
    typer.echo(_database_url().render_as_string(hide_password=False))


@db_app.command("revision")
def db_revision(message: str = typer.Option(..., "-m", "--message")) -> None:
    """Autogenerate a migration from the tables in shared/tables.py (developers)."""
    from alembic import command

    from shared.database.migrate import alembic_config

    command.revision(alembic_config(_database_url()), message=message, autogenerate=True)


@db_app.command("stop")
def db_stop() -> None:
    """Stop the embedded PostgreSQL even if a crashed process left it running."""
    from shared.database.embedded import force_stop

    settings = get_settings()
    if settings.database_url:
        console.print("DATABASE_URL is set: there is no embedded server to stop.")
        raise typer.Exit(0)
    console.print("stopped" if force_stop(settings.data_dir) else "not running")


@keys_app.command("create-admin")
def keys_create_admin(
    label: str = typer.Option("bootstrap", help="A name to recognise the key by."),
    role: str = typer.Option("hq_admin", help="hq_admin or hq_analyst."),
) -> None:
    """Create an HQ key; prints only the secret on stdout (for scripts)."""
    from shared import api_keys
    from shared.access import SYSTEM, Role
    from shared.database.migrate import upgrade

    if role not in (Role.HQ_ADMIN, Role.HQ_ANALYST):
        console.print("role must be hq_admin or hq_analyst")
        raise typer.Exit(2)
    upgrade(_database_url())
    issued = _run_async(
        lambda connection: api_keys.issue_key(connection, SYSTEM, role=Role(role), label=label)
    )
    typer.echo(issued.secret)


users_app = typer.Typer(
    help="HQ dashboard users: analysts read, admins may also change things.",
    no_args_is_help=True,
)
app.add_typer(users_app, name="users")


def _in_transaction(work):
    """Run `work(connection)` in one committed transaction on the migrated product
    database, through the sync driver (the user functions are sync, like the dashboard)."""
    from sqlalchemy import create_engine

    from shared.database.migrate import upgrade
    from shared.errors import DomainError

    url = _database_url()
    upgrade(url)
    engine = create_engine(url)
    try:
        with engine.begin() as connection:
            return work(connection)
    except DomainError as error:
        console.print(f"[red]{error.detail}[/red]")
        raise typer.Exit(1) from None
    finally:
        engine.dispose()


def _read_password(from_stdin: bool) -> str:
    """Never from the command line, where shell history and `ps` would keep it."""
    if from_stdin:
        return sys.stdin.readline().rstrip("\r\n")
    return typer.prompt("Password", hide_input=True, confirmation_prompt=True, err=True)


_PASSWORD_STDIN = typer.Option(
    False, "--password-stdin", help="Read the password from the first line of stdin (scripts)."
)


@users_app.command("add")
def users_add(
    username: str = typer.Argument(..., help="A name or an e-mail address (OIDC sign-in)."),
    role: str = typer.Option("analyst", help="analyst (reads) or admin (may also change)."),
    display_name: str = typer.Option("", help="Shown in the dashboard; default: the username."),
    password_stdin: bool = _PASSWORD_STDIN,
    no_password: bool = typer.Option(
        False, "--no-password", help="Signs in through the identity provider (OIDC) only."
    ),
) -> None:
    """Add an HQ user; the password is asked twice (or read from stdin)."""
    from shared import hq_users
    from shared.errors import DomainError

    if role not in tuple(hq_users.HqRole):
        console.print("role must be analyst or admin")
        raise typer.Exit(2)
    try:
        hq_users.normalise_username(username)  # before asking for a password
    except DomainError as error:
        console.print(f"[red]{error.detail}[/red]")
        raise typer.Exit(2) from None
    password = None if no_password else _read_password(password_stdin)
    user = _in_transaction(
        lambda connection: hq_users.create_user(
            connection,
            username=username,
            display_name=display_name,
            role=hq_users.HqRole(role),
            password=password,
        )
    )
    console.print(f"added {user.username} ({user.role})")


@users_app.command("list")
def users_list() -> None:
    """Every HQ user, disabled ones included."""
    from rich.table import Table

    from shared import hq_users

    def when(moment) -> str:
        return moment.strftime("%Y-%m-%d %H:%M") if moment else "-"

    table = Table(title="HQ users")
    for column in ("username", "name", "role", "sign-in", "created", "last sign-in", "status"):
        table.add_column(column)
    for user in _in_transaction(hq_users.list_users):
        table.add_row(
            user.username,
            user.display_name,
            user.role,
            "password" if user.has_password else "identity provider",
            when(user.created_at),
            when(user.last_login_at),
            "enabled" if user.is_enabled else f"disabled {when(user.disabled_at)}",
        )
    Console().print(table)


@users_app.command("set-password")
def users_set_password(username: str, password_stdin: bool = _PASSWORD_STDIN) -> None:
    """Set a user's password (asked twice, or read from stdin)."""
    from shared import hq_users

    password = _read_password(password_stdin)
    user = _in_transaction(lambda connection: hq_users.set_password(connection, username, password))
    console.print(f"password set for {user.username}")


@users_app.command("disable")
def users_disable(username: str) -> None:
    """Disable a user: no more sign-ins, open sessions end within a minute."""
    from shared import hq_users

    user = _in_transaction(lambda connection: hq_users.disable_user(connection, username))
    console.print(f"{user.username} is disabled")


jobs_app = typer.Typer(
    help="Periodic jobs (cron or the compose worker runs them).", no_args_is_help=True
)
app.add_typer(jobs_app, name="jobs")


def _run_with_engine(job):
    """Run `job(engine)` against the product database; the job manages its transactions."""
    from sqlalchemy.ext.asyncio import create_async_engine

    from shared.database.bootstrap import async_url

    async def main():
        engine = create_async_engine(async_url(_database_url()))
        try:
            return await job(engine)
        finally:
            await engine.dispose()

    return asyncio.run(main())


@jobs_app.command("expire")
def jobs_expire(batch_size: int = typer.Option(500, min=1)) -> None:
    """Release holds past their TTL, then expire lots past expires_at (idempotent)."""
    from shared.ledger.expiry import expire_due_lots
    from shared.ledger.redemption import finalise_expired_holds

    holds = _run_with_engine(lambda engine: finalise_expired_holds(engine, batch_size))
    report = _run_with_engine(lambda engine: expire_due_lots(engine, batch_size))
    console.print(
        f"holds released: {holds}; lots expired: {report.lots} "
        f"({report.points} points, {report.members} members)"
    )


@jobs_app.command("tiers")
def jobs_tiers() -> None:
    """Requalify members whose tier status period ended (down one level at most)."""
    from shared.ledger.tiers import requalify_due

    changed = _run_with_engine(lambda engine: requalify_due(engine, get_settings().program))
    console.print(f"members requalified: {changed}")


@jobs_app.command("settle")
def jobs_settle() -> None:
    """Close every settlement period that has ended (idempotent), oldest first; then store
    the current points liability for the dashboard (at most hourly)."""
    from shared.settlement.closing import close_due_periods
    from shared.settlement.liability import store_current

    rules = get_settings().program
    closed = _run_with_engine(lambda engine: close_due_periods(engine, rules))
    for period in closed:
        console.print(
            f"closed {period.label}: {period.transactions} transactions, "
            f"{period.statements} statements"
        )
    if not closed:
        console.print("no period to close")
    liability = _run_with_engine(lambda engine: store_current(engine, rules))
    if liability is not None:
        console.print(f"liability stored as of {liability.as_of:%Y-%m-%d %H:%M}")


@jobs_app.command("campaigns")
def jobs_campaigns() -> None:
    """Launch targeted campaigns whose start has come (every listed member gets an arm),
    then store the results of started campaigns for the dashboard (hourly while running)."""
    from shared.campaigns.launch import launch_due_campaigns
    from shared.campaigns.snapshots import refresh_snapshots

    rules = get_settings().program
    launched = _run_with_engine(
        lambda engine: launch_due_campaigns(engine, rules.global_holdout_bps)
    )
    for launch in launched:
        console.print(
            f"launched {launch.campaign_id}: {launch.treatment} treated, {launch.holdout} holdout"
        )
    if not launched:
        console.print("no campaign to launch")
    refreshed = _run_with_engine(lambda engine: refresh_snapshots(engine, rules))
    console.print(f"campaign results stored: {len(refreshed)}")


def _sync_engine():
    from sqlalchemy import create_engine

    return create_engine(_database_url())


@jobs_app.command("alerts")
def jobs_alerts() -> None:
    """Evaluate every alert rule at its current tick, then send the notifications that are
    due (idempotent: a tick is evaluated once; docs/alerts.md)."""
    from shared.alerts.delivery import deliver_due
    from shared.alerts.evaluation import evaluate_all
    from shared.alerts.rules import Severity

    settings = get_settings()
    engine = _sync_engine()
    try:
        evaluations, failures = evaluate_all(
            engine,
            tiers=settings.program.tier_names,
            email_min_severity=(
                Severity(settings.alert_email_min_severity)
                if settings.alert_email_enabled
                else None
            ),
        )
        deliveries = deliver_due(engine, settings)
    finally:
        engine.dispose()
    evaluated = [evaluation for evaluation in evaluations if evaluation.evaluated]
    for evaluation in evaluated:
        for change in evaluation.changes:
            console.print(
                f"{evaluation.name} [{change.scope_key}]: {change.change.from_state} -> "
                f"{change.change.to_state} (value {change.value})"
            )
    for failure in failures:
        console.print(f"[red]rule {failure.rule_id} failed: {failure.error}[/red]")
    delivered = sum(report.outcome.delivered for report in deliveries)
    console.print(
        f"alert rules evaluated: {len(evaluated)} of {len(evaluations) + len(failures)}; "
        f"notifications sent: {delivered} of {len(deliveries)} due"
    )
    if failures:
        raise typer.Exit(1)


@jobs_app.command("rollups")
def jobs_rollups(
    full: bool = typer.Option(False, help="Rebuild every rollup from the whole ledger."),
) -> None:
    """Bring the analytics rollups up to date from their watermark (idempotent)."""
    from shared.analytics.refresh import refresh

    engine = _sync_engine()
    try:
        report = refresh(engine, get_settings().program, full=full)
    finally:
        engine.dispose()
    console.print(
        f"rollups {'rebuilt' if report.full else 'refreshed'}: {report.batches} batches,"
        f" {report.members} members touched, up to {report.watermark} ({report.seconds:.1f} s)"
    )


@jobs_app.command("models")
def jobs_models(
    force: bool = typer.Option(False, help="Fit again even if today's data has a fit."),
    as_of: Annotated[
        datetime | None,
        typer.Option(
            formats=["%Y-%m-%d"], help="End of observation (default: the data's last day)."
        ),
    ] = None,
) -> None:
    """Fit the churn model (BG/NBD) to every member's history, once per day of data."""
    from shared.analytics.churn_model import fit_and_store

    engine = _sync_engine()
    try:
        with engine.begin() as connection:
            fit = fit_and_store(connection, as_of=as_of.date() if as_of else None, force=force)
    finally:
        engine.dispose()
    if fit is None:
        console.print("churn model: nothing new to fit")
        return
    p = fit.parameters
    console.print(
        f"churn model as of {fit.as_of}: r={p.r:.3f} alpha={p.alpha:.3f} a={p.a:.3f} "
        f"b={p.b:.3f}; expected active {fit.expected_active:,.0f} of {fit.members:,} "
        f"members ({fit.seconds:.1f} s)"
    )


@jobs_app.command("loop")
def jobs_loop(
    interval: int = typer.Option(300, min=5, help="Seconds between two rounds."),
    rounds: int = typer.Option(0, min=0, help="Stop after this many rounds (0: run forever)."),
) -> None:
    """The worker: every job, every INTERVAL seconds (what compose's worker service runs)."""
    done = 0
    while True:
        jobs_campaigns()
        jobs_expire(batch_size=5000)
        jobs_tiers()
        jobs_settle()
        with contextlib.suppress(typer.Exit):  # a failing rule was reported; keep going
            jobs_alerts()
        jobs_rollups(full=False)
        jobs_models(force=False, as_of=None)
        done += 1
        if rounds and done >= rounds:
            return
        time.sleep(interval)


alerts_app = typer.Typer(help="Alert rules.", no_args_is_help=True)
app.add_typer(alerts_app, name="alerts")


@alerts_app.command("install-defaults")
def alerts_install_defaults() -> None:
    """Store the documented default alert rules the network does not have yet (by name)."""
    from shared.access import SYSTEM
    from shared.alerts.defaults import install_defaults
    from shared.database.migrate import upgrade

    upgrade(_database_url())
    engine = _sync_engine()
    try:
        with engine.begin() as connection:
            created = install_defaults(connection, SYSTEM)
    finally:
        engine.dispose()
    for name in created:
        console.print(f"created: {name}")
    console.print(f"{len(created)} default alert rules installed")


@app.command("audit")
def audit_command() -> None:
    """Check every ledger and settlement invariant on the live database; exit 1 on any
    violation."""
    from rich.table import Table
    from sqlalchemy import create_engine

    from shared.ledger.integrity import CHECKS, run_checks
    from shared.settlement.reconciliation import CHECKS as SETTLEMENT_CHECKS

    engine = create_engine(_database_url())
    with engine.connect() as connection:
        results = run_checks(connection, checks=CHECKS + SETTLEMENT_CHECKS)
    engine.dispose()
    table = Table(title="Ledger and settlement audit")
    for column in ("check", "rule", "violations"):
        table.add_column(column)
    for result in results:
        table.add_row(
            result.check.name,
            result.check.rule,
            "[green]0[/green]" if result.ok else f"[red]{result.violations}[/red]",
        )
    Console().print(table)
    failed = [result for result in results if not result.ok]
    for result in failed:
        console.print(f"[red]{result.check.name}[/red]: e.g. {result.examples}")
    raise typer.Exit(1 if failed else 0)


def _children_env(url) -> dict[str, str]:
    env = dict(os.environ)
    # Children use exactly this server and never start their own.
    env["DATABASE_URL"] = url.render_as_string(hide_password=False)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(PROJECT_ROOT), env.get("PYTHONPATH")]))
    return env


def _wait_until_up(url: str, process: subprocess.Popen, seconds: float = 60.0) -> bool:
    import httpx

    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if process.poll() is not None:
            return False
        try:
            if httpx.get(url, timeout=1.0).status_code < 500:
                return True
        except httpx.HTTPError:
            pass
        time.sleep(0.3)
    return False


@app.command("up")
def up(
    demo: bool = typer.Option(True, help="Create the demo network when the database is empty."),
    api_port: int | None = typer.Option(None, help="Default: COALITION_API_PORT or 8000."),
    dashboard_port: int | None = typer.Option(
        None, help="Default: COALITION_DASHBOARD_PORT or 8501."
    ),
    exit_after_start: bool = typer.Option(
        False, help="Stop everything once both services answered (smoke test)."
    ),
) -> None:
    """Run the whole product: database, migrations, demo data, API and dashboard."""
    from seed.command import seed_database
    from seed.demo import has_demo_network, issue_demo_credentials, issue_demo_login
    from shared.database.embedded import stop_embedded_servers
    from shared.database.migrate import upgrade

    settings = get_settings()
    api_port = api_port or settings.api_port
    dashboard_port = dashboard_port or settings.dashboard_port
    started = time.monotonic()
    url = _database_url()
    console.print(
        f"database: {'DATABASE_URL' if settings.database_url else 'embedded PostgreSQL in ' + str(settings.data_dir)}"
    )
    upgrade(url)
    if demo and not _run_async(has_demo_network):
        console.print("creating the demo network (coalition seed --profile demo)...")
        report, truth_path = seed_database(url, profile_name="demo", show_progress=False)
        console.print(
            f"  {report.total('members'):,} members, "
            f"{report.total('ledger_transactions'):,} transactions; ground truth: {truth_path}"
        )
        jobs_settle()  # the demo's history comes with its closed periods
        alerts_install_defaults()  # and with the default alert rules (docs/alerts.md)
    jobs_campaigns()  # the campaigns' results, stored for the dashboard
    jobs_rollups(full=False)  # the dashboard's figures include everything posted so far
    jobs_models(force=False, as_of=None)  # and the churn model fitted to them
    credentials = _run_async(issue_demo_credentials)
    login = _in_transaction(issue_demo_login)
    dashboard_login = (
        f"{login.username}  /  {login.password}"
        if login
        else "your HQ users (coalition users list)"
    )
    env = _children_env(url)
    python = sys.executable
    host = settings.api_host
    processes = {
        "api": subprocess.Popen(
            [
                python,
                "-m",
                "uvicorn",
                "--factory",
                "api.app:app_factory",
                "--host",
                host,
                "--port",
                str(api_port),
                "--log-level",
                "warning",
            ],
            env=env,
            cwd=PROJECT_ROOT,
        ),
        "dashboard": subprocess.Popen(
            [
                python,
                "-m",
                "streamlit",
                "run",
                str(PROJECT_ROOT / "dashboard" / "app.py"),
                "--server.port",
                str(dashboard_port),
                "--server.address",
                host,
                "--server.headless",
                "true",
                "--browser.gatherUsageStats",
                "false",
            ],
            env=env,
            cwd=PROJECT_ROOT,
            stdout=subprocess.DEVNULL,
        ),
    }
    api_url = f"http://{host}:{api_port}"
    dashboard_url = f"http://{host}:{dashboard_port}"

    def shutdown(*_: object) -> None:
        for process in processes.values():
            if process.poll() is None:
                process.terminate()
        for process in processes.values():
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
        stop_embedded_servers()

    signal.signal(signal.SIGTERM, lambda *_: (_ for _ in ()).throw(KeyboardInterrupt()))
    try:
        api_ok = _wait_until_up(f"{api_url}/ready", processes["api"])
        dashboard_ok = _wait_until_up(f"{dashboard_url}/_stcore/health", processes["dashboard"])
        if not (api_ok and dashboard_ok):
            console.print(f"[red]failed to start: api={api_ok} dashboard={dashboard_ok}[/red]")
            raise typer.Exit(1)
        elapsed = time.monotonic() - started
        typer.echo(
            f"""
Coalition is running (ready in {elapsed:.1f}s). Ctrl-C stops everything.

  API           {api_url}            (OpenAPI: {api_url}/schema, {api_url}/schema/swagger)
  Dashboard     {dashboard_url}

  HQ admin API key             {credentials.hq_admin_key}
  Merchant API key ({credentials.merchant_name})  {credentials.merchant_key}
  Dashboard sign-in            {dashboard_login}

  Try (enrol a member at the merchant, then find them by phone):
    curl -s -X POST {api_url}/v1/members -H "Authorization: Bearer {credentials.merchant_key}" \\
         -H "Content-Type: application/json" -d '{{"identifiers":[{{"kind":"phone","value":"(415) 555-0199"}}]}}'
    curl -s -X POST {api_url}/v1/members/lookup -H "X-API-Key: {credentials.merchant_key}" \\
         -H "Content-Type: application/json" -d '{{"kind":"phone","value":"+1 415 555 0199"}}'
"""
        )
        if exit_after_start:
            return
        while all(process.poll() is None for process in processes.values()):
            time.sleep(0.5)
        console.print("[red]a service stopped; shutting down[/red]")
        raise typer.Exit(1)
    except KeyboardInterrupt:
        console.print("stopping...")
    finally:
        shutdown()


@app.command("api")
def run_api(port: int | None = None) -> None:
    """Run the API alone (production: use the compose file)."""
    import uvicorn

    settings = get_settings()
    url = _database_url()
    os.environ["DATABASE_URL"] = url.render_as_string(hide_password=False)
    get_settings.cache_clear()
    uvicorn.run(
        "api.app:app_factory", factory=True, host=settings.api_host, port=port or settings.api_port
    )


def main() -> None:
    app()


if __name__ == "__main__":
    main()
