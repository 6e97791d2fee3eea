"""The Litestar application: HTTP in, one call into `shared/`, HTTP out."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from litestar import Litestar
from litestar.datastructures import State
from litestar.di import Provide
from litestar.middleware.base import DefineMiddleware
from litestar.openapi import OpenAPIConfig
from litestar.openapi.plugins import ScalarRenderPlugin, SwaggerRenderPlugin
from litestar.openapi.spec import Components, SecurityScheme, Tag
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from api.auth import ApiKeyAuthentication
from api.controllers.alerts import AlertController, AlertRuleController, WebhookController
from api.controllers.api_keys import ApiKeyController
from api.controllers.campaigns import CampaignController
from api.controllers.health import HealthController
from api.controllers.ledger import LedgerController
from api.controllers.member_points import HqPointsController, MemberPointsController
from api.controllers.members import MemberController
from api.controllers.merchants import MerchantController
from api.controllers.problems import ProblemController
from api.controllers.settlement import HqSettlementController, StatementController
from api.dependencies import provide_principal, provide_settings, provide_transaction
from api.problems import EXCEPTION_HANDLERS, JsonRequest
from shared.database.bootstrap import async_url, database_url
from shared.settings import Settings, get_settings

API_DESCRIPTION = """
The Coalition loyalty network API, for partner merchants (POS, e-commerce, back office) and HQ.

Authenticate with an API key, as `Authorization: Bearer <key>` or `X-API-Key: <key>`.
Roles: `hq_admin` (everything), `hq_analyst` (read-only HQ), `merchant` (its own data).
Errors are RFC 9457 problem details (`application/problem+json`) whose `type` is a stable
slug under `/problems/`.
"""


def create_app(settings: Settings | None = None, engine: AsyncEngine | None = None) -> Litestar:
    settings = settings or get_settings()

    @asynccontextmanager
    async def database(app: Litestar) -> AsyncIterator[None]:
        """Owns the engine unless one was handed in (tests share theirs)."""
        if engine is not None:
            yield
            return
        app.state.engine = create_async_engine(
            async_url(database_url(settings)),
            pool_size=settings.db_pool_size,
            max_overflow=settings.db_pool_size,
            # No pre-ping (a round trip per request); broken connections are recycled instead.
            pool_recycle=1800,
        )
        try:
            yield
        finally:
            await app.state.engine.dispose()

    return Litestar(
        route_handlers=[
            HealthController,
            ProblemController,
            MerchantController,
            ApiKeyController,
            MemberController,
            LedgerController,
            MemberPointsController,
            HqPointsController,
            StatementController,
            HqSettlementController,
            CampaignController,
            AlertRuleController,
            AlertController,
            WebhookController,
        ],
        lifespan=[database],
        state=State({"settings": settings, "engine": engine}),
        dependencies={
            "transaction": Provide(provide_transaction),
            "principal": Provide(provide_principal, sync_to_thread=False),
            "settings": Provide(provide_settings, sync_to_thread=False),
        },
        middleware=[
            DefineMiddleware(
                ApiKeyAuthentication,
                exclude=["^/schema", "^/health$", "^/ready$", "^/problems"],
            )
        ],
        exception_handlers=EXCEPTION_HANDLERS,
        request_class=JsonRequest,
        request_max_body_size=settings.request_max_body_bytes,
        openapi_config=OpenAPIConfig(
            title="Coalition API",
            version="1.0.0",
            description=API_DESCRIPTION,
            path="/schema",
            render_plugins=[ScalarRenderPlugin(), SwaggerRenderPlugin(path="/swagger")],
            components=Components(
                security_schemes={
                    "BearerApiKey": SecurityScheme(
                        type="http",
                        scheme="bearer",
                        bearer_format="coal_<prefix>_<secret>",
                        description="API key as a bearer token.",
                    ),
                    "HeaderApiKey": SecurityScheme(
                        type="apiKey",
                        name="X-API-Key",
                        security_scheme_in="header",
                        description="The same API key in the X-API-Key header.",
                    ),
                }
            ),
            security=[{"BearerApiKey": []}, {"HeaderApiKey": []}],
            tags=[
                Tag(name="Merchants", description="Partners, commercial terms, stores (HQ)."),
                Tag(name="API keys", description="Issue, rotate and revoke keys."),
                Tag(name="Members", description="One member identity across the network."),
                Tag(
                    name="Points", description="Earn, redeem, holds, refunds, reversals, balances."
                ),
                Tag(name="Campaigns", description="Campaign definitions: HQ and merchant-funded."),
                Tag(
                    name="Alerts",
                    description="Alert rules, current alerts, history, backtests, webhooks (HQ).",
                ),
                Tag(name="Operations", description="Probes and problem types."),
            ],
        ),
        debug=False,
    )


def app_factory() -> Litestar:
    """Entry point for `uvicorn --factory api.app:app_factory`."""
    return create_app()
