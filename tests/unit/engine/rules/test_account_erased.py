"""Rule account_erased."""

from __future__ import annotations

from app.engine import CustomerState, apply, decode_state, encode_state
from tests.unit.engine.helpers import (
    MakeEvent,
    MakeIntent,
    MakePolicy,
    apply_all,
    decide_at,
    rules_of,
)


def test_erasure_keeps_only_a_tombstone(
    make_policy: MakePolicy, make_event: MakeEvent, empty_state: CustomerState
) -> None:
    policy = make_policy(
        entities={"booking": {"events": {"booking.created": "active"}}}
    )
    state = apply_all(
        empty_state,
        [
            make_event("profile.updated", attributes={"timezone": "Europe/Berlin"}),
            make_event("booking.created", entity=("booking", "bk-1")),
        ],
        policy,
    )

    state = apply(state, make_event("account.erased"), policy).state

    assert state.is_erased
    assert state.timezone is None
    assert not state.entities
    assert decode_state(encode_state(state)) == state


def test_waiting_intents_get_suppressed_decisions_on_erasure(
    make_policy: MakePolicy,
    make_intent: MakeIntent,
    make_event: MakeEvent,
    empty_state: CustomerState,
) -> None:
    policy = make_policy()
    later = make_intent(send_at="2026-03-05T10:00:00Z")
    state = decide_at(empty_state, later, "2026-03-01T10:00:00Z", policy).state

    step = apply(
        state, make_event("account.erased", occurred_at="2026-03-02T09:00:00Z"), policy
    )

    [decision] = step.decisions
    assert decision.intent_id == later.intent_id
    assert decision.outcome == "suppressed"
    assert [r.rule for r in decision.reasons] == ["account_erased"]
    assert step.state.pending_count == 0


def test_even_transactional_intents_after_erasure_are_suppressed(
    make_policy: MakePolicy,
    make_intent: MakeIntent,
    make_event: MakeEvent,
    empty_state: CustomerState,
) -> None:
    policy = make_policy(categories={"transactional": {"exempt": True}})
    state = apply(empty_state, make_event("account.erased"), policy).state

    step = decide_at(
        state, make_intent(category="transactional"), "2026-03-01T10:00:00Z", policy
    )

    assert rules_of(step) == ["account_erased"]


def test_events_after_erasure_change_nothing(
    make_policy: MakePolicy, make_event: MakeEvent, empty_state: CustomerState
) -> None:
    policy = make_policy()
    erased = apply(empty_state, make_event("account.erased"), policy).state

    after = apply(
        erased, make_event("profile.updated", attributes={"timezone": "UTC"}), policy
    ).state

    assert after == erased
