"""Rule entity_state."""

from __future__ import annotations

from typing import Any

import pytest

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

NOW = "2026-03-10T10:00:00Z"
BOOKING = ("booking", "bk-981")


def _booking_policy(make_policy: MakePolicy, **overrides: Any) -> Policy:
    booking = {
        "events": {
            "booking.created": "active",
            "booking.cancelled": "cancelled",
            "booking.refunded": "refunded",
        },
        "blocking": ["cancelled", "refunded"],
        **overrides,
    }
    return make_policy(
        entities={"booking": booking}, categories={"transactional": {"exempt": True}}
    )


def test_reminder_after_cancellation_is_suppressed(
    make_policy: MakePolicy,
    make_intent: MakeIntent,
    make_event: MakeEvent,
    empty_state: CustomerState,
) -> None:
    policy = _booking_policy(make_policy)
    state = apply_all(
        empty_state,
        [
            make_event("booking.created", entity=BOOKING),
            make_event(
                "booking.cancelled", entity=BOOKING, occurred_at="2026-03-12T10:02:00Z"
            ),
        ],
        policy,
    )

    step = decide_at(
        state,
        make_intent(category="reminder", about=[BOOKING]),
        "2026-03-13T08:00:00Z",
        policy,
    )

    assert rules_of(step) == ["entity_state"]
    assert step.decisions[0].reasons[0].detail == (
        "booking bk-981 was cancelled at 2026-03-12T10:02:00Z"
    )


def test_reminder_about_an_active_booking_is_approved(
    make_policy: MakePolicy,
    make_intent: MakeIntent,
    make_event: MakeEvent,
    empty_state: CustomerState,
) -> None:
    policy = _booking_policy(make_policy)
    state = apply_all(
        empty_state, [make_event("booking.created", entity=BOOKING)], policy
    )

    step = decide_at(
        state, make_intent(category="reminder", about=[BOOKING]), NOW, policy
    )

    assert outcome_of(step) == "approved"


def test_late_created_event_does_not_revive_a_cancelled_booking(
    make_policy: MakePolicy,
    make_intent: MakeIntent,
    make_event: MakeEvent,
    empty_state: CustomerState,
) -> None:
    policy = _booking_policy(make_policy)
    state = apply_all(
        empty_state,
        [
            make_event(
                "booking.cancelled", entity=BOOKING, occurred_at="2026-03-02T00:00:00Z"
            ),
            make_event(
                "booking.created", entity=BOOKING, occurred_at="2026-03-01T00:00:00Z"
            ),
        ],
        policy,
    )

    step = decide_at(state, make_intent(about=[BOOKING]), NOW, policy)

    assert rules_of(step) == ["entity_state"]


def test_refund_confirmation_about_a_refunded_booking_is_approved(
    make_policy: MakePolicy,
    make_intent: MakeIntent,
    make_event: MakeEvent,
    empty_state: CustomerState,
) -> None:
    policy = _booking_policy(make_policy)
    state = apply_all(
        empty_state, [make_event("booking.refunded", entity=BOOKING)], policy
    )

    step = decide_at(
        state, make_intent(category="transactional", about=[BOOKING]), NOW, policy
    )

    assert outcome_of(step) == "approved"


@pytest.mark.parametrize(
    ("unknown", "outcome"), [("allow", "approved"), ("suppress", "suppressed")]
)
def test_never_seen_entity_follows_the_unknown_setting(
    make_policy: MakePolicy,
    make_intent: MakeIntent,
    empty_state: CustomerState,
    unknown: str,
    outcome: str,
) -> None:
    policy = _booking_policy(make_policy, unknown=unknown)

    step = decide_at(empty_state, make_intent(about=[BOOKING]), NOW, policy)

    assert outcome_of(step) == outcome


def test_entity_is_forgotten_after_retain(
    make_policy: MakePolicy,
    make_intent: MakeIntent,
    make_event: MakeEvent,
    empty_state: CustomerState,
) -> None:
    policy = _booking_policy(make_policy, retain="7d")
    state = apply_all(
        empty_state, [make_event("booking.cancelled", entity=BOOKING)], policy
    )

    step = decide_at(
        state, make_intent(about=[BOOKING]), "2026-03-09T09:00:00Z", policy
    )

    assert outcome_of(step) == "approved"


def test_forgotten_entities_leave_the_state_with_the_next_event(
    make_policy: MakePolicy, make_event: MakeEvent, empty_state: CustomerState
) -> None:
    policy = _booking_policy(make_policy, retain="7d")
    cancelled = make_event("booking.cancelled", entity=BOOKING)
    later = make_event("consent.opted_in", occurred_at="2026-03-09T09:00:00Z")

    state = apply_all(empty_state, [cancelled, later], policy)

    assert not state.entities


def test_every_blocked_entity_is_a_reason(
    make_policy: MakePolicy,
    make_intent: MakeIntent,
    make_event: MakeEvent,
    empty_state: CustomerState,
) -> None:
    policy = _booking_policy(make_policy)
    other = ("booking", "bk-2")
    state = apply_all(
        empty_state,
        [
            make_event("booking.cancelled", entity=BOOKING),
            make_event("booking.refunded", entity=other),
        ],
        policy,
    )

    step = decide_at(state, make_intent(about=[BOOKING, other]), NOW, policy)

    assert rules_of(step) == ["entity_state", "entity_state"]
