"""Rule consent."""

from __future__ import annotations

import pytest

from app.engine import CustomerState
from tests.unit.engine.helpers import (
    MakeEvent,
    MakeIntent,
    MakePolicy,
    apply_all,
    decide_at,
    outcome_of,
    rules_of,
)

NOW = "2026-03-01T10:00:00Z"


@pytest.mark.parametrize(
    ("attributes", "channel", "category", "is_blocked"),
    [
        ({"channel": "email"}, "email", "marketing", True),
        ({"channel": "email"}, "push", "marketing", False),
        ({"category": "marketing"}, "push", "marketing", True),
        ({"category": "marketing"}, "push", "reminder", False),
        ({"channel": "email", "category": "marketing"}, "email", "marketing", True),
        ({"channel": "email", "category": "marketing"}, "email", "reminder", False),
        ({}, "sms", "service", True),
    ],
)
def test_opt_out_covers_its_channel_and_category(
    make_policy: MakePolicy,
    make_intent: MakeIntent,
    make_event: MakeEvent,
    empty_state: CustomerState,
    attributes: dict[str, str],
    channel: str,
    category: str,
    is_blocked: bool,
) -> None:
    policy = make_policy()
    state = apply_all(
        empty_state, [make_event("consent.opted_out", attributes=attributes)], policy
    )

    step = decide_at(
        state, make_intent(channel=channel, category=category), NOW, policy
    )

    assert outcome_of(step) == ("suppressed" if is_blocked else "approved")


def test_detail_names_what_was_opted_out_and_when(
    make_policy: MakePolicy,
    make_intent: MakeIntent,
    make_event: MakeEvent,
    empty_state: CustomerState,
) -> None:
    policy = make_policy()
    state = apply_all(
        empty_state,
        [
            make_event(
                "consent.opted_out",
                attributes={"channel": "email", "category": "marketing"},
            )
        ],
        policy,
    )

    step = decide_at(state, make_intent(), NOW, policy)

    assert rules_of(step) == ["consent"]
    assert step.decisions[0].reasons[0].detail == (
        "the customer opted out of email marketing at 2026-03-01T09:00:00Z"
    )


def test_opt_in_lifts_the_opt_out(
    make_policy: MakePolicy,
    make_intent: MakeIntent,
    make_event: MakeEvent,
    empty_state: CustomerState,
) -> None:
    policy = make_policy()
    state = apply_all(
        empty_state,
        [
            make_event("consent.opted_out", attributes={"channel": "email"}),
            make_event(
                "consent.opted_in",
                attributes={"channel": "email"},
                occurred_at="2026-03-01T09:30:00Z",
            ),
        ],
        policy,
    )

    step = decide_at(state, make_intent(), NOW, policy)

    assert outcome_of(step) == "approved"


def test_opt_in_to_one_category_leaves_a_channel_opt_out(
    make_policy: MakePolicy,
    make_intent: MakeIntent,
    make_event: MakeEvent,
    empty_state: CustomerState,
) -> None:
    policy = make_policy()
    state = apply_all(
        empty_state,
        [
            make_event("consent.opted_out", attributes={"channel": "email"}),
            make_event("consent.opted_in", attributes={"category": "marketing"}),
        ],
        policy,
    )

    step = decide_at(state, make_intent(), NOW, policy)

    assert rules_of(step) == ["consent"]


def test_transactional_ignores_opt_out(
    make_policy: MakePolicy,
    make_intent: MakeIntent,
    make_event: MakeEvent,
    empty_state: CustomerState,
) -> None:
    policy = make_policy(categories={"transactional": {"exempt": True}})
    state = apply_all(empty_state, [make_event("consent.opted_out")], policy)

    step = decide_at(state, make_intent(category="transactional"), NOW, policy)

    assert outcome_of(step) == "approved"
