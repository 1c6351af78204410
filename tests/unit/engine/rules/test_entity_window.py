"""Rule entity_window."""

from __future__ import annotations

from app.engine import CustomerState
from app.engine.policy import Policy
from tests.unit.engine.helpers import (
    MakeEvent,
    MakeIntent,
    MakePolicy,
    apply_all,
    decide_at,
    outcome_of,
    rules_of,
)

BOOKING = ("booking", "bk-981")


def _policy(make_policy: MakePolicy) -> Policy:
    return make_policy(
        entities={"booking": {"events": {"booking.created": "active"}}},
        windows=[
            {"categories": ["reminder"], "about": "booking", "until": "starts_at"}
        ],
    )


def _booked(
    make_event: MakeEvent, state: CustomerState, policy: Policy
) -> CustomerState:
    event = make_event(
        "booking.created",
        entity=BOOKING,
        attributes={"starts_at": "2026-04-01T07:00:00Z"},
    )
    return apply_all(state, [event], policy)


def test_reminder_after_the_trip_began_is_suppressed(
    make_policy: MakePolicy,
    make_intent: MakeIntent,
    make_event: MakeEvent,
    empty_state: CustomerState,
) -> None:
    policy = _policy(make_policy)
    state = _booked(make_event, empty_state, policy)

    step = decide_at(
        state,
        make_intent(category="reminder", about=[BOOKING]),
        "2026-04-01T07:00:00Z",
        policy,
    )

    assert rules_of(step) == ["entity_window"]
    assert "starts_at was 2026-04-01T07:00:00Z" in step.decisions[0].reasons[0].detail


def test_reminder_before_the_trip_is_approved(
    make_policy: MakePolicy,
    make_intent: MakeIntent,
    make_event: MakeEvent,
    empty_state: CustomerState,
) -> None:
    policy = _policy(make_policy)
    state = _booked(make_event, empty_state, policy)

    step = decide_at(
        state,
        make_intent(category="reminder", about=[BOOKING]),
        "2026-04-01T06:59:59Z",
        policy,
    )

    assert outcome_of(step) == "approved"


def test_window_only_covers_its_categories(
    make_policy: MakePolicy,
    make_intent: MakeIntent,
    make_event: MakeEvent,
    empty_state: CustomerState,
) -> None:
    policy = _policy(make_policy)
    state = _booked(make_event, empty_state, policy)

    step = decide_at(
        state,
        make_intent(category="service", about=[BOOKING]),
        "2026-04-02T00:00:00Z",
        policy,
    )

    assert outcome_of(step) == "approved"
