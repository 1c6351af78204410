"""Time values of the engine: RFC 3339 text, durations and the integer clock.

Inside the engine every instant is an integer count of microseconds since the
Unix epoch (UTC). Integers compare and subtract cheaply, encode compactly in
the customer state, and convert to and from aware datetimes exactly.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta, tzinfo
from functools import lru_cache

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_NAIVE_EPOCH = EPOCH.replace(tzinfo=None)
MICROSECOND = timedelta(microseconds=1)
SECOND_US = 1_000_000
MINUTE_US = 60 * SECOND_US
HOUR_US = 60 * MINUTE_US
DAY_US = 24 * HOUR_US

# RFC 3339 date-time: "T" and "Z" are case-insensitive, the offset is required.
RFC3339_PATTERN = (
    r"^\d{4}-\d{2}-\d{2}[Tt]\d{2}:\d{2}:\d{2}(\.\d+)?([Zz]|[+-]\d{2}:\d{2})$"
)
_RFC3339 = re.compile(RFC3339_PATTERN)

DURATION_PATTERN = r"^[0-9]+[smhd]$"
_DURATION = re.compile(r"([0-9]+)([smhd])")
_UNIT_US = {"s": SECOND_US, "m": MINUTE_US, "h": HOUR_US, "d": DAY_US}


def parse_time(text: str) -> datetime | None:
    """The aware datetime of an RFC 3339 string, or None if it is not one."""
    if _RFC3339.match(text) is None:
        return None
    if "t" in text or "z" in text:
        text = text.upper()
    try:
        return datetime.fromisoformat(text)
    except ValueError:
        # The shape matched but the calendar did not (month 13, second 60).
        return None


def parse_time_us(text: str) -> int | None:
    """The timestamp of an RFC 3339 string, or None if it is not one."""
    moment = parse_time(text)
    return None if moment is None else to_us(moment)


def to_us(moment: datetime) -> int:
    """Microseconds since the epoch of an aware datetime."""
    return (moment - EPOCH) // MICROSECOND


def from_us(us: int) -> datetime:
    """The UTC datetime of a microsecond timestamp."""
    return EPOCH + MICROSECOND * us


@lru_cache(maxsize=1 << 14)
def format_us(us: int) -> str:
    """RFC 3339 text in UTC with a `Z`, fractions only when there are any.

    Cached: one decision formats the same few instants several times (its
    own time, the times its reasons name), and formatting is not cheap.
    """
    # Naive, so that formatting does not ask a zone for the offset to print.
    return f"{(_NAIVE_EPOCH + MICROSECOND * us).isoformat()}Z"


def format_local(us: int, zone: tzinfo) -> str:
    """RFC 3339 text of a timestamp in the given zone, with its offset."""
    return from_us(us).astimezone(zone).isoformat()


def parse_duration(text: str) -> int | None:
    """Microseconds of a duration like `30s`, `5m`, `24h`, `14d`, or None."""
    match = _DURATION.fullmatch(text)
    if match is None:
        return None
    return int(match.group(1)) * _UNIT_US[match.group(2)]


def format_duration(us: int) -> str:
    """A duration in the largest unit that divides it exactly, e.g. `24h`."""
    for unit in ("d", "h", "m", "s"):
        count, rest = divmod(us, _UNIT_US[unit])
        # "24h" reads better than "1d" for the windows people usually write.
        if rest == 0 and count > 0 and (unit != "d" or count > 1):
            return f"{count}{unit}"
    if us == 0:
        return "0s"
    return f"{us / SECOND_US:g}s"


def require_aware(moment: datetime, name: str) -> int:
    """The timestamp of `moment`; a naive datetime is a programming error."""
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError(f"{name} must be a timezone-aware datetime, got {moment!r}")
    return to_us(moment)
