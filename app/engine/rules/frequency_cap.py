"""Rule frequency_cap: at most `max` approved sends per window.

Only approved sends count, so a suppressed or deferred intent never uses up
a slot. A rolling window frees a slot when its oldest counted send ages out;
a calendar-day window (the customer's local day) frees all at local midnight.
"""

from __future__ import annotations

from datetime import date, datetime, time, timedelta, tzinfo
from functools import lru_cache

from app.engine.decision import Reason
from app.engine.policy import DAY_CAP_HISTORY_US, FrequencyCap, Policy, RuleSet
from app.engine.records import Intent
from app.engine.rules import NO_OBJECTIONS, Objection, customer_zone
from app.engine.state import CustomerState, Sent, drop_before
from app.engine.times import format_duration, format_us, from_us, to_us

RULE = "frequency_cap"
_ONE_DAY = timedelta(days=1)


def check(
    intent: Intent, state: CustomerState, now_us: int, policy: Policy, rules: RuleSet
) -> tuple[Objection, ...]:
    if not rules.frequency_caps or not state.sent:
        return NO_OBJECTIONS
    objections = []
    for cap in rules.frequency_caps:
        objection = _check_cap(cap, intent, state, now_us, policy)
        if objection is not None:
            objections.append(objection)
    return tuple(objections)


def sent_after_approval(
    state: CustomerState, intent: Intent, now_us: int, rules: RuleSet
) -> tuple[Sent, ...]:
    """The send history once this approval is counted (if any cap counts it)."""
    if not rules.is_capped:
        return state.sent
    return (*state.sent, Sent(now_us, intent.channel, intent.category))


def forget_old(sent: tuple[Sent, ...], now_us: int, policy: Policy) -> tuple[Sent, ...]:
    """History older than the longest cap window can no longer count."""
    return drop_before(sent, now_us - policy.send_history_us + 1)


def _check_cap(
    cap: FrequencyCap, intent: Intent, state: CustomerState, now_us: int, policy: Policy
) -> Objection | None:
    # Most intents are far below the cap: count over the longest window
    # first and skip the local-time work when even that is under the limit.
    longest_us = now_us - cap.history_us
    matching = [
        s.at_us
        for s in state.sent
        if longest_us < s.at_us <= now_us and cap.selector.covers(s.channel, s.category)
    ]
    if len(matching) < cap.max:
        return None
    zone = None
    if cap.per_us is not None:
        # Rolling: a send counts while it is younger than the window.
        since_us = now_us - cap.per_us
        lowest_us = since_us + 1
        since_text = format_us(since_us)
    else:
        zone = customer_zone(state, policy)
        if zone is None:
            # No local day to go by: count the longest a local day can be,
            # which can only overcount.
            lowest_us = longest_us
        else:
            lowest_us, next_midnight_us, since_text = _local_day(now_us, zone)
    counted = sorted(at_us for at_us in matching if at_us >= lowest_us)
    if len(counted) < cap.max:
        return None
    if cap.per_us is None and zone is None:
        detail = (
            f"{_name(intent, cap)} may be reached ({len(counted)} sent in the last "
            f"{format_duration(DAY_CAP_HISTORY_US)}) and the customer's timezone "
            "is unknown; the policy fails closed"
        )
        return Objection(Reason(RULE, detail))
    if cap.per_us is not None:
        # The slot frees when enough of the oldest counted sends age out.
        frees_us = counted[len(counted) - cap.max] + cap.per_us
    else:
        frees_us = next_midnight_us
    detail = f"{_name(intent, cap)} reached ({len(counted)} sent since {since_text})"
    return Objection(Reason(RULE, detail), frees_us if cap.is_deferring else None)


def _name(intent: Intent, cap: FrequencyCap) -> str:
    return f"{intent.channel} {intent.category} cap of {cap.max} per {cap.per_text}"


def _local_day(now_us: int, zone: tzinfo) -> tuple[int, int, str]:
    """Local midnight before now, the next local midnight, and the first as text."""
    return _day_bounds(from_us(now_us).astimezone(zone).date(), zone)


@lru_cache(maxsize=1 << 12)
def _day_bounds(today: date, zone: tzinfo) -> tuple[int, int, str]:
    midnight = datetime.combine(today, time(0), tzinfo=zone)
    next_midnight = datetime.combine(today + _ONE_DAY, time(0), tzinfo=zone)
    return (
        to_us(midnight),
        to_us(next_midnight),
        f"local midnight {midnight.isoformat()}",
    )
