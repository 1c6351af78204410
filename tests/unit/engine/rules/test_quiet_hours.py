"""Rule quiet_hours."""

from __future__ import annotations

import pytest

from app.engine import CustomerState, apply
from app.engine.policy import Policy
from tests.unit.engine.helpers import (
    MakeEvent,
    MakeIntent,
    MakePolicy,
    decide_at,
    outcome_of,
    rules_of,
)


def _policy(make_policy: MakePolicy, action: str = "defer") -> Policy:
    return make_policy(
        quiet_hours=[
            {"channels": ["push"], "from": "21:00", "to": "08:00", "action": action}
        ]
    )


def _in_berlin(
    make_event: MakeEvent, state: CustomerState, policy: Policy
) -> CustomerState:
    profile = make_event("profile.updated", attributes={"timezone": "Europe/Berlin"})
    return apply(state, profile, policy).state


@pytest.mark.parametrize(
    ("when", "is_quiet"),
    [
        ("2026-03-01T19:59:59Z", False),  # 20:59:59 local
        ("2026-03-01T20:00:00Z", True),  # 21:00 local
        ("2026-03-01T23:30:00Z", True),  # 00:30 local, past midnight
        ("2026-03-02T06:59:59Z", True),  # 07:59:59 local
        ("2026-03-02T07:00:00Z", False),  # 08:00 local
    ],
)
def test_quiet_hours_wrap_midnight_in_local_time(
    make_policy: MakePolicy,
    make_intent: MakeIntent,
    make_event: MakeEvent,
    empty_state: CustomerState,
    when: str,
    is_quiet: bool,
) -> None:
    policy = _policy(make_policy)
    state = _in_berlin(make_event, empty_state, policy)

    step = decide_at(state, make_intent(channel="push"), when, policy)

    assert outcome_of(step) == ("deferred" if is_quiet else "approved")


def test_push_at_night_is_deferred_to_the_end_of_quiet_hours(
    make_policy: MakePolicy,
    make_intent: MakeIntent,
    make_event: MakeEvent,
    empty_state: CustomerState,
) -> None:
    policy = _policy(make_policy)
    state = _in_berlin(make_event, empty_state, policy)

    step = decide_at(state, make_intent(channel="push"), "2026-03-01T21:30:00Z", policy)

    assert rules_of(step) == ["quiet_hours"]
    assert step.decisions[0].to_dict()["release_at"] == "2026-03-02T07:00:00Z"
    assert step.decisions[0].reasons[0].detail == (
        "it is 22:30 for the customer (Europe/Berlin), inside quiet hours 21:00-08:00"
    )


@pytest.mark.parametrize(
    ("when", "release"),
    [
        # Clocks go forward on 29 March: 08:00 local is 06:00 UTC that morning.
        ("2026-03-28T21:00:00Z", "2026-03-29T06:00:00Z"),
        # Clocks go back on 25 October: 08:00 local is 07:00 UTC that morning.
        ("2026-10-24T21:00:00Z", "2026-10-25T07:00:00Z"),
    ],
)
def test_deferral_lands_on_local_morning_across_daylight_saving_changes(
    make_policy: MakePolicy,
    make_intent: MakeIntent,
    make_event: MakeEvent,
    empty_state: CustomerState,
    when: str,
    release: str,
) -> None:
    policy = _policy(make_policy)
    state = _in_berlin(make_event, empty_state, policy)

    step = decide_at(state, make_intent(channel="push"), when, policy)

    assert step.decisions[0].to_dict()["release_at"] == release


def test_drop_action_suppresses(
    make_policy: MakePolicy, make_intent: MakeIntent, empty_state: CustomerState
) -> None:
    policy = _policy(make_policy, action="drop")

    step = decide_at(
        empty_state, make_intent(channel="push"), "2026-03-01T23:00:00Z", policy
    )

    assert outcome_of(step) == "suppressed"
    assert rules_of(step) == ["quiet_hours"]


def test_other_channels_ignore_quiet_hours(
    make_policy: MakePolicy, make_intent: MakeIntent, empty_state: CustomerState
) -> None:
    policy = _policy(make_policy)

    step = decide_at(
        empty_state, make_intent(channel="email"), "2026-03-01T23:00:00Z", policy
    )

    assert outcome_of(step) == "approved"


def test_unknown_timezone_fails_closed_when_the_policy_says_so(
    make_policy: MakePolicy, make_intent: MakeIntent, empty_state: CustomerState
) -> None:
    policy = make_policy(
        timezone_fallback="fail_closed",
        quiet_hours=[{"from": "21:00", "to": "08:00"}],
    )

    step = decide_at(
        empty_state, make_intent(channel="push"), "2026-03-01T12:00:00Z", policy
    )

    assert outcome_of(step) == "suppressed"
    assert rules_of(step) == ["quiet_hours"]
