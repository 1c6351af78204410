"""What the agent does with one input record.

The handler reads the customer's state, lets the engine decide, writes the
state back and emits the results. It holds no policy logic of its own; the
Kafka side (tables, topics, the clock) is reached through small seams so the
same code runs under Faust and in tests.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Iterable, MutableMapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol

import orjson
from aiokafka.partitioner import murmur2

from app import metrics
from app.engine import (
    CustomerState,
    Limits,
    Policy,
    Step,
    apply,
    dead_letter,
    decide,
    decode_event,
    decode_intent,
    decode_state,
    encode_state,
    encoded_pending,
    release,
)
from app.engine.records import UNKNOWN_SOURCE, WRONG_PARTITION
from app.errors import RecordError
from app.settings import Settings
from app.streams.due_index import DueIndex

logger = logging.getLogger(__name__)

KIND_LIFECYCLE = "lifecycle"
KIND_INTENT = "intent"
KIND_WAKEUP = "wakeup"

SOURCE_TOPIC_HEADER = "tact-source-topic"
SOURCE_PARTITION_HEADER = "tact-source-partition"
SOURCE_OFFSET_HEADER = "tact-source-offset"
INTENT_ID_HEADER = "tact-intent-id"
DECISION_ID_HEADER = "tact-decision-id"

# A lost wake-up (its producer crashed) is sent again after this long.
WAKEUP_RETRY_US = 5_000_000

COMMON_CHANNELS = frozenset({"email", "push", "sms", "in_app", "webhook", "whatsapp"})

Headers = list[tuple[str, bytes]]


@dataclass(frozen=True)
class InputRecord:
    """The parts of a consumed Kafka record the handler needs."""

    topic: str
    partition: int
    offset: int
    timestamp_ms: int | None
    key: bytes | None
    value: bytes | None
    headers: Headers


class Outputs(Protocol):
    async def send(
        self,
        topic: str,
        key: bytes | None,
        value: bytes,
        headers: Headers | None = None,
    ) -> Awaitable[Any]:
        """Queue a record; the awaitable completes once Kafka has it."""
        ...


class StateStore(Protocol):
    """The customer table: bytes in, bytes out, one key per customer."""

    def get(self, key: bytes) -> bytes | None: ...

    async def put(self, key: bytes, value: bytes) -> None:
        """Write the customer's state; its changelog record is queued for
        Kafka when this returns."""
        ...


Clock = Callable[[], datetime]


def wall_clock() -> datetime:
    return datetime.now(UTC)


def partition_for(customer_id: str, partitions: int) -> int:
    """The partition Kafka's default (murmur2) partitioner gives this customer."""
    hashed: int = murmur2(customer_id.encode())
    return (hashed & 0x7FFFFFFF) % partitions


class RecordHandler:
    def __init__(
        self,
        settings: Settings,
        policy: Policy,
        partitions: int,
        store: StateStore,
        outputs: Outputs,
        clock: Clock = wall_clock,
    ) -> None:
        self.settings = settings
        self.policy = policy
        self.partitions = partitions
        self.store = store
        self.outputs = outputs
        self.clock = clock
        self.waits_for_delivery = settings.processing_guarantee == "at_least_once"
        self.limits = Limits(
            max_record_bytes=settings.max_record_bytes, max_depth=settings.max_nesting
        )
        self.due = DueIndex()
        self._pending: MutableMapping[str, int] = {}
        self.customers = 0
        # True from the end of a table recovery until partitions are revoked.
        self.is_recovered = False
        # (topic, partition) -> (last processed offset, monotonic time of it)
        self.progress: dict[tuple[str, int], tuple[int, float]] = {}
        self._kinds = {
            settings.topic_lifecycle: KIND_LIFECYCLE,
            settings.topic_intents: KIND_INTENT,
            settings.topic_wakeups: KIND_WAKEUP,
        }

    async def handle(self, record: InputRecord) -> None:
        """Decide one input record.

        1. Classify it by topic and decode it; bad input goes to dead letters.
        2. Check that it sits on its customer's partition.
        3. Read the customer's state.
        4. Let the engine apply the event, decide the intent or release what is due.
        5. Write the new state, then emit decisions and approved sends.
        6. Update the due index and the metrics.
        """
        # 1. Classify and decode.
        self.progress[(record.topic, record.partition)] = (
            record.offset,
            time.monotonic(),
        )
        kind = self._kind_of(record)
        metrics.records_consumed.labels(record.topic, kind or "unknown").inc()
        if kind is None:
            await self._dead_letter(
                RecordError(UNKNOWN_SOURCE, "repartitioned record has no source topic"),
                record,
            )
            return
        try:
            decoded = self._decode(kind, record.value)
        except RecordError as error:
            await self._dead_letter(error, record)
            return
        customer_id = decoded.customer_id

        # 2. The customer's partition.
        if partition_for(customer_id, self.partitions) != record.partition:
            await self._on_wrong_partition(record, kind, customer_id)
            return

        # 3. Read state.
        key = customer_id.encode()
        stored = self.store.get(key)
        state = (
            CustomerState.empty(customer_id) if stored is None else decode_state(stored)
        )
        now = self.clock()

        # 4. Decide.
        steps = []
        if state.next_due is not None and state.next_due <= now:
            steps.append(release(state, now, self.policy))
            if isinstance(decoded, WakeUp):
                lateness_us = max(_to_us(now) - decoded.due_us, 0)
                metrics.release_lateness.observe(lateness_us / 1e6)
        current = steps[-1].state if steps else state
        if kind == KIND_LIFECYCLE:
            steps.append(apply(current, decoded, self.policy, now=now))
        elif kind == KIND_INTENT:
            steps.append(decide(current, decoded, now, self.policy))
        final = steps[-1].state if steps else state

        # 5. Emit, then write state. Under at_least_once the outputs must be
        # in Kafka before the state that records them: a crash in between
        # then repeats the decision, with the same decision_id, rather than
        # losing it. Under exactly_once both commit in one transaction.
        deliveries: list[Awaitable[Any]] = []
        for step in steps:
            deliveries.extend(await self._emit(customer_id, step))
        if deliveries and self.waits_for_delivery:
            await asyncio.gather(*deliveries)
        # An unchanged state (a wake-up with nothing due, an event already
        # applied) is not written again.
        if final is not state:
            if stored is None:
                self.customers += 1
                metrics.customers.set(self.customers)
            await self.store.put(key, encode_state(final))
        is_decided_now = kind == KIND_INTENT and bool(steps[-1].decisions)
        if is_decided_now and record.timestamp_ms is not None:
            latency_s = now.timestamp() - record.timestamp_ms / 1000
            metrics.decision_latency.observe(max(latency_s, 0.0))

        # 6. Index and metrics.
        self._track(
            customer_id, record.partition, final.next_due_us, final.pending_count
        )

    def rebuild_index(self, states: Iterable[tuple[int, bytes, bytes]]) -> None:
        """Refill the due index from the (partition, key, value) of every
        state in the owned partitions."""
        self.due.clear()
        self._pending.clear()
        self.customers = 0
        for partition, key, value in states:
            self.customers += 1
            # Only what the index needs: decoding whole states took most of
            # the rebuild.
            due_us, pending = encoded_pending(value)
            self._track(key.decode(), partition, due_us, pending)
        metrics.pending_intents.set(sum(self._pending.values()))
        metrics.customers.set(self.customers)
        logger.info(
            "due index rebuilt customers=%d customers_with_pending=%d pending=%d",
            self.customers,
            len(self.due),
            sum(self._pending.values()),
        )

    def due_wakeups(self) -> list[tuple[bytes, bytes]]:
        """Wake-up records, as (key, value), for every customer now due."""
        now_us = _to_us(self.clock())
        return [
            (
                customer_id.encode(),
                orjson.dumps({"customer_id": customer_id, "due_us": due_us}),
            )
            for customer_id, due_us in self.due.pop_due(now_us, WAKEUP_RETRY_US)
        ]

    def _kind_of(self, record: InputRecord) -> str | None:
        return self._kinds.get(self._source_topic(record))

    def _decode(self, kind: str, value: bytes | None) -> Any:
        if value is None:
            raise RecordError("not_json", f"{kind} record has no value (a tombstone)")
        if kind == KIND_LIFECYCLE:
            return decode_event(value, self.limits)
        if kind == KIND_INTENT:
            return decode_intent(value, self.limits)
        return decode_wakeup(value)

    async def _emit(self, customer_id: str, step: Step) -> list[Awaitable[Any]]:
        """Send a step's decisions and approved sends; their delivery futures."""
        key = customer_id.encode()
        deliveries = []
        for decision in step.decisions:
            delivery = await self.outputs.send(
                self.settings.topic_decisions, key, orjson.dumps(decision.to_dict())
            )
            deliveries.append(delivery)
            rule = decision.reasons[0].rule if decision.reasons else "none"
            metrics.decisions.labels(
                decision.outcome, rule, self._channel_label(decision.channel)
            ).inc()
        for approved in step.approved:
            headers = [
                (INTENT_ID_HEADER, str(approved["intent_id"]).encode()),
                (DECISION_ID_HEADER, str(approved["decision"]["decision_id"]).encode()),
            ]
            delivery = await self.outputs.send(
                self.settings.topic_approved, key, orjson.dumps(approved), headers
            )
            deliveries.append(delivery)
        for veto in step.late_vetoes:
            metrics.late_vetoes.labels(veto.rule, veto.entity_type or "none").inc()
        return deliveries

    async def _on_wrong_partition(
        self, record: InputRecord, kind: str, customer_id: str
    ) -> None:
        topic = self._source_topic(record)
        from_repartition = record.topic == self.settings.topic_repartition
        if self.settings.partition_mismatch == "repartition" and not from_repartition:
            metrics.partition_mismatches.labels(topic, "repartitioned").inc()
            headers = [
                (SOURCE_TOPIC_HEADER, topic.encode()),
                (SOURCE_PARTITION_HEADER, str(record.partition).encode()),
                (SOURCE_OFFSET_HEADER, str(record.offset).encode()),
            ]
            await self.outputs.send(
                self.settings.topic_repartition,
                customer_id.encode(),
                record.value or b"",
                headers,
            )
            return
        metrics.partition_mismatches.labels(topic, "dead_lettered").inc()
        expected = partition_for(customer_id, self.partitions)
        await self._dead_letter(
            RecordError(
                WRONG_PARTITION,
                f"{kind} for customer {customer_id!r} is on partition "
                f"{record.partition}, but murmur2 of its customer_id gives "
                f"{expected}; the producer uses another partitioner",
            ),
            record,
        )

    async def _dead_letter(self, error: RecordError, record: InputRecord) -> None:
        metrics.dead_letters.labels(error.kind).inc()
        logger.debug(
            "dead letter kind=%s topic=%s partition=%d offset=%d",
            error.kind,
            record.topic,
            record.partition,
            record.offset,
        )
        source = {
            "topic": record.topic,
            "partition": record.partition,
            "offset": record.offset,
            "timestamp": record.timestamp_ms,
        }
        value = dead_letter(
            error,
            source,
            record.key,
            record.value or b"",
            keep_bytes=self.settings.dead_letter_keep_bytes,
        )
        await self.outputs.send(
            self.settings.topic_dead_letters, record.key, orjson.dumps(value)
        )

    def _source_topic(self, record: InputRecord) -> str:
        if record.topic == self.settings.topic_repartition:
            return (
                dict(record.headers)
                .get(SOURCE_TOPIC_HEADER, b"")
                .decode("utf-8", "replace")
            )
        return record.topic

    def _track(
        self, customer_id: str, partition: int, due_us: int | None, pending: int
    ) -> None:
        self.due.set(customer_id, partition, due_us)
        before = self._pending.get(customer_id, 0)
        if pending:
            self._pending[customer_id] = pending
        else:
            self._pending.pop(customer_id, None)
        if pending != before:
            metrics.pending_intents.inc(pending - before)

    def _channel_label(self, channel: str) -> str:
        return channel if channel in COMMON_CHANNELS else "other"


@dataclass(frozen=True)
class WakeUp:
    customer_id: str
    due_us: int


def decode_wakeup(value: bytes) -> WakeUp:
    try:
        obj = orjson.loads(value)
    except orjson.JSONDecodeError as exc:
        raise RecordError("not_json", f"wake-up is not JSON: {exc}") from None
    if not isinstance(obj, dict) or not isinstance(obj.get("customer_id"), str):
        raise RecordError(
            "missing_field", "wake-up.customer_id: missing or not a string"
        )
    due_us = obj.get("due_us")
    if not isinstance(due_us, int):
        raise RecordError("wrong_type", "wake-up.due_us: missing or not an integer")
    return WakeUp(obj["customer_id"], due_us)


def _to_us(moment: datetime) -> int:
    return int(moment.timestamp() * 1_000_000)
