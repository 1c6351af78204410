"""Rule consent: opt-outs by channel, category or both; an opt-in lifts them."""

from __future__ import annotations

from app.engine.decision import Reason
from app.engine.policy import Policy, RuleSet
from app.engine.records import Intent, LifecycleEvent
from app.engine.rules import NO_OBJECTIONS, Objection, describe_scope
from app.engine.state import CustomerState, OptOut
from app.engine.times import format_us

RULE = "consent"
OPTED_OUT = "consent.opted_out"
OPTED_IN = "consent.opted_in"
EVENT_TYPES = frozenset({OPTED_OUT, OPTED_IN})


def opt_outs_after(state: CustomerState, event: LifecycleEvent) -> tuple[OptOut, ...]:
    """The customer's opt-outs once `event` is applied.

    An opt-in lifts every opt-out it covers: opting in to email lifts both
    "email" and "email marketing", opting in to everything lifts them all.
    """
    if event.type not in EVENT_TYPES:
        return state.opt_outs
    channel = event.attributes.get("channel")
    category = event.attributes.get("category")
    kept = tuple(
        o
        for o in state.opt_outs
        if not (
            (channel is None or o.channel == channel)
            and (category is None or o.category == category)
        )
    )
    if event.type == OPTED_IN:
        return kept
    return (*kept, OptOut(channel, category, event.occurred_us))


def check(
    intent: Intent, state: CustomerState, now_us: int, policy: Policy, rules: RuleSet
) -> tuple[Objection, ...]:
    if not state.opt_outs:
        return NO_OBJECTIONS
    return tuple(
        Objection(
            Reason(
                RULE,
                f"the customer opted out of {describe_scope(o.channel, o.category)} "
                f"at {format_us(o.at_us)}",
            )
        )
        for o in state.opt_outs
        if o.covers(intent.channel, intent.category)
    )
