"""Rule dedupe."""

from __future__ import annotations

from app.engine import CustomerState
from app.engine.state import find_id
from tests.unit.engine.helpers import (
    MakeIntent,
    MakePolicy,
    decide_at,
    outcome_of,
    rules_of,
)


def test_same_dedupe_key_within_the_window_is_suppressed(
    make_policy: MakePolicy, make_intent: MakeIntent, empty_state: CustomerState
) -> None:
    policy = make_policy(dedupe={"window": "24h"})
    state = decide_at(
        empty_state, make_intent(dedupe_key="spring"), "2026-03-01T10:00:00Z", policy
    ).state

    step = decide_at(
        state, make_intent(dedupe_key="spring"), "2026-03-02T09:59:59Z", policy
    )

    assert rules_of(step) == ["dedupe"]
    assert "dedupe_key spring" in step.decisions[0].reasons[0].detail


def test_same_dedupe_key_after_the_window_is_approved(
    make_policy: MakePolicy, make_intent: MakeIntent, empty_state: CustomerState
) -> None:
    policy = make_policy(dedupe={"window": "24h"})
    state = decide_at(
        empty_state, make_intent(dedupe_key="spring"), "2026-03-01T10:00:00Z", policy
    ).state

    step = decide_at(
        state, make_intent(dedupe_key="spring"), "2026-03-02T10:00:00Z", policy
    )

    assert outcome_of(step) == "approved"
    assert find_id(step.state.dedupe_keys, "spring") == step.decisions[0].decided_us


def test_suppressed_intent_does_not_claim_its_dedupe_key(
    make_policy: MakePolicy, make_intent: MakeIntent, empty_state: CustomerState
) -> None:
    policy = make_policy(
        dedupe={"window": "24h"}, holdouts=[{"percent": 100, "salt": "all"}]
    )

    step = decide_at(
        empty_state, make_intent(dedupe_key="spring"), "2026-03-01T10:00:00Z", policy
    )

    assert outcome_of(step) == "suppressed"
    assert not step.state.dedupe_keys


def test_without_a_dedupe_section_keys_are_ignored(
    make_policy: MakePolicy, make_intent: MakeIntent, empty_state: CustomerState
) -> None:
    policy = make_policy()
    state = decide_at(
        empty_state, make_intent(dedupe_key="spring"), "2026-03-01T10:00:00Z", policy
    ).state

    step = decide_at(
        state, make_intent(dedupe_key="spring"), "2026-03-01T10:00:01Z", policy
    )

    assert outcome_of(step) == "approved"
