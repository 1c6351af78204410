"""Rule frequency_cap."""

from __future__ import annotations

from typing import Any

from app.engine import CustomerState, apply
from app.engine.policy import Policy
from tests.unit.engine.helpers import (
    MakeEvent,
    MakeIntent,
    MakePolicy,
    decide_at,
    outcome_of,
    release_at,
    rules_of,
)


def _cap_policy(make_policy: MakePolicy, **cap: Any) -> Policy:
    spec = {
        "channels": ["push"],
        "categories": ["marketing", "upsell"],
        "max": 2,
        "per": "24h",
    }
    spec.update(cap)
    return make_policy(frequency_caps=[spec])


def _send(
    state: CustomerState,
    make_intent: MakeIntent,
    when: str,
    policy: Policy,
    **fields: Any,
) -> CustomerState:
    fields.setdefault("channel", "push")
    return decide_at(state, make_intent(**fields), when, policy).state


def test_third_push_in_24h_is_suppressed(
    make_policy: MakePolicy, make_intent: MakeIntent, empty_state: CustomerState
) -> None:
    policy = _cap_policy(make_policy)
    state = _send(empty_state, make_intent, "2026-03-11T12:00:00Z", policy)
    state = _send(state, make_intent, "2026-03-11T18:00:00Z", policy, category="upsell")

    step = decide_at(state, make_intent(channel="push"), "2026-03-12T10:00:00Z", policy)

    assert rules_of(step) == ["frequency_cap"]
    assert step.decisions[0].reasons[0].detail == (
        "push marketing cap of 2 per 24h reached (2 sent since 2026-03-11T10:00:00Z)"
    )


def test_push_after_the_oldest_send_ages_out_is_approved(
    make_policy: MakePolicy, make_intent: MakeIntent, empty_state: CustomerState
) -> None:
    policy = _cap_policy(make_policy)
    state = _send(empty_state, make_intent, "2026-03-11T12:00:00Z", policy)
    state = _send(state, make_intent, "2026-03-11T18:00:00Z", policy)

    step = decide_at(state, make_intent(channel="push"), "2026-03-12T12:00:00Z", policy)

    assert outcome_of(step) == "approved"


def test_deferring_cap_waits_until_a_slot_frees(
    make_policy: MakePolicy, make_intent: MakeIntent, empty_state: CustomerState
) -> None:
    policy = _cap_policy(make_policy, on_exceed="defer")
    state = _send(empty_state, make_intent, "2026-03-11T12:00:00Z", policy)
    state = _send(state, make_intent, "2026-03-11T18:00:00Z", policy)

    deferred = decide_at(
        state, make_intent(channel="push"), "2026-03-12T10:00:00Z", policy
    )
    released = release_at(deferred.state, "2026-03-12T12:00:00Z", policy)

    assert outcome_of(deferred) == "deferred"
    assert deferred.decisions[0].release_at is not None
    assert deferred.decisions[0].to_dict()["release_at"] == "2026-03-12T12:00:00Z"
    assert outcome_of(released) == "approved"


def test_other_channels_do_not_count(
    make_policy: MakePolicy, make_intent: MakeIntent, empty_state: CustomerState
) -> None:
    policy = _cap_policy(make_policy, max=1)
    state = _send(
        empty_state, make_intent, "2026-03-11T12:00:00Z", policy, channel="email"
    )

    step = decide_at(state, make_intent(channel="push"), "2026-03-11T13:00:00Z", policy)

    assert outcome_of(step) == "approved"


def test_suppressed_intents_do_not_use_up_the_cap(
    make_policy: MakePolicy, make_intent: MakeIntent, empty_state: CustomerState
) -> None:
    policy = _cap_policy(make_policy, max=1)
    state = _send(
        empty_state,
        make_intent,
        "2026-03-11T12:00:00Z",
        policy,
        expires_at="2026-03-11T11:00:00Z",
    )

    step = decide_at(state, make_intent(channel="push"), "2026-03-11T13:00:00Z", policy)

    assert outcome_of(step) == "approved"


def test_day_cap_resets_at_the_customers_local_midnight(
    make_policy: MakePolicy,
    make_intent: MakeIntent,
    make_event: MakeEvent,
    empty_state: CustomerState,
) -> None:
    policy = _cap_policy(make_policy, max=1, per="day")
    profile = make_event("profile.updated", attributes={"timezone": "Europe/Berlin"})
    state = apply(empty_state, profile, policy).state
    # 23:30 in Berlin, then 00:30 the next local day.
    state = _send(state, make_intent, "2026-03-01T22:30:00Z", policy)

    step = decide_at(state, make_intent(channel="push"), "2026-03-01T23:30:00Z", policy)

    assert outcome_of(step) == "approved"


def test_day_cap_defers_to_local_midnight(
    make_policy: MakePolicy,
    make_intent: MakeIntent,
    make_event: MakeEvent,
    empty_state: CustomerState,
) -> None:
    policy = _cap_policy(make_policy, max=1, per="day", on_exceed="defer")
    profile = make_event("profile.updated", attributes={"timezone": "Europe/Berlin"})
    state = apply(empty_state, profile, policy).state
    state = _send(state, make_intent, "2026-03-01T10:00:00Z", policy)

    step = decide_at(state, make_intent(channel="push"), "2026-03-01T12:00:00Z", policy)

    assert outcome_of(step) == "deferred"
    assert step.decisions[0].to_dict()["release_at"] == "2026-03-01T23:00:00Z"
    assert "since local midnight 2026-03-01T00:00:00+01:00" in (
        step.decisions[0].reasons[0].detail
    )


def test_day_cap_fails_closed_without_a_timezone(
    make_policy: MakePolicy, make_intent: MakeIntent, empty_state: CustomerState
) -> None:
    policy = make_policy(
        timezone_fallback="fail_closed",
        frequency_caps=[{"channels": ["push"], "max": 1, "per": "day"}],
    )
    state = _send(empty_state, make_intent, "2026-03-01T10:00:00Z", policy)

    step = decide_at(state, make_intent(channel="push"), "2026-03-02T09:00:00Z", policy)

    assert rules_of(step) == ["frequency_cap"]
    assert "timezone is unknown" in step.decisions[0].reasons[0].detail


def test_exempt_sends_neither_hit_nor_use_up_the_cap(
    make_policy: MakePolicy, make_intent: MakeIntent, empty_state: CustomerState
) -> None:
    policy = make_policy(
        categories={"transactional": {"exempt": True}},
        frequency_caps=[{"channels": ["push"], "max": 1, "per": "24h"}],
    )
    state = _send(empty_state, make_intent, "2026-03-11T12:00:00Z", policy)
    state = _send(
        state, make_intent, "2026-03-11T12:01:00Z", policy, category="transactional"
    )

    step = decide_at(state, make_intent(channel="push"), "2026-03-11T13:00:00Z", policy)

    assert len(state.sent) == 1
    assert rules_of(step) == ["frequency_cap"]
