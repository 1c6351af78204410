"""Rule dedupe: one approved send per dedupe_key within the window."""

from __future__ import annotations

from collections.abc import Mapping

from app.engine.decision import Reason
from app.engine.policy import Policy, RuleSet
from app.engine.records import Intent
from app.engine.rules import NO_OBJECTIONS, Objection
from app.engine.state import CustomerState
from app.engine.times import format_duration, format_us

RULE = "dedupe"


def check(
    intent: Intent, state: CustomerState, now_us: int, policy: Policy, rules: RuleSet
) -> tuple[Objection, ...]:
    window_us = policy.dedupe_window_us
    key = intent.dedupe_key
    if window_us is None or key is None:
        return NO_OBJECTIONS
    approved_us = state.dedupe_keys.get(key)
    if approved_us is None or now_us - approved_us >= window_us:
        return NO_OBJECTIONS
    detail = (
        f"the same message (dedupe_key {key}) was approved at "
        f"{format_us(approved_us)}, within {format_duration(window_us)}"
    )
    return (Objection(Reason(RULE, detail)),)


def keys_after_approval(
    state: CustomerState, intent: Intent, now_us: int, policy: Policy
) -> Mapping[str, int]:
    if policy.dedupe_window_us is None or intent.dedupe_key is None:
        return state.dedupe_keys
    return {**state.dedupe_keys, intent.dedupe_key: now_us}


def forget_old(
    keys: Mapping[str, int], now_us: int, policy: Policy
) -> Mapping[str, int]:
    window_us = policy.dedupe_window_us
    if not keys:
        return keys
    if window_us is None:
        return {}
    cutoff = now_us - window_us
    if all(at_us > cutoff for at_us in keys.values()):
        return keys
    return {key: at_us for key, at_us in keys.items() if at_us > cutoff}
