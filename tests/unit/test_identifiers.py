"""Member identifiers: parsing, normalisation and generation (pure, no database)."""

from __future__ import annotations

import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from stdnum import luhn

from shared.errors import InvalidIdentifier
from shared.identifiers import (
    CARD_LENGTH,
    MERCHANT_REF_MAX_LENGTH,
    IdentifierKind,
    generate_card_number,
    mask_card,
    normalise,
    normalise_card,
    normalise_email,
    normalise_merchant_ref,
    normalise_phone,
)


def _rejected(kind: str, call, *args) -> InvalidIdentifier:
    with pytest.raises(InvalidIdentifier) as caught:
        call(*args)
    error = caught.value
    assert error.slug == "invalid-identifier"
    assert error.status == 422
    assert error.extensions == {"identifierKind": kind}
    assert error.detail
    return error


# --- cards -----------------------------------------------------------------------------


@settings(max_examples=300, deadline=None)
@given(
    seed=st.integers(min_value=0, max_value=2**64),
    prefix=st.sampled_from(["7300", "73", "12345678", "0000", "99"]),
)
def test_generated_card_numbers_are_16_luhn_valid_digits_with_the_prefix(seed, prefix):
    number = generate_card_number(prefix, random.Random(seed))
    assert len(number) == CARD_LENGTH == 16
    assert number.isascii() and number.isdigit()
    assert number.startswith(prefix)
    assert luhn.is_valid(number)
    assert normalise_card(number) == number


def test_generation_is_deterministic_per_seed_and_varies_across_seeds():
    assert generate_card_number("7300", random.Random(1)) == generate_card_number(
        "7300", random.Random(1)
    )
    numbers = {generate_card_number("7300", random.Random(seed)) for seed in range(200)}
    assert len(numbers) > 190


def test_generation_without_a_source_uses_system_randomness():
    numbers = {generate_card_number("7300") for _ in range(50)}
    assert len(numbers) == 50
    assert all(luhn.is_valid(number) and number.startswith("7300") for number in numbers)


def test_the_reference_luhn_example():
    # The textbook example; 11 digits is too short for a card, so it is checked directly.
    assert luhn.is_valid("79927398713")
    assert not luhn.is_valid("79927398710")
    assert luhn.calc_check_digit("7992739871") == "3"
    _rejected("card", normalise_card, "79927398713")
    # A leading zero does not change the Luhn sum and makes it long enough.
    assert normalise_card("079927398713") == "079927398713"
    _rejected("card", normalise_card, "079927398710")


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("4111111111111111", "4111111111111111"),
        ("4111 1111 1111 1111", "4111111111111111"),
        ("4111-1111-1111-1111", "4111111111111111"),
        (" 4111 1111-1111 1111 ", "4111111111111111"),
        ("4111111111111111\r\n", "4111111111111111"),  # a keyboard-wedge scanner's Enter
        ("5555555555554444", "5555555555554444"),
        ("378282246310005", "378282246310005"),  # 15 digits
        ("6011111111111117", "6011111111111117"),
        ("4012888888881881", "4012888888881881"),
        ("000000000000", "000000000000"),  # 12 digits, the minimum
        ("4" + "0" * 17 + "6", "4" + "0" * 17 + "6"),  # 19 digits, the maximum
    ],
)
def test_valid_card_numbers_are_normalised_to_digits(raw, expected):
    assert luhn.is_valid(expected)
    assert normalise_card(raw) == expected
    assert normalise(IdentifierKind.CARD, raw, "US") == expected


@pytest.mark.parametrize(
    "raw",
    [
        "4111111111111112",  # wrong check digit
        "4111 1111 1111 1110",
        "abcdabcdabcdabcd",
        "4111a11111111111",
        "4111_1111_1111_1111",
        "4111.1111.1111.1111",
        "41111111111",  # 11 digits
        "4" + "0" * 18 + "0",  # 20 digits
        "4" * 40,
        "",
        "    ",
        "-",
        "１２３４５６７８９０１２３４５６",  # full-width digits
        "\u0664" * 16,  # Arabic-Indic digits
        "+4111111111111111",
        "4111111111111111\x00",
    ],
)
def test_invalid_card_numbers_are_rejected(raw):
    _rejected("card", normalise_card, raw)
    _rejected("card", normalise, IdentifierKind.CARD, raw, "US")


@settings(max_examples=200, deadline=None)
@given(st.text(alphabet="0123456789", min_size=12, max_size=19))
def test_card_acceptance_matches_the_luhn_reference(digits):
    if luhn.is_valid(digits):
        assert normalise_card(digits) == digits
    else:
        _rejected("card", normalise_card, digits)


@settings(max_examples=200, deadline=None)
@given(st.integers(min_value=0, max_value=2**64))
def test_any_single_digit_typo_in_a_generated_card_is_caught(seed):
    source = random.Random(seed)
    number = generate_card_number("7300", source)
    position = source.randrange(len(number))
    replacement = str((int(number[position]) + source.randrange(1, 10)) % 10)
    typo = number[:position] + replacement + number[position + 1 :]
    _rejected("card", normalise_card, typo)


@pytest.mark.parametrize(
    ("card", "masked"),
    [
        ("7300123456789012", "************9012"),
        ("378282246310005", "***********0005"),
        ("000000000000", "********0000"),
        ("1234", "1234"),
    ],
)
def test_mask_card_keeps_the_last_four_digits(card, masked):
    assert mask_card(card) == masked
    assert len(mask_card(card)) == len(card)


# --- phones ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "region", "expected"),
    [
        ("(415) 555-2671", "US", "+14155552671"),
        ("415-555-2671", "US", "+14155552671"),
        ("415.555.2671", "US", "+14155552671"),
        ("1 415 555 2671", "US", "+14155552671"),
        ("+1 415-555-2671", "US", "+14155552671"),
        ("+14155552671", "GB", "+14155552671"),
        ("  (415) 555-2671\n", "US", "+14155552671"),
        ("\u0664\u0661\u0665\u0665\u0665\u0665\u0662\u0666\u0667\u0661", "US", "+14155552671"),
        ("020 7946 0018", "GB", "+442079460018"),
        ("+44 20 7946 0018", "US", "+442079460018"),
        ("+44 (0)20 7946 0018", "US", "+442079460018"),
        ("+33 1 42 68 53 00", "US", "+33142685300"),
        ("01 42 68 53 00", "FR", "+33142685300"),
        ("0033 1 42 68 53 00", "FR", "+33142685300"),
        ("030 123456", "DE", "+4930123456"),
        ("+49 30 1234567", "US", "+49301234567"),
    ],
)
def test_phone_numbers_are_normalised_to_e164(raw, region, expected):
    assert normalise_phone(raw, region) == expected
    assert normalise(IdentifierKind.PHONE, raw, region) == expected


def test_a_national_number_is_read_in_the_given_region():
    assert normalise_phone("01 42 68 53 00", "FR") == "+33142685300"
    # The same digits are not a valid number in the US.
    _rejected("phone", normalise_phone, "01 42 68 53 00", "US")


@pytest.mark.parametrize(
    "raw",
    [
        "",
        "   ",
        "+",
        "123",
        "not a phone",
        "+1 555 555 5555",  # no such area code
        "+999 1234567",  # no such country code
        "4155552671abc",
        "41555\n52671",
        "+1415555\x002671",
        "\x004155552671",  # the parser would drop the NUL and accept the rest
        "4155552671\x00",
        "4155552671\x01",
        "4155552671\x7f",
        "1" * 65,
        "+1 415 555 2671" + " " * 60,
    ],
)
def test_invalid_phone_numbers_are_rejected(raw):
    _rejected("phone", normalise_phone, raw, "US")
    _rejected("phone", normalise, IdentifierKind.PHONE, raw, "US")


# --- e-mail ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("ada@example.com", "ada@example.com"),
        ("Ada@Example.COM", "ada@example.com"),
        ("ADA@EXAMPLE.COM", "ada@example.com"),
        ("  ada@example.com ", "ada@example.com"),
        ("ada@example.com\n", "ada@example.com"),
        ("ada.lovelace+loyalty@example.com", "ada.lovelace+loyalty@example.com"),
        ("user@Bücher.example", "user@bücher.example"),
        ("USER@BÜCHER.EXAMPLE", "user@bücher.example"),
        ("user@xn--bcher-kva.example", "user@bücher.example"),  # IDNA ASCII spelling
        ("Ünïcode@example.com", "ünïcode@example.com"),
        ("e\u0301@example.com", "\u00e9@example.com"),  # NFC
        ("a" * 64 + "@example.com", "a" * 64 + "@example.com"),
    ],
)
def test_emails_are_normalised(raw, expected):
    assert normalise_email(raw) == expected
    assert normalise(IdentifierKind.EMAIL, raw, "US") == expected


def test_dots_and_plus_tags_are_not_rewritten():
    assert normalise_email("a.b@gmail.com") != normalise_email("ab@gmail.com")
    assert normalise_email("ab+x@gmail.com") != normalise_email("ab@gmail.com")


@pytest.mark.parametrize(
    "raw",
    [
        "",
        "no-at-sign",
        "a@b",
        "a b@example.com",
        "a@@example.com",
        "@example.com",
        "ada@",
        "ada@example..com",
        "ada\x00@example.com",
        "ada@exa\x00mple.com",
        "a@" + "b" * 250 + ".com",
        "x" * 321,
        "a" * 64 + "@" + ("b" * 60 + ".") * 5 + "com",  # > 320 in total
    ],
)
def test_invalid_emails_are_rejected(raw):
    _rejected("email", normalise_email, raw)
    _rejected("email", normalise, IdentifierKind.EMAIL, raw, "US")


def test_an_email_over_320_characters_is_rejected_before_parsing():
    error = _rejected("email", normalise_email, "a" * 300 + "@" + "b" * 30 + ".com")
    assert "320" in error.detail


# --- merchant customer references ------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("CUST-001", "CUST-001"),
        ("  CUST-001  ", "CUST-001"),
        ("\tCUST-001\n", "CUST-001"),
        ("e\u0301", "\u00e9"),
        ("Caf\u0065\u0301 42", "Caf\u00e9 42"),
        ("客户 7", "客户 7"),
        ("x" * MERCHANT_REF_MAX_LENGTH, "x" * MERCHANT_REF_MAX_LENGTH),
        ("  " + "x" * MERCHANT_REF_MAX_LENGTH + "  ", "x" * MERCHANT_REF_MAX_LENGTH),
        ("cust-001", "cust-001"),  # case is kept: it is the merchant's own key
    ],
)
def test_merchant_refs_are_trimmed_and_nfc_normalised(raw, expected):
    assert normalise_merchant_ref(raw) == expected
    assert normalise(IdentifierKind.MERCHANT_REF, raw, "US") == expected


@pytest.mark.parametrize(
    "raw",
    [
        "",
        "   ",
        "\t\n",
        "a\x00b",
        "a\x07b",
        "a\x1bb",
        "a\nb",
        "a\x7fb",
        "a\x85b",
        "a\x9fb",
        "x" * (MERCHANT_REF_MAX_LENGTH + 1),
    ],
)
def test_invalid_merchant_refs_are_rejected(raw):
    _rejected("merchant_ref", normalise_merchant_ref, raw)
    _rejected("merchant_ref", normalise, IdentifierKind.MERCHANT_REF, raw, "US")


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=200))
def test_normalisation_either_returns_a_fixed_point_or_rejects(raw):
    """Whatever the input: a clean InvalidIdentifier or a value that normalises to itself."""
    for kind in IdentifierKind:
        try:
            value = normalise(kind, raw, "US")
        except InvalidIdentifier as error:
            assert error.extensions == {"identifierKind": kind.value}
            continue
        assert normalise(kind, value, "US") == value
