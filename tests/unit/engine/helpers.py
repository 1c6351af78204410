"""Small helpers for engine tests: clocks as text, and shortcuts."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Protocol

from app.engine import CustomerState, Step, apply, decide, release
from app.engine.policy import Policy
from app.engine.records import Intent, LifecycleEvent
from app.engine.times import parse_time

CUSTOMER = "c-1"
# The policy every rule test starts from: no settle window, nothing else on.
BASE_POLICY: dict[str, Any] = {"version": 1, "name": "test", "settle": "0s"}


def at(text: str) -> datetime:
    """The aware datetime of an RFC 3339 string (tests write times as text)."""
    moment = parse_time(text)
    if moment is None:
        raise ValueError(text)
    return moment


class MakePolicy(Protocol):
    def __call__(self, **sections: Any) -> Policy: ...


class MakeIntent(Protocol):
    def __call__(self, **fields: Any) -> Intent: ...


class MakeEvent(Protocol):
    def __call__(self, event_type: str, **fields: Any) -> LifecycleEvent: ...


def apply_all(
    state: CustomerState, events: list[LifecycleEvent], policy: Policy
) -> CustomerState:
    for event in events:
        state = apply(state, event, policy).state
    return state


def decide_at(state: CustomerState, intent: Intent, when: str, policy: Policy) -> Step:
    return decide(state, intent, at(when), policy)


def release_at(state: CustomerState, when: str, policy: Policy) -> Step:
    return release(state, at(when), policy)


def rules_of(step: Step) -> list[str]:
    """The rules of the step's only decision."""
    [decision] = step.decisions
    return [reason.rule for reason in decision.reasons]


def outcome_of(step: Step) -> str:
    [decision] = step.decisions
    return decision.outcome
