"""The engine: apply lifecycle events, decide intents, release what is due.

Pure functions of (state, input, clock, policy). They never read the wall
clock, never mutate the state they were given, and iterate only over ordered
values, so the same inputs give the same decisions byte for byte.
"""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Any

from app.engine import late_veto
from app.engine.decision import (
    APPROVED,
    DEFERRED,
    SUPPRESSED,
    Decision,
    Reason,
    Step,
    decision_id,
)
from app.engine.policy import Policy, RuleSet
from app.engine.records import Intent, LifecycleEvent
from app.engine.rules import (
    Objection,
    account_closed,
    account_erased,
    consent,
    cooldown,
    dedupe,
    duplicate_intent,
    entity_state,
    entity_window,
    expired,
    frequency_cap,
    holdout,
    pending_limit,
    quiet_hours,
)
from app.engine.state import (
    CustomerState,
    IdBucket,
    Pending,
    find_id,
    forget_ids,
    remember_id,
)
from app.engine.times import SECOND_US, format_us, require_aware

logger = logging.getLogger(__name__)

PROFILE_UPDATED = "profile.updated"
# The order in which rules are checked is the order of their reasons.
CHECKS = (
    account_closed.check,
    expired.check,
    consent.check,
    entity_state.check,
    entity_window.check,
    cooldown.check,
    dedupe.check,
    holdout.check,
    frequency_cap.check,
    quiet_hours.check,
)
EXEMPT_CHECKS = (expired.check,)


def apply(
    state: CustomerState,
    event: LifecycleEvent,
    policy: Policy,
    now: datetime | None = None,
) -> Step:
    """The state once a lifecycle event is applied; `now` defaults to when it
    occurred. The steps are those of `apply_at_us`."""
    now_us = event.occurred_us if now is None else require_aware(now, "now")
    return apply_at_us(state, event, policy, now_us)


def apply_at_us(
    state: CustomerState, event: LifecycleEvent, policy: Policy, now_us: int
) -> Step:
    """`apply` on the engine's own clock, microseconds since the epoch.


    1. Forget what has aged out; ignore an event already applied, or any
       event after erasure.
    2. Erasure: suppress every waiting intent and keep only a tombstone.
    3. Otherwise update what each rule keeps: account, consent, timezone,
       entities and cooldowns.
    4. Report sends this event should have stopped (late vetoes).
    """
    # 1. Forget, and apply each event once.
    state = _forget(state, now_us, policy)
    if state.is_erased:
        return Step(state)
    if find_id(state.applied, event.event_id) is not None:
        logger.debug("event already applied event_id=%s", event.event_id)
        return Step(state)
    applied = remember_id(
        state.applied,
        event.event_id,
        1,
        now_us,
        policy.applied_width_us,
        policy.max_ids,
    )

    # 2. Erasure.
    if account_erased.is_erasure(event):
        return _erase(state, event, now_us, policy)

    # 3. What each rule keeps. Entities are only dropped here, when events
    # arrive: lookups ignore an entity past its `retain` anyway, and scanning
    # them on every intent would cost more than keeping them a little longer.
    retained = entity_state.forget_stale(state.entities, now_us, policy)
    if retained is not state.entities:
        state = state._replace(entities=retained)
    entities, blocked = entity_state.entities_after(state, event, policy)
    cooldowns, opened = cooldown.cooldowns_after(state, event, now_us, policy)
    timezone = state.timezone
    if event.type == PROFILE_UPDATED:
        timezone = event.attributes.get("timezone") or timezone
    # Every field in order, as in `_with_waiting`.
    new_state = CustomerState(
        state.customer_id,
        state.erased_us,
        account_closed.closed_at(state, event),
        timezone,
        entities,
        consent.opt_outs_after(state, event),
        cooldowns,
        state.sent,
        state.dedupe_keys,
        state.recent,
        state.pending,
        state.decided,
        applied,
    )

    # 4. Late vetoes.
    vetoes = late_veto.find(state, event, blocked, opened, now_us, policy)
    for veto in vetoes:
        logger.info(
            "late veto rule=%s intent_id=%s event_id=%s",
            veto.rule,
            veto.intent_id,
            veto.event_id,
        )
    return Step(new_state, late_vetoes=vetoes)


def decide(state: CustomerState, intent: Intent, now: datetime, policy: Policy) -> Step:
    """The first decision about an intent, or none yet if it must wait; the
    steps are those of `decide_at_us`."""
    return decide_at_us(state, intent, require_aware(now, "now"), policy)


def decide_at_us(
    state: CustomerState, intent: Intent, now_us: int, policy: Policy
) -> Step:
    """`decide` on the engine's own clock, microseconds since the epoch.

    1. After erasure, or for an intent seen before: suppress at once.
    2. An intent due later (settle window, future send_at) waits in state,
       unless it could never be sent in time or the waiting room is full.
    3. An intent due now is checked against every rule.
    """
    state = _forget(state, now_us, policy)

    # 1. Erased customer, duplicate intent.
    if state.is_erased:
        decision = _decision(
            intent,
            account_erased.AFTER_ERASURE,
            SUPPRESSED,
            (account_erased.reason(state),),
            None,
            now_us,
            policy,
        )
        return Step(state, (decision,))
    earlier = duplicate_intent.earlier_copy(state, intent)
    if earlier is not None:
        return _suppress_duplicate(state, intent, earlier, now_us, policy)

    # 2. Hold until due.
    rules = policy.rules_for(intent.channel, intent.category)
    due_us = now_us if rules.is_exempt else now_us + policy.settle_us
    if intent.send_us is not None and intent.send_us > due_us:
        due_us = intent.send_us
    if due_us > now_us:
        has_expired = expired.check(intent, state, now_us, policy, rules)
        if has_expired:
            reasons = tuple(objection.reason for objection in has_expired)
            return _final(state, intent, 0, SUPPRESSED, reasons, now_us, policy)
        too_late = expired.wait_passes_expiry(intent, due_us, "waiting")
        if too_late is not None:
            return _final(state, intent, 0, SUPPRESSED, (too_late,), now_us, policy)
        if pending_limit.is_full(state, policy):
            reasons = (pending_limit.reason(policy),)
            return _final(state, intent, 0, SUPPRESSED, reasons, now_us, policy)
        waiting = Pending(intent, due_us, 0)
        return Step(_with_waiting(state, (*state.pending, waiting), state.decided))

    # 3. Due now.
    return _evaluate(state, intent, 0, now_us, policy, rules)


def release(state: CustomerState, now: datetime, policy: Policy) -> Step:
    """Decide every waiting intent due at `now`, against the newest state;
    see `release_at_us`."""
    return release_at_us(state, require_aware(now, "now"), policy)


def release_at_us(state: CustomerState, now_us: int, policy: Policy) -> Step:
    """`release` on the engine's own clock, microseconds since the epoch.

    Due intents are taken in due-time order (ties in arrival order); each
    decision sees the sends approved just before it, so a frequency cap holds
    across intents released together.
    """
    state = _forget(state, now_us, policy)
    due = sorted((p for p in state.pending if p.due_us <= now_us), key=_due_time)
    if not due:
        return Step(state)
    state = _with_waiting(
        state, tuple(p for p in state.pending if p.due_us > now_us), state.decided
    )
    decisions: list[Decision] = []
    approved: list[dict[str, Any]] = []
    for pending in due:
        intent = pending.intent
        rules = policy.rules_for(intent.channel, intent.category)
        step = _evaluate(state, intent, pending.decisions, now_us, policy, rules)
        state = step.state
        decisions.extend(step.decisions)
        approved.extend(step.approved)
    return Step(state, tuple(decisions), tuple(approved))


def _due_time(pending: Pending) -> int:
    return pending.due_us


def _evaluate(
    state: CustomerState,
    intent: Intent,
    decisions_so_far: int,
    now_us: int,
    policy: Policy,
    rules: RuleSet,
) -> Step:
    """Check an intent due now against every rule and record the outcome."""
    checks = EXEMPT_CHECKS if rules.is_exempt else CHECKS
    objections: list[Objection] = [
        objection
        for check in checks
        for objection in check(intent, state, now_us, policy, rules)
    ]
    if not objections:
        return _approve(state, intent, decisions_so_far, now_us, policy, rules)

    reasons = tuple(objection.reason for objection in objections)
    if not all(objection.is_deferrable for objection in objections):
        return _final(
            state, intent, decisions_so_far, SUPPRESSED, reasons, now_us, policy
        )
    # Every objection is "not yet": wait until the last of them lifts, and at
    # least a second, so a release always moves the clock forward.
    release_us = max(now_us + SECOND_US, *(o.release_us or 0 for o in objections))
    too_late = expired.wait_passes_expiry(intent, release_us, "deferring")
    if too_late is not None:
        reasons = (*reasons, too_late)
        return _final(
            state, intent, decisions_so_far, SUPPRESSED, reasons, now_us, policy
        )
    if pending_limit.is_full(state, policy):
        reasons = (*reasons, pending_limit.reason(policy))
        return _final(
            state, intent, decisions_so_far, SUPPRESSED, reasons, now_us, policy
        )
    number = decisions_so_far + 1
    decision = _decision(intent, number, DEFERRED, reasons, release_us, now_us, policy)
    waiting = Pending(intent, release_us, number)
    return Step(
        _with_waiting(state, (*state.pending, waiting), state.decided), (decision,)
    )


def _approve(
    state: CustomerState,
    intent: Intent,
    decisions_so_far: int,
    now_us: int,
    policy: Policy,
    rules: RuleSet,
) -> Step:
    number = decisions_so_far + 1
    decision = _decision(intent, number, APPROVED, (), None, now_us, policy)
    # Every field in order, as in `_with_waiting`.
    new_state = CustomerState(
        state.customer_id,
        state.erased_us,
        state.closed_us,
        state.timezone,
        state.entities,
        state.opt_outs,
        state.cooldowns,
        frequency_cap.sent_after_approval(state, intent, now_us, rules),
        dedupe.keys_after_approval(state, intent, now_us, policy),
        late_veto.recent_after_approval(state, intent, now_us, policy, rules),
        state.pending,
        _remember_decided(state, intent.intent_id, number, now_us, policy),
        state.applied,
    )
    send = dict(intent.raw)
    send["decision"] = {
        "decision_id": decision.decision_id,
        "decided_at": format_us(now_us),
        "policy_version": policy.version,
    }
    return Step(new_state, (decision,), (send,))


def _final(
    state: CustomerState,
    intent: Intent,
    decisions_so_far: int,
    outcome: str,
    reasons: tuple[Reason, ...],
    now_us: int,
    policy: Policy,
) -> Step:
    """A last decision about an intent that is not a send."""
    number = decisions_so_far + 1
    decision = _decision(intent, number, outcome, reasons, None, now_us, policy)
    decided = _remember_decided(state, intent.intent_id, number, now_us, policy)
    return Step(_with_waiting(state, state.pending, decided), (decision,))


def _suppress_duplicate(
    state: CustomerState,
    intent: Intent,
    earlier: Pending | int,
    now_us: int,
    policy: Policy,
) -> Step:
    reasons = (duplicate_intent.reason(earlier),)
    if isinstance(earlier, Pending):
        # The waiting copy keeps its place; only its decision count moves on,
        # so its own later decision gets a fresh id.
        number = earlier.decisions + 1
        pending = tuple(
            p._replace(decisions=number) if p is earlier else p for p in state.pending
        )
        new_state = _with_waiting(state, pending, state.decided)
    else:
        number = earlier + 1
        decided = _remember_decided(state, intent.intent_id, number, now_us, policy)
        new_state = _with_waiting(state, state.pending, decided)
    decision = _decision(intent, number, SUPPRESSED, reasons, None, now_us, policy)
    return Step(new_state, (decision,))


def _erase(
    state: CustomerState, event: LifecycleEvent, now_us: int, policy: Policy
) -> Step:
    tombstone = account_erased.tombstone(state, event)
    reasons = (account_erased.reason(tombstone),)
    decisions = tuple(
        _decision(p.intent, p.decisions + 1, SUPPRESSED, reasons, None, now_us, policy)
        for p in sorted(state.pending, key=_due_time)
    )
    logger.info(
        "customer erased customer_id=%s pending_suppressed=%s",
        state.customer_id,
        len(decisions),
    )
    return Step(tombstone, decisions)


def _decision(
    intent: Intent,
    number: int | str,
    outcome: str,
    reasons: tuple[Reason, ...],
    release_us: int | None,
    now_us: int,
    policy: Policy,
) -> Decision:
    # Positional: a named tuple built by keyword costs twice as much.
    return Decision(
        decision_id(intent.intent_id, number),
        intent.intent_id,
        intent.customer_id,
        intent.channel,
        intent.category,
        intent.campaign_id,
        outcome,
        reasons,
        release_us,
        now_us,
        policy.version,
    )


def _remember_decided(
    state: CustomerState, intent_id: str, number: int, now_us: int, policy: Policy
) -> tuple[IdBucket, ...]:
    return remember_id(
        state.decided,
        intent_id,
        number,
        now_us,
        policy.decided_width_us,
        policy.max_ids,
    )


def _forget(state: CustomerState, now_us: int, policy: Policy) -> CustomerState:
    """The state without what has aged out; the same object if nothing did.

    Most calls find nothing aged, so the oldest entry of each part is looked
    at first, and the parts are rebuilt only when one of them has aged.
    """
    if state.is_erased or not _has_aged(state, now_us, policy):
        return state
    sent = frequency_cap.forget_old(state.sent, now_us, policy)
    dedupe_keys = dedupe.forget_old(state.dedupe_keys, now_us, policy)
    recent = late_veto.forget_old(state.recent, now_us, policy)
    cooldowns = cooldown.forget_ended(state.cooldowns, now_us)
    decided = forget_ids(
        state.decided, now_us, policy.decided_intents_us, policy.decided_width_us
    )
    applied = forget_ids(
        state.applied, now_us, policy.applied_events_us, policy.applied_width_us
    )
    if (
        sent is state.sent
        and dedupe_keys is state.dedupe_keys
        and recent is state.recent
        and cooldowns is state.cooldowns
        and decided is state.decided
        and applied is state.applied
    ):
        return state
    return CustomerState(
        state.customer_id,
        state.erased_us,
        state.closed_us,
        state.timezone,
        state.entities,
        state.opt_outs,
        cooldowns,
        sent,
        dedupe_keys,
        recent,
        state.pending,
        decided,
        applied,
    )


def _with_waiting(
    state: CustomerState,
    pending: tuple[Pending, ...],
    decided: tuple[IdBucket, ...],
) -> CustomerState:
    """`state._replace(pending=pending, decided=decided)` at a fraction of its
    cost: the states built on every call give each field in order."""
    return CustomerState(
        state.customer_id,
        state.erased_us,
        state.closed_us,
        state.timezone,
        state.entities,
        state.opt_outs,
        state.cooldowns,
        state.sent,
        state.dedupe_keys,
        state.recent,
        pending,
        decided,
        state.applied,
    )


def _has_aged(state: CustomerState, now_us: int, policy: Policy) -> bool:
    """Whether `_forget` would drop anything: each part is kept in time order,
    so only its oldest entry (or bucket) needs a look."""
    sent = state.sent
    if sent and sent[0].at_us <= now_us - policy.send_history_us:
        return True
    recent = state.recent
    if recent and recent[0].at_us < now_us - policy.late_veto_us:
        return True
    decided = state.decided
    if (
        decided
        and decided[0].start_us + policy.decided_width_us
        <= now_us - policy.decided_intents_us
    ):
        return True
    applied = state.applied
    if (
        applied
        and applied[0].start_us + policy.applied_width_us
        <= now_us - policy.applied_events_us
    ):
        return True
    dedupe_keys = state.dedupe_keys
    if dedupe_keys:
        window_us = policy.dedupe_window_us
        if window_us is None:
            return True
        if dedupe_keys[0].start_us + policy.dedupe_width_us <= now_us - window_us:
            return True
    cooldowns = state.cooldowns
    return bool(cooldowns) and any(c.end_us <= now_us for c in cooldowns)
