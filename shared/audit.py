"""The audit trail: who did what to which subject, written in the same transaction."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Connection, insert
from sqlalchemy.ext.asyncio import AsyncConnection

from shared.access import Principal
from shared.tables import audit_log


def _entry(
    actor: Principal,
    action: str,
    subject_type: str,
    subject_id: object,
    details: dict[str, Any] | None,
):
    return insert(audit_log).values(
        actor_key_id=actor.key_id,
        actor_role=actor.role.value,
        action=action,
        subject_type=subject_type,
        subject_id=str(subject_id),
        details=details or {},
    )


async def record(
    connection: AsyncConnection,
    actor: Principal,
    action: str,
    subject_type: str,
    subject_id: object,
    details: dict[str, Any] | None = None,
) -> None:
    await connection.execute(_entry(actor, action, subject_type, subject_id, details))


def record_sync(
    connection: Connection,
    actor: Principal,
    action: str,
    subject_type: str,
    subject_id: object,
    details: dict[str, Any] | None = None,
) -> None:
    """The same record from sync code (the alert services, shared by the API through
    `run_sync` and by the dashboard)."""
    connection.execute(_entry(actor, action, subject_type, subject_id, details))
