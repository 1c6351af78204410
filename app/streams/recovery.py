"""Table recovery: where it may stop, and a faster way to get there.

Faust's recovery reads a changelog partition until it has seen the record
just below the end it was given. Under exactly_once that end is the last
stable offset, and just below it sits the marker that committed the last
transaction, a record no consumer is handed. Faust then waits for two idle
five-second polls before it gives up looking, on every start and every
rebalance. So the end handed to Faust is one past the last record a
read_committed consumer actually receives.

Faust hands each changelog record through its stream machinery one at a
time, a few thousand records a second here. Before it starts, a consumer of
our own reads the active partitions in fetch-sized batches and applies them
with the table's own batch write, which also records the offset reached;
Faust then reads only what is left, which is nothing unless the read ran
out of time.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any, NamedTuple

from aiokafka import AIOKafkaConsumer, TopicPartition
from faust.tables import TableManager
from faust.tables.recovery import Recovery
from faust.types import TP

logger = logging.getLogger(__name__)

# Records read back from the end per try; a partition whose last window
# holds only aborted transactions is read further back, four times as far.
WINDOW = 512
SCAN_TIMEOUT_S = 10.0
# The read-ahead runs inside a step Faust times out after its broker request
# timeout; it stops at this share of it and leaves the rest to Faust.
READ_AHEAD_SHARE = 0.5
READ_AHEAD_FETCH_BYTES = 8 * 1024 * 1024


async def ends_past_last_record(
    options: Mapping[str, Any],
    stable_ends: Mapping[Any, int],
    found: set[Any] | None = None,
) -> dict[Any, int]:
    """For each partition, one past its last committed record below its last
    stable offset; the last stable offset itself where that is not found in
    time (Faust then finds the end the slow way). The partitions whose last
    record was found are added to `found`."""
    ends = dict(stable_ends)
    wanted = [tp for tp, end in stable_ends.items() if end is not None and end > 0]
    if not wanted:
        return ends
    consumer = AIOKafkaConsumer(
        isolation_level="read_committed", enable_auto_commit=False, **options
    )
    await consumer.start()
    try:
        deadline = time.monotonic() + SCAN_TIMEOUT_S
        partitions = [TopicPartition(tp.topic, tp.partition) for tp in wanted]
        consumer.assign(partitions)
        firsts = await consumer.beginning_offsets(partitions)
        for tp, partition in zip(wanted, partitions, strict=True):
            last = await _last_record(
                consumer, partition, firsts[partition], ends[tp], deadline
            )
            if last is not None:
                ends[tp] = last + 1
                if found is not None:
                    found.add(tp)
            elif time.monotonic() < deadline:
                # Nothing committed in the whole partition.
                ends[tp] = firsts[partition]
    finally:
        await consumer.stop()
    return ends


async def _last_record(
    consumer: AIOKafkaConsumer,
    tp: TopicPartition,
    first: int,
    stable_end: int,
    deadline: float,
) -> int | None:
    """The offset of the last record below `stable_end`, reading back in
    growing windows; None when there is none or time ran out."""
    high, window = stable_end, WINDOW
    while high > first:
        low = max(high - window, first)
        consumer.seek(tp, low)
        last: int | None = None
        while await consumer.position(tp) < high:
            if time.monotonic() > deadline:
                logger.info("changelog end not found in time partition=%s", tp)
                return None
            batches = await consumer.getmany(tp, timeout_ms=200)
            for record in batches.get(tp, []):
                if record.offset < high:
                    last = record.offset
        if last is not None:
            return last
        high, window = low, window * 4
    return None


class ChangelogRecord(NamedTuple):
    """A changelog record shaped as the table's batch write reads one."""

    tp: TP
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None

    @property
    def message(self) -> ChangelogRecord:
        return self


async def read_changelog(
    options: Mapping[str, Any],
    spans: Mapping[TP, tuple[int, int]],
    apply: Callable[[TP, Sequence[ChangelogRecord]], None],
    *,
    read_committed: bool,
    timeout_s: float,
) -> dict[TP, int]:
    """Read each partition from the first through the last offset of its
    span, handing its records to `apply` a fetch at a time. Returns the
    offset each partition was read through: the span's last where it was
    read to the end, else the last record applied (first - 1 for none)."""
    reached = {tp: first - 1 for tp, (first, _) in spans.items()}
    left = {tp: last for tp, (first, last) in spans.items() if first <= last}
    if not left:
        return reached
    consumer = AIOKafkaConsumer(
        isolation_level="read_committed" if read_committed else "read_uncommitted",
        enable_auto_commit=False,
        max_partition_fetch_bytes=READ_AHEAD_FETCH_BYTES,
        **options,
    )
    await consumer.start()
    try:
        deadline = time.monotonic() + timeout_s
        by_kafka = {TopicPartition(tp.topic, tp.partition): tp for tp in left}
        consumer.assign(list(by_kafka))
        for kafka_tp, tp in by_kafka.items():
            consumer.seek(kafka_tp, spans[tp][0])
        # At least one fetch: a consumer stopped before its first await
        # fails to stop in aiokafka.
        while left:
            batches = await consumer.getmany(timeout_ms=200)
            for kafka_tp, fetched in batches.items():
                tp = by_kafka[kafka_tp]
                last = left.get(tp)
                if last is None:
                    continue
                records = [
                    ChangelogRecord(tp, tp.partition, r.offset, r.key, r.value)
                    for r in fetched
                    if r.offset <= last
                ]
                if records:
                    apply(tp, records)
                    reached[tp] = records[-1].offset
            for kafka_tp, tp in by_kafka.items():
                if tp in left and await consumer.position(kafka_tp) > left[tp]:
                    reached[tp] = left.pop(tp)
                    consumer.pause(kafka_tp)
            if time.monotonic() >= deadline:
                break
    finally:
        await consumer.stop()
    return reached


class ReadAheadRecovery(Recovery):
    """Faust's recovery, with the active changelog partitions read ahead
    by `read_changelog` once their offsets and ends are known."""

    async def _build_offsets(
        self, consumer: Any, tps: set[TP], destination: Any, title: str
    ) -> None:
        await super()._build_offsets(consumer, tps, destination, title)
        if destination is self.active_offsets and tps:
            await self._read_ahead(tps)

    async def _read_ahead(self, tps: set[TP]) -> None:
        options = getattr(self.app, "client_options", None)
        if not options:
            return
        offsets, highwaters = self.active_offsets, self.active_highwaters
        spans = {
            tp: (offsets[tp] + 1, highwaters[tp])
            for tp in tps
            if offsets.get(tp) is not None
            and highwaters.get(tp) is not None
            and highwaters[tp] > offsets[tp]
        }
        if not spans:
            return
        started = time.monotonic()
        applied = 0

        def apply(tp: TP, records: Sequence[ChangelogRecord]) -> None:
            nonlocal applied
            # The batch write reads only what a ChangelogRecord has.
            table: Any = self.tp_to_table[tp]
            table.apply_changelog_batch(records)
            applied += len(records)

        reached = await read_changelog(
            options,
            spans,
            apply,
            read_committed=self.app.in_transaction,
            timeout_s=self.app.conf.broker_request_timeout * READ_AHEAD_SHARE,
        )
        for tp, offset in reached.items():
            offsets[tp] = max(offsets[tp], offset)
        # Past the time limit Faust's own reader reads the rest.
        logger.info(
            "changelog read ahead partitions=%d records=%d seconds=%.3f "
            "offsets_left=%d",
            len(spans),
            applied,
            time.monotonic() - started,
            sum(last - reached[tp] for tp, (_, last) in spans.items()),
        )


class ReadAheadTableManager(TableManager):
    """Faust's table manager with `ReadAheadRecovery`."""

    @property
    def recovery(self) -> Recovery:
        if self._recovery is None:
            self._recovery = ReadAheadRecovery(
                self.app, self, beacon=self.beacon, loop=self.loop
            )
        return self._recovery
