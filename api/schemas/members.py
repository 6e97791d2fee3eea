from __future__ import annotations

import uuid
from datetime import date, datetime
from typing import Annotated, Literal

from msgspec import Meta

from api.schemas.common import Name, Reason, WireStruct

IdentifierKind = Literal["card", "phone", "email", "merchant_ref"]
IdentifierValue = Annotated[str, Meta(min_length=1, max_length=320, examples=["+14155552671"])]
Locale = Annotated[str, Meta(pattern=r"^[a-z]{2,3}([_-][A-Za-z]{2,4})?$", examples=["en_US"])]


class IdentifierIn(WireStruct):
    kind: IdentifierKind
    value: IdentifierValue


class ProfileIn(WireStruct):
    given_name: Name | None = None
    family_name: Name | None = None
    birth_date: date | None = None
    preferred_locale: Locale | None = None


class ConsentsIn(WireStruct):
    marketing_email: bool = False
    marketing_sms: bool = False


class Enrolment(WireStruct):
    """Enrol at the calling merchant (HQ admins name the acquiring merchant)."""

    store_id: uuid.UUID | None = None
    acquiring_merchant_id: uuid.UUID | None = None
    card_number: (
        Annotated[
            str,
            Meta(
                max_length=32,
                examples=["7300 1234 5678 9012"],
                description="A physical card's number; omitted: one is generated.",
            ),
        ]
        | None
    ) = None
    identifiers: Annotated[list[IdentifierIn], Meta(max_length=10)] = []
    profile: ProfileIn | None = None
    consents: ConsentsIn | None = None
    referred_by: Lookup | None = None


class Lookup(WireStruct):
    """Identifiers travel in the body, not the URL, so they stay out of access logs."""

    kind: IdentifierKind
    value: IdentifierValue


class StatusChange(WireStruct):
    status: Literal["active", "suspended", "closed"]
    reason: Reason


class MergeRequest(WireStruct):
    duplicate_member_id: uuid.UUID
    reason: Reason


class IdentifierOut(WireStruct):
    identifier_id: uuid.UUID
    kind: IdentifierKind
    value: str
    added_at: datetime
    added_by_merchant_id: uuid.UUID | None


class ProfileOut(WireStruct):
    given_name: str | None
    family_name: str | None
    birth_date: date | None
    preferred_locale: str | None


class ConsentsOut(WireStruct):
    marketing_email: bool
    marketing_sms: bool


class MemberOut(WireStruct):
    member_id: uuid.UUID
    status: Literal["active", "suspended", "closed", "merged"]
    tier: str
    enrolled_at: datetime
    masked_card: Annotated[str | None, Meta(examples=["************9012"])]
    acquiring_merchant_id: uuid.UUID | None
    merged_into_member_id: uuid.UUID | None
    identifiers: list[IdentifierOut]
    profile: ProfileOut | None
    consents: ConsentsOut | None
