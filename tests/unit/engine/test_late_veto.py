"""Late vetoes: sends a late-arriving event should have stopped."""

from __future__ import annotations

from app.engine import CustomerState, apply
from app.engine.policy import Policy
from tests.unit.engine.helpers import (
    MakeEvent,
    MakeIntent,
    MakePolicy,
    at,
    decide_at,
)

BOOKING = ("booking", "bk-981")


def _policy(make_policy: MakePolicy) -> Policy:
    return make_policy(
        entities={
            "booking": {
                "events": {"booking.cancelled": "cancelled"},
                "blocking": ["cancelled"],
            }
        },
        cooldowns=[
            {"after": "complaint.filed", "for": "7d", "categories": ["marketing"]}
        ],
        late_veto={"lookback": "24h"},
    )


def test_cancellation_arriving_after_an_approval_reports_a_late_veto(
    make_policy: MakePolicy,
    make_intent: MakeIntent,
    make_event: MakeEvent,
    empty_state: CustomerState,
) -> None:
    policy = _policy(make_policy)
    reminder = make_intent(category="reminder", about=[BOOKING])
    state = decide_at(empty_state, reminder, "2026-03-01T10:00:00Z", policy).state
    cancelled = make_event(
        "booking.cancelled", entity=BOOKING, occurred_at="2026-03-01T09:59:00Z"
    )

    step = apply(state, cancelled, policy, now=at("2026-03-01T10:05:00Z"))

    [veto] = step.late_vetoes
    assert (veto.rule, veto.entity_type, veto.entity_id, veto.intent_id) == (
        "entity_state",
        "booking",
        "bk-981",
        reminder.intent_id,
    )
    assert veto.approved_at == at("2026-03-01T10:00:00Z")
    assert veto.event_id == cancelled.event_id


def test_approval_before_the_event_happened_is_no_late_veto(
    make_policy: MakePolicy,
    make_intent: MakeIntent,
    make_event: MakeEvent,
    empty_state: CustomerState,
) -> None:
    policy = _policy(make_policy)
    reminder = make_intent(category="reminder", about=[BOOKING])
    state = decide_at(empty_state, reminder, "2026-03-01T10:00:00Z", policy).state
    cancelled = make_event(
        "booking.cancelled", entity=BOOKING, occurred_at="2026-03-01T10:01:00Z"
    )

    step = apply(state, cancelled, policy)

    assert step.late_vetoes == ()


def test_cooldown_arriving_late_vetoes_the_categories_it_covers(
    make_policy: MakePolicy,
    make_intent: MakeIntent,
    make_event: MakeEvent,
    empty_state: CustomerState,
) -> None:
    policy = _policy(make_policy)
    marketing = make_intent(category="marketing")
    service = make_intent(category="service")
    state = decide_at(empty_state, marketing, "2026-03-01T10:00:00Z", policy).state
    state = decide_at(state, service, "2026-03-01T10:00:00Z", policy).state
    complaint = make_event("complaint.filed", occurred_at="2026-03-01T09:00:00Z")

    step = apply(state, complaint, policy, now=at("2026-03-01T11:00:00Z"))

    assert [(v.rule, v.intent_id) for v in step.late_vetoes] == [
        ("cooldown", marketing.intent_id)
    ]


def test_approvals_older_than_the_lookback_are_not_reported(
    make_policy: MakePolicy,
    make_intent: MakeIntent,
    make_event: MakeEvent,
    empty_state: CustomerState,
) -> None:
    policy = _policy(make_policy)
    reminder = make_intent(category="reminder", about=[BOOKING])
    state = decide_at(empty_state, reminder, "2026-03-01T10:00:00Z", policy).state
    cancelled = make_event(
        "booking.cancelled", entity=BOOKING, occurred_at="2026-03-01T09:00:00Z"
    )

    step = apply(state, cancelled, policy, now=at("2026-03-03T10:00:00Z"))

    assert step.late_vetoes == ()
