"""Turning domain results (dataclasses) into wire Structs."""

from __future__ import annotations

from typing import TypeVar

import msgspec

T = TypeVar("T")


def to_wire(value: object, wire_type: type[T]) -> T:
    return msgspec.convert(value, wire_type, from_attributes=True)


def changes_of(update: msgspec.Struct) -> dict[str, object]:
    """The fields a PATCH body actually carried (UNSET ones are left out)."""
    return {
        field: value
        for field in update.__struct_fields__
        if (value := getattr(update, field)) is not msgspec.UNSET
    }
