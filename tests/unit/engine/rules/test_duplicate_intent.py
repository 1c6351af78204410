"""Rule duplicate_intent."""

from __future__ import annotations

from app.engine import CustomerState
from tests.unit.engine.helpers import (
    MakeIntent,
    MakePolicy,
    decide_at,
    release_at,
    rules_of,
)


def test_intent_decided_before_is_suppressed(
    make_policy: MakePolicy, make_intent: MakeIntent, empty_state: CustomerState
) -> None:
    policy = make_policy()
    intent = make_intent()
    first = decide_at(empty_state, intent, "2026-03-01T10:00:00Z", policy)

    second = decide_at(first.state, intent, "2026-03-01T10:00:05Z", policy)

    assert first.decisions[0].outcome == "approved"
    assert rules_of(second) == ["duplicate_intent"]
    assert second.approved == ()
    assert second.decisions[0].decision_id != first.decisions[0].decision_id


def test_intent_already_waiting_is_suppressed_and_the_first_copy_still_waits(
    make_policy: MakePolicy, make_intent: MakeIntent, empty_state: CustomerState
) -> None:
    policy = make_policy()
    intent = make_intent(send_at="2026-03-02T10:00:00Z")
    waiting = decide_at(empty_state, intent, "2026-03-01T10:00:00Z", policy).state

    copy = decide_at(waiting, intent, "2026-03-01T11:00:00Z", policy)
    released = release_at(copy.state, "2026-03-02T10:00:00Z", policy)

    assert rules_of(copy) == ["duplicate_intent"]
    assert "already waiting" in copy.decisions[0].reasons[0].detail
    assert [d.outcome for d in released.decisions] == ["approved"]
    assert released.decisions[0].decision_id != copy.decisions[0].decision_id


def test_transactional_duplicate_is_suppressed(
    make_policy: MakePolicy, make_intent: MakeIntent, empty_state: CustomerState
) -> None:
    policy = make_policy(categories={"transactional": {"exempt": True}})
    intent = make_intent(category="transactional")
    state = decide_at(empty_state, intent, "2026-03-01T10:00:00Z", policy).state

    step = decide_at(state, intent, "2026-03-01T10:00:01Z", policy)

    assert rules_of(step) == ["duplicate_intent"]


def test_decided_ids_are_forgotten_after_their_retention(
    make_policy: MakePolicy, make_intent: MakeIntent, empty_state: CustomerState
) -> None:
    policy = make_policy(remember={"decided_intents": "1d"})
    intent = make_intent()
    state = decide_at(empty_state, intent, "2026-03-01T10:00:00Z", policy).state

    step = decide_at(state, intent, "2026-03-03T10:00:00Z", policy)

    assert step.decisions[0].outcome == "approved"
