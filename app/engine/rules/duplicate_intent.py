"""Rule duplicate_intent: an intent_id is decided once.

Producers retry, and at-least-once delivery redelivers; the second copy of
an intent must not become a second send.
"""

from __future__ import annotations

from app.engine.decision import Reason
from app.engine.records import Intent
from app.engine.state import CustomerState, Pending, find_id
from app.engine.times import format_us

RULE = "duplicate_intent"


def earlier_copy(state: CustomerState, intent: Intent) -> Pending | int | None:
    """The waiting copy of this intent, the decisions made about it, or None."""
    for pending in state.pending:
        if pending.intent.intent_id == intent.intent_id:
            return pending
    return find_id(state.decided, intent.intent_id)


def reason(earlier: Pending | int) -> Reason:
    if isinstance(earlier, Pending):
        detail = (
            f"intent {earlier.intent.intent_id} is already waiting, due at "
            f"{format_us(earlier.due_us)}"
        )
    else:
        detail = "an intent with this intent_id was already decided"
    return Reason(RULE, detail)
