"""Rule cooldown: pause some categories after an event, for a time or a case.

A cooldown opens with its `after` event and ends after `for`, or when the
`until` event with the same attributes.case_id arrives (at the latest after
`at_most`, so a lost closing event cannot silence a customer forever).
"""

from __future__ import annotations

from app.engine.decision import Reason
from app.engine.policy import Cooldown, Policy, RuleSet
from app.engine.records import Intent, LifecycleEvent
from app.engine.rules import NO_OBJECTIONS, Objection
from app.engine.state import CustomerState, OpenCooldown
from app.engine.times import format_us

RULE = "cooldown"


def cooldowns_after(
    state: CustomerState, event: LifecycleEvent, now_us: int, policy: Policy
) -> tuple[tuple[OpenCooldown, ...], tuple[Cooldown, ...]]:
    """Open cooldowns once `event` is applied, and the policy rules it opened."""
    openers = policy.cooldown_openers.get(event.type, ())
    closers = policy.cooldown_closers.get(event.type, ())
    if not openers and not closers:
        return state.cooldowns, ()
    case_id = event.attributes.get("case_id")
    cooldowns = state.cooldowns
    if closers:
        cooldowns = tuple(
            c for c in cooldowns if not (c.until == event.type and c.case_id == case_id)
        )
    opened = []
    for rule in openers:
        start_us = event.occurred_us
        end_us = start_us + (rule.at_most_us if rule.for_us is None else rule.for_us)
        if end_us <= now_us:
            continue
        kept = tuple(c for c in cooldowns if not _is_same(c, rule, case_id))
        opening = OpenCooldown(rule.after, rule.until, case_id, start_us, end_us)
        cooldowns = (*kept, opening)
        opened.append(rule)
    return cooldowns, tuple(opened)


def forget_ended(
    cooldowns: tuple[OpenCooldown, ...], now_us: int
) -> tuple[OpenCooldown, ...]:
    # Most customers have no cooldown open: skip building the scan for them.
    if cooldowns and any(c.end_us <= now_us for c in cooldowns):
        return tuple(c for c in cooldowns if c.end_us > now_us)
    return cooldowns


def check(
    intent: Intent, state: CustomerState, now_us: int, policy: Policy, rules: RuleSet
) -> tuple[Objection, ...]:
    if not state.cooldowns or not rules.cooldowns:
        return NO_OBJECTIONS
    objections = []
    for cooldown in state.cooldowns:
        if now_us >= cooldown.end_us:
            continue
        rule = _rule_of(cooldown, rules.cooldowns)
        if rule is not None:
            objections.append(Objection(Reason(RULE, _detail(cooldown, intent))))
    return tuple(objections)


def _rule_of(cooldown: OpenCooldown, rules: tuple[Cooldown, ...]) -> Cooldown | None:
    span_us = cooldown.end_us - cooldown.start_us
    for rule in rules:
        is_same_kind = rule.after == cooldown.after and rule.until == cooldown.until
        if is_same_kind and (rule.for_us is None or rule.for_us == span_us):
            return rule
    return None


def _is_same(cooldown: OpenCooldown, rule: Cooldown, case_id: str | None) -> bool:
    """Whether `rule` opening again for `case_id` restarts this cooldown."""
    if (cooldown.after, cooldown.until, cooldown.case_id) != (
        rule.after,
        rule.until,
        case_id,
    ):
        return False
    return rule.for_us is None or rule.for_us == cooldown.end_us - cooldown.start_us


def _detail(cooldown: OpenCooldown, intent: Intent) -> str:
    case = "" if cooldown.case_id is None else f" (case {cooldown.case_id})"
    started = f"{cooldown.after}{case} at {format_us(cooldown.start_us)}"
    if cooldown.until is None:
        return (
            f"{started}: {intent.category} is paused until {format_us(cooldown.end_us)}"
        )
    return (
        f"{started}: {intent.category} is paused until {cooldown.until}"
        f" (at the latest {format_us(cooldown.end_us)})"
    )
