"""Rule account_closed: nothing but exempt categories after account.closed."""

from __future__ import annotations

from app.engine.decision import Reason
from app.engine.policy import Policy, RuleSet
from app.engine.records import Intent, LifecycleEvent
from app.engine.rules import NO_OBJECTIONS, Objection
from app.engine.state import CustomerState
from app.engine.times import format_us

RULE = "account_closed"
EVENT_TYPE = "account.closed"


def closed_at(state: CustomerState, event: LifecycleEvent) -> int | None:
    """The state's closing time after `event` (the first closing wins)."""
    if event.type != EVENT_TYPE or state.closed_us is not None:
        return state.closed_us
    return event.occurred_us


def check(
    intent: Intent, state: CustomerState, now_us: int, policy: Policy, rules: RuleSet
) -> tuple[Objection, ...]:
    if state.closed_us is None:
        return NO_OBJECTIONS
    detail = f"the account was closed at {format_us(state.closed_us)}"
    return (Objection(Reason(RULE, detail)),)
