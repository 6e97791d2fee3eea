"""RFC 9457 problem details for every error the API returns, with stable `type` slugs.

`type` is a relative URI, `/problems/<slug>`, resolvable against the API's base URL where
a human-readable description is served (see docs/problems.md).
"""

from __future__ import annotations

import logging
from typing import Any

import asyncpg
import msgspec
from litestar import Request, Response
from litestar.exceptions import HTTPException, SerializationException, ValidationException
from litestar.openapi.datastructures import ResponseSpec
from litestar.openapi.spec import Example
from litestar.status_codes import HTTP_500_INTERNAL_SERVER_ERROR

from shared.errors import DomainError

PROBLEM_MEDIA_TYPE = "application/problem+json"
logger = logging.getLogger("coalition.api")


class ProblemDetails(msgspec.Struct, omit_defaults=True):
    """An RFC 9457 problem. Extension members (e.g. `identifierKind`, `errors`) may follow."""

    type: str
    title: str
    status: int
    detail: str | None = None
    instance: str | None = None


HTTP_SLUGS: dict[int, tuple[str, str]] = {
    400: ("invalid-request", "The request is malformed or does not match the schema"),
    401: ("unauthenticated", "A valid API key is required"),
    403: ("forbidden", "The API key's role does not allow this operation"),
    404: ("not-found", "The resource does not exist"),
    405: ("method-not-allowed", "The method is not allowed on this resource"),
    409: ("conflict", "The request conflicts with the current state"),
    413: ("payload-too-large", "The request body is too large"),
    415: ("unsupported-media-type", "The request body must be JSON"),
    422: ("invalid-input", "A field has a value the program does not accept"),
    429: ("too-many-requests", "Too many requests"),
    500: ("internal-error", "An unexpected error occurred"),
    503: ("unavailable", "The service is temporarily unavailable"),
}


class JsonRequest(Request):
    """Every way a body can fail to decode as JSON ends as the same 400 problem."""

    async def json(self) -> Any:
        try:
            return await super().json()
        # msgspec raises these rather than a DecodeError, and Litestar turns only a
        # DecodeError into a 400: invalid UTF-8, or nesting deep enough (about a thousand "[")
        # to exhaust the decoder's recursion limit, would otherwise be a 500.
        except UnicodeDecodeError:
            raise SerializationException("The request body is not valid UTF-8.") from None
        except RecursionError:
            raise SerializationException("The request body's JSON nests too deeply.") from None


def problem_type(slug: str) -> str:
    return f"/problems/{slug}"


def _response(
    request: Request,
    status: int,
    slug: str,
    title: str,
    detail: str | None,
    extensions: dict[str, Any] | None = None,
    headers: dict[str, str] | None = None,
) -> Response:
    body: dict[str, Any] = {
        "type": problem_type(slug),
        "title": title,
        "status": status,
        "instance": request.url.path,
    }
    if detail:
        body["detail"] = detail
    body.update(extensions or {})
    return Response(
        content=body, status_code=status, media_type=PROBLEM_MEDIA_TYPE, headers=headers
    )


def domain_error_handler(request: Request, error: DomainError) -> Response:
    return _response(request, error.status, error.slug, error.title, error.detail, error.extensions)


def http_error_handler(request: Request, error: HTTPException) -> Response:
    status = error.status_code
    slug, title = HTTP_SLUGS.get(status, ("http-error", "HTTP error"))
    extensions: dict[str, Any] = {}
    detail = error.detail
    if isinstance(error, ValidationException) and error.extra:
        extensions["errors"] = [
            {key: value for key, value in item.items() if key in ("message", "key", "source")}
            if isinstance(item, dict)
            else {"message": str(item)}
            for item in (error.extra if isinstance(error.extra, list) else [error.extra])
        ]
    if status >= 500:
        detail = None
    return _response(request, status, slug, title, detail, extensions, headers=error.headers)


def _transient(error: BaseException) -> bool:
    """Failures a retry can fix: the database is unreachable, or PostgreSQL aborted the
    transaction to break a deadlock or a serialization conflict. Nothing was written."""
    seen: BaseException | None = error
    while seen is not None:
        if isinstance(
            seen,
            OSError
            | ConnectionError
            | asyncpg.PostgresConnectionError
            | asyncpg.DeadlockDetectedError
            | asyncpg.SerializationError
            | asyncpg.CannotConnectNowError
            | asyncpg.TooManyConnectionsError,
        ):
            return True
        seen = seen.__cause__ or seen.__context__
    return False


def unexpected_error_handler(request: Request, error: Exception) -> Response:
    if _transient(error):
        logger.warning("Transient failure on %s %s: %r", request.method, request.url.path, error)
        slug, title = HTTP_SLUGS[503]
        return _response(
            request,
            503,
            slug,
            title,
            "Temporarily unable to complete the request; nothing was written. "
            "Retry with the same Idempotency-Key.",
            headers={"Retry-After": "1"},
        )
    logger.exception("Unhandled error on %s %s", request.method, request.url.path)
    slug, title = HTTP_SLUGS[500]
    return _response(request, HTTP_500_INTERNAL_SERVER_ERROR, slug, title, None)


EXCEPTION_HANDLERS = {
    DomainError: domain_error_handler,
    HTTPException: http_error_handler,
    Exception: unexpected_error_handler,
}

_EXAMPLE_SLUGS = {
    400: "invalid-request",
    401: "unauthenticated",
    403: "forbidden",
    404: "not-found",
    409: "conflict",
    413: "payload-too-large",
    422: "invalid-input",
}


def problem_responses(
    *statuses: int, slugs: dict[int, list[str]] | None = None
) -> dict[int, ResponseSpec]:
    """OpenAPI entries for the error statuses a route can return, with the possible slugs.

    Every route may also answer 500 `internal-error` (never with details) and, when the
    database is unreachable, 503; both are declared everywhere."""
    responses: dict[int, ResponseSpec] = {}
    for status in (*statuses, 500, 503):
        names = (slugs or {}).get(status) or [_EXAMPLE_SLUGS.get(status, HTTP_SLUGS[status][0])]
        title = HTTP_SLUGS.get(status, ("", "Error"))[1]
        responses[status] = ResponseSpec(
            data_container=ProblemDetails,
            description=f"{title}. Problem types: "
            + ", ".join(f"`{problem_type(n)}`" for n in names),
            media_type=PROBLEM_MEDIA_TYPE,
            examples=[
                Example(
                    summary=name,
                    value={
                        "type": problem_type(name),
                        "title": title,
                        "status": status,
                        "detail": "Human-readable explanation.",
                        "instance": "/v1/...",
                    },
                )
                for name in names
            ],
        )
    return responses
