"""Typed settings, read from the environment (and a `.env` file): see `.env.example`."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

from shared.program import ProgramRules

PROJECT_ROOT = Path(__file__).resolve().parent.parent


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_file=".env",
        env_file_encoding="utf-8",
        extra="ignore",
        env_prefix="",
        env_nested_delimiter="__",
        populate_by_name=True,
    )

    database_url: str | None = Field(
        default=None,
        description="PostgreSQL URL. Unset: an embedded PostgreSQL is started in data_dir.",
    )
    data_dir: Path = Field(
        default=PROJECT_ROOT / ".coalition",
        alias="COALITION_DATA_DIR",
        description="Project-local state: the embedded database cluster and its lock.",
    )
    api_host: str = Field(default="127.0.0.1", alias="COALITION_API_HOST")
    api_port: int = Field(default=8000, alias="COALITION_API_PORT")
    dashboard_port: int = Field(default=8501, alias="COALITION_DASHBOARD_PORT")
    db_pool_size: int = Field(default=10, alias="COALITION_DB_POOL_SIZE")

    default_phone_region: str = Field(
        default="US",
        alias="COALITION_DEFAULT_PHONE_REGION",
        description="ISO 3166 region used to read phone numbers written without a + prefix.",
    )
    card_prefix: str = Field(
        default="7300",
        alias="COALITION_CARD_PREFIX",
        pattern=r"^[0-9]{2,8}$",
        description="Leading digits of every generated 16-digit member card number.",
    )
    currencies: list[str] = Field(
        default=["USD", "EUR", "GBP", "CNY", "JPY", "CHF", "CAD", "AUD"],
        alias="COALITION_CURRENCIES",
        description="ISO 4217 codes merchants of this program may settle in.",
    )
    request_max_body_bytes: int = Field(
        default=1_000_000,
        alias="COALITION_REQUEST_MAX_BODY_BYTES",
        description="Larger request bodies are refused with a 413 problem before parsing.",
    )
    api_key_last_used_resolution_seconds: int = Field(
        default=60,
        alias="COALITION_API_KEY_LAST_USED_RESOLUTION_SECONDS",
        description="last_used_at is written at most this often per key (no hot row per request).",
    )
    api_key_cache_seconds: float = Field(
        default=5.0,
        alias="COALITION_API_KEY_CACHE_SECONDS",
        description="How long an API process trusts a key it checked; revocation elsewhere "
        "takes effect within this time. 0 disables the cache.",
    )
    program: ProgramRules = Field(default_factory=ProgramRules, alias="COALITION_PROGRAM")

    # Alert e-mail (docs/alerts.md): sent when a host and at least one recipient are set.
    smtp_host: str | None = Field(default=None, alias="COALITION_SMTP_HOST")
    smtp_port: int = Field(default=25, alias="COALITION_SMTP_PORT")
    smtp_starttls: bool = Field(
        default=False,
        alias="COALITION_SMTP_STARTTLS",
        description="Upgrade the connection with STARTTLS before logging in (port 587).",
    )
    smtp_username: str | None = Field(default=None, alias="COALITION_SMTP_USERNAME")
    smtp_password: SecretStr | None = Field(default=None, alias="COALITION_SMTP_PASSWORD")
    smtp_sender: str = Field(default="coalition-alerts@localhost", alias="COALITION_SMTP_FROM")
    alert_email_to: list[str] = Field(
        default=[],
        alias="COALITION_ALERT_EMAIL_TO",
        description='Recipients of alert e-mail, as a JSON list: ["ops@example.com"].',
    )
    alert_email_min_severity: Literal["info", "warning", "critical"] = Field(
        default="warning",
        alias="COALITION_ALERT_EMAIL_MIN_SEVERITY",
        description="Alerts of a lower severity are not e-mailed (webhooks have their own).",
    )

    @property
    def alert_email_enabled(self) -> bool:
        return bool(self.smtp_host and self.alert_email_to)


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()
