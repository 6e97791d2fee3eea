"""Human-readable pages for each problem `type` (RFC 9457 says the URI should explain it)."""

from __future__ import annotations

from litestar import Controller, get
from litestar.params import FromPath

from api.problems import HTTP_SLUGS, problem_type
from api.schemas.common import WireStruct
from shared.errors import DomainError
from shared.errors import NotFound as DomainNotFound


class ProblemTypeOut(WireStruct):
    type: str
    title: str
    status: int


def _catalogue() -> dict[str, ProblemTypeOut]:
    entries = {
        slug: ProblemTypeOut(type=problem_type(slug), title=title, status=status)
        for status, (slug, title) in HTTP_SLUGS.items()
    }
    pending = list(DomainError.__subclasses__())
    while pending:
        error = pending.pop()
        pending.extend(error.__subclasses__())
        entries[error.slug] = ProblemTypeOut(
            type=problem_type(error.slug), title=error.title, status=error.status
        )
    return entries


class ProblemController(Controller):
    path = "/problems"
    tags = ["Operations"]

    @get(exclude_from_auth=True, summary="Every problem type the API can return")
    async def list_problem_types(self) -> list[ProblemTypeOut]:
        return sorted(_catalogue().values(), key=lambda entry: entry.type)

    @get("/{slug:str}", exclude_from_auth=True, summary="One problem type")
    async def get_problem_type(self, slug: FromPath[str]) -> ProblemTypeOut:
        entry = _catalogue().get(slug)
        if entry is None:
            raise DomainNotFound(f"No problem type {slug!r}.")
        return entry
