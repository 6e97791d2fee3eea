"""Wire types shared by several resources: bounded, printable text and exact decimals."""

from __future__ import annotations

from typing import Annotated

import msgspec
from litestar.params import QueryParameter
from msgspec import Meta

_PRINTABLE = r"^[^\x00-\x1f\x7f]*$"

# Every string on the wire is bounded (a 10 MB string is a 400, not a 500 or a row).
Name = Annotated[
    str, Meta(min_length=1, max_length=200, pattern=_PRINTABLE, examples=["Greenleaf Grocers"])
]
ShortText = Annotated[str, Meta(min_length=1, max_length=64, pattern=_PRINTABLE)]
Reason = Annotated[
    str,
    Meta(
        min_length=3,
        max_length=500,
        pattern=_PRINTABLE,
        examples=["Duplicate created at two tills on the same day"],
    ),
]
EarnRate = Annotated[
    str,
    Meta(
        pattern=r"^\d{1,8}(\.\d{1,4})?$",
        examples=["1.5"],
        description="Points per major currency unit, as a decimal string (max 4 places).",
    ),
]
PricePerPoint = Annotated[
    str,
    Meta(
        pattern=r"^\d{1,6}(\.\d{1,6})?$",
        examples=["0.010000"],
        description="Money per point in the merchant's currency, as a decimal string (max 6 places).",
    ),
]
Currency = Annotated[
    str, Meta(pattern=r"^[A-Z]{3}$", examples=["USD"], description="ISO 4217 code.")
]
# Query parameters: Litestar keeps only its own parameter marker's bounds and drops a msgspec
# Meta beside FromQuery (an offset of -1 reached PostgreSQL and came back as a 500).
Limit = Annotated[int, QueryParameter(ge=1, le=500)]
Offset = Annotated[int, QueryParameter(ge=0, le=10_000_000)]


class WireStruct(msgspec.Struct, rename="camel", forbid_unknown_fields=True, kw_only=True):
    """Base for request and response bodies: camelCase, unknown fields rejected."""
