"""Rule holdout."""

from __future__ import annotations

from app.engine import CustomerState
from app.engine.policy import Holdout, Selector
from app.engine.rules.holdout import is_held_out
from tests.unit.engine.helpers import (
    MakeIntent,
    MakePolicy,
    decide_at,
    outcome_of,
    rules_of,
)

NOW = "2026-03-01T10:00:00Z"


def test_everyone_is_held_out_at_100_percent(
    make_policy: MakePolicy, make_intent: MakeIntent, empty_state: CustomerState
) -> None:
    policy = make_policy(
        holdouts=[{"categories": ["marketing"], "percent": 100, "salt": "q4"}]
    )

    step = decide_at(empty_state, make_intent(), NOW, policy)

    assert rules_of(step) == ["holdout"]


def test_nobody_is_held_out_at_0_percent(
    make_policy: MakePolicy, make_intent: MakeIntent, empty_state: CustomerState
) -> None:
    policy = make_policy(holdouts=[{"percent": 0, "salt": "q4"}])

    step = decide_at(empty_state, make_intent(), NOW, policy)

    assert outcome_of(step) == "approved"


def test_holdout_membership_is_stable_and_near_its_percent() -> None:
    holdout = Holdout(Selector(), percent=5, salt="2026-q4")
    customers = [f"c-{n}" for n in range(20_000)]

    members = [c for c in customers if is_held_out(c, holdout)]

    assert members == [c for c in customers if is_held_out(c, holdout)]
    assert 0.04 < len(members) / len(customers) < 0.06


def test_a_new_salt_draws_a_new_group() -> None:
    customers = [f"c-{n}" for n in range(2_000)]
    first = Holdout(Selector(), percent=10, salt="a")
    second = Holdout(Selector(), percent=10, salt="b")

    overlap = {c for c in customers if is_held_out(c, first)} & {
        c for c in customers if is_held_out(c, second)
    }

    assert len(overlap) < 60
