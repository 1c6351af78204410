"""Rule expired."""

from __future__ import annotations

from app.engine import CustomerState
from tests.unit.engine.helpers import (
    MakeIntent,
    MakePolicy,
    decide_at,
    outcome_of,
    rules_of,
)


def test_intent_past_its_expiry_is_suppressed(
    make_policy: MakePolicy, make_intent: MakeIntent, empty_state: CustomerState
) -> None:
    policy = make_policy()

    step = decide_at(
        empty_state,
        make_intent(expires_at="2026-03-01T09:59:59Z"),
        "2026-03-01T10:00:00Z",
        policy,
    )

    assert rules_of(step) == ["expired"]
    assert step.decisions[0].reasons[0].detail == "it expired at 2026-03-01T09:59:59Z"


def test_expired_applies_to_transactional_too(
    make_policy: MakePolicy, make_intent: MakeIntent, empty_state: CustomerState
) -> None:
    policy = make_policy(categories={"transactional": {"exempt": True}})

    step = decide_at(
        empty_state,
        make_intent(category="transactional", expires_at="2026-03-01T09:00:00Z"),
        "2026-03-01T10:00:00Z",
        policy,
    )

    assert rules_of(step) == ["expired"]


def test_send_at_after_expiry_is_suppressed_at_once(
    make_policy: MakePolicy, make_intent: MakeIntent, empty_state: CustomerState
) -> None:
    policy = make_policy()

    step = decide_at(
        empty_state,
        make_intent(send_at="2026-03-05T00:00:00Z", expires_at="2026-03-04T00:00:00Z"),
        "2026-03-01T10:00:00Z",
        policy,
    )

    assert rules_of(step) == ["expired"]
    assert step.state.pending_count == 0


def test_deferral_past_expiry_is_suppressed_with_both_reasons(
    make_policy: MakePolicy, make_intent: MakeIntent, empty_state: CustomerState
) -> None:
    policy = make_policy(
        quiet_hours=[{"from": "21:00", "to": "08:00", "action": "defer"}]
    )

    step = decide_at(
        empty_state,
        make_intent(expires_at="2026-03-01T23:00:00Z"),
        "2026-03-01T22:00:00Z",
        policy,
    )

    assert outcome_of(step) == "suppressed"
    assert rules_of(step) == ["quiet_hours", "expired"]
    assert "would pass its expiry" in step.decisions[0].reasons[1].detail
