"""apply, decide and release: holding, releasing, ids and purity."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import jsonschema  # type: ignore[import-untyped]  # the package ships no type stubs
import pytest
from referencing import Registry, Resource

from app.engine import (
    CustomerState,
    apply,
    core,
    decide,
    encode_state,
    late_veto,
    release,
)
from app.engine.policy import Policy
from app.engine.rules import cooldown, dedupe, frequency_cap
from app.engine.state import forget_ids
from app.engine.times import HOUR_US, MINUTE_US, to_us
from tests.unit.engine.helpers import (
    MakeEvent,
    MakeIntent,
    MakePolicy,
    apply_all,
    at,
    decide_at,
    outcome_of,
    release_at,
)

SCHEMAS = Path(__file__).resolve().parents[3] / "schemas"
BOOKING = ("booking", "bk-981")


def _validator(name: str) -> Any:
    resources = [
        (schema["$id"], Resource.from_contents(schema))
        for schema in (json.loads(path.read_text()) for path in SCHEMAS.glob("*.json"))
    ]
    registry: Registry[Any] = Registry().with_resources(resources)
    schema = json.loads((SCHEMAS / name).read_text())
    return jsonschema.Draft202012Validator(schema, registry=registry)


def _travel(make_policy: MakePolicy, **sections: Any) -> Policy:
    return make_policy(
        settle="5s",
        categories={"transactional": {"exempt": True}},
        entities={
            "booking": {
                "events": {
                    "booking.created": "active",
                    "booking.cancelled": "cancelled",
                },
                "blocking": ["cancelled"],
            }
        },
        **sections,
    )


def test_intent_waits_the_settle_window_without_a_decision(
    make_policy: MakePolicy, make_intent: MakeIntent, empty_state: CustomerState
) -> None:
    policy = _travel(make_policy)

    step = decide_at(empty_state, make_intent(), "2026-03-01T10:00:00Z", policy)

    assert step.decisions == ()
    assert step.state.pending_count == 1
    assert step.state.next_due == at("2026-03-01T10:00:05Z")


def test_transactional_intent_skips_the_settle_window(
    make_policy: MakePolicy, make_intent: MakeIntent, empty_state: CustomerState
) -> None:
    policy = _travel(make_policy)

    step = decide_at(
        empty_state,
        make_intent(category="transactional"),
        "2026-03-01T10:00:00Z",
        policy,
    )

    assert outcome_of(step) == "approved"
    assert step.state.pending_count == 0


def test_release_before_the_due_time_is_a_no_op(
    make_policy: MakePolicy, make_intent: MakeIntent, empty_state: CustomerState
) -> None:
    policy = _travel(make_policy)
    state = decide_at(empty_state, make_intent(), "2026-03-01T10:00:00Z", policy).state

    step = release_at(state, "2026-03-01T10:00:04Z", policy)

    assert step.decisions == ()
    assert step.state.pending_count == 1


def test_release_rechecks_against_an_event_that_arrived_while_waiting(
    make_policy: MakePolicy,
    make_intent: MakeIntent,
    make_event: MakeEvent,
    empty_state: CustomerState,
) -> None:
    policy = _travel(make_policy)
    state = apply_all(
        empty_state, [make_event("booking.created", entity=BOOKING)], policy
    )
    reminder = make_intent(
        category="reminder", about=[BOOKING], send_at="2026-03-20T08:00:00Z"
    )
    state = decide_at(state, reminder, "2026-03-01T10:00:00Z", policy).state
    state = apply_all(
        state,
        [
            make_event(
                "booking.cancelled", entity=BOOKING, occurred_at="2026-03-10T10:00:00Z"
            )
        ],
        policy,
    )

    step = release_at(state, "2026-03-20T08:00:00Z", policy)

    [decision] = step.decisions
    assert decision.outcome == "suppressed"
    assert decision.decided_at == at("2026-03-20T08:00:00Z")
    assert step.approved == ()


def test_intents_released_together_share_the_cap_in_due_order(
    make_policy: MakePolicy, make_intent: MakeIntent, empty_state: CustomerState
) -> None:
    policy = _travel(make_policy, frequency_caps=[{"max": 1, "per": "24h"}])
    later = make_intent(send_at="2026-03-02T10:00:01Z")
    sooner = make_intent(send_at="2026-03-02T10:00:00Z")
    state = decide_at(empty_state, later, "2026-03-01T10:00:00Z", policy).state
    state = decide_at(state, sooner, "2026-03-01T10:00:00Z", policy).state

    step = release_at(state, "2026-03-02T11:00:00Z", policy)

    assert [(d.intent_id, d.outcome) for d in step.decisions] == [
        (sooner.intent_id, "approved"),
        (later.intent_id, "suppressed"),
    ]


def test_approved_send_is_the_intent_unchanged_plus_its_decision(
    make_policy: MakePolicy, make_intent: MakeIntent, empty_state: CustomerState
) -> None:
    policy = make_policy()
    intent = make_intent(payload={"title": "Hello"}, x_trace="abc")

    step = decide_at(empty_state, intent, "2026-03-01T10:00:00Z", policy)

    [send] = step.approved
    [decision] = step.decisions
    assert {k: v for k, v in send.items() if k != "decision"} == dict(intent.raw)
    assert send["decision"] == {
        "decision_id": decision.decision_id,
        "decided_at": "2026-03-01T10:00:00Z",
        "policy_version": policy.version,
    }
    _validator("approved-send.schema.json").validate(send)


def test_every_decision_record_matches_the_decision_schema(
    make_policy: MakePolicy, make_intent: MakeIntent, empty_state: CustomerState
) -> None:
    policy = make_policy(quiet_hours=[{"from": "21:00", "to": "08:00"}])
    validator = _validator("decision.schema.json")

    deferred = decide_at(empty_state, make_intent(), "2026-03-01T22:00:00Z", policy)
    approved = release_at(deferred.state, "2026-03-02T08:00:00Z", policy)
    suppressed = decide_at(
        empty_state,
        make_intent(expires_at="2026-03-01T00:00:00Z"),
        "2026-03-01T12:00:00Z",
        policy,
    )

    for step in (deferred, approved, suppressed):
        validator.validate(step.decisions[0].to_dict())
    assert [outcome_of(s) for s in (deferred, approved, suppressed)] == [
        "deferred",
        "approved",
        "suppressed",
    ]


def test_decision_ids_are_reproducible_and_differ_per_decision(
    make_policy: MakePolicy, make_intent: MakeIntent, empty_state: CustomerState
) -> None:
    policy = make_policy(quiet_hours=[{"from": "21:00", "to": "08:00"}])
    intent = make_intent()

    first = decide_at(empty_state, intent, "2026-03-01T22:00:00Z", policy)
    again = decide_at(empty_state, intent, "2026-03-01T22:00:00Z", policy)
    released = release_at(first.state, "2026-03-02T08:00:00Z", policy)

    assert first.decisions[0].decision_id == again.decisions[0].decision_id
    assert released.decisions[0].decision_id != first.decisions[0].decision_id


def test_engine_never_changes_the_state_it_was_given(
    make_policy: MakePolicy,
    make_intent: MakeIntent,
    make_event: MakeEvent,
    empty_state: CustomerState,
) -> None:
    policy = _travel(make_policy, dedupe={"window": "1h"})
    state = apply_all(
        empty_state, [make_event("booking.created", entity=BOOKING)], policy
    )
    state = decide_at(state, make_intent(), "2026-03-01T10:00:00Z", policy).state
    before = encode_state(state)

    decide(state, make_intent(dedupe_key="k"), at("2026-03-01T10:00:01Z"), policy)
    release(state, at("2026-03-01T10:00:05Z"), policy)
    apply(state, make_event("booking.cancelled", entity=BOOKING), policy)

    assert encode_state(state) == before


def test_repeated_event_id_is_applied_once(
    make_policy: MakePolicy,
    make_intent: MakeIntent,
    make_event: MakeEvent,
    empty_state: CustomerState,
) -> None:
    policy = make_policy()
    opt_out = make_event("consent.opted_out", occurred_at="2026-03-01T08:00:00Z")
    opt_in = make_event("consent.opted_in", occurred_at="2026-03-01T08:30:00Z")
    state = apply_all(empty_state, [opt_out, opt_in, opt_out], policy)

    step = decide_at(state, make_intent(), "2026-03-01T10:00:00Z", policy)

    assert outcome_of(step) == "approved"


def test_naive_clock_is_refused(
    make_policy: MakePolicy, make_intent: MakeIntent, empty_state: CustomerState
) -> None:
    policy = make_policy()

    with pytest.raises(ValueError, match="timezone-aware"):
        decide(
            empty_state,
            make_intent(),
            at("2026-03-01T10:00:00Z").replace(tzinfo=None),
            policy,
        )


def test_state_is_rebuilt_exactly_when_some_part_has_aged(
    make_policy: MakePolicy,
    make_intent: MakeIntent,
    make_event: MakeEvent,
    empty_state: CustomerState,
) -> None:
    """The quick look at each part's oldest entry agrees with the parts' own
    forget functions at every instant around their cutoffs."""
    policy = make_policy(
        frequency_caps=[{"channels": ["push"], "max": 5, "per": "2h"}],
        cooldowns=[{"after": "complaint.filed", "for": "3h"}],
        dedupe={"window": "4h"},
        late_veto={"lookback": "5h"},
        remember={"decided_intents": "6h", "applied_events": "7h"},
    )
    intent = make_intent(
        channel="push", dedupe_key="k-1", created_at="2026-03-01T07:00:00Z"
    )
    state = decide_at(empty_state, intent, "2026-03-01T07:00:00Z", policy).state
    complaint = make_event("complaint.filed", occurred_at="2026-03-01T08:00:00Z")
    state = apply(state, complaint, policy).state
    parts = (
        state.sent,
        state.dedupe_keys,
        state.recent,
        state.cooldowns,
        state.decided,
        state.applied,
    )
    assert all(parts)
    start_us = to_us(at("2026-03-01T07:00:00Z"))

    for now_us in range(start_us, start_us + 10 * HOUR_US, MINUTE_US // 2):
        expected = (
            frequency_cap.forget_old(state.sent, now_us, policy),
            dedupe.forget_old(state.dedupe_keys, now_us, policy),
            late_veto.forget_old(state.recent, now_us, policy),
            cooldown.forget_ended(state.cooldowns, now_us),
            forget_ids(
                state.decided,
                now_us,
                policy.decided_intents_us,
                policy.decided_width_us,
            ),
            forget_ids(
                state.applied, now_us, policy.applied_events_us, policy.applied_width_us
            ),
        )

        kept = core._forget(state, now_us, policy)

        assert (kept is state) == (expected == parts)
        assert (
            kept.sent,
            kept.dedupe_keys,
            kept.recent,
            kept.cooldowns,
            kept.decided,
            kept.applied,
        ) == expected
