"""CustomerState: its encoding, and its size staying bounded."""

from __future__ import annotations

import pytest

from app.engine import (
    CustomerState,
    apply,
    decide,
    decode_state,
    encode_state,
    encoded_pending,
)
from app.engine.records import EntityRef, Intent, LifecycleEvent
from app.engine.times import from_us, to_us
from tests.unit.engine.helpers import (
    MakeEvent,
    MakeIntent,
    MakePolicy,
    apply_all,
    at,
    decide_at,
)

CHANNELS = ("push", "email", "sms")
CATEGORIES = ("marketing", "reminder", "transactional")


def test_rich_state_survives_encoding(
    make_policy: MakePolicy,
    make_intent: MakeIntent,
    make_event: MakeEvent,
    empty_state: CustomerState,
) -> None:
    policy = make_policy(
        entities={"booking": {"events": {"booking.created": "active"}}},
        windows=[{"about": "booking", "until": "starts_at"}],
        cooldowns=[{"after": "care.case_opened", "until": "care.case_closed"}],
        frequency_caps=[{"max": 5, "per": "24h"}],
        dedupe={"window": "24h"},
    )
    state = apply_all(
        empty_state,
        [
            make_event("profile.updated", attributes={"timezone": "Europe/Berlin"}),
            make_event(
                "booking.created",
                entity=("booking", "bk-1"),
                attributes={"starts_at": "2026-04-01T07:00:00Z"},
            ),
            make_event("consent.opted_out", attributes={"channel": "sms"}),
            make_event("care.case_opened", attributes={"case_id": "cs-1"}),
            make_event("account.closed"),
        ],
        policy,
    )
    state = decide_at(
        state,
        make_intent(
            category="transactional", dedupe_key="k", about=[("booking", "bk-1")]
        ),
        "2026-03-01T10:00:00Z",
        policy,
    ).state
    state = decide_at(
        state,
        make_intent(send_at="2026-03-09T10:00:00Z"),
        "2026-03-01T10:00:00Z",
        policy,
    ).state

    decoded = decode_state(encode_state(state))

    assert decoded == state
    assert decoded.pending_count == 1
    assert decoded.next_due == at("2026-03-09T10:00:00Z")


def test_the_due_index_reads_what_is_waiting_without_decoding(
    make_policy: MakePolicy, make_intent: MakeIntent, empty_state: CustomerState
) -> None:
    policy = make_policy()
    state = empty_state
    for send_at in ("2026-03-09T10:00:00Z", "2026-03-04T08:00:00Z"):
        state = decide_at(
            state, make_intent(send_at=send_at), "2026-03-01T10:00:00Z", policy
        ).state

    encoded = encode_state(state)

    assert encoded_pending(encoded) == (to_us(at("2026-03-04T08:00:00Z")), 2)
    assert encoded_pending(encoded) == (state.next_due_us, state.pending_count)
    assert encoded_pending(encode_state(empty_state)) == (None, 0)


def test_empty_state_encodes_in_a_few_bytes() -> None:
    encoded = encode_state(CustomerState.empty("c-1"))

    assert encoded == b'{"v":1,"c":"c-1"}'


@pytest.mark.parametrize("data", [b"not json", b"[]", b'{"v":99,"c":"x"}', b'{"v":1}'])
def test_bytes_that_are_not_a_state_are_refused(data: bytes) -> None:
    with pytest.raises(ValueError, match="state"):
        decode_state(data)
    with pytest.raises(ValueError, match="state"):
        encoded_pending(data)


def test_a_year_of_100k_intents_keeps_the_state_bounded(
    make_policy: MakePolicy,
) -> None:
    policy = make_policy(
        entities={
            "booking": {
                "events": {
                    "booking.created": "active",
                    "booking.cancelled": "cancelled",
                },
                "blocking": ["cancelled"],
                "retain": "30d",
            }
        },
        cooldowns=[
            {"after": "complaint.filed", "for": "3d", "categories": ["marketing"]}
        ],
        frequency_caps=[{"channels": ["push"], "max": 3, "per": "day"}],
        dedupe={"window": "7d"},
        remember={"decided_intents": "14d", "applied_events": "14d", "max_ids": 3000},
    )
    start_us = to_us(at("2026-01-01T00:00:00Z"))
    step_us = 315_000_000  # one intent every 5¼ minutes: 100k in a year
    state = CustomerState.empty("c-1")
    sizes = []

    for n in range(100_000):
        now_us = start_us + n * step_us
        now = from_us(now_us)
        booking = EntityRef("booking", f"bk-{n // 50}")
        if n % 50 == 0:
            kind = "booking.cancelled" if n % 150 == 0 else "booking.created"
            event = LifecycleEvent(
                event_id=f"ev-{n}",
                customer_id="c-1",
                type=kind if n % 400 else "complaint.filed",
                occurred_us=now_us,
                entity=booking,
                attributes={},
                raw={},
            )
            state = apply(state, event, policy, now).state
        # Built directly: this test is about the state, not record checks.
        intent = Intent(
            intent_id=f"in-{n}",
            customer_id="c-1",
            channel=CHANNELS[n % 3],
            category=CATEGORIES[n % 7 % 3],
            campaign_id=None,
            created_us=now_us,
            send_us=None,
            expires_us=None,
            about=(booking,),
            dedupe_key=f"d-{n}",
            priority=None,
            raw={"intent_id": f"in-{n}"},
        )
        state = decide(state, intent, now, policy).state
        if n % 5_000 == 0:
            sizes.append(len(encode_state(state)))

    settled = sizes[len(sizes) // 4 :]
    assert max(settled) < 200_000
    assert max(settled) <= 1.2 * min(settled)
