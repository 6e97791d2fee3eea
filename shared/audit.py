"""The audit trail: who did what to which subject, written in the same transaction."""

from __future__ import annotations

from typing import Any

from sqlalchemy import insert
from sqlalchemy.ext.asyncio import AsyncConnection

from shared.access import Principal
from shared.tables import audit_log


async def record(
    connection: AsyncConnection,
    actor: Principal,
    action: str,
    subject_type: str,
    subject_id: object,
    details: dict[str, Any] | None = None,
) -> None:
    await connection.execute(
        insert(audit_log).values(
            actor_key_id=actor.key_id,
            actor_role=actor.role.value,
            action=action,
            subject_type=subject_type,
            subject_id=str(subject_id),
            details=details or {},
        )
    )
