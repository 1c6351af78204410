"""Rule holdout: a stable share of customers gets none of some messages.

Membership is a hash of salt and customer id, so it is the same on every
worker and every replay, and a new salt draws a new group.
"""

from __future__ import annotations

import hashlib
from functools import lru_cache

from app.engine.decision import Reason
from app.engine.policy import Holdout, Policy, RuleSet
from app.engine.records import Intent
from app.engine.rules import NO_OBJECTIONS, Objection
from app.engine.state import CustomerState

RULE = "holdout"
BUCKETS = 10_000  # hundredths of a percent


def is_held_out(customer_id: str, holdout: Holdout) -> bool:
    return _bucket(holdout.salt, customer_id) < holdout.percent * (BUCKETS // 100)


@lru_cache(maxsize=1 << 16)
def _bucket(salt: str, customer_id: str) -> int:
    """The customer's bucket for a salt; cached, as a customer gets many intents."""
    digest = hashlib.sha256(f"{salt}\x00{customer_id}".encode()).digest()
    return int.from_bytes(digest[:8], "big") % BUCKETS


def check(
    intent: Intent, state: CustomerState, now_us: int, policy: Policy, rules: RuleSet
) -> tuple[Objection, ...]:
    if not rules.holdouts:
        return NO_OBJECTIONS
    return tuple(
        Objection(
            Reason(
                RULE,
                f"the customer is in the {h.percent:g}% holdout group "
                f"(salt {h.salt}) for {intent.category} messages",
            )
        )
        for h in rules.holdouts
        if is_held_out(intent.customer_id, h)
    )
