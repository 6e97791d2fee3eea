"""Domain errors with stable problem `type` slugs (RFC 9457), free of any HTTP framework.

The API turns each into `application/problem+json`; the slug is part of the public contract
and never changes once published (docs/problems.md lists them).
"""

from __future__ import annotations

from typing import Any, ClassVar


class DomainError(Exception):
    slug: ClassVar[str] = "domain-error"
    status: ClassVar[int] = 422
    title: ClassVar[str] = "The request cannot be processed"

    def __init__(self, detail: str, **extensions: Any) -> None:
        super().__init__(detail)
        self.detail = detail
        self.extensions = extensions


class InvalidInput(DomainError):
    slug = "invalid-input"
    status = 422
    title = "A field has a value the program does not accept"


class InvalidIdentifier(DomainError):
    """Extensions: identifierKind."""

    slug = "invalid-identifier"
    status = 422
    title = "The member identifier is not valid"


class IdentifierInUse(DomainError):
    """Network-wide uniqueness: never says which member holds the identifier."""

    slug = "identifier-in-use"
    status = 409
    title = "The identifier is already attached to a member"


class NotFound(DomainError):
    """Also used for resources of another merchant, so that existence does not leak."""

    slug = "not-found"
    status = 404
    title = "The resource does not exist"


class Conflict(DomainError):
    slug = "conflict"
    status = 409
    title = "The request conflicts with the current state"


class MemberNotActive(DomainError):
    slug = "member-not-active"
    status = 409
    title = "The member is not active"


class MerchantNotActive(DomainError):
    """A suspended merchant keeps read access (statements, members) but cannot transact."""

    slug = "merchant-not-active"
    status = 403
    title = "The merchant is suspended"


class Forbidden(DomainError):
    slug = "forbidden"
    status = 403
    title = "The API key's role does not allow this operation"


class Unauthenticated(DomainError):
    slug = "unauthenticated"
    status = 401
    title = "A valid API key is required"


class InsufficientPoints(DomainError):
    """Extensions: available, requested (and debt, when the member owes points)."""

    slug = "insufficient-points"
    status = 409
    title = "The member does not have enough available points"


class BelowMinimumRedemption(DomainError):
    slug = "below-minimum-redemption"
    status = 422
    title = "Fewer points than the program's minimum redemption"


class CurrencyMismatch(DomainError):
    slug = "currency-mismatch"
    status = 422
    title = "The amount is not in the merchant's currency"


class RefundExceedsPurchase(DomainError):
    slug = "refund-exceeds-purchase"
    status = 422
    title = "Refunds would exceed the original purchase"


class AlreadyReversed(DomainError):
    slug = "already-reversed"
    status = 409
    title = "The redemption was already reversed"


class HoldNotActive(DomainError):
    """Extensions: holdStatus (captured, voided or expired)."""

    slug = "hold-not-active"
    status = 409
    title = "The hold is no longer active"


class FeatureDisabled(DomainError):
    slug = "feature-disabled"
    status = 403
    title = "The program does not enable this feature"


class IdempotencyKeyRequired(DomainError):
    slug = "idempotency-key-required"
    status = 400
    title = "Writes need an Idempotency-Key header (or the merchant's transaction reference)"


class IdempotencyKeyReused(DomainError):
    slug = "idempotency-key-reused"
    status = 409
    title = "The idempotency key was already used for a different request"


class CampaignNotDraft(DomainError):
    """Only a draft campaign changes or is scheduled. Extensions: campaignStatus."""

    slug = "campaign-not-draft"
    status = 409
    title = "The campaign is no longer a draft"
