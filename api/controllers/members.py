"""One member identity: enrol anywhere, look up by any identifier, merge duplicates."""

from __future__ import annotations

import uuid

from litestar import Controller, delete, get, post
from litestar.params import FromPath, JSONBody

from api.auth import hq_admin, writer
from api.dependencies import Caller, Config, Transaction
from api.problems import problem_responses
from api.schemas.members import (
    Enrolment,
    IdentifierIn,
    IdentifierOut,
    Lookup,
    MemberOut,
    MergeRequest,
    StatusChange,
)
from api.wire import to_wire
from shared import members
from shared.errors import InvalidInput
from shared.identifiers import IdentifierKind

_IDENTIFIER_ERRORS = {
    409: ["identifier-in-use", "member-not-active", "conflict"],
    422: ["invalid-identifier", "invalid-input"],
}
_WRITER_403 = {403: ["forbidden", "merchant-not-active"]}


class MemberController(Controller):
    path = "/v1/members"
    tags = ["Members"]

    @post(
        guards=[writer],
        summary="Enrol a member at the calling merchant",
        responses=problem_responses(
            400,
            401,
            403,
            404,
            409,
            413,
            422,
            slugs={**_IDENTIFIER_ERRORS, **_WRITER_403},
        ),
    )
    async def enrol(
        self,
        data: JSONBody[Enrolment],
        transaction: Transaction,
        principal: Caller,
        settings: Config,
    ) -> MemberOut:
        if principal.is_hq:
            if data.acquiring_merchant_id is None:
                raise InvalidInput("HQ enrolments name the acquiring merchant.")
            merchant_id = data.acquiring_merchant_id
        else:
            if data.acquiring_merchant_id not in (None, principal.merchant_id):
                raise InvalidInput("A merchant enrols members for itself only.")
            merchant_id = principal.require_merchant()
        member = await members.enrol(
            transaction,
            principal,
            merchant_id=merchant_id,
            store_id=data.store_id,
            card_number=data.card_number,
            identifiers=[
                members.IdentifierInput(IdentifierKind(item.kind), item.value)
                for item in data.identifiers
            ],
            profile=to_wire(data.profile, members.Profile) if data.profile else None,
            consents=to_wire(data.consents, members.Consents) if data.consents else None,
            card_prefix=settings.card_prefix,
            default_region=settings.default_phone_region,
            rules=settings.program,
            referred_by=members.MemberRef(data.referred_by.kind, data.referred_by.value)
            if data.referred_by
            else None,
        )
        return to_wire(member, MemberOut)

    @post(
        "/lookup",
        status_code=200,
        summary="Find a member by card, phone, e-mail or customer reference",
        responses=problem_responses(
            400, 401, 404, 413, 422, slugs={422: ["invalid-identifier", "invalid-input"]}
        ),
    )
    async def lookup(
        self, data: JSONBody[Lookup], transaction: Transaction, principal: Caller, settings: Config
    ) -> MemberOut:
        member = await members.lookup(
            transaction,
            principal,
            IdentifierKind(data.kind),
            data.value,
            settings.default_phone_region,
        )
        return to_wire(member, MemberOut)

    @get("/{member_id:uuid}", summary="Read a member", responses=problem_responses(401, 404))
    async def get_member(
        self, member_id: FromPath[uuid.UUID], transaction: Transaction, principal: Caller
    ) -> MemberOut:
        return to_wire(await members.get_member(transaction, principal, member_id), MemberOut)

    @post(
        "/{member_id:uuid}/identifiers",
        guards=[writer],
        summary="Attach an identifier (idempotent for the member's own identifiers)",
        responses=problem_responses(
            400, 401, 403, 404, 409, 413, 422, slugs={**_IDENTIFIER_ERRORS, **_WRITER_403}
        ),
    )
    async def attach_identifier(
        self,
        member_id: FromPath[uuid.UUID],
        data: JSONBody[IdentifierIn],
        transaction: Transaction,
        principal: Caller,
        settings: Config,
    ) -> IdentifierOut:
        identifier = await members.attach_identifier(
            transaction,
            principal,
            member_id,
            members.IdentifierInput(IdentifierKind(data.kind), data.value),
            settings.default_phone_region,
            rules=settings.program,
        )
        return to_wire(identifier, IdentifierOut)

    @delete(
        "/{member_id:uuid}/identifiers/{identifier_id:uuid}",
        guards=[writer],
        summary="Detach an identifier the caller attached (HQ: any)",
        responses=problem_responses(401, 403, 404, 409, slugs=_WRITER_403),
    )
    async def detach_identifier(
        self,
        member_id: FromPath[uuid.UUID],
        identifier_id: FromPath[uuid.UUID],
        transaction: Transaction,
        principal: Caller,
    ) -> None:
        await members.detach_identifier(transaction, principal, member_id, identifier_id)

    @post(
        "/{member_id:uuid}/status",
        guards=[hq_admin],
        status_code=200,
        summary="Suspend, reactivate or close a member (HQ)",
        responses=problem_responses(400, 401, 403, 404, 409, 413),
    )
    async def set_status(
        self,
        member_id: FromPath[uuid.UUID],
        data: JSONBody[StatusChange],
        transaction: Transaction,
        principal: Caller,
    ) -> MemberOut:
        member = await members.set_status(
            transaction, principal, member_id, data.status, data.reason
        )
        return to_wire(member, MemberOut)

    @post(
        "/{member_id:uuid}/merge",
        guards=[hq_admin],
        status_code=200,
        summary="Merge a duplicate into this member (HQ); identifiers move here",
        responses=problem_responses(
            400, 401, 403, 404, 409, 413, 422, slugs={409: ["member-not-active", "conflict"]}
        ),
    )
    async def merge(
        self,
        member_id: FromPath[uuid.UUID],
        data: JSONBody[MergeRequest],
        transaction: Transaction,
        principal: Caller,
    ) -> MemberOut:
        member = await members.merge(
            transaction, principal, member_id, data.duplicate_member_id, data.reason
        )
        return to_wire(member, MemberOut)
