"""Replay: the engine over a JSON-lines file instead of Kafka.

Each line is one input record, `{"topic", "timestamp", "key", "value"}`, in
time order. The record's timestamp is the clock, so a replay is a function of
the file and the policy alone: two runs print the same bytes.
"""

from __future__ import annotations

import gc
import heapq
import logging
from collections import Counter
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import IO, Any, NamedTuple

import orjson

from app.engine.core import apply_at_us, decide_at_us, release_at_us
from app.engine.decision import OUTCOMES, Decision, LateVeto, Step
from app.engine.policy import Policy
from app.engine.records import (
    BAD_TIME,
    BAD_VALUE,
    DEFAULT_LIMITS,
    MISSING_FIELD,
    NOT_JSON,
    NOT_OBJECT,
    TOO_LARGE,
    WRONG_TYPE,
    Intent,
    LifecycleEvent,
    Limits,
    dead_letter,
    event_from_value,
    intent_from_value,
)
from app.engine.state import CustomerState
from app.engine.times import parse_time, to_us
from app.errors import RecordError

logger = logging.getLogger(__name__)

LIFECYCLE_TOPIC = "customer-lifecycle"
INTENTS_TOPIC = "notification-intents"
TOPICS = (LIFECYCLE_TOPIC, INTENTS_TOPIC)
_MS_US = 1000
# Allocations between young-generation collections while a replay runs
# (Python's default is 700).
_REPLAY_GC_THRESHOLD = 1_000_000
_JSON_LINE = orjson.OPT_SORT_KEYS | orjson.OPT_APPEND_NEWLINE
_TABLE_COLUMNS = (
    ("time", 22),
    ("customer", 12),
    ("campaign", 22),
    ("channel", 9),
    ("category", 15),
    ("outcome", 12),
)


class ReplayRecord(NamedTuple):
    """One checked input line."""

    line: int
    timestamp_us: int
    record: LifecycleEvent | Intent


@dataclass(slots=True)
class Summary:
    records: int = 0
    dead_letters: int = 0
    late_vetoes: int = 0
    outcomes: Counter[str] = field(default_factory=Counter)

    def __str__(self) -> str:
        decisions = sum(self.outcomes.values())
        by_outcome = ", ".join(f"{o} {self.outcomes[o]}" for o in OUTCOMES)
        return (
            f"replay: {self.records} records, {decisions} decisions ({by_outcome}), "
            f"{_count(self.dead_letters, 'dead letter')}, "
            f"{_count(self.late_vetoes, 'late veto', 'late vetoes')}"
        )


def _count(number: int, singular: str, plural: str | None = None) -> str:
    return f"{number} {singular if number == 1 else plural or singular + 's'}"


def parse_line(raw: bytes, line: int, limits: Limits = DEFAULT_LIMITS) -> ReplayRecord:
    """Check one replay line and the record in it, or raise RecordError."""
    if len(raw) > limits.max_record_bytes:
        raise RecordError(
            TOO_LARGE,
            f"line: {len(raw)} bytes exceeds the limit of {limits.max_record_bytes}",
        )
    try:
        envelope = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise RecordError(NOT_JSON, f"line: not JSON ({exc})") from exc
    if not isinstance(envelope, dict):
        raise RecordError(NOT_OBJECT, "line: not a JSON object")
    topic = envelope.get("topic")
    if topic is None:
        raise RecordError(MISSING_FIELD, "line.topic is required")
    if topic not in TOPICS:
        raise RecordError(
            BAD_VALUE, f"line.topic: {topic!r} is not one of {', '.join(TOPICS)}"
        )
    timestamp_us = _timestamp(envelope.get("timestamp"))
    value = envelope.get("value")
    if value is None:
        raise RecordError(MISSING_FIELD, "line.value is required")
    # The value sits one level below the line, and no deeper than the line
    # has opening brackets.
    is_shallow = raw.count(b"{") + raw.count(b"[") - 1 <= limits.max_depth
    record: LifecycleEvent | Intent
    if topic == LIFECYCLE_TOPIC:
        record = event_from_value(value, limits, is_shallow=is_shallow)
    else:
        record = intent_from_value(value, limits, is_shallow=is_shallow)
    return ReplayRecord(line, timestamp_us, record)


class Replayer:
    """Feeds records to the engine in time order, releasing what falls due.

    Customers' states stay in memory; a heap of due times across customers
    plays the part of the live worker's wake-ups.
    """

    def __init__(self, policy: Policy) -> None:
        self.policy = policy
        self.states: dict[str, CustomerState] = {}
        self.late_vetoes: list[LateVeto] = []
        self._wakeups: list[tuple[int, int, str]] = []
        self._scheduled: dict[str, int] = {}
        self._sequence = 0
        self._clock_us: int | None = None

    def feed(self, item: ReplayRecord) -> list[Decision]:
        """Decisions from releasing what is due by `item`, then from `item`.

        1. Move the clock to the record's timestamp (never backwards).
        2. Release every intent due by then, in due-time order.
        3. Apply the event or decide the intent.
        """
        # 1. Clock.
        now_us = item.timestamp_us
        if self._clock_us is not None and now_us < self._clock_us:
            logger.warning(
                "record out of time order line=%s timestamp_us=%s clock_us=%s",
                item.line,
                now_us,
                self._clock_us,
            )
            now_us = self._clock_us
        self._clock_us = now_us

        # 2. Release.
        decisions = self._release_until(now_us)

        # 3. The record itself.
        record = item.record
        state = self.states.get(record.customer_id)
        if state is None:
            state = CustomerState.empty(record.customer_id)
        if isinstance(record, LifecycleEvent):
            step = apply_at_us(state, record, self.policy, now_us)
        else:
            step = decide_at_us(state, record, now_us, self.policy)
        self._keep(step)
        decisions.extend(step.decisions)
        return decisions

    def finish(self) -> list[Decision]:
        """Advance the clock until nothing is waiting."""
        return self._release_until(None)

    def _release_until(self, now_us: int | None) -> list[Decision]:
        decisions: list[Decision] = []
        while self._wakeups and (now_us is None or self._wakeups[0][0] <= now_us):
            due_us, _, customer_id = heapq.heappop(self._wakeups)
            state = self.states[customer_id]
            next_due = state.next_due_us
            if next_due is None or next_due > due_us:
                continue  # superseded wake-up; a later one is queued
            step = release_at_us(state, due_us, self.policy)
            self._keep(step)
            decisions.extend(step.decisions)
        return decisions

    def _keep(self, step: Step) -> None:
        state = step.state
        customer_id = state.customer_id
        self.states[customer_id] = state
        self.late_vetoes.extend(step.late_vetoes)
        due_us = state.next_due_us
        if due_us is not None and self._scheduled.get(customer_id) != due_us:
            self._scheduled[customer_id] = due_us
            self._sequence += 1
            heapq.heappush(self._wakeups, (due_us, self._sequence, customer_id))


def run(
    policy: Policy,
    lines: Iterable[bytes],
    file_name: str,
    out: IO[bytes],
    dead_letters: IO[bytes] | None = None,
    table: bool = False,
    limits: Limits = DEFAULT_LIMITS,
) -> Summary:
    """Replay `lines`, writing decisions to `out`; the summary of the run."""
    with _few_collections():
        return _run(policy, lines, file_name, out, dead_letters, table, limits)


@contextmanager
def _few_collections() -> Iterator[None]:
    """Run the cyclic garbage collector rarely while the replay runs.

    A replay holds every customer's state in memory, and the collector would
    walk all of it again and again; the states hold no reference cycles, so
    those walks find nothing. They cost a quarter of a replay's time.
    """
    thresholds = gc.get_threshold()
    gc.set_threshold(_REPLAY_GC_THRESHOLD, *thresholds[1:])
    try:
        yield
    finally:
        gc.set_threshold(*thresholds)


def _run(
    policy: Policy,
    lines: Iterable[bytes],
    file_name: str,
    out: IO[bytes],
    dead_letters: IO[bytes] | None,
    table: bool,
    limits: Limits,
) -> Summary:
    replayer = Replayer(policy)
    summary = Summary()
    write = _write_table_row if table else _write_json_line
    if table:
        out.write(_table_header())
    for number, raw in enumerate(lines, start=1):
        raw = raw.rstrip(b"\r\n")
        if not raw.strip():
            continue
        summary.records += 1
        try:
            item = parse_line(raw, number, limits)
        except RecordError as error:
            summary.dead_letters += 1
            _dead_letter(error, raw, file_name, number, dead_letters)
            continue
        for decision in replayer.feed(item):
            summary.outcomes[decision.outcome] += 1
            write(out, decision)
    for decision in replayer.finish():
        summary.outcomes[decision.outcome] += 1
        write(out, decision)
    summary.late_vetoes = len(replayer.late_vetoes)
    return summary


def _dead_letter(
    error: RecordError, raw: bytes, file_name: str, line: int, out: IO[bytes] | None
) -> None:
    if out is None:
        logger.warning(
            "dead letter line=%s kind=%s message=%s", line, error.kind, error.message
        )
        return
    key = _key_bytes(raw)
    record = dead_letter(error, {"file": file_name, "line": line}, key, raw)
    out.write(orjson.dumps(record, option=orjson.OPT_SORT_KEYS) + b"\n")


def _key_bytes(raw: bytes) -> bytes | None:
    try:
        envelope = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return None
    key = envelope.get("key") if isinstance(envelope, dict) else None
    if key is None:
        return None
    return key.encode("utf-8") if isinstance(key, str) else orjson.dumps(key)


def _timestamp(value: Any) -> int:
    if type(value) is int:
        return value * _MS_US
    if isinstance(value, str):
        moment = parse_time(value)
        if moment is None:
            raise RecordError(
                BAD_TIME,
                f"line.timestamp: {value!r} is not an RFC 3339 time with an offset",
            )
        return to_us(moment)
    if isinstance(value, bool) or not isinstance(value, int | float):
        if value is None:
            raise RecordError(MISSING_FIELD, "line.timestamp is required")
        raise RecordError(
            WRONG_TYPE,
            "line.timestamp: must be an RFC 3339 string or epoch milliseconds",
        )
    return int(value * _MS_US)


def _write_json_line(out: IO[bytes], decision: Decision) -> None:
    out.write(orjson.dumps(decision.to_dict(), option=_JSON_LINE))


def _table_header() -> bytes:
    cells = "".join(name.ljust(width) for name, width in _TABLE_COLUMNS)
    return f"{cells}rule: detail\n".encode()


def _write_table_row(out: IO[bytes], decision: Decision) -> None:
    record = decision.to_dict()
    values = (
        record["decided_at"],
        decision.customer_id,
        decision.campaign_id or "-",
        decision.channel,
        decision.category,
        decision.outcome,
    )
    cells = "".join(
        # A long value overflows its column rather than losing characters.
        str(value).ljust(width - 1) + " "
        for value, (_, width) in zip(values, _TABLE_COLUMNS, strict=True)
    )
    reasons = "; ".join(f"{r.rule}: {r.detail}" for r in decision.reasons)
    if decision.release_us is not None:
        reasons += f" (re-check at {record['release_at']})"
    out.write(f"{cells}{reasons or '-'}\n".encode())
