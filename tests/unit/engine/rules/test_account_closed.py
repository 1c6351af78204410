"""Rule account_closed."""

from __future__ import annotations

from app.engine import CustomerState, apply
from tests.unit.engine.helpers import (
    MakeEvent,
    MakeIntent,
    MakePolicy,
    decide_at,
    outcome_of,
    rules_of,
)


def test_marketing_after_account_closed_is_suppressed(
    make_policy: MakePolicy,
    make_intent: MakeIntent,
    make_event: MakeEvent,
    empty_state: CustomerState,
) -> None:
    policy = make_policy()
    state = apply(empty_state, make_event("account.closed"), policy).state

    step = decide_at(state, make_intent(), "2026-03-01T10:00:00Z", policy)

    assert rules_of(step) == ["account_closed"]
    assert step.decisions[0].reasons[0].detail == (
        "the account was closed at 2026-03-01T09:00:00Z"
    )


def test_transactional_after_account_closed_is_approved(
    make_policy: MakePolicy,
    make_intent: MakeIntent,
    make_event: MakeEvent,
    empty_state: CustomerState,
) -> None:
    policy = make_policy(categories={"transactional": {"exempt": True}})
    state = apply(empty_state, make_event("account.closed"), policy).state

    step = decide_at(
        state, make_intent(category="transactional"), "2026-03-01T10:00:00Z", policy
    )

    assert outcome_of(step) == "approved"
