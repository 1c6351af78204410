"""Seeded load for the fault tests, and its ground truth from replay.

The load is a few rounds of lifecycle events and intents for many customers.
Each customer's records are made in the order they would happen, with
upstream retries (an intent_id sent twice), repeated events and a few
records that must go to dead letters.

Ground truth is `tact replay` over the same records in the same order. That
order is what the worker sees only if no intent is read before a lifecycle
event that precedes it: the two inputs are different topics, and Kafka keeps
order within a partition of one topic, not across topics. So the harness
produces a round's lifecycle batch, waits until the worker has committed it,
and only then produces the round's intents (and likewise before the next
round). Within a batch each customer's records keep their order because
they share a partition.

The policy is one whose outcomes do not depend on when a record arrives:
no settle window, no quiet hours, no frequency caps, no time windows, and
every window it does have (cooldown, dedupe, memory) is days long while a
run lasts minutes. Record times lie an hour in the past, so the live clock
is always later than every record, as the replay clock is.
"""

from __future__ import annotations

import io
import random
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson

from app.engine import parse_policy
from app.engine.replay import INTENTS_TOPIC, LIFECYCLE_TOPIC, run

LIFECYCLE = "lifecycle"
INTENTS = "intents"

POLICY = """\
version: 1
name: chaos
timezone_fallback: UTC
settle: 0s
categories:
  transactional: {exempt: true}
entities:
  booking:
    events:
      booking.created: active
      booking.modified: active
      booking.cancelled: cancelled
      booking.refunded: refunded
    blocking: [cancelled, refunded]
    unknown: allow
    retain: 90d
cooldowns:
  - after: complaint.filed
    for: 14d
    categories: [marketing, upsell]
  - after: care.case_opened
    until: care.case_closed
    at_most: 30d
    categories: [marketing, upsell, reminder]
dedupe:
  window: 24h
holdouts:
  - categories: [marketing]
    percent: 10
    salt: chaos
"""

CHANNELS = ("email", "push", "sms", "in_app")
CATEGORIES = ("marketing", "upsell", "reminder", "service", "transactional")
TIMEZONES = ("Europe/Berlin", "America/New_York", "Asia/Tokyo", "UTC")
# How far in the past record times lie, so the live clock is always later.
RECORD_TIME_LAG = timedelta(hours=1)


@dataclass(frozen=True)
class Scale:
    """How big a load is."""

    customers: int
    rounds: int
    events_per_customer: float  # mean per round
    intents_per_customer: float  # mean per round
    retry_rate: float = 0.08
    repeat_event_rate: float = 0.05
    bad_rate: float = 0.01


SHORT = Scale(
    customers=200, rounds=4, events_per_customer=0.8, intents_per_customer=1.6
)
FULL = Scale(customers=500, rounds=8, events_per_customer=0.8, intents_per_customer=1.6)
SCALES = {"short": SHORT, "full": FULL}


@dataclass(frozen=True)
class Record:
    """One input record: which input it goes to, its key and its value."""

    topic: str  # LIFECYCLE or INTENTS
    customer_id: str
    value: dict[str, Any]
    is_bad: bool = False

    @property
    def key(self) -> bytes:
        return self.customer_id.encode()

    @property
    def payload(self) -> bytes:
        return orjson.dumps(self.value)


@dataclass(frozen=True)
class Batch:
    """Records of one input that the harness produces in one go."""

    index: int
    topic: str
    records: tuple[Record, ...]


@dataclass
class Load:
    seed: int
    scale: Scale
    batches: list[Batch]

    @property
    def records(self) -> Iterator[Record]:
        for batch in self.batches:
            yield from batch.records

    def count(self, topic: str) -> int:
        return sum(1 for r in self.records if r.topic == topic)


@dataclass
class GroundTruth:
    """What replay decided about the load."""

    approved: dict[str, list[str]]  # customer -> approved intent ids, in order
    outcomes: dict[str, set[str]]  # intent id -> every outcome it got
    decisions: Counter[str]  # decision id -> 1
    decision_outcomes: dict[str, str]  # decision id -> outcome
    dead_letters: int
    # intent id -> its decisions, each "outcome:rules", in order
    described: dict[str, list[str]] = field(default_factory=dict)

    @property
    def approved_ids(self) -> set[str]:
        return {i for ids in self.approved.values() for i in ids}


@dataclass
class _Customer:
    """What the generator knows about one customer, to make plausible events."""

    id: str
    bookings: dict[str, str] = field(default_factory=dict)  # id -> status
    open_cases: list[str] = field(default_factory=list)
    events: list[dict[str, Any]] = field(default_factory=list)
    intents: list[dict[str, Any]] = field(default_factory=list)
    counter: int = 0

    def next_id(self, prefix: str) -> str:
        self.counter += 1
        return f"{prefix}-{self.id}-{self.counter}"


class _Generator:
    def __init__(self, seed: int, scale: Scale) -> None:
        self.rng = random.Random(seed)
        self.scale = scale
        self.clock = datetime.now(UTC) - RECORD_TIME_LAG
        self.customers = [_Customer(f"c{seed}-{n:04d}") for n in range(scale.customers)]

    def load(self, seed: int) -> Load:
        batches: list[Batch] = []
        for _ in range(self.scale.rounds):
            for topic, make in ((LIFECYCLE, self._events), (INTENTS, self._intents)):
                own = {c.id: make(c) for c in self.customers}
                records = tuple(self._interleave(own))
                batches.append(Batch(len(batches), topic, records))
        return Load(seed, self.scale, batches)

    def _interleave(self, own: dict[str, list[Record]]) -> Iterator[Record]:
        """Customers mixed at random, each one's records in their own order."""
        turns = [customer for customer, records in own.items() for _ in records]
        self.rng.shuffle(turns)
        queues = {customer: iter(records) for customer, records in own.items()}
        for customer in turns:
            yield next(queues[customer])

    def _tick(self) -> str:
        self.clock += timedelta(milliseconds=1)
        return self.clock.isoformat().replace("+00:00", "Z")

    def _count(self, mean: float) -> int:
        # Zero to 2 x mean, uniformly: enough spread for idle and busy customers.
        return self.rng.randint(0, round(2 * mean))

    def _events(self, customer: _Customer) -> list[Record]:
        out = []
        for _ in range(self._count(self.scale.events_per_customer)):
            if customer.events and self.rng.random() < self.scale.repeat_event_rate:
                out.append(
                    Record(LIFECYCLE, customer.id, self.rng.choice(customer.events))
                )
                continue
            if self.rng.random() < self.scale.bad_rate:
                out.append(self._bad_event(customer))
                continue
            value = self._event(customer)
            customer.events.append(value)
            out.append(Record(LIFECYCLE, customer.id, value))
        return out

    def _event(self, customer: _Customer) -> dict[str, Any]:
        rng = self.rng
        active = [b for b, s in customer.bookings.items() if s == "active"]
        kind = rng.choices(
            ("booking", "cancel", "refund", "modify", "opt", "case", "complaint", "tz"),
            weights=(30, 12, 5, 6, 10, 12, 4, 3),
        )[0]
        value: dict[str, Any] = {
            "event_id": customer.next_id("ev"),
            "customer_id": customer.id,
            "occurred_at": self._tick(),
        }
        if kind in ("cancel", "refund", "modify") and active:
            booking = rng.choice(active)
            status = {"cancel": "cancelled", "refund": "refunded", "modify": "active"}
            customer.bookings[booking] = status[kind]
            verb = {"cancel": "cancelled", "refund": "refunded", "modify": "modified"}
            value["type"] = f"booking.{verb[kind]}"
            value["entity"] = {"type": "booking", "id": booking}
        elif kind == "opt":
            value["type"] = rng.choice(("consent.opted_out", "consent.opted_in"))
            value["attributes"] = rng.choice(
                (
                    {"channel": rng.choice(CHANNELS)},
                    {"category": rng.choice(CATEGORIES[:3])},
                    {"channel": rng.choice(CHANNELS), "category": "marketing"},
                )
            )
        elif kind == "case":
            if customer.open_cases and rng.random() < 0.6:
                case = customer.open_cases.pop(0)
                value["type"] = "care.case_closed"
            else:
                case = customer.next_id("case")
                customer.open_cases.append(case)
                value["type"] = "care.case_opened"
            value["attributes"] = {"case_id": case}
        elif kind == "complaint":
            value["type"] = "complaint.filed"
        elif kind == "tz":
            value["type"] = "profile.updated"
            value["attributes"] = {"timezone": rng.choice(TIMEZONES)}
        else:
            booking = customer.next_id("bk")
            customer.bookings[booking] = "active"
            value["type"] = "booking.created"
            value["entity"] = {"type": "booking", "id": booking}
        return value

    def _bad_event(self, customer: _Customer) -> Record:
        value = {
            "event_id": customer.next_id("ev-bad"),
            "customer_id": customer.id,
            "type": "profile.updated",
            "occurred_at": self._tick(),
            "attributes": {"timezone": "Atlantis/Lost_City"},
        }
        return Record(LIFECYCLE, customer.id, value, is_bad=True)

    def _intents(self, customer: _Customer) -> list[Record]:
        out = []
        for _ in range(self._count(self.scale.intents_per_customer)):
            if customer.intents and self.rng.random() < self.scale.retry_rate:
                # An upstream retry: the very same record again.
                out.append(
                    Record(INTENTS, customer.id, self.rng.choice(customer.intents[-3:]))
                )
                continue
            if self.rng.random() < self.scale.bad_rate:
                out.append(self._bad_intent(customer))
                continue
            value = self._intent(customer)
            customer.intents.append(value)
            out.append(Record(INTENTS, customer.id, value))
        return out

    def _intent(self, customer: _Customer) -> dict[str, Any]:
        rng = self.rng
        value: dict[str, Any] = {
            "intent_id": customer.next_id("in"),
            "customer_id": customer.id,
            "channel": rng.choice(CHANNELS),
            "category": rng.choice(CATEGORIES),
            "campaign_id": f"camp-{rng.randrange(6)}",
            "created_at": self._tick(),
            "payload": {"text": f"message {rng.randrange(1_000_000)}"},
        }
        if customer.bookings and rng.random() < 0.7:
            booking = rng.choice(sorted(customer.bookings))
            value["about"] = [{"type": "booking", "id": booking}]
        if rng.random() < 0.25:
            value["dedupe_key"] = f"dk-{rng.randrange(4)}"
        return value

    def _bad_intent(self, customer: _Customer) -> Record:
        value = {
            "intent_id": customer.next_id("in-bad"),
            "customer_id": customer.id,
            "channel": 7,
            "category": "marketing",
            "created_at": self._tick(),
        }
        return Record(INTENTS, customer.id, value, is_bad=True)


def describe(decision: dict[str, Any]) -> str:
    """A decision in a few words: "outcome:rule,rule"."""
    rules = ",".join(r["rule"] for r in decision["reasons"]) or "-"
    return f"{decision['outcome']}:{rules}"


def make_load(seed: int, scale: Scale) -> Load:
    return _Generator(seed, scale).load(seed)


def ground_truth(load: Load) -> GroundTruth:
    """Replay the load in batch order, the order the harness produces it in."""
    policy = parse_policy(POLICY, "chaos.yaml")
    topics = {LIFECYCLE: LIFECYCLE_TOPIC, INTENTS: INTENTS_TOPIC}
    start = datetime.now(UTC) - RECORD_TIME_LAG
    lines = []
    for number, record in enumerate(load.records):
        line = {
            "topic": topics[record.topic],
            "timestamp": int(start.timestamp() * 1000) + number,
            "key": record.customer_id,
            "value": record.value,
        }
        lines.append(orjson.dumps(line))
    out = io.BytesIO()
    summary = run(policy, lines, "chaos-load", out, dead_letters=io.BytesIO())

    truth = GroundTruth({}, {}, Counter(), {}, summary.dead_letters)
    for raw in out.getvalue().splitlines():
        decision = orjson.loads(raw)
        intent_id = decision["intent_id"]
        truth.outcomes.setdefault(intent_id, set()).add(decision["outcome"])
        truth.decisions[decision["decision_id"]] += 1
        truth.decision_outcomes[decision["decision_id"]] = decision["outcome"]
        truth.described.setdefault(intent_id, []).append(describe(decision))
        if decision["outcome"] == "approved":
            truth.approved.setdefault(decision["customer_id"], []).append(intent_id)
    return truth
