"""Rule pending_limit: a bounded number of intents wait per customer.

Waiting intents live in the customer's state, which must stay bounded; an
intent beyond the limit gets a decision saying so instead of vanishing.
"""

from __future__ import annotations

from app.engine.decision import Reason
from app.engine.policy import Policy
from app.engine.state import CustomerState

RULE = "pending_limit"


def is_full(state: CustomerState, policy: Policy) -> bool:
    return len(state.pending) >= policy.max_pending


def reason(policy: Policy) -> Reason:
    detail = (
        f"{policy.max_pending} intents are already waiting for this customer, "
        "the most the policy allows"
    )
    return Reason(RULE, detail)
