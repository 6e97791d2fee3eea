"""One logical database URL, spelled for each driver we use."""

from __future__ import annotations

from sqlalchemy.engine import URL, make_url

from shared.settings import Settings


def server_url(settings: Settings) -> str:
    """The configured server, or the embedded one (started on demand) when none is set."""
    if settings.database_url:
        return settings.database_url
    from shared.database.embedded import ensure_embedded_server

    return ensure_embedded_server(settings.data_dir)


def with_driver(url: str | URL, driver: str, database: str | None = None) -> URL:
    """`driver` is 'asyncpg' (API) or 'psycopg' (CLI, migrations, dashboard)."""
    parsed = make_url(url) if isinstance(url, str) else url
    parsed = parsed.set(drivername=f"postgresql+{driver}")
    if database is not None:
        parsed = parsed.set(database=database)
    return parsed


def libpq_conninfo(url: URL) -> str:
    """The URL as a libpq connection string (psycopg.connect, COPY in bulk loads)."""
    return url.set(drivername="postgresql").render_as_string(hide_password=False)
