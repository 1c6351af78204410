"""Rule expired: never send after expires_at, nor defer past it."""

from __future__ import annotations

from app.engine.decision import Reason
from app.engine.policy import Policy, RuleSet
from app.engine.records import Intent
from app.engine.rules import NO_OBJECTIONS, Objection
from app.engine.state import CustomerState
from app.engine.times import format_us

RULE = "expired"


def check(
    intent: Intent, state: CustomerState, now_us: int, policy: Policy, rules: RuleSet
) -> tuple[Objection, ...]:
    expires_us = intent.expires_us
    if expires_us is None or now_us < expires_us:
        return NO_OBJECTIONS
    detail = f"it expired at {format_us(expires_us)}"
    return (Objection(Reason(RULE, detail)),)


def wait_passes_expiry(intent: Intent, until_us: int, why: str) -> Reason | None:
    """The reason to give up instead of waiting until `until_us`, if any."""
    expires_us = intent.expires_us
    if expires_us is None or until_us < expires_us:
        return None
    detail = (
        f"{why} until {format_us(until_us)} would pass its expiry at "
        f"{format_us(expires_us)}"
    )
    return Reason(RULE, detail)
