"""Factories for the engine's inputs: policies, intents, events, states."""

from __future__ import annotations

import itertools
from typing import Any

import pytest
import yaml

from app.engine import CustomerState
from app.engine.policy import Policy, parse_policy
from app.engine.records import (
    Intent,
    LifecycleEvent,
    event_from_value,
    intent_from_value,
)
from tests.unit.engine.helpers import (
    BASE_POLICY,
    CUSTOMER,
    MakeEvent,
    MakeIntent,
    MakePolicy,
)


@pytest.fixture
def make_policy() -> MakePolicy:
    """A policy of BASE_POLICY plus the given sections, through the real loader."""

    def factory(**sections: Any) -> Policy:
        document = {**BASE_POLICY, **sections}
        return parse_policy(yaml.safe_dump(document, sort_keys=False), "test.yaml")

    return factory


@pytest.fixture
def make_intent() -> MakeIntent:
    """An intent for CUSTOMER with a fresh id; fields override the defaults.

    `about` takes (type, id) pairs.
    """
    ids = itertools.count(1)

    def factory(**fields: Any) -> Intent:
        record: dict[str, Any] = {
            "intent_id": f"in-{next(ids)}",
            "customer_id": CUSTOMER,
            "channel": "email",
            "category": "marketing",
            "created_at": "2026-03-01T10:00:00Z",
        }
        about = fields.pop("about", None)
        if about is not None:
            record["about"] = [{"type": kind, "id": key} for kind, key in about]
        record.update(fields)
        return intent_from_value(record)

    return factory


@pytest.fixture
def make_event() -> MakeEvent:
    """A lifecycle event for CUSTOMER with a fresh id; `entity` is (type, id)."""
    ids = itertools.count(1)

    def factory(event_type: str, **fields: Any) -> LifecycleEvent:
        record: dict[str, Any] = {
            "event_id": f"ev-{next(ids)}",
            "customer_id": CUSTOMER,
            "type": event_type,
            "occurred_at": "2026-03-01T09:00:00Z",
        }
        entity = fields.pop("entity", None)
        if entity is not None:
            record["entity"] = {"type": entity[0], "id": entity[1]}
        record.update(fields)
        return event_from_value(record)

    return factory


@pytest.fixture
def empty_state() -> CustomerState:
    return CustomerState.empty(CUSTOMER)
