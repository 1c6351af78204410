"""Rule pending_limit."""

from __future__ import annotations

from app.engine import CustomerState
from tests.unit.engine.helpers import MakeIntent, MakePolicy, decide_at, rules_of


def test_intent_beyond_the_waiting_limit_is_suppressed_not_dropped(
    make_policy: MakePolicy, make_intent: MakeIntent, empty_state: CustomerState
) -> None:
    policy = make_policy(limits={"max_pending": 2})
    state = empty_state
    for _ in range(2):
        intent = make_intent(send_at="2026-03-05T10:00:00Z")
        state = decide_at(state, intent, "2026-03-01T10:00:00Z", policy).state

    step = decide_at(
        state,
        make_intent(send_at="2026-03-05T10:00:00Z"),
        "2026-03-01T10:00:00Z",
        policy,
    )

    assert rules_of(step) == ["pending_limit"]
    assert step.state.pending_count == 2
