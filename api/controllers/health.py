"""Liveness and readiness probes (no authentication)."""

from __future__ import annotations

from litestar import Controller, MediaType, Response, get
from litestar.datastructures import State
from litestar.openapi.datastructures import ResponseSpec
from sqlalchemy import text

from api.schemas.common import WireStruct


class HealthOut(WireStruct):
    status: str


class HealthController(Controller):
    tags = ["Operations"]

    @get("/health", summary="The process is up", exclude_from_auth=True)
    async def health(self) -> HealthOut:
        return HealthOut(status="ok")

    @get(
        "/ready",
        summary="The database answers",
        exclude_from_auth=True,
        responses={503: ResponseSpec(HealthOut, description="The database does not answer")},
    )
    async def ready(self, state: State) -> Response[HealthOut]:
        try:
            async with state.engine.connect() as connection:
                await connection.execute(text("SELECT 1"))
        except Exception:  # noqa: BLE001 - any failure means "not ready"
            return Response(HealthOut(status="database unavailable"), status_code=503)
        return Response(HealthOut(status="ok"), media_type=MediaType.JSON)
