"""`coalition seed` (and `python -m seed`): bulk-build a network, or play live POS traffic."""

from __future__ import annotations

from datetime import UTC, date, datetime
from pathlib import Path

import typer
from rich.console import Console

from seed.config import PROFILES

seed_app = typer.Typer(
    help="Build a seeded network (bulk) or play live POS traffic against the API.",
    invoke_without_command=True,
    add_completion=False,
)
console = Console(stderr=True)


def seed_database(
    url,
    *,
    profile_name: str = "demo",
    reset: bool = False,
    truth_path: Path | None = None,
    show_progress: bool = True,
    rollups: bool = True,
    **overrides,
):
    """Migrate, optionally reset, seed, write the ground truth, build the analytics
    rollups (unless `rollups` is false); returns (report, path)."""
    from sqlalchemy import create_engine

    from seed import bulk, truth
    from seed.config import profile
    from shared.analytics.refresh import refresh
    from shared.database.migrate import downgrade, upgrade
    from shared.database.urls import libpq_conninfo
    from shared.settings import get_settings

    settings = get_settings()
    if reset:
        downgrade(url, "base")
    upgrade(url)
    config = profile(profile_name, **overrides)
    report = bulk.run(
        config,
        settings.program,
        settings.card_prefix,
        libpq_conninfo(url),
        show_progress=show_progress,
    )
    path = truth.write(report, truth_path or truth.default_path(url.database or "coalition"))
    if rollups:  # so that the dashboard has its figures at once
        engine = create_engine(url)
        try:
            built = refresh(engine, settings.program, full=True)
        finally:
            engine.dispose()
        if show_progress:
            console.print(f"analytics rollups built in {built.seconds:.1f} s")
    return report, path


@seed_app.callback()
def seed(
    context: typer.Context,
    profile_name: str = typer.Option(
        "demo", "--profile", help=f"Sizes to start from: {', '.join(PROFILES)}."
    ),
    members: int | None = typer.Option(None, min=1, help="Members (overrides the profile)."),
    months: int | None = typer.Option(None, min=1, max=60, help="Months of history."),
    merchants: int | None = typer.Option(None, min=1, max=500, help="Partner merchants."),
    seed_value: int | None = typer.Option(None, "--seed", help="Same seed, same data."),
    locale: str | None = typer.Option(None, help="Faker locale: en_US, zh_CN, de_DE..."),
    end: str | None = typer.Option(
        None, help="History ends at this date, YYYY-MM-DD (UTC); default: today."
    ),
    incidents: bool | None = typer.Option(
        None, "--incidents/--no-incidents", help="Inject the alerting incidents."
    ),
    workers: int | None = typer.Option(None, min=0, help="Processes (0: one per CPU)."),
    reset: bool = typer.Option(False, help="Drop every table and start from an empty schema."),
    truth_path: str | None = typer.Option(None, "--truth", help="Where to write the truth."),
    rollups: bool = typer.Option(
        True, help="Build the analytics rollups after the load (417 s at 1M members)."
    ),
) -> None:
    if context.invoked_subcommand is not None:
        return
    if profile_name not in PROFILES:
        raise typer.BadParameter(f"unknown profile {profile_name!r}", param_hint="--profile")
    from shared.cli import _database_url

    url = _database_url()
    try:
        report, path = seed_database(
            url,
            profile_name=profile_name,
            reset=reset,
            truth_path=Path(truth_path) if truth_path else None,
            rollups=rollups,
            members=members,
            months=months,
            merchants=merchants,
            seed=seed_value,
            locale=locale,
            end=_end_of_history(end),
            incidents=incidents,
            workers=workers,
        )
    except RuntimeError as error:
        console.print(f"[red]{error}[/red]")
        raise typer.Exit(1) from None
    transactions = report.total("ledger_transactions")
    console.print(
        f"seeded {report.total('members'):,} members, {transactions:,} transactions "
        f"({sum(sum(s.rows.values()) for s in report.shards):,} rows) in {report.seconds:.1f} s: "
        f"{transactions / report.seconds:,.0f} transactions/s "
        f"(of which {report.rebuild_seconds:.1f} s rebuilding indexes)"
    )
    console.print(f"ground truth: {path}")


def _end_of_history(value: str | None) -> datetime | None:
    if value is None:
        return None
    try:
        return datetime.combine(date.fromisoformat(value), datetime.min.time(), tzinfo=UTC)
    except ValueError:
        raise typer.BadParameter("expected YYYY-MM-DD", param_hint="--end") from None


@seed_app.command("live")
def live(
    rate: float = typer.Option(50.0, min=0.1, help="Target requests per second."),
    duration: float = typer.Option(30.0, min=0.1, help="Seconds to play."),
    seed_value: int = typer.Option(1, "--seed"),
    timeout_probability: float = typer.Option(
        0.02,
        min=0.0,
        max=1.0,
        help="Share of requests whose response the client 'loses' and retries.",
    ),
    concurrency: int = typer.Option(64, min=1, help="Requests in flight at most."),
    base_url: str | None = typer.Option(None, help="API base URL (default: the local API)."),
    merchants: int = typer.Option(10, min=1, help="Merchants whose tills play."),
    members: int = typer.Option(500, min=1, help="Members who shop."),
) -> None:
    """Play POS traffic against the running API and report rate, latency and errors."""
    from seed.live import live_command
    from shared.settings import get_settings

    settings = get_settings()
    url = base_url or f"http://{settings.api_host}:{settings.api_port}"
    raise typer.Exit(
        live_command(
            rate=rate,
            duration=duration,
            seed=seed_value,
            timeout_probability=timeout_probability,
            concurrency=concurrency,
            base_url=url,
            merchants=merchants,
            members=members,
        )
    )
