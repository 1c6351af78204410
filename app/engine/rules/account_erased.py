"""Rule account_erased: after account.erased nothing is kept and nothing sent.

The state shrinks to a tombstone holding only the customer id and the time
of erasure; every later intent, exempt or not, is suppressed.
"""

from __future__ import annotations

from app.engine.decision import Reason
from app.engine.records import LifecycleEvent
from app.engine.state import CustomerState
from app.engine.times import format_us

RULE = "account_erased"
EVENT_TYPE = "account.erased"
# Numbering of decisions made after erasure: the tombstone does not count
# them, so they get their own stable number.
AFTER_ERASURE = "erased"


def is_erasure(event: LifecycleEvent) -> bool:
    return event.type == EVENT_TYPE


def tombstone(state: CustomerState, event: LifecycleEvent) -> CustomerState:
    return CustomerState(customer_id=state.customer_id, erased_us=event.occurred_us)


def reason(state: CustomerState) -> Reason:
    erased_us = state.erased_us
    when = "" if erased_us is None else f" at {format_us(erased_us)}"
    return Reason(RULE, f"the customer's account was erased{when}")
