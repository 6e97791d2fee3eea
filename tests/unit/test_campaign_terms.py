from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from shared.campaigns.definitions import (
    validate_limits,
    validate_terms,
    validate_window,
)
from shared.errors import InvalidInput

VALID = [
    ("multiplier", {"multiplier": "2"}, {"multiplier": "2"}),
    ("multiplier", {"multiplier": "1.50"}, {"multiplier": "1.5"}),
    ("multiplier", {"multiplier": "2.0"}, {"multiplier": "2"}),
    ("multiplier", {"multiplier": "100"}, {"multiplier": "100"}),
    ("fixed_bonus", {"bonusPoints": 50, "minSpendMinor": 500}, None),
    ("fixed_bonus", {"bonusPoints": 50}, {"bonusPoints": 50, "minSpendMinor": 0}),
    ("fixed_bonus", {"bonusPoints": 1, "minSpendMinor": 0}, None),
    ("spend_threshold", {"thresholdMinor": 10_000, "bonusPoints": 500}, None),
    ("cross_merchant", {"distinctPartners": 2, "bonusPoints": 300}, None),
    ("win_back", {"lapsedDays": 90, "multiplier": "2"}, None),
    ("win_back", {"lapsedDays": 1, "bonusPoints": 200}, None),
]


@pytest.mark.parametrize("kind, terms, expected", VALID)
def test_valid_terms_are_returned_in_canonical_form(kind, terms, expected):
    assert validate_terms(kind, terms) == (expected or terms)


INVALID = [
    ("multiplier", {}, "multiplier"),
    ("multiplier", {"multiplier": "1"}, "greater than 1"),
    ("multiplier", {"multiplier": "0.5"}, "greater than 1"),
    ("multiplier", {"multiplier": "-3"}, "greater than 1"),
    ("multiplier", {"multiplier": "101"}, "at most"),
    ("multiplier", {"multiplier": "abc"}, "not a decimal"),
    ("multiplier", {"multiplier": "NaN"}, "decimal"),
    ("multiplier", {"multiplier": "Infinity"}, "decimal"),
    ("multiplier", {"multiplier": "1.00001"}, "4 decimal places"),
    ("multiplier", {"multiplier": 2}, "decimal string"),
    ("multiplier", {"multiplier": "2", "bonusPoints": 5}, "Unknown terms"),
    ("fixed_bonus", {"bonusPoints": 0}, "between"),
    ("fixed_bonus", {"bonusPoints": -5}, "between"),
    ("fixed_bonus", {"bonusPoints": "50"}, "integer"),
    ("fixed_bonus", {"bonusPoints": True}, "integer"),
    ("fixed_bonus", {"bonusPoints": 5.0}, "integer"),
    ("fixed_bonus", {"bonusPoints": 5, "minSpendMinor": -1}, "between"),
    ("fixed_bonus", {"minSpendMinor": 100}, "bonusPoints"),
    ("spend_threshold", {"thresholdMinor": 0, "bonusPoints": 5}, "between"),
    ("spend_threshold", {"thresholdMinor": 100}, "bonusPoints"),
    ("cross_merchant", {"distinctPartners": 1, "bonusPoints": 5}, "between"),
    ("cross_merchant", {"distinctPartners": 3, "bonusPoints": 0}, "between"),
    ("win_back", {"lapsedDays": 0, "bonusPoints": 5}, "between"),
    ("win_back", {"lapsedDays": 30}, "exactly one"),
    ("win_back", {"lapsedDays": 30, "bonusPoints": 5, "multiplier": "2"}, "exactly one"),
    ("win_back", {"lapsedDays": 30, "multiplier": "1"}, "greater than 1"),
    ("win_back", {"multiplier": "2"}, "lapsedDays"),
    ("lottery", {}, "Unknown campaign kind"),
]


@pytest.mark.parametrize("kind, terms, message", INVALID)
def test_invalid_terms_are_refused(kind, terms, message):
    with pytest.raises(InvalidInput) as error:
        validate_terms(kind, terms)
    assert message in error.value.detail


def test_terms_must_be_an_object():
    with pytest.raises(InvalidInput):
        validate_terms("multiplier", ["2"])


def test_window_must_end_after_it_starts():
    start = datetime(2030, 1, 1, tzinfo=UTC)
    validate_window(start, start + timedelta(seconds=1))
    for end in (start, start - timedelta(days=1)):
        with pytest.raises(InvalidInput):
            validate_window(start, end)


def test_limits():
    validate_limits(holdout_bps=0, per_member_cap_points=None, budget_points=None)
    validate_limits(holdout_bps=10_000, per_member_cap_points=1, budget_points=1)
    for kwargs in (
        {"holdout_bps": -1, "per_member_cap_points": None, "budget_points": None},
        {"holdout_bps": 10_001, "per_member_cap_points": None, "budget_points": None},
        {"holdout_bps": 0, "per_member_cap_points": 0, "budget_points": None},
        {"holdout_bps": 0, "per_member_cap_points": None, "budget_points": -5},
    ):
        with pytest.raises(InvalidInput):
            validate_limits(**kwargs)
