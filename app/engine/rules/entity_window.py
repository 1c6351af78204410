"""Rule entity_window: some messages only make sense before an entity's time.

A trip reminder is pointless once the trip has begun: the window closes at
the time attribute (e.g. starts_at) that the entity's events carried.
"""

from __future__ import annotations

from app.engine.decision import Reason
from app.engine.policy import Policy, RuleSet
from app.engine.records import Intent
from app.engine.rules import NO_OBJECTIONS, Objection
from app.engine.rules.entity_state import known_entity
from app.engine.state import CustomerState
from app.engine.times import format_us

RULE = "entity_window"


def check(
    intent: Intent, state: CustomerState, now_us: int, policy: Policy, rules: RuleSet
) -> tuple[Objection, ...]:
    if not rules.windows or not intent.about:
        return NO_OBJECTIONS
    objections = []
    for window in rules.windows:
        for ref in intent.about:
            if ref.type != window.about:
                continue
            entity = known_entity(state, ref, now_us, policy)
            closes_us = None if entity is None else entity.times.get(window.until)
            if closes_us is not None and now_us >= closes_us:
                detail = (
                    f"{ref} {window.until} was {format_us(closes_us)}; "
                    f"{intent.category} messages about it are only sent before then"
                )
                objections.append(Objection(Reason(RULE, detail)))
    return tuple(objections)
