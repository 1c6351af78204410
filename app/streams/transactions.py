"""Keep every output of an event inside that event's Kafka transaction.

Faust's exactly-once mode picks the transactional producer for a send by the
*destination* topic's partition. Tact's outputs (approved sends, decisions,
dead letters) are not consumed by the worker, so Faust finds no transaction
for them and sends them outside any transaction, where a crash before the
commit repeats them. Here a send made while an event is processed joins the
transaction of the event's *source* partition — the same one that commits
that event's offset and its changelog writes. Sends made outside an event
(the wake-up timer) go through the plain producer: a wake-up is idempotent.

Table writes are the exception to "outside an event": Faust puts changelog
records in a send buffer that a task of its own drains, where no event is
current. A changelog record goes to the partition of the event that wrote
it, so its transaction is the one of that partition; sent anywhere else,
the new state would outlive an aborted transaction while the sends it
stands for vanish with it.

Two more Faust behaviours would commit the offset of a record nobody
processed, which loses it under either guarantee:
- A stream drops the records it reads while flow is suspended (during a
  rebalance or table recovery) or that belong to an older generation, and
  acknowledges them as if processed. Here only a record the agent marked as
  handled can be acknowledged; a dropped one is read again after the seek
  to the committed offset that always follows.
- After recovery Faust resumes the stream partitions and only then seeks
  them to their committed offsets, so the running fetcher delivers records
  from the old position while the seek resets the read offsets; the jump
  that follows is booked as a gap (offsets that hold no record) and gaps
  count as processed. Here the stream partitions stay paused while they
  are sought.

A record can still be fetched and dropped with no seek after it, and
Faust's check that a commit starts at the committed offset lets exactly one
missing offset through, so a commit passes that record. Here every record
fetched for a stream partition counts until the agent has handled it or a
seek reads it again, and a commit that would pass one stops the worker
instead: the restart reads it again, and under exactly_once the open
transaction, with whatever came after that record, is aborted. When nothing
after the dropped record is handled either, its partition commits nothing
more; a partition holding such a record that has committed nothing for a
minute, with no rebalance or seek since, stops the worker the same way.

Under exactly_once, Faust takes a changelog partition's end for table
recovery from the last fetch response of that partition. A partition just
assigned has had no fetch yet, so its end reads as "empty": recovery reads
nothing and the worker decides on the state it happens to have locally,
which after partitions move is stale or empty. Here the end is asked of
the broker, which under read_committed answers with the last stable
offset: everything committed, nothing of an open transaction (recovery.py
then finds the last record below it).

When the group rebalances again while a recovery is still running, Faust
lets that recovery finish: it resumes the revoked assignment's partitions
and seeks them after the group has moved on, and the agent then decides
while the next assignment is being recovered, from positions the next
seek rewinds, so records are decided twice. Here a seek between a
revocation and the next assignment, or one the group rebalanced during,
leaves the partitions paused for the next assignment's recovery.

Right after a transaction commits, its offsets are not yet what the broker
hands out (see offsets.py), so under exactly_once a rebalance reads
committed offsets, and the changelog's end, only once they are stable.

Commits run on a timer while the agent processes records, so a commit
could land between an event's state write and its sends, or before its
buffered changelog record has reached the producer: the transaction would
then hold half an event, and a crash afterwards would lose or repeat a
send. Here the agent handles and acknowledges a record, and the consumer
commits, under one lock; table writes reach the producer while their
record is handled (see store.py), and a commit still drains Faust's send
buffer for anything else. Every transaction then ends at an event boundary
with all of that event's records and its offset in it.
"""

from __future__ import annotations

import asyncio
import logging
import time
import weakref
from collections import defaultdict
from collections.abc import AsyncIterator, Awaitable, Callable, Collection, Mapping
from contextlib import asynccontextmanager
from typing import Any

import faust
from aiokafka import AIOKafkaProducer, TopicPartition
from aiokafka.errors import ProducerFenced
from faust import current_event
from faust.transport import by_url
from faust.transport.consumer import Consumer, TransactionManager
from faust.transport.drivers.aiokafka import Producer
from faust.types import TP, HeadersArg, Message, RecordMetadata, TransportT
from mode import Service
from mode.services import WaitArgT, WaitResults
from mode.utils.times import Seconds

from app.streams import eager
from app.streams.offsets import wait_for_stable_offsets
from app.streams.recovery import ends_past_last_record

logger = logging.getLogger(__name__)

# An offset commit stays pending at most until its transaction times out
# (a minute by default); past this the worker seeks anyway, and says so.
STABLE_OFFSETS_TIMEOUT_S = 90.0
# A stream partition holding a fetched record nobody handled that commits
# nothing for this long stops the worker; how often that is checked.
STALL_S = 60.0
STALL_CHECK_S = 5.0
# Right after a commit, the broker's transaction verification often refuses
# the next transaction's first sends while the coordinator still finishes
# the last one (as NOT_ENOUGH_REPLICAS, for clients as old as aiokafka's
# protocol); aiokafka's retry backoff of 100 ms then holds the next commit
# that long. 20 ms is what aiokafka waits in its own such case.
TRANSACTION_RETRY_BACKOFF_MS = 20


class EventScopedTransactionManager(TransactionManager):
    async def send(
        self,
        topic: str,
        key: bytes | None,
        value: bytes | None,
        partition: int | None,
        timestamp: float | None,
        headers: HeadersArg | None,
        *,
        transactional_id: str | None = None,
    ) -> Any:
        return await self.producer.send(
            topic,
            key,
            value,
            partition,
            timestamp,
            headers,
            transactional_id=self._transaction_for(topic, partition),
        )

    async def send_and_wait(
        self,
        topic: str,
        key: bytes | None,
        value: bytes | None,
        partition: int | None,
        timestamp: float | None,
        headers: HeadersArg | None,
        *,
        transactional_id: str | None = None,
    ) -> RecordMetadata:
        fut = await self.send(topic, key, value, partition, timestamp, headers)
        result: RecordMetadata = await fut
        return result

    async def commit(
        self, offsets: Mapping[TP, int], start_new_transaction: bool = True
    ) -> bool:
        by_transaction: defaultdict[str, dict[TP, int]] = defaultdict(dict)
        for tp, offset in offsets.items():
            by_transaction[self._transaction_id(tp.topic, tp.partition)][tp] = offset
        # Faust skips a transaction whose producer it has already stopped.
        open_ = self.producer._transaction_producers  # type: ignore[attr-defined]
        committed = {
            tp.partition
            for tid, tps in by_transaction.items()
            if tid in open_
            for tp in tps
        }
        # One transaction per partition, each a few round trips to the
        # broker: committed side by side, not one after another, since the
        # agent waits while they commit.
        outcomes = await asyncio.gather(
            *(
                self.producer.commit_transactions(
                    {tid: tps},
                    self.app.conf.id,
                    start_new_transaction=start_new_transaction,
                )
                for tid, tps in by_transaction.items()
            ),
            return_exceptions=True,
        )
        errors = [o for o in outcomes if isinstance(o, BaseException)]
        fenced = [e for e in errors if isinstance(e, ProducerFenced)]
        if fenced:
            # Another worker owns these partitions now; what this one wrote
            # since its last commit is aborted.
            self.log.warning("transaction fenced, stopping error=%r", fenced[0])
            await self.app.crash(fenced[0])
            return False
        if errors:
            raise errors[0]
        app = self.app
        if isinstance(app, TactApp):
            await app.committed(committed)
        return True

    def _transaction_for(self, topic: str, partition: int | None) -> str | None:
        event = current_event()
        if event is not None:
            source: TP = event.message.tp
            return self._transaction_id(source.topic, source.partition)
        if partition is not None and topic in self.app.tables.changelog_topics:
            return self._transaction_id(topic, partition)
        return None

    def _transaction_id(self, topic: str, partition: int) -> str:
        # The changelog is co-partitioned with the inputs, so it shares their
        # group and each partition's transaction.
        group = self.app.assignor.group_for_topic(topic)
        return f"{self.app.conf.id}-{group}-{partition}"


class SkippedRecord(Exception):
    """A commit would pass a record that was fetched but never handled."""

    def __init__(self, tp: TP, offset: int, commit: int) -> None:
        super().__init__(
            f"{tp.topic} partition {tp.partition} offset {offset} was fetched "
            f"and never handled, and the commit would move to {commit}"
        )
        self.tp, self.offset, self.commit = tp, offset, commit


class PartitionStalled(Exception):
    """A stream partition holds a record nobody handled and commits nothing."""


class HandledOnlyConsumer(Consumer):
    """Acknowledges a record only once the agent has handled it, and seeks
    stream partitions only while they are paused and only for the current
    assignment."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._handled: weakref.WeakSet[Message] = weakref.WeakSet()
        self.handling = asyncio.Lock()
        # False from a revocation until the next assignment.
        self.is_assigned = False
        # Counts revocations and assignments, to tell a seek that outlived
        # its assignment.
        self.rebalances = 0
        self._seeking = asyncio.Lock()
        # The ends the last recovery was given where its last record is known.
        self._recovery_ends: tuple[int, dict[TP, int]] = (-1, {})
        # Offsets of stream records fetched and not yet handled, by partition.
        self._unhandled: defaultdict[TP, set[int]] = defaultdict(set)
        # A stream partition's committed offset, and since when a record has
        # waited unhandled with the commit there.
        self._progress: dict[TP, tuple[int | None, float]] = {}
        self._sought_at = time.monotonic()

    async def on_partitions_revoked(self, revoked: set[TP]) -> None:
        self.is_assigned = False
        self.rebalances += 1
        # The seek that ends the next assignment reads all of it again.
        self._unhandled.clear()
        await super().on_partitions_revoked(revoked)

    async def on_partitions_assigned(
        self, assigned: set[TP], generation_id: int = 0
    ) -> None:
        self.is_assigned = True
        self.rebalances += 1
        await super().on_partitions_assigned(assigned, generation_id)

    async def commit(self, *args: Any, **kwargs: Any) -> bool:
        async with self.handling:
            buffer = self.app.producer.buffer
            while buffer.size:
                await buffer.flush()
            try:
                committed: bool = await super().commit(*args, **kwargs)
            except SkippedRecord as error:
                logger.error(
                    "record fetched and never handled, stopping topic=%s "
                    "partition=%d offset=%d",
                    error.tp.topic,
                    error.tp.partition,
                    error.offset,
                )
                await self.app.crash(error)
                return False
            return committed

    async def wait_first(
        self,
        *coros: WaitArgT,
        timeout: Seconds | None = None,  # noqa: ASYNC109  # mode's signature
    ) -> WaitResults:
        """Hand a fetched record to the streams without a task when it can.

        Faust's consumer calls this only to deliver a fetched record, racing
        the delivery against a flow suspension, the stop and a crash with a
        task for each: that cost more than the delivery, and its turns of the
        event loop let the producer send every record of the agent in a
        produce request of its own. A delivery that ends without waiting
        cannot lose that race, so it runs at once; one that has to wait (a
        full stream buffer) races as before.
        """
        delivery, *others = coros
        # should_stop covers a crash too.
        if (
            self.suspend_flow.is_set()
            or self.should_stop
            or not asyncio.iscoroutine(delivery)
        ):
            return await self._race(*coros, timeout=timeout)
        is_done, outcome = eager.start(delivery)
        if not is_done:
            return await self._race(outcome, *others, timeout=timeout)
        for other in others:
            if asyncio.iscoroutine(other):
                other.close()
        return WaitResults([delivery], [outcome], False)

    async def _race(
        self,
        *coros: WaitArgT,
        timeout: Seconds | None,  # noqa: ASYNC109  # mode's signature
    ) -> WaitResults:
        # mode's annotation leaves out the None its default is.
        return await super().wait_first(*coros, timeout=timeout)  # type: ignore[arg-type]

    async def _wait_next_records(self, timeout: float) -> Any:  # noqa: ASYNC109
        records, active = await super()._wait_next_records(timeout)
        for tp, batch in (records or {}).items():
            if not self._is_changelog_tp(tp):
                self._unhandled[tp].update(record.offset for record in batch)
        return records, active

    def _new_offset(self, tp: TP) -> int | None:
        offset: int | None = super()._new_offset(tp)
        unhandled = self._unhandled.get(tp)
        # Most commits pass no unhandled offset; min() keeps them cheap.
        if offset is not None and unhandled and min(unhandled) < offset:
            committed = self._committed_offset[tp] or 0
            passed = [o for o in unhandled if committed <= o < offset]
            if passed:
                raise SkippedRecord(tp, min(passed), offset)
            # Left below the commit: fetched before a seek and dropped as read.
            self._unhandled[tp] = {o for o in unhandled if o >= offset}
        return offset

    def _unhandled_since_commit(self, tp: TP) -> list[int]:
        committed = self._committed_offset[tp] or 0
        return [o for o in self._unhandled.get(tp, ()) if o >= committed]

    def mark_handled(self, message: Message) -> None:
        self._handled.add(message)
        self._unhandled[message.tp].discard(message.offset)

    def ack(self, message: Message) -> bool:
        if message not in self._handled:
            return False
        self._handled.discard(message)
        acked: bool = super().ack(message)
        return acked

    async def highwaters(self, *partitions: TP) -> Mapping[TP, int]:
        thread: Any = self._thread  # type: ignore[attr-defined]  # the driver's
        client = thread._ensure_consumer()
        if self.in_transaction:
            # A transaction committed just before the rebalance may not have
            # reached the changelog's end yet either.
            await self._wait_for_stable_offsets()
        ends: Mapping[TP, int] = await thread.call_thread(
            client.end_offsets, list(partitions)
        )
        app = self.app
        found: set[TP] = set()
        if self.in_transaction and isinstance(app, TactApp) and app.client_options:
            ends = await ends_past_last_record(app.client_options, ends, found)
        ends = {tp: self._not_before_persisted(tp, end) for tp, end in ends.items()}
        self._recovery_ends = (self.rebalances, {tp: ends[tp] for tp in found})
        return ends

    def unrecovered(self, table: Any) -> dict[TP, tuple[int | None, int]]:
        """Changelog partitions whose recovery stopped before the last record
        below the end it was given: (offset reached, end).

        Faust ends a recovery that has sat idle with the consumer's position
        past the end as if the rest were aborted transactions, even when
        records before the end were fetched and never applied (as after a
        recovery a rebalance interrupted). Only the current assignment's
        recovery is judged.
        """
        rebalances, ends = self._recovery_ends
        if rebalances != self.rebalances or not self.is_assigned:
            return {}
        short = {}
        for tp, end in ends.items():
            persisted: int | None = table.persisted_offset(tp)
            if persisted is None or persisted < end - 1:
                short[tp] = (persisted, end)
        return short

    def _not_before_persisted(self, tp: TP, end: int) -> int:
        # Just after this worker's own commit the last stable offset can
        # trail it while the commit markers are written; what the local
        # table holds is committed, so the end is at least past it.
        for table in self.app.tables.values():
            if table.changelog_topic_name == tp.topic:
                persisted: int | None = table.persisted_offset(tp)
                if persisted is not None and end <= persisted:
                    return persisted + 1
        return end

    async def perform_seek(self) -> None:
        streams = self._stream_partitions()
        active = streams & self._get_active_partitions()
        rebalances = self.rebalances
        # At once: Faust has just resumed them, and nothing may be fetched
        # for them before they are sought.
        self.pause_partitions(active)
        if not self.is_assigned:
            # A recovery of the assignment just revoked has finished while
            # the group rebalances (see the module doc).
            logger.info("recovery of a revoked assignment ended; not resuming")
            return
        # One seek at a time, so that one outlived by its assignment cannot
        # move the next assignment's partitions after those are sought.
        async with self._seeking:
            try:
                if self.rebalances == rebalances:
                    if self.in_transaction:
                        await self._wait_for_stable_offsets()
                    await super().perform_seek()
                    # Whatever was fetched is read again from the seek on.
                    self._unhandled.clear()
                    self._sought_at = time.monotonic()
            finally:
                if self.rebalances == rebalances:
                    self.resume_partitions(active)
                else:
                    logger.info("group rebalanced during a seek; not resuming")

    @Service.timer(STALL_CHECK_S)
    async def _stop_if_stalled(self) -> None:
        stalled = self.stalled(time.monotonic())
        if stalled is None:
            return
        tp, committed, offset = stalled
        logger.error(
            "partition stalled, stopping topic=%s partition=%d committed=%s "
            "unhandled=%d",
            tp.topic,
            tp.partition,
            committed,
            offset,
        )
        await self.app.crash(PartitionStalled(f"{tp.topic}[{tp.partition}]"))

    def stalled(self, now: float) -> tuple[TP, int | None, int] | None:
        """A stream partition that has held a record fetched and never
        handled for `STALL_S`, its commit unmoved and no seek since:
        (partition, committed offset, lowest such record)."""
        if not self.is_assigned or getattr(self.app, "rebalancing", False):
            return None
        for tp in self._stream_partitions():
            committed = self._committed_offset[tp]
            waiting = self._unhandled_since_commit(tp)
            if not waiting:
                # Timed from when a record is first seen waiting, not from
                # the last commit: an idle partition's next record is queued.
                self._progress.pop(tp, None)
                continue
            moved = self._progress.get(tp)
            if moved is None or moved[0] != committed:
                self._progress[tp] = (committed, now)
                continue
            since = max(moved[1], self._sought_at)
            if now - since >= STALL_S:
                return tp, committed, min(waiting)
        return None

    def _stream_partitions(self) -> set[TP]:
        return {tp for tp in self.assignment() if not self._is_changelog_tp(tp)}

    async def _wait_for_stable_offsets(self) -> None:
        """Let the offsets of transactions that have committed become
        visible before they are read (see offsets.py)."""
        thread: Any = self._thread  # type: ignore[attr-defined]  # the driver's
        partitions = [
            TopicPartition(tp.topic, tp.partition) for tp in self._stream_partitions()
        ]
        await thread.call_thread(
            wait_for_stable_offsets,
            thread._ensure_consumer(),
            partitions,
            STABLE_OFFSETS_TIMEOUT_S,
        )


class QuickRetryProducer(Producer):
    """A Faust producer whose transactional producers retry sooner."""

    def _new_producer(self, transactional_id: str | None = None) -> AIOKafkaProducer:
        if transactional_id is None:
            return super()._new_producer(transactional_id)
        settings = {
            **self._settings_default(),
            **self._settings_auth(),
            **self._settings_extra(),
            "retry_backoff_ms": TRANSACTION_RETRY_BACKOFF_MS,
        }
        return self._producer_type(**settings, transactional_id=transactional_id)


class TactApp(faust.App):
    """A Faust app whose transactions cover every output of an event, and
    whose commits cover only records that were handled."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._on_committed: list[Callable[[Collection[int]], Awaitable[None]]] = []
        # How Tact's own aiokafka clients connect (see app.security).
        self.client_options: dict[str, Any] = {}

    def on_committed(
        self, callback: Callable[[Collection[int]], Awaitable[None]]
    ) -> None:
        """Call `callback` with the input partitions of each committed
        transaction (exactly_once)."""
        self._on_committed.append(callback)

    async def committed(self, partitions: Collection[int]) -> None:
        for callback in self._on_committed:
            await callback(partitions)

    def _new_transport(self) -> TransportT:
        base = by_url(self.conf.broker_consumer[0])

        class TactConsumer(HandledOnlyConsumer, base.Consumer):  # type: ignore[misc, name-defined]  # chosen at run time
            pass

        class Transport(base):  # type: ignore[misc, valid-type]  # chosen at run time
            TransactionManager = EventScopedTransactionManager
            Consumer = TactConsumer
            Producer = QuickRetryProducer

        transport: TransportT = Transport(self.conf.broker_consumer, self)
        return transport

    async def maybe_start_producer(self) -> Any:
        """The producer a send goes through, without yielding once it runs.

        Faust guards this with mode's stampede wrapper, which yields to the
        event loop three times on every call, that is on every send: each
        yield let aiokafka's sender put the one record queued so far in a
        produce request of its own, a request per record.
        """
        if self.in_transaction:
            return self.consumer.transactions
        producer = self.producer
        if producer.started:
            return producer
        return await super().maybe_start_producer()

    async def abort_open_transactions(self) -> None:
        """Abort whatever this worker's transactions hold since its last
        commit (exactly_once, when partitions are revoked).

        Faust keeps the producers of partitions that stay with the worker,
        and their open transaction with them: sends of records whose offsets
        and table writes the rebalance discards would otherwise commit with
        the next transaction, next to the same records handled again.
        """
        producers = getattr(self.producer, "_transaction_producers", {})
        for transactional_id, producer in list(producers.items()):
            txn = producer._txn_manager
            if not txn.is_in_transaction():
                continue
            if not txn.is_empty_transaction():
                logger.info(
                    "open transaction aborted transactional_id=%s", transactional_id
                )
            await self.producer.abort_transaction(transactional_id)

    @asynccontextmanager
    async def handling(self) -> AsyncIterator[None]:
        """Handle one record with no commit in between (see the module doc)."""
        consumer = self.consumer
        if not isinstance(consumer, HandledOnlyConsumer):
            yield
            return
        async with consumer.handling:
            yield

    def mark_handled(self, message: Message) -> None:
        """Let the consumer acknowledge `message`: the agent is done with it."""
        consumer = self.consumer
        if isinstance(consumer, HandledOnlyConsumer):
            consumer.mark_handled(message)
