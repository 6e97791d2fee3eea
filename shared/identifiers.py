"""Member identifiers: pure parsing, normalisation and generation (no I/O).

Every identifier is stored in one normalised spelling so that any way a cashier types it
finds the same member:
- card: digits only, 12-19 long, valid Luhn check digit (python-stdnum);
- phone: E.164 via Google's libphonenumber port, numbers without + read in the program's
  default region;
- email: syntax-checked and normalised by email-validator (IDNA domain, NFC), then
  lower-cased as a whole: no real mailbox provider distinguishes case, and matching
  must not depend on how a clerk typed it. No provider-specific rewriting (dots, +tags):
  those can be distinct people;
- merchant_ref: the merchant's own customer number, NFC-normalised and trimmed,
  unique within that merchant only.
"""

from __future__ import annotations

import random
import re
import unicodedata
from enum import StrEnum

import phonenumbers
from email_validator import EmailNotValidError, validate_email
from stdnum import luhn

from shared.errors import InvalidIdentifier


class IdentifierKind(StrEnum):
    CARD = "card"
    PHONE = "phone"
    EMAIL = "email"
    MERCHANT_REF = "merchant_ref"


CARD_LENGTH = 16
_CARD_SEPARATORS = re.compile(r"[\s\-]")
_CONTROL_CHARACTERS = re.compile(r"[\x00-\x1f\x7f-\x9f]")
MERCHANT_REF_MAX_LENGTH = 128


def _invalid(kind: IdentifierKind, detail: str) -> InvalidIdentifier:
    return InvalidIdentifier(detail, identifierKind=kind.value)


def normalise_card(raw: str) -> str:
    digits = _CARD_SEPARATORS.sub("", raw)
    if not digits.isascii() or not digits.isdigit():
        raise _invalid(IdentifierKind.CARD, "A card number contains digits only.")
    if not 12 <= len(digits) <= 19:
        raise _invalid(IdentifierKind.CARD, "A card number has 12 to 19 digits.")
    if not luhn.is_valid(digits):
        raise _invalid(IdentifierKind.CARD, "The card number's check digit is wrong.")
    return digits


def generate_card_number(prefix: str, rng: random.Random | None = None) -> str:
    """A 16-digit number starting with `prefix`, ending with its Luhn check digit."""
    source = rng or random.SystemRandom()
    body_length = CARD_LENGTH - len(prefix) - 1
    body = prefix + "".join(str(source.randrange(10)) for _ in range(body_length))
    return body + luhn.calc_check_digit(body)


def mask_card(card: str) -> str:
    """What merchants see: the last four digits only."""
    return "*" * (len(card) - 4) + card[-4:]


def normalise_phone(raw: str, default_region: str) -> str:
    if len(raw) > 64:
        raise _invalid(IdentifierKind.PHONE, "A phone number is at most 64 characters.")
    # The parser silently drops control characters (a NUL, say) and would accept the rest;
    # garbage is refused instead. Surrounding whitespace (a scanner's Enter) stays harmless.
    if _CONTROL_CHARACTERS.search(raw.strip()):
        raise _invalid(IdentifierKind.PHONE, "A phone number has no control characters.")
    try:
        number = phonenumbers.parse(raw, default_region)
    except phonenumbers.NumberParseException as error:
        raise _invalid(IdentifierKind.PHONE, f"Not a phone number: {error._msg}") from None
    if not phonenumbers.is_valid_number(number):
        raise _invalid(IdentifierKind.PHONE, "The phone number does not exist in its region.")
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


def normalise_email(raw: str) -> str:
    if len(raw) > 320:
        raise _invalid(IdentifierKind.EMAIL, "An e-mail address is at most 320 characters.")
    try:
        result = validate_email(raw.strip(), check_deliverability=False)
    except EmailNotValidError as error:
        raise _invalid(IdentifierKind.EMAIL, str(error)) from None
    return result.normalized.lower()


def normalise_merchant_ref(raw: str) -> str:
    value = unicodedata.normalize("NFC", raw).strip()
    if not value:
        raise _invalid(IdentifierKind.MERCHANT_REF, "A customer reference cannot be empty.")
    if len(value) > MERCHANT_REF_MAX_LENGTH:
        raise _invalid(
            IdentifierKind.MERCHANT_REF,
            f"A customer reference is at most {MERCHANT_REF_MAX_LENGTH} characters.",
        )
    if _CONTROL_CHARACTERS.search(value):
        raise _invalid(
            IdentifierKind.MERCHANT_REF, "A customer reference has no control characters."
        )
    return value


def normalise(kind: IdentifierKind, raw: str, default_region: str) -> str:
    if kind is IdentifierKind.CARD:
        return normalise_card(raw)
    if kind is IdentifierKind.PHONE:
        return normalise_phone(raw, default_region)
    if kind is IdentifierKind.EMAIL:
        return normalise_email(raw)
    return normalise_merchant_ref(raw)
