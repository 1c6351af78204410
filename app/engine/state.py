"""One customer's state: an immutable value, and its compact encoding.

Everything the rules need about a customer lives in one CustomerState, so the
Faust layer can read and write it under one table key. The engine never
mutates a state it was given: it builds a new one, sharing what did not
change. Every part is bounded in time (and the id memories also in count), so
a customer who receives intents for years keeps a state of stable size.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from datetime import datetime
from types import MappingProxyType
from typing import Any, NamedTuple, Protocol, TypeVar

import orjson

from app.engine.records import EntityRef, Intent, intent_from_value
from app.engine.times import from_us
from app.errors import RecordError

logger = logging.getLogger(__name__)

ENCODING_VERSION = 1
EntityKey = tuple[str, str]


class _HasTime(Protocol):
    @property
    def at_us(self) -> int: ...


_Timed = TypeVar("_Timed", bound=_HasTime)
# Shared by every new state; read-only so no caller can change it for all.
_NO_ENTITIES: Mapping[EntityKey, EntityState] = MappingProxyType({})


class EntityState(NamedTuple):
    """What the lifecycle events said about one entity, e.g. booking bk-981."""

    status: str
    status_us: int  # occurred_at of the event that set the status
    last_us: int  # occurred_at of the latest event, for `retain`
    times: Mapping[str, int]  # time attributes the policy's windows read


class OptOut(NamedTuple):
    """A consent withdrawal; None means every channel or every category."""

    channel: str | None
    category: str | None
    at_us: int

    def covers(self, channel: str, category: str) -> bool:
        return (self.channel is None or self.channel == channel) and (
            self.category is None or self.category == category
        )


class OpenCooldown(NamedTuple):
    """A cooldown in force: started by `after`, ended by `until` or by time."""

    after: str
    until: str | None
    case_id: str | None
    start_us: int
    end_us: int


class Sent(NamedTuple):
    """An approved send that a frequency cap counts."""

    at_us: int
    channel: str
    category: str


class RecentApproval(NamedTuple):
    """An approved send remembered briefly, to report late vetoes."""

    at_us: int
    intent_id: str
    channel: str
    category: str
    about: tuple[EntityRef, ...]


class Pending(NamedTuple):
    """An intent waiting in state: settle window, future send_at or deferral."""

    intent: Intent
    due_us: int
    decisions: int  # decisions already made about this intent


class IdBucket(NamedTuple):
    """Ids first seen in one stretch of time, forgotten together.

    Buckets keep both lookups and updates cheap without copying every
    remembered id on each change: an update copies only the newest bucket.
    """

    start_us: int
    ids: Mapping[str, int]  # id -> decisions made (intents) or 1 (events)


class CustomerState(NamedTuple):
    """Everything the engine knows about one customer.

    A named tuple rather than a frozen dataclass: the engine builds a new
    state on every call, and a tuple is several times cheaper to copy with
    one field changed.
    """

    customer_id: str
    erased_us: int | None = None
    closed_us: int | None = None
    timezone: str | None = None
    entities: Mapping[EntityKey, EntityState] = _NO_ENTITIES
    opt_outs: tuple[OptOut, ...] = ()
    cooldowns: tuple[OpenCooldown, ...] = ()
    sent: tuple[Sent, ...] = ()
    dedupe_keys: tuple[IdBucket, ...] = ()  # dedupe_key -> approval time
    recent: tuple[RecentApproval, ...] = ()
    pending: tuple[Pending, ...] = ()
    decided: tuple[IdBucket, ...] = ()
    applied: tuple[IdBucket, ...] = ()

    @classmethod
    def empty(cls, customer_id: str) -> CustomerState:
        return cls(customer_id=customer_id)

    @property
    def is_erased(self) -> bool:
        return self.erased_us is not None

    @property
    def next_due(self) -> datetime | None:
        """The earliest time a pending intent becomes due, for wake-ups."""
        due_us = self.next_due_us
        return None if due_us is None else from_us(due_us)

    @property
    def next_due_us(self) -> int | None:
        if not self.pending:
            return None
        return min(pending.due_us for pending in self.pending)

    @property
    def pending_count(self) -> int:
        return len(self.pending)


# Id memories are split into about this many buckets per retention period.
BUCKETS_PER_RETENTION = 8
BUCKET_SIZE = 64
_MIN_BUCKET_WIDTH_US = 1_000_000


def bucket_width(retain_us: int) -> int:
    """How long one bucket collects ids, for a memory of `retain_us`."""
    return max(retain_us // BUCKETS_PER_RETENTION, _MIN_BUCKET_WIDTH_US)


def find_id(buckets: tuple[IdBucket, ...], key: str) -> int | None:
    """The value remembered for `key`, newest bucket first, or None."""
    for bucket in reversed(buckets):
        value = bucket.ids.get(key)
        if value is not None:
            return value
    return None


def remember_id(
    buckets: tuple[IdBucket, ...],
    key: str,
    value: int,
    now_us: int,
    width_us: int,
    max_ids: int,
) -> tuple[IdBucket, ...]:
    """Buckets with `key` set in the newest bucket, and at most about `max_ids`.

    Only the newest bucket is copied, and it holds at most BUCKET_SIZE ids, so
    an update costs the same however many ids are remembered; when there are
    too many, whole buckets are forgotten, oldest first.
    """
    newest = buckets[-1] if buckets else None
    if (
        newest is not None
        and newest.start_us > now_us - width_us
        and (len(newest.ids) < BUCKET_SIZE or key in newest.ids)
    ):
        ids = dict(newest.ids)
        ids[key] = value
        buckets = (*buckets[:-1], IdBucket(newest.start_us, ids))
    else:
        buckets = (*buckets, IdBucket(now_us, {key: value}))
    most_buckets = max(1, -(-max_ids // BUCKET_SIZE))
    if len(buckets) > most_buckets:
        buckets = buckets[len(buckets) - most_buckets :]
    return buckets


def forget_ids(
    buckets: tuple[IdBucket, ...], now_us: int, retain_us: int, width_us: int
) -> tuple[IdBucket, ...]:
    """Buckets without those whose every id is older than `retain_us`."""
    cutoff = now_us - retain_us
    if buckets and buckets[0].start_us + width_us <= cutoff:
        return tuple(b for b in buckets if b.start_us + width_us > cutoff)
    return buckets


def drop_before(items: tuple[_Timed, ...], cutoff_us: int) -> tuple[_Timed, ...]:
    """Items without the leading ones older than `cutoff_us`.

    Items are appended as time goes on, so the stale ones form a prefix and
    only they are looked at; the rest is sliced off in one copy.
    """
    stale = 0
    for item in items:
        if item.at_us >= cutoff_us:
            break
        stale += 1
    return items[stale:] if stale else items


def encode_state(state: CustomerState) -> bytes:
    """Compact bytes of a state: short keys, lists not objects, empty parts left out."""
    out: dict[str, Any] = {"v": ENCODING_VERSION, "c": state.customer_id}
    if state.erased_us is not None:
        out["x"] = state.erased_us
    if state.closed_us is not None:
        out["cl"] = state.closed_us
    if state.timezone is not None:
        out["tz"] = state.timezone
    if state.entities:
        out["e"] = [
            [kind, key, e.status, e.status_us, e.last_us, dict(e.times)]
            for (kind, key), e in state.entities.items()
        ]
    if state.opt_outs:
        out["o"] = [[o.channel, o.category, o.at_us] for o in state.opt_outs]
    if state.cooldowns:
        out["cd"] = [
            [c.after, c.until, c.case_id, c.start_us, c.end_us] for c in state.cooldowns
        ]
    if state.sent:
        out["s"] = [[s.at_us, s.channel, s.category] for s in state.sent]
    if state.dedupe_keys:
        out["dk"] = [[b.start_us, dict(b.ids)] for b in state.dedupe_keys]
    if state.recent:
        out["r"] = [
            [
                r.at_us,
                r.intent_id,
                r.channel,
                r.category,
                [[a.type, a.id] for a in r.about],
            ]
            for r in state.recent
        ]
    if state.pending:
        out["p"] = [[p.due_us, p.decisions, p.intent.raw] for p in state.pending]
    if state.decided:
        out["di"] = [[b.start_us, dict(b.ids)] for b in state.decided]
    if state.applied:
        out["ea"] = [[b.start_us, list(b.ids)] for b in state.applied]
    return orjson.dumps(out)


def _load_encoded(data: bytes) -> Any:
    raw = orjson.loads(data)
    if raw.get("v") != ENCODING_VERSION:
        raise ValueError(f"unknown customer state encoding {raw.get('v')!r}")
    return raw


def encoded_pending(data: bytes) -> tuple[int | None, int]:
    """`next_due_us` and `pending_count` of an encoded state, read without
    decoding the rest; ValueError if the bytes are not one."""
    try:
        raw = _load_encoded(data)
        if not isinstance(raw["c"], str):
            raise ValueError("customer_id is not a string")
        pending = raw.get("p", ())
        due_us = min((int(item[0]) for item in pending), default=None)
        return due_us, len(pending)
    except (ValueError, AttributeError, KeyError, TypeError, IndexError) as exc:
        raise ValueError(f"not an encoded customer state: {exc}") from exc


def decode_state(data: bytes) -> CustomerState:
    """The state encoded by `encode_state`; ValueError if the bytes are not one."""
    try:
        raw = _load_encoded(data)
        return CustomerState(
            customer_id=raw["c"],
            erased_us=raw.get("x"),
            closed_us=raw.get("cl"),
            timezone=raw.get("tz"),
            entities={
                (kind, key): EntityState(status, status_us, last_us, times)
                for kind, key, status, status_us, last_us, times in raw.get("e", ())
            },
            opt_outs=tuple(OptOut(*item) for item in raw.get("o", ())),
            cooldowns=tuple(OpenCooldown(*item) for item in raw.get("cd", ())),
            sent=tuple(Sent(*item) for item in raw.get("s", ())),
            dedupe_keys=tuple(IdBucket(start, ids) for start, ids in raw.get("dk", ())),
            recent=tuple(
                RecentApproval(
                    at,
                    intent_id,
                    channel,
                    category,
                    tuple(EntityRef(kind, key) for kind, key in about),
                )
                for at, intent_id, channel, category, about in raw.get("r", ())
            ),
            pending=tuple(
                Pending(intent_from_value(intent), due_us, decisions)
                for due_us, decisions, intent in raw.get("p", ())
            ),
            decided=tuple(IdBucket(start, ids) for start, ids in raw.get("di", ())),
            applied=tuple(
                IdBucket(start, dict.fromkeys(ids, 1))
                for start, ids in raw.get("ea", ())
            ),
        )
    except (RecordError, ValueError, AttributeError, KeyError, TypeError) as exc:
        raise ValueError(f"not an encoded customer state: {exc}") from exc
