"""Late vetoes: sends that went out before the event that should have stopped them.

Lifecycle events can reach Tact after intents about the same thing were
approved (the topics are not aligned in time). Such sends cannot be recalled,
but they can be reported: approvals are remembered for the policy's
look-back, and an event that blocks an entity or opens a cooldown names the
approvals made at or after the moment it happened.
"""

from __future__ import annotations

from app.engine.decision import LateVeto
from app.engine.policy import Cooldown, Policy, RuleSet
from app.engine.records import EntityRef, Intent, LifecycleEvent
from app.engine.rules import cooldown as cooldown_rule
from app.engine.rules import entity_state
from app.engine.state import CustomerState, RecentApproval, drop_before


def find(
    state: CustomerState,
    event: LifecycleEvent,
    blocked: tuple[EntityRef, ...],
    opened: tuple[Cooldown, ...],
    now_us: int,
    policy: Policy,
) -> tuple[LateVeto, ...]:
    """The approvals that `event`, had it arrived in time, would have stopped."""
    if not state.recent or not (blocked or opened):
        return ()
    since_us = max(event.occurred_us, now_us - policy.late_veto_us)
    vetoes = []
    for approval in state.recent:
        if approval.at_us < since_us:
            continue
        for ref in blocked:
            if ref in approval.about:
                vetoes.append(
                    LateVeto(
                        entity_state.RULE,
                        ref.type,
                        ref.id,
                        approval.intent_id,
                        approval.at_us,
                        event.event_id,
                    )
                )
        for rule in opened:
            if rule.selector.covers(approval.channel, approval.category):
                entity = event.entity
                vetoes.append(
                    LateVeto(
                        cooldown_rule.RULE,
                        None if entity is None else entity.type,
                        None if entity is None else entity.id,
                        approval.intent_id,
                        approval.at_us,
                        event.event_id,
                    )
                )
    return tuple(vetoes)


def recent_after_approval(
    state: CustomerState, intent: Intent, now_us: int, policy: Policy, rules: RuleSet
) -> tuple[RecentApproval, ...]:
    """Remember an approval only if a later event could veto it."""
    about = intent.about
    if about:
        about = tuple(ref for ref in about if ref.type in policy.entities)
    if rules.is_exempt or not (about or policy.cooldowns):
        return state.recent
    approval = RecentApproval(
        now_us, intent.intent_id, intent.channel, intent.category, about
    )
    return (*state.recent, approval)


def forget_old(
    recent: tuple[RecentApproval, ...], now_us: int, policy: Policy
) -> tuple[RecentApproval, ...]:
    return drop_before(recent, now_us - policy.late_veto_us)
