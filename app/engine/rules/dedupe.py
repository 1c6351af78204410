"""Rule dedupe: one approved send per dedupe_key within the window."""

from __future__ import annotations

from app.engine.decision import Reason
from app.engine.policy import Policy, RuleSet
from app.engine.records import Intent
from app.engine.rules import NO_OBJECTIONS, Objection
from app.engine.state import (
    CustomerState,
    IdBucket,
    find_id,
    forget_ids,
    remember_id,
)
from app.engine.times import format_duration, format_us

RULE = "dedupe"


def check(
    intent: Intent, state: CustomerState, now_us: int, policy: Policy, rules: RuleSet
) -> tuple[Objection, ...]:
    window_us = policy.dedupe_window_us
    key = intent.dedupe_key
    if window_us is None or key is None or not state.dedupe_keys:
        return NO_OBJECTIONS
    approved_us = find_id(state.dedupe_keys, key)
    if approved_us is None or now_us - approved_us >= window_us:
        return NO_OBJECTIONS
    detail = (
        f"the same message (dedupe_key {key}) was approved at "
        f"{format_us(approved_us)}, within {format_duration(window_us)}"
    )
    return (Objection(Reason(RULE, detail)),)


def keys_after_approval(
    state: CustomerState, intent: Intent, now_us: int, policy: Policy
) -> tuple[IdBucket, ...]:
    """Remember the key with its approval time, for the dedupe window."""
    window_us = policy.dedupe_window_us
    if window_us is None or intent.dedupe_key is None:
        return state.dedupe_keys
    width_us = policy.dedupe_width_us
    key = intent.dedupe_key
    return remember_id(state.dedupe_keys, key, now_us, now_us, width_us, policy.max_ids)


def forget_old(
    keys: tuple[IdBucket, ...], now_us: int, policy: Policy
) -> tuple[IdBucket, ...]:
    window_us = policy.dedupe_window_us
    if not keys:
        return keys
    if window_us is None:
        return ()
    return forget_ids(keys, now_us, window_us, policy.dedupe_width_us)
