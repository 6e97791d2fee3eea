"""Find (or start) the database the product runs on."""

from __future__ import annotations

from sqlalchemy import create_engine, text
from sqlalchemy.engine import URL, make_url

from shared.database.urls import server_url, with_driver
from shared.settings import Settings

EMBEDDED_DATABASE = "coalition"


def database_url(settings: Settings) -> URL:
    """The product database as a psycopg URL.

    With DATABASE_URL set it is used as given and no server is started. Without it the
    embedded server is started (or reused) and a `coalition` database created once.
    """
    if settings.database_url:
        return with_driver(settings.database_url, "psycopg")
    server = with_driver(server_url(settings), "psycopg")
    ensure_database(server, EMBEDDED_DATABASE)
    return server.set(database=EMBEDDED_DATABASE)


def ensure_database(server: URL, name: str, template: str | None = None) -> bool:
    """CREATE DATABASE unless it exists; True when it was created."""
    engine = create_engine(server.set(database="postgres"), isolation_level="AUTOCOMMIT")
    try:
        with engine.connect() as connection:
            exists = connection.execute(
                text("SELECT 1 FROM pg_database WHERE datname = :name"), {"name": name}
            ).scalar()
            if exists:
                return False
            clause = f' TEMPLATE "{template}"' if template else ""
            connection.execute(text(f'CREATE DATABASE "{name}"{clause}'))
            return True
    finally:
        engine.dispose()


def async_url(url: URL | str) -> URL:
    return with_driver(make_url(url) if isinstance(url, str) else url, "asyncpg")
