"""Rule quiet_hours: no sends in the customer's local night.

Local time comes from the customer's timezone, so the window follows the
customer across daylight-saving changes; a window whose `from` is later than
its `to` wraps midnight.
"""

from __future__ import annotations

from datetime import date, datetime, time, timedelta, tzinfo
from functools import lru_cache

from app.engine.decision import Reason
from app.engine.policy import Policy, QuietHours, RuleSet
from app.engine.records import Intent
from app.engine.rules import NO_OBJECTIONS, Objection, customer_zone
from app.engine.state import CustomerState
from app.engine.times import MINUTE_US, from_us, to_us

RULE = "quiet_hours"
_ONE_DAY = timedelta(days=1)
_MINUTES_PER_HOUR = 60


def check(
    intent: Intent, state: CustomerState, now_us: int, policy: Policy, rules: RuleSet
) -> tuple[Objection, ...]:
    if not rules.quiet_hours:
        return NO_OBJECTIONS
    zone = customer_zone(state, policy)
    if zone is None:
        detail = (
            "quiet hours cannot be checked: the customer's timezone is unknown "
            "and the policy fails closed"
        )
        return (Objection(Reason(RULE, detail)),)
    local = from_us(now_us).astimezone(zone)
    minute = local.hour * _MINUTES_PER_HOUR + local.minute
    objections = []
    for quiet in rules.quiet_hours:
        if not is_quiet(quiet, minute):
            continue
        ends_us = _end_of_quiet(quiet, local, zone, now_us, minute)
        detail = (
            f"it is {local.hour:02d}:{local.minute:02d} for the customer ({zone}), "
            f"inside quiet hours {quiet.from_text}-{quiet.to_text}"
        )
        release_us = ends_us if quiet.is_deferring else None
        objections.append(Objection(Reason(RULE, detail), release_us))
    return tuple(objections)


def is_quiet(quiet: QuietHours, minute: int) -> bool:
    """Whether a local minute of the day falls inside the window."""
    if quiet.start_minute < quiet.end_minute:
        return quiet.start_minute <= minute < quiet.end_minute
    return minute >= quiet.start_minute or minute < quiet.end_minute


def _end_of_quiet(
    quiet: QuietHours, local: datetime, zone: tzinfo, now_us: int, minute: int
) -> int:
    day = local.date()
    if quiet.start_minute > quiet.end_minute and minute >= quiet.start_minute:
        day += _ONE_DAY
    end_us, repeated_end_us = _local_time_us(day, quiet.end_minute, zone)
    if end_us <= now_us:
        # The end time occurs twice on the night clocks go back and `now` is
        # already in the repeated hour: the window ends at the second one.
        end_us = repeated_end_us
    return max(end_us, now_us + MINUTE_US)


@lru_cache(maxsize=1 << 12)
def _local_time_us(day: date, minute: int, zone: tzinfo) -> tuple[int, int]:
    """A local time of day as timestamps, first and second occurrence (the two
    differ only on the night clocks go back); cached, as every customer of a
    zone ends the same night at the same time."""
    hours, minutes = divmod(minute, _MINUTES_PER_HOUR)
    end = datetime.combine(day, time(hours, minutes), tzinfo=zone)
    return to_us(end), to_us(end.replace(fold=1))
