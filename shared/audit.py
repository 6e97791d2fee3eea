"""The audit trail: who did what to which subject, written in the same transaction."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Connection, Insert, insert
from sqlalchemy.ext.asyncio import AsyncConnection

from shared.access import Principal
from shared.tables import audit_log


def entry(
    actor: Principal,
    action: str,
    subject_type: str,
    subject_id: object,
    details: dict[str, Any] | None = None,
) -> Insert:
    details = dict(details or {})
    if actor.hq_user_id is not None:
        # Dashboard users have no API key: the record names the person instead.
        details["hqUserId"] = str(actor.hq_user_id)
    return insert(audit_log).values(
        actor_key_id=actor.key_id,
        actor_role=actor.role.value,
        action=action,
        subject_type=subject_type,
        subject_id=str(subject_id),
        details=details,
    )


async def record(
    connection: AsyncConnection,
    actor: Principal,
    action: str,
    subject_type: str,
    subject_id: object,
    details: dict[str, Any] | None = None,
) -> None:
    await connection.execute(entry(actor, action, subject_type, subject_id, details))


def record_sync(
    connection: Connection,
    actor: Principal,
    action: str,
    subject_type: str,
    subject_id: object,
    details: dict[str, Any] | None = None,
) -> None:
    """The same record for the sync callers (CLI user management, the dashboard)."""
    connection.execute(entry(actor, action, subject_type, subject_id, details))
