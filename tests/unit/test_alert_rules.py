"""The alert state machine, signatures and retry delays: pure functions, no database."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

import pytest

from shared.alerts.delivery import RetryPolicy, retry_delay
from shared.alerts.rules import (
    Comparator,
    Condition,
    InstanceState,
    NoDataPolicy,
    State,
    check_condition,
    replay,
    step,
    tick_of,
)
from shared.alerts.signing import signature_header, verify
from shared.errors import InvalidInput

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def ticks(count: int) -> list[datetime]:
    return [T0 + timedelta(hours=i) for i in range(count)]


def states(values, condition) -> list[str]:
    return [point.state.value for point in replay(ticks(len(values)), values, condition)]


def changes(values, condition) -> list[tuple[str, str, bool]]:
    return [
        (point.change.from_state.value, point.change.to_state.value, point.change.notified)
        for point in replay(ticks(len(values)), values, condition)
        if point.change
    ]


ABOVE_10 = Condition(Comparator.GT, 10.0)


def test_a_breach_fires_at_once_without_a_pending_period_and_resolves_when_it_ends():
    assert states([5, 11, 12, 9, 8], ABOVE_10) == [
        "normal", "firing", "firing", "normal", "normal",
    ]  # fmt: skip
    assert changes([5, 11, 12, 9], ABOVE_10) == [
        ("normal", "firing", True),
        ("firing", "normal", True),
    ]


def test_the_pending_period_needs_consecutive_breaches():
    condition = Condition(Comparator.GT, 10.0, pending_evaluations=3)
    # two breaches, a quiet value (pending cancelled, never notified), then three in a row
    assert states([11, 11, 9, 11, 11, 11, 12], condition) == [
        "pending", "pending", "normal", "pending", "pending", "firing", "firing",
    ]  # fmt: skip
    assert changes([11, 11, 9, 11, 11, 11], condition) == [
        ("normal", "pending", False),
        ("pending", "normal", False),
        ("normal", "pending", False),
        ("pending", "firing", True),
    ]


def test_the_threshold_itself_does_not_breach_gt_but_breaches_gte():
    assert states([10], ABOVE_10) == ["normal"]
    assert states([10], Condition(Comparator.GTE, 10.0)) == ["firing"]
    assert states([10, 9.99], Condition(Comparator.LTE, 10.0)) == ["firing", "firing"]
    assert states([10, 9.99], Condition(Comparator.LT, 10.0)) == ["normal", "firing"]


def test_hysteresis_keeps_a_firing_alert_firing_until_the_recovery_threshold():
    condition = Condition(Comparator.GT, 10.0, recovery_threshold=7.0)
    # 9 and 8 are inside the band: still firing; 7 is not above 7: recovered
    assert states([11, 9, 8, 10.5, 7, 9], condition) == [
        "firing", "firing", "firing", "firing", "normal", "normal",
    ]  # fmt: skip
    # without hysteresis the same values flap
    assert len(changes([11, 9, 11, 9], ABOVE_10)) == 4
    assert len(changes([11, 9, 11, 9], condition)) == 1


def test_hysteresis_for_a_falling_metric_uses_a_higher_recovery_threshold():
    condition = Condition(Comparator.LT, 0.1, recovery_threshold=0.5)
    assert states([0.8, 0.05, 0.3, 0.49, 0.5, 0.2], condition) == [
        "normal", "firing", "firing", "firing", "normal", "normal",
    ]  # fmt: skip


def test_recovering_must_hold_and_a_relapse_returns_to_firing_without_a_new_notification():
    condition = Condition(Comparator.GT, 10.0, recovery_evaluations=3)
    assert states([11, 5, 5, 11, 5, 5, 5], condition) == [
        "firing", "recovering", "recovering", "firing", "recovering", "recovering", "normal",
    ]  # fmt: skip
    assert changes([11, 5, 5, 11, 5, 5, 5], condition) == [
        ("normal", "firing", True),
        ("firing", "recovering", False),
        ("recovering", "firing", False),
        ("firing", "recovering", False),
        ("recovering", "normal", True),
    ]


@pytest.mark.parametrize(
    ("policy", "expected"),
    [
        # keep: nothing changes while there is no data, counts included
        (NoDataPolicy.KEEP, ["pending", "pending", "firing", "firing", "normal"]),
        # ok: no data counts as recovered
        (NoDataPolicy.OK, ["pending", "normal", "pending", "firing", "normal"]),
        # breach: no data counts as a breach (a heartbeat)
        (NoDataPolicy.BREACH, ["pending", "firing", "firing", "firing", "normal"]),
        # alert: its own state, left at the next value as if from normal
        (NoDataPolicy.ALERT, ["pending", "no_data", "pending", "firing", "normal"]),
    ],
)
def test_no_data_policies(policy, expected):
    condition = Condition(Comparator.GT, 10.0, pending_evaluations=2, no_data=policy)
    assert states([11, None, 11, 11, 5], condition) == expected


def test_no_data_alerts_are_notified_entering_and_leaving():
    condition = Condition(Comparator.GT, 10.0, no_data=NoDataPolicy.ALERT)
    assert changes([5, None, None, 5], condition) == [
        ("normal", "no_data", True),
        ("no_data", "normal", True),
    ]


def test_keep_leaves_a_fresh_instance_normal_and_step_reports_no_change():
    result = step(InstanceState(), None, ABOVE_10, T0)
    assert result.change is None and result.instance.state is State.NORMAL


def test_since_is_the_tick_of_the_last_change():
    replayed = replay(ticks(4), [5, 11, 12, 13], ABOVE_10)
    assert replayed[-1].state is State.FIRING
    fired = step(InstanceState(), 11, ABOVE_10, ticks(2)[1])
    assert fired.change is not None and fired.instance.since == ticks(2)[1]
    still = step(fired.instance, 14, ABOVE_10, ticks(5)[4])
    assert still.change is None and still.instance.since == ticks(2)[1]


@pytest.mark.parametrize(
    ("condition", "field"),
    [
        (Condition(Comparator.GT, 10.0, recovery_threshold=12.0), "recoveryThreshold"),
        (Condition(Comparator.LT, 0.1, recovery_threshold=0.05), "recoveryThreshold"),
        (Condition(Comparator.GT, float("nan")), "threshold"),
        (Condition(Comparator.GT, 1.0, pending_evaluations=0), "pendingEvaluations"),
        (Condition(Comparator.GT, 1.0, recovery_evaluations=1001), "recoveryEvaluations"),
    ],
)
def test_conditions_that_cannot_work_are_refused(condition, field):
    with pytest.raises(InvalidInput) as refused:
        check_condition(condition)
    assert refused.value.extensions["field"] == field


def test_a_recovery_threshold_equal_to_the_threshold_is_allowed():
    check_condition(Condition(Comparator.GT, 10.0, recovery_threshold=10.0))


def test_ticks_align_to_the_period_since_the_epoch_in_utc():
    moment = datetime(2026, 5, 10, 13, 7, 59, tzinfo=UTC)
    assert tick_of(moment, timedelta(minutes=5)) == datetime(2026, 5, 10, 13, 5, tzinfo=UTC)
    assert tick_of(moment, timedelta(hours=1)) == datetime(2026, 5, 10, 13, tzinfo=UTC)
    assert tick_of(moment, timedelta(days=1)) == datetime(2026, 5, 10, tzinfo=UTC)
    assert tick_of(datetime(2026, 5, 10, 13, tzinfo=UTC), timedelta(hours=1)) == datetime(
        2026, 5, 10, 13, tzinfo=UTC
    )


SECRET = "whsec_test"
BODY = b'{"id":"e1","type":"alert.firing"}'


def test_a_signature_verifies_for_its_body_secret_and_time_only():
    header = signature_header(SECRET, 1_700_000_000, BODY)
    assert header.startswith("t=1700000000,v1=")
    assert verify(SECRET, header, BODY, now=1_700_000_100)
    assert not verify("whsec_other", header, BODY, now=1_700_000_100)
    assert not verify(SECRET, header, BODY + b" ", now=1_700_000_100)
    assert not verify(SECRET, header, BODY, now=1_700_000_000 + 301)  # replayed too late
    assert not verify(SECRET, "v1=" + header.split("v1=")[1], BODY, now=1_700_000_000)
    assert not verify(SECRET, "garbage", BODY, now=1_700_000_000)


def test_the_signature_is_hmac_sha256_of_timestamp_dot_body():
    import hashlib
    import hmac

    expected = hmac.new(SECRET.encode(), b"1700000000." + BODY, hashlib.sha256).hexdigest()
    assert signature_header(SECRET, 1_700_000_000, BODY) == f"t=1700000000,v1={expected}"


def test_any_matching_v1_signature_is_enough():
    header = signature_header(SECRET, 1_700_000_000, BODY) + ",v1=" + "0" * 64
    assert verify(SECRET, header, BODY, now=1_700_000_000)


def test_retry_delays_double_up_to_the_cap_with_bounded_jitter():
    policy = RetryPolicy(base_delay=timedelta(seconds=30), max_delay=timedelta(minutes=10))
    middle = [retry_delay(attempt, policy, 0.5) for attempt in range(1, 8)]
    assert [d.total_seconds() for d in middle] == [30, 60, 120, 240, 480, 600, 600]
    draws = random.Random(1)
    for attempt in range(1, 8):
        delay = retry_delay(attempt, policy, draws.random()).total_seconds()
        assert 0.8 * middle[attempt - 1].total_seconds() <= delay
        assert delay <= 1.2 * middle[attempt - 1].total_seconds()
    assert retry_delay(1, policy, 0.0).total_seconds() == 24
    assert retry_delay(1, policy, 1.0).total_seconds() == 36
