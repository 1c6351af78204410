"""Which Kafka transaction each send of the worker joins."""

from __future__ import annotations

import asyncio
import contextlib
import weakref
from collections import defaultdict
from collections.abc import Iterator
from types import SimpleNamespace
from typing import Any

import pytest
from aiokafka import TopicPartition
from faust.streams import _current_event
from faust.transport.consumer import Consumer
from faust.types import TP
from intervaltree import IntervalTree

from app.streams.transactions import (
    STALL_CHECK_S,
    STALL_S,
    EventScopedTransactionManager,
    HandledOnlyConsumer,
    SkippedRecord,
)

APP_ID = "tact-test"
CHANGELOG = f"{APP_ID}-customers-changelog"
INPUT_GROUP = 1


class RecordingProducer:
    def __init__(self) -> None:
        self.sends: list[dict[str, Any]] = []

    async def send(self, topic: str, *args: Any, transactional_id: str | None) -> None:
        self.sends.append({"topic": topic, "transactional_id": transactional_id})


class FakeEvent:
    """Weak-referenceable, as Faust's current-event variable requires."""

    def __init__(self, tp: TP) -> None:
        self.message = SimpleNamespace(tp=tp)


def _manager(producer: RecordingProducer) -> EventScopedTransactionManager:
    app = SimpleNamespace(
        conf=SimpleNamespace(id=APP_ID),
        assignor=SimpleNamespace(group_for_topic=lambda topic: INPUT_GROUP),
        tables=SimpleNamespace(changelog_topics={CHANGELOG}),
    )
    return EventScopedTransactionManager(
        SimpleNamespace(app=app), consumer=None, producer=producer
    )


async def test_changelog_write_joins_the_transaction_of_its_partition() -> None:
    producer = RecordingProducer()
    manager = _manager(producer)

    # Faust's send buffer delivers table writes with no current event.
    await manager.send(CHANGELOG, b"c-1", b"state", 3, None, None)

    assert producer.sends == [
        {"topic": CHANGELOG, "transactional_id": f"{APP_ID}-{INPUT_GROUP}-3"}
    ]


async def test_send_outside_an_event_to_another_topic_is_not_transactional() -> None:
    producer = RecordingProducer()
    manager = _manager(producer)

    await manager.send(f"{APP_ID}-wakeups", b"c-1", b"{}", None, None, None)

    assert producer.sends[0]["transactional_id"] is None


async def test_send_during_an_event_joins_the_transaction_of_its_source() -> None:
    producer = RecordingProducer()
    manager = _manager(producer)
    event = FakeEvent(TP(f"{APP_ID}-intents", 2))

    with _current(event):
        await manager.send("notifications-approved", b"c-1", b"{}", None, None, None)

    assert producer.sends[0]["transactional_id"] == f"{APP_ID}-{INPUT_GROUP}-2"


@contextlib.contextmanager
def _current(event: FakeEvent) -> Iterator[None]:
    """Make `event` the current one, as a Faust stream does while it runs."""
    token = _current_event.set(weakref.ref(event))
    try:
        yield
    finally:
        _current_event.reset(token)


class _BareConsumer(HandledOnlyConsumer):
    """Only the seek of the real class; the transport parts stay unbuilt."""


_BareConsumer.__abstractmethods__ = frozenset()


class SeekingConsumer:
    """What a seek does to the partitions, in order."""

    def __init__(self) -> None:
        self.steps: list[tuple[str, set[TP]]] = []
        self.rebalance_during_seek = False
        self.streams = {TP(f"{APP_ID}-intents", 0), TP(f"{APP_ID}-lifecycle", 0)}

    def consumer(self, *, is_assigned: bool) -> HandledOnlyConsumer:
        consumer = _BareConsumer.__new__(_BareConsumer)
        attrs: dict[str, Any] = {
            "is_assigned": is_assigned,
            "rebalances": 0,
            "_seeking": asyncio.Lock(),
            "_unhandled": defaultdict(set, {TP(f"{APP_ID}-intents", 0): {7}}),
            "in_transaction": False,
            "assignment": lambda: {*self.streams, TP(CHANGELOG, 0)},
            "_is_changelog_tp": lambda tp: tp.topic == CHANGELOG,
            "_get_active_partitions": lambda: set(self.streams),
            "pause_partitions": lambda tps: self.steps.append(("pause", set(tps))),
            "resume_partitions": lambda tps: self.steps.append(("resume", set(tps))),
        }
        vars(consumer).update(attrs)
        return consumer


@pytest.fixture
def seeking(monkeypatch: pytest.MonkeyPatch) -> SeekingConsumer:
    recorder = SeekingConsumer()

    async def seek(consumer: Any) -> None:
        recorder.steps.append(("seek", set()))
        if recorder.rebalance_during_seek:
            await consumer.on_partitions_revoked(set(recorder.streams))

    async def revoked(consumer: Any, revoked: set[TP]) -> None:
        recorder.steps.append(("revoked", set()))

    monkeypatch.setattr(Consumer, "perform_seek", seek)
    monkeypatch.setattr(Consumer, "on_partitions_revoked", revoked)
    return recorder


async def test_seek_happens_with_the_stream_partitions_paused(
    seeking: SeekingConsumer,
) -> None:
    consumer = seeking.consumer(is_assigned=True)

    await consumer.perform_seek()

    # What was fetched before the seek is fetched again after it.
    assert not consumer._unhandled
    assert seeking.steps == [
        ("pause", seeking.streams),
        ("seek", set()),
        ("resume", seeking.streams),
    ]


async def test_recovery_ending_after_a_revocation_leaves_partitions_paused(
    seeking: SeekingConsumer,
) -> None:
    await seeking.consumer(is_assigned=False).perform_seek()

    assert seeking.steps == [("pause", seeking.streams)]


async def test_seek_the_group_rebalanced_during_leaves_partitions_paused(
    seeking: SeekingConsumer,
) -> None:
    seeking.rebalance_during_seek = True

    await seeking.consumer(is_assigned=True).perform_seek()

    assert seeking.steps == [
        ("pause", seeking.streams),
        ("seek", set()),
        ("revoked", set()),
    ]


async def test_seek_of_the_next_assignment_waits_for_one_still_running(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    recorder = SeekingConsumer()
    release = asyncio.Event()
    seeks = 0

    async def seek(consumer: Any) -> None:
        nonlocal seeks
        seeks += 1
        recorder.steps.append(("seek", set()))
        if seeks == 1:
            await release.wait()

    monkeypatch.setattr(Consumer, "perform_seek", seek)
    consumer = recorder.consumer(is_assigned=True)
    old = asyncio.create_task(consumer.perform_seek())
    await asyncio.sleep(0)
    # The group rebalances while the old seek runs: revoked, then assigned.
    consumer.rebalances += 2
    new = asyncio.create_task(consumer.perform_seek())
    await asyncio.sleep(0)
    release.set()
    await asyncio.gather(old, new)

    assert recorder.steps == [
        ("pause", recorder.streams),
        ("seek", set()),
        ("pause", recorder.streams),
        ("seek", set()),
        ("resume", recorder.streams),
    ]


class SeekThread:
    """The driver's consumer thread, recording seeks to the beginning."""

    def __init__(self) -> None:
        self.to_beginning: list[TopicPartition] = []

    def _ensure_consumer(self) -> SeekThread:
        return self

    async def seek_to_beginning(self, *partitions: TopicPartition) -> None:
        self.to_beginning.extend(partitions)

    async def call_thread(self, method: Any, *args: Any) -> Any:
        return await method(*args)


@pytest.mark.xfail(
    strict=True,
    reason="a partition with no committed offset keeps its read position on a seek",
)
async def test_partitions_with_no_committed_offset_are_read_from_the_start(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    committed = {
        TP(f"{APP_ID}-intents", 0): None,
        TP(f"{APP_ID}-intents", 1): 0,
        TP(f"{APP_ID}-intents", 2): 17,
        TP(CHANGELOG, 0): None,
    }

    async def seek_to_committed(consumer: Any) -> dict[TP, int | None]:
        return committed

    monkeypatch.setattr(Consumer, "seek_to_committed", seek_to_committed)
    thread = SeekThread()
    consumer = _BareConsumer.__new__(_BareConsumer)
    vars(consumer).update(
        {"_thread": thread, "_is_changelog_tp": lambda tp: tp.topic == CHANGELOG}
    )

    assert await consumer.seek_to_committed() == committed
    # Where aiokafka leaves them: wherever the consumer last read, which after
    # an aborted transaction is past records no one committed.
    assert thread.to_beginning == [
        TopicPartition(f"{APP_ID}-intents", 0),
        TopicPartition(f"{APP_ID}-intents", 1),
    ]


class PersistedTable:
    def __init__(self, persisted: dict[TP, int | None]) -> None:
        self.persisted = persisted

    def persisted_offset(self, tp: TP) -> int | None:
        return self.persisted.get(tp)


def _recovered(ends: dict[TP, int], *, rebalances: int = 1) -> HandledOnlyConsumer:
    consumer = _BareConsumer.__new__(_BareConsumer)
    vars(consumer).update(
        {"is_assigned": True, "rebalances": 1, "_recovery_ends": (rebalances, ends)}
    )
    return consumer


def test_recovery_that_stopped_before_the_last_record_is_reported() -> None:
    whole, short, empty = (TP(CHANGELOG, p) for p in range(3))
    consumer = _recovered({whole: 355, short: 355, empty: 120})
    table = PersistedTable({whole: 354, short: 200})

    assert consumer.unrecovered(table) == {short: (200, 355), empty: (None, 120)}


def test_recovery_of_an_assignment_since_replaced_is_not_judged() -> None:
    tp = TP(CHANGELOG, 0)
    consumer = _recovered({tp: 355}, rebalances=0)

    assert consumer.unrecovered(PersistedTable({})) == {}


INTENTS = TP(f"{APP_ID}-intents", 2)


def _committing(committed: int | None) -> HandledOnlyConsumer:
    """A consumer with Faust's commit bookkeeping, sought to `committed`."""
    consumer = _BareConsumer.__new__(_BareConsumer)
    vars(consumer).update(
        {
            "_handled": weakref.WeakSet(),
            "_unhandled": defaultdict(set),
            "_gap": defaultdict(IntervalTree),
            "_acked": defaultdict(list),
            "_acked_index": defaultdict(set),
            "_committed_offset": defaultdict(lambda: None, {INTENTS: committed}),
        }
    )
    return consumer


def _fetch_and_handle(
    consumer: HandledOnlyConsumer, fetched: range, handled: list[int]
) -> None:
    consumer._unhandled[INTENTS].update(fetched)
    for offset in handled:
        message = FakeMessage(INTENTS, offset)
        consumer.mark_handled(message)  # type: ignore[arg-type]
        consumer._acked[INTENTS].append(offset)
        consumer._acked_index[INTENTS].add(offset)


class FakeMessage:
    def __init__(self, tp: TP, offset: int) -> None:
        self.tp, self.offset = tp, offset


def test_faust_alone_commits_past_one_record_that_was_never_handled() -> None:
    consumer = _committing(641)
    _fetch_and_handle(consumer, range(641, 645), [642, 643, 644])

    assert Consumer._new_offset(consumer, INTENTS) == 645


def test_a_commit_past_a_record_fetched_and_never_handled_is_refused() -> None:
    consumer = _committing(641)
    _fetch_and_handle(consumer, range(641, 645), [642, 643, 644])

    with pytest.raises(SkippedRecord) as refused:
        consumer._new_offset(INTENTS)

    assert (refused.value.offset, refused.value.commit) == (641, 645)


def test_offsets_that_hold_no_record_do_not_stop_a_commit() -> None:
    # 641 is a transaction marker: never fetched, so never waited for.
    consumer = _committing(641)
    _fetch_and_handle(consumer, range(642, 646), [642, 643, 644])

    assert consumer._new_offset(INTENTS) == 645
    assert consumer._unhandled[INTENTS] == {645}


def test_records_still_on_their_way_to_the_agent_do_not_stop_a_commit() -> None:
    consumer = _committing(None)
    _fetch_and_handle(consumer, range(0, 10), [0, 1, 2])

    assert consumer._new_offset(INTENTS) == 3


def _watched(committed: int | None, unhandled: set[int]) -> HandledOnlyConsumer:
    consumer = _committing(committed)
    vars(consumer).update(
        {
            "is_assigned": True,
            "app": SimpleNamespace(rebalancing=False),
            "_progress": {},
            "_sought_at": 0.0,
            "assignment": lambda: {INTENTS},
            "_is_changelog_tp": lambda tp: False,
        }
    )
    consumer._unhandled[INTENTS].update(unhandled)
    return consumer


def test_a_partition_holding_a_dropped_record_and_committing_nothing_stalls() -> None:
    consumer = _watched(641, {641, 642})

    assert consumer.stalled(now=1.0) is None
    assert consumer.stalled(now=1.0 + STALL_S / 2) is None
    assert consumer.stalled(now=1.0 + STALL_S) == (INTENTS, 641, 641)


def test_a_partition_whose_commit_moves_does_not_stall() -> None:
    consumer = _watched(641, {650})

    consumer.stalled(now=1.0)
    consumer._committed_offset[INTENTS] = 645
    assert consumer.stalled(now=1.0 + STALL_S) is None


def test_a_record_just_fetched_for_a_long_idle_partition_does_not_stall() -> None:
    # Nothing has been committed for minutes; the new record is only queued
    # behind others on its way to the agent.
    consumer = _watched(None, set())
    idle_until = 1.0 + 10 * STALL_S
    for now in range(1, int(idle_until), int(STALL_CHECK_S)):
        assert consumer.stalled(now=now) is None
    consumer._unhandled[INTENTS].add(0)

    assert consumer.stalled(now=idle_until) is None
    assert consumer.stalled(now=idle_until + STALL_S - STALL_CHECK_S) is None
    assert consumer.stalled(now=idle_until + STALL_S) == (INTENTS, None, 0)


def test_a_partition_with_nothing_left_unhandled_does_not_stall() -> None:
    # Markers past the last record keep the end ahead of the commit for good.
    consumer = _watched(641, set())

    consumer.stalled(now=1.0)
    assert consumer.stalled(now=1.0 + 10 * STALL_S) is None


def _delivering() -> HandledOnlyConsumer:
    """A consumer with only what handing a record to the streams needs."""
    consumer = _BareConsumer.__new__(_BareConsumer)
    vars(consumer).update(
        {
            "_loop": asyncio.get_running_loop(),
            "_stopped": asyncio.Event(),
            "_crashed": asyncio.Event(),
            "suspend_flow": asyncio.Event(),
        }
    )
    return consumer


async def test_a_record_the_streams_take_at_once_is_delivered_without_a_task() -> None:
    consumer = _delivering()
    delivered_in: list[asyncio.Task[Any] | None] = []

    async def deliver() -> None:
        delivered_in.append(asyncio.current_task())

    await consumer.wait_first(deliver(), consumer.suspend_flow.wait())

    assert delivered_in == [asyncio.current_task()]


async def test_a_record_waiting_for_room_is_dropped_when_flow_is_suspended() -> None:
    consumer = _delivering()
    room = asyncio.Event()
    delivered: list[str] = []

    async def deliver() -> None:
        await room.wait()
        delivered.append("record")

    waiting = asyncio.ensure_future(
        consumer.wait_first(deliver(), consumer.suspend_flow.wait())
    )
    await asyncio.sleep(0.01)
    assert not waiting.done()

    consumer.suspend_flow.set()
    await asyncio.wait_for(waiting, timeout=1)
    room.set()
    await asyncio.sleep(0.01)

    assert delivered == []


async def test_records_fetched_while_flow_is_suspended_race_as_in_faust() -> None:
    consumer = _delivering()
    consumer.suspend_flow.set()
    delivered_in: list[asyncio.Task[Any] | None] = []

    async def deliver() -> None:
        delivered_in.append(asyncio.current_task())

    await consumer.wait_first(deliver(), consumer.suspend_flow.wait())

    assert delivered_in
    assert delivered_in != [asyncio.current_task()]
