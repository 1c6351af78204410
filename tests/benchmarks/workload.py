"""A generated, realistic replay file: many customers, every rule exercised.

The same seed gives the same bytes, so two runs of the benchmark decide the
same records. Records are in time order, as `tact replay` expects.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

from app.engine.times import DAY_US, HOUR_US, MINUTE_US, SECOND_US, format_us

LIFECYCLE_TOPIC = "customer-lifecycle"
INTENTS_TOPIC = "notification-intents"
START_US = 1_775_000_000 * SECOND_US  # early April 2026
SPAN_US = 14 * DAY_US  # the whole file covers two weeks of traffic
SEED = 20_260_401
ZONES = (
    "Europe/Berlin",
    "Europe/London",
    "America/New_York",
    "America/Los_Angeles",
    "Asia/Kolkata",
    "Asia/Tokyo",
    "Australia/Sydney",
    "UTC",
)
CHANNELS = ("email", "email", "push", "push", "sms", "in_app")
CATEGORIES = (
    "transactional",
    "service",
    "reminder",
    "marketing",
    "marketing",
    "upsell",
)
CAMPAIGNS = 40
# Share of the records that are lifecycle events; the rest are intents.
LIFECYCLE_SHARE = 0.3
# A few repeats of what producers resend, so the duplicate rules have work.
REPEAT_SHARE = 0.01
POLICY_PATH = Path(__file__).with_name("policy.yaml")


@dataclass
class _Customer:
    """What the generator remembers so its events make sense together."""

    number: int
    bookings: list[str] = field(default_factory=list)
    open_cases: list[str] = field(default_factory=list)
    last_intent: dict[str, Any] | None = None
    seen: bool = False
    counter: int = 0


def customer_id(number: int) -> str:
    return f"c-{number:07d}"


def generate(
    path: Path,
    records: int,
    customers: int,
    *,
    start_us: int = START_US,
    span_us: int = SPAN_US,
    seed: int = SEED,
) -> Path:
    """Write `records` replay lines over `customers` to `path` (if absent).

    Live workers decide on the wall clock, so a file meant for Kafka starts
    shortly before now; a replay file can start anywhere.
    """
    if path.exists():
        return path
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_suffix(".partial")
    rng = random.Random(seed)
    people = [_Customer(number) for number in range(customers)]
    step_us = max(span_us // max(records, 1), 1)
    with partial.open("wb") as out:
        for index in range(records):
            now_us = start_us + index * step_us
            # The first pass meets every customer once, then traffic is
            # uneven: a fifth of the customers get about half of it.
            if index < customers:
                person = people[index]
            elif rng.random() < 0.5:
                person = people[rng.randrange(max(customers // 5, 1))]
            else:
                person = people[rng.randrange(customers)]
            topic, value = _record(rng, person, now_us, start_us)
            line = {
                "topic": topic,
                "timestamp": now_us // 1000,
                "key": value["customer_id"],
                "value": value,
            }
            out.write(orjson.dumps(line) + b"\n")
    partial.rename(path)
    return path


def records_of(path: Path) -> list[tuple[str, bytes, bytes, int]]:
    """(topic, key, value bytes, timestamp ms) of every line, for producing."""
    rows = []
    with path.open("rb") as handle:
        for raw in handle:
            line = orjson.loads(raw)
            rows.append(
                (
                    line["topic"],
                    line["key"].encode(),
                    orjson.dumps(line["value"]),
                    line["timestamp"],
                )
            )
    return rows


def _record(
    rng: random.Random, person: _Customer, now_us: int, start_us: int
) -> tuple[str, Any]:
    person.counter += 1
    cid = customer_id(person.number)
    if not person.seen:
        person.seen = True
        zone = rng.choice(ZONES)
        return LIFECYCLE_TOPIC, _event(
            person, now_us, "profile.updated", attributes={"timezone": zone}
        )
    if person.last_intent is not None and rng.random() < REPEAT_SHARE:
        return INTENTS_TOPIC, person.last_intent
    if rng.random() < LIFECYCLE_SHARE:
        return LIFECYCLE_TOPIC, _lifecycle(rng, person, now_us)
    intent = _intent(rng, person, cid, now_us, start_us)
    person.last_intent = intent
    return INTENTS_TOPIC, intent


def _event(
    person: _Customer,
    now_us: int,
    event_type: str,
    entity: dict[str, str] | None = None,
    attributes: dict[str, Any] | None = None,
) -> dict[str, Any]:
    value: dict[str, Any] = {
        "event_id": f"ev-{person.number}-{person.counter}",
        "customer_id": customer_id(person.number),
        "type": event_type,
        "occurred_at": format_us(now_us - 2 * SECOND_US),
        "source": "crm",
    }
    if entity is not None:
        value["entity"] = entity
    if attributes is not None:
        value["attributes"] = attributes
    return value


def _lifecycle(rng: random.Random, person: _Customer, now_us: int) -> dict[str, Any]:
    roll = rng.random()
    if roll < 0.35 or not person.bookings:
        booking = f"bk-{person.number}-{person.counter}"
        person.bookings = [*person.bookings[-2:], booking]
        starts_us = now_us + rng.randrange(HOUR_US, 10 * DAY_US)
        return _event(
            person,
            now_us,
            "booking.created",
            {"type": "booking", "id": booking},
            {
                "starts_at": format_us(starts_us),
                "ends_at": format_us(starts_us + 5 * DAY_US),
                "destination": "Lisbon",
            },
        )
    booking = rng.choice(person.bookings)
    entity = {"type": "booking", "id": booking}
    if roll < 0.50:
        return _event(person, now_us, "booking.modified", entity)
    if roll < 0.60:
        return _event(person, now_us, "booking.cancelled", entity)
    if roll < 0.63:
        return _event(person, now_us, "booking.refunded", entity)
    if roll < 0.70:
        return _event(person, now_us, "trip.completed", entity)
    if roll < 0.74:
        return _event(person, now_us, "complaint.filed")
    if roll < 0.79:
        case = f"cs-{person.number}-{person.counter}"
        person.open_cases.append(case)
        return _event(person, now_us, "care.case_opened", attributes={"case_id": case})
    if roll < 0.84 and person.open_cases:
        case = person.open_cases.pop(0)
        return _event(person, now_us, "care.case_closed", attributes={"case_id": case})
    if roll < 0.86:
        channel = rng.choice(("push", "sms", None))
        category = rng.choice(("marketing", "upsell", None))
        attributes = {"channel": channel, "category": category}
        return _event(
            person,
            now_us,
            "consent.opted_out",
            attributes={k: v for k, v in attributes.items() if v is not None},
        )
    if roll < 0.88:
        return _event(person, now_us, "consent.opted_in", attributes={})
    if roll < 0.8805:
        return _event(person, now_us, "account.closed")
    # Events the policy gives no meaning: counted once, change nothing.
    return _event(person, now_us, "newsletter.viewed", attributes={"issue": "42"})


def _intent(
    rng: random.Random, person: _Customer, cid: str, now_us: int, start_us: int
) -> dict[str, Any]:
    channel = rng.choice(CHANNELS)
    category = rng.choice(CATEGORIES)
    campaign = rng.randrange(CAMPAIGNS)
    value: dict[str, Any] = {
        "intent_id": f"in-{person.number}-{person.counter}",
        "customer_id": cid,
        "channel": channel,
        "category": category,
        "campaign_id": f"campaign-{campaign}",
        "created_at": format_us(now_us - SECOND_US),
        "payload": {"template": f"tpl-{campaign}", "locale": "en-GB", "score": 0.73},
    }
    if person.bookings and category in ("reminder", "upsell", "transactional"):
        value["about"] = [{"type": "booking", "id": person.bookings[-1]}]
    if category in ("marketing", "upsell"):
        # The same campaign message twice in a day is a semantic duplicate.
        day = (now_us - start_us) // DAY_US
        value["dedupe_key"] = f"campaign-{campaign}-day-{day}"
    if rng.random() < 0.3:
        value["expires_at"] = format_us(now_us + rng.randrange(MINUTE_US, 2 * DAY_US))
    if rng.random() < 0.05:
        value["send_at"] = format_us(now_us + rng.randrange(MINUTE_US, 6 * HOUR_US))
    if rng.random() < 0.2:
        value["priority"] = rng.randrange(101)
    return value
