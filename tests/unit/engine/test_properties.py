"""Properties over generated histories: what must hold whatever happens."""

from __future__ import annotations

import io
from dataclasses import dataclass, field
from datetime import datetime, time
from typing import Any
from zoneinfo import ZoneInfo

import orjson
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from app.engine.decision import Decision
from app.engine.policy import parse_policy
from app.engine.records import event_from_value, intent_from_value
from app.engine.replay import Replayer, ReplayRecord, run
from app.engine.times import MINUTE_US, format_us, from_us, to_us

POLICY_TEXT = """
version: 1
name: properties
settle: 1m
categories: {transactional: {exempt: true}}
entities:
  booking:
    events: {booking.created: active, booking.cancelled: cancelled}
    blocking: [cancelled]
cooldowns:
  - {after: complaint.filed, for: 6h, categories: [marketing]}
  - after: care.case_opened
    until: care.case_closed
    categories: [marketing, reminder]
frequency_caps:
  - {channels: [push], max: 2, per: 6h, on_exceed: defer}
  - {channels: [email], categories: [marketing], max: 1, per: day, on_exceed: drop}
quiet_hours:
  - {channels: [push, sms], from: "21:00", to: "08:00", action: defer}
dedupe: {window: 12h}
"""
POLICY = parse_policy(POLICY_TEXT, "properties.yaml")
# Starts just before the clocks go forward in Europe, so histories cross it.
START_US = to_us(datetime.fromisoformat("2026-03-28T12:00:00+00:00"))
CUSTOMERS = ("c-1", "c-2")
ZONES = ("Europe/Berlin", "America/New_York", "Asia/Kolkata", "UTC")
PUSH_WINDOW_US = 6 * 60 * MINUTE_US
PUSH_MAX = 2

events = st.one_of(
    st.tuples(st.just("booking.created"), st.sampled_from(["bk-1", "bk-2"])),
    st.tuples(st.just("booking.cancelled"), st.sampled_from(["bk-1", "bk-2"])),
    st.tuples(st.just("complaint.filed"), st.none()),
    st.tuples(st.just("care.case_opened"), st.sampled_from(["cs-1", "cs-2"])),
    st.tuples(st.just("care.case_closed"), st.sampled_from(["cs-1", "cs-2"])),
    st.tuples(
        st.sampled_from(["consent.opted_out", "consent.opted_in"]),
        st.tuples(
            st.sampled_from([None, "push", "email"]),
            st.sampled_from([None, "marketing", "reminder"]),
        ),
    ),
    st.tuples(st.just("profile.updated"), st.sampled_from(ZONES)),
)
intents = st.fixed_dictionaries(
    {
        "number": st.integers(0, 40),
        "channel": st.sampled_from(["push", "push", "email", "sms"]),
        "category": st.sampled_from(["marketing", "reminder", "transactional"]),
        "about": st.sampled_from([None, "bk-1", "bk-2"]),
        "send_in": st.sampled_from([None, 0, 30, 600]),
        "expires_in": st.sampled_from([None, 10, 120, 2000]),
        "dedupe_key": st.sampled_from([None, None, None, "d-1", "d-2"]),
    }
)
histories = st.lists(
    st.tuples(
        # Minutes since the previous record: often bursts, sometimes hours.
        st.one_of(st.integers(0, 15), st.integers(0, 240)),
        st.sampled_from(CUSTOMERS),
        # Intents twice as often as events, so sends pile up against caps.
        st.one_of(events, intents, intents),
    ),
    min_size=10,
    max_size=60,
)

# Sends that pile up against the caps: one customer, marketing, short gaps.
bursts = st.lists(
    st.tuples(
        st.integers(0, 90),
        st.just("c-1"),
        st.one_of(
            st.tuples(st.just("profile.updated"), st.sampled_from(ZONES)),
            intents.map(
                lambda item: {
                    **item,
                    "category": "marketing",
                    "about": None,
                    "dedupe_key": None,
                    "expires_in": None,
                }
            ),
            intents.map(
                lambda item: {
                    **item,
                    "channel": "push",
                    "about": None,
                    "dedupe_key": None,
                }
            ),
        ),
    ),
    min_size=5,
    max_size=40,
)


def _lines(history: list[tuple[int, str, Any]]) -> list[bytes]:
    """Replay lines for a generated history; a reused intent number is a resend."""
    now_us = START_US
    lines = []
    first_copies: dict[str, dict[str, Any]] = {}
    for index, (gap, customer, item) in enumerate(history):
        now_us += gap * MINUTE_US
        stamp = format_us(now_us)
        if isinstance(item, dict):
            intent_id = f"{customer}-i-{item['number']}"
            value = first_copies.get(intent_id) or _intent_value(
                intent_id, customer, stamp, now_us, item
            )
            first_copies[intent_id] = value
            topic = "notification-intents"
        else:
            value = _event_value(f"e-{index}", customer, stamp, item)
            topic = "customer-lifecycle"
        lines.append(orjson.dumps({"topic": topic, "timestamp": stamp, "value": value}))
    return lines


def _intent_value(
    intent_id: str, customer: str, stamp: str, now_us: int, item: dict[str, Any]
) -> dict[str, Any]:
    value: dict[str, Any] = {
        "intent_id": intent_id,
        "customer_id": customer,
        "channel": item["channel"],
        "category": item["category"],
        "created_at": stamp,
        "dedupe_key": item["dedupe_key"],
    }
    if item["about"]:
        value["about"] = [{"type": "booking", "id": item["about"]}]
    if item["send_in"] is not None:
        value["send_at"] = format_us(now_us + item["send_in"] * MINUTE_US)
    if item["expires_in"] is not None:
        value["expires_at"] = format_us(now_us + item["expires_in"] * MINUTE_US)
    return value


def _event_value(event_id: str, customer: str, stamp: str, item: Any) -> dict[str, Any]:
    kind, detail = item
    value: dict[str, Any] = {
        "event_id": event_id,
        "customer_id": customer,
        "type": kind,
        "occurred_at": stamp,
    }
    if kind.startswith("booking."):
        value["entity"] = {"type": "booking", "id": detail}
    elif kind.startswith("care."):
        value["attributes"] = {"case_id": detail}
    elif kind.startswith("consent."):
        channel, category = detail
        value["attributes"] = {
            k: v for k, v in (("channel", channel), ("category", category)) if v
        }
    elif kind == "profile.updated":
        value["attributes"] = {"timezone": detail}
    return value


@dataclass
class Oracle:
    """A deliberately naive model of what must block a send, per customer."""

    bookings: dict[str, str] = field(default_factory=dict)
    complaints: list[int] = field(default_factory=list)
    open_cases: set[str] = field(default_factory=set)
    opt_outs: list[tuple[str | None, str | None]] = field(default_factory=list)
    zone: str = "UTC"

    def learn(self, value: dict[str, Any]) -> None:
        kind = value["type"]
        attributes = value.get("attributes", {})
        if kind == "booking.created":
            self.bookings[value["entity"]["id"]] = "active"
        elif kind == "booking.cancelled":
            self.bookings[value["entity"]["id"]] = "cancelled"
        elif kind == "complaint.filed":
            self.complaints.append(to_us(datetime.fromisoformat(value["occurred_at"])))
        elif kind == "care.case_opened":
            self.open_cases.add(attributes["case_id"])
        elif kind == "care.case_closed":
            self.open_cases.discard(attributes["case_id"])
        elif kind in ("consent.opted_out", "consent.opted_in"):
            channel, category = attributes.get("channel"), attributes.get("category")
            self.opt_outs = [
                (c, k)
                for c, k in self.opt_outs
                if not (
                    (channel is None or c == channel)
                    and (category is None or k == category)
                )
            ]
            if kind == "consent.opted_out":
                self.opt_outs.append((channel, category))
        elif kind == "profile.updated":
            self.zone = attributes["timezone"]

    def objections(self, decision: Decision, intent: dict[str, Any]) -> list[str]:
        """Why this approval should not have happened, if anything."""
        if decision.category == "transactional":
            return []
        found = []
        now_us = decision.decided_us
        for ref in intent.get("about", []):
            if self.bookings.get(ref["id"]) == "cancelled":
                found.append("blocking entity")
        if decision.category == "marketing" and any(
            start <= now_us < start + PUSH_WINDOW_US for start in self.complaints
        ):
            found.append("complaint cooldown")
        if decision.category in ("marketing", "reminder") and self.open_cases:
            found.append("open case")
        for channel, category in self.opt_outs:
            if channel in (None, decision.channel) and category in (
                None,
                decision.category,
            ):
                found.append("opt-out")
        if decision.channel in ("push", "sms"):
            local = from_us(now_us).astimezone(ZoneInfo(self.zone)).time()
            if local >= time(21) or local < time(8):
                found.append("quiet hours")
        return found


def _run_with_oracle(lines: list[bytes]) -> list[tuple[Decision, list[str], str]]:
    """Every decision, what the oracle objects to it, and the customer's zone."""
    replayer = Replayer(POLICY)
    oracles = {customer: Oracle() for customer in CUSTOMERS}
    intents_by_id: dict[str, dict[str, Any]] = {}
    results = []

    def judge(decisions: list[Decision]) -> None:
        for decision in decisions:
            oracle = oracles[decision.customer_id]
            objections = (
                oracle.objections(decision, intents_by_id[decision.intent_id])
                if decision.is_approved
                else []
            )
            results.append((decision, objections, oracle.zone))

    for number, line in enumerate(lines, start=1):
        envelope = orjson.loads(line)
        value = envelope["value"]
        timestamp_us = to_us(datetime.fromisoformat(envelope["timestamp"]))
        if envelope["topic"] == "notification-intents":
            intents_by_id.setdefault(value["intent_id"], value)
            record: Any = intent_from_value(value)
        else:
            record = event_from_value(value)
        judge(replayer.feed(ReplayRecord(number, timestamp_us, record)))
        if envelope["topic"] == "customer-lifecycle":
            oracles[value["customer_id"]].learn(value)
    judge(replayer.finish())
    return results


PROPERTY_SETTINGS = settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)


@PROPERTY_SETTINGS
@given(histories)
def test_replay_is_deterministic(history: list[tuple[int, str, Any]]) -> None:
    lines = _lines(history)
    outputs = []

    for _ in range(2):
        out = io.BytesIO()
        run(POLICY, lines, "generated.jsonl", out)
        outputs.append(out.getvalue())

    assert outputs[0] == outputs[1]


@PROPERTY_SETTINGS
@given(histories)
def test_nothing_is_approved_while_a_rule_forbids_it(
    history: list[tuple[int, str, Any]],
) -> None:
    results = _run_with_oracle(_lines(history))

    wrong = [(d.intent_id, format_us(d.decided_us), o) for d, o, _ in results if o]

    assert wrong == []


@PROPERTY_SETTINGS
@given(histories)
def test_an_intent_is_approved_at_most_once(
    history: list[tuple[int, str, Any]],
) -> None:
    results = _run_with_oracle(_lines(history))

    approved = [d.intent_id for d, _, _ in results if d.is_approved]

    assert len(approved) == len(set(approved))


@PROPERTY_SETTINGS
@given(histories)
def test_suppressed_and_deferred_decisions_always_say_why(
    history: list[tuple[int, str, Any]],
) -> None:
    results = _run_with_oracle(_lines(history))

    silent = [d for d, _, _ in results if not d.is_approved and not d.reasons]

    assert silent == []
    assert all(
        d.release_us is not None and d.release_us > d.decided_us
        for d, _, _ in results
        if d.outcome == "deferred"
    )


@PROPERTY_SETTINGS
@given(st.one_of(histories, bursts))
def test_no_frequency_cap_is_ever_exceeded(history: list[tuple[int, str, Any]]) -> None:
    results = _run_with_oracle(_lines(history))
    approvals = [
        (d, zone)
        for d, _, zone in results
        if d.is_approved and d.category not in POLICY.exempt_categories
    ]

    for decision, zone in approvals:
        same_customer = [
            d for d, _ in approvals if d.customer_id == decision.customer_id
        ]
        if decision.channel == "push":
            recent = [
                d
                for d in same_customer
                if d.channel == "push"
                and decision.decided_us - PUSH_WINDOW_US
                < d.decided_us
                <= decision.decided_us
            ]
            assert len(recent) <= PUSH_MAX
        if decision.channel == "email" and decision.category == "marketing":
            local = from_us(decision.decided_us).astimezone(ZoneInfo(zone))
            midnight = datetime.combine(local.date(), time(0), tzinfo=ZoneInfo(zone))
            today = [
                d
                for d in same_customer
                if (d.channel, d.category) == ("email", "marketing")
                and to_us(midnight) <= d.decided_us <= decision.decided_us
            ]
            assert len(today) <= 1


@PROPERTY_SETTINGS
@given(histories)
def test_approvals_respect_send_at_and_expires_at(
    history: list[tuple[int, str, Any]],
) -> None:
    lines = _lines(history)
    values: dict[str, dict[str, Any]] = {}
    for line in lines:
        envelope = orjson.loads(line)
        if envelope["topic"] == "notification-intents":
            values.setdefault(envelope["value"]["intent_id"], envelope["value"])

    results = _run_with_oracle(lines)

    for decision, _, _ in results:
        if not decision.is_approved:
            continue
        value = values[decision.intent_id]
        if value.get("send_at"):
            assert decision.decided_us >= to_us(
                datetime.fromisoformat(value["send_at"])
            )
        if value.get("expires_at"):
            assert decision.decided_us < to_us(
                datetime.fromisoformat(value["expires_at"])
            )


def test_generated_histories_reach_every_outcome() -> None:
    """The generator is rich enough that the properties are not vacuous."""
    history = [
        (0, "c-1", ("profile.updated", "Europe/Berlin")),
        (
            0,
            "c-1",
            {
                "number": 1,
                "channel": "push",
                "category": "marketing",
                "about": None,
                "send_in": None,
                "expires_in": None,
                "dedupe_key": None,
            },
        ),
        (
            600,
            "c-1",
            {
                "number": 2,
                "channel": "push",
                "category": "marketing",
                "about": None,
                "send_in": None,
                "expires_in": None,
                "dedupe_key": None,
            },
        ),
        (0, "c-1", ("booking.cancelled", "bk-1")),
        (
            0,
            "c-1",
            {
                "number": 3,
                "channel": "email",
                "category": "reminder",
                "about": "bk-1",
                "send_in": None,
                "expires_in": None,
                "dedupe_key": None,
            },
        ),
    ]

    outcomes = {d.outcome for d, _, _ in _run_with_oracle(_lines(history))}

    assert outcomes == {"approved", "deferred", "suppressed"}
