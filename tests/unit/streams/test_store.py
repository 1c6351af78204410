"""Under exactly_once, table writes reach RocksDB only once committed."""

from __future__ import annotations

import asyncio
import contextlib
import weakref
from collections.abc import Iterator
from types import SimpleNamespace
from typing import Any

import pytest
from aiokafka.errors import ProducerFenced
from faust.streams import _current_event
from faust.types import TP

from app.streams.store import CommittedTableStore, TableStore
from app.streams.transactions import EventScopedTransactionManager, TactApp

CHANGELOG = "tact-customers-changelog"


class FakeTable:
    """The parts of a Faust table the store uses; `rows` is what RocksDB holds."""

    def __init__(self) -> None:
        self.rows: dict[bytes, bytes] = {}
        self.persisted: dict[TP, int] = {}
        self._offsets: dict[int, int] = {}
        # The store reads RocksDB through `data`, not the table's own get.
        self.data: Any = self.rows

    @property
    def changelog_topic(self) -> FakeTable:
        return self

    async def send(self, *, partition: int, **_: Any) -> Any:
        offset = self._offsets.get(partition, -1) + 1
        self._offsets[partition] = offset
        sent: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        sent.set_result(
            SimpleNamespace(topic_partition=TP(CHANGELOG, partition), offset=offset)
        )
        return sent

    def apply_changelog_batch(self, batch: list[Any]) -> None:
        for event in batch:
            message = event.message
            self.rows[message.key] = message.value
            self.persisted[message.tp] = message.offset


class FakeEvent:
    def __init__(self, partition: int) -> None:
        self.message = SimpleNamespace(partition=partition)


@contextlib.contextmanager
def handling(partition: int) -> Iterator[None]:
    event = FakeEvent(partition)
    token = _current_event.set(weakref.ref(event))
    try:
        yield
    finally:
        _current_event.reset(token)


async def test_a_write_is_read_back_before_it_reaches_the_table() -> None:
    table = FakeTable()
    store = CommittedTableStore(table)

    with handling(2):
        await store.put(b"c-1", b"v1")
        assert store.get(b"c-1") == b"v1"

    assert table.rows == {}


async def test_a_committed_write_reaches_the_table_with_its_changelog_offset() -> None:
    table = FakeTable()
    store = CommittedTableStore(table)
    with handling(2):
        await store.put(b"c-1", b"v1")
        await store.put(b"c-1", b"v2")
        await store.put(b"c-2", b"w1")

    await store.on_committed({2})

    assert table.rows == {b"c-1": b"v2", b"c-2": b"w1"}
    assert table.persisted == {TP(CHANGELOG, 2): 2}
    assert store.uncommitted == 0


async def test_a_commit_applies_only_its_own_partitions() -> None:
    table = FakeTable()
    store = CommittedTableStore(table)
    with handling(1):
        await store.put(b"c-1", b"one")
    with handling(4):
        await store.put(b"c-4", b"four")

    await store.on_committed({4})

    assert table.rows == {b"c-4": b"four"}
    with handling(1):
        assert store.get(b"c-1") == b"one"


async def test_discarded_writes_never_reach_the_table() -> None:
    table = FakeTable()
    table.rows[b"c-1"] = b"committed"
    store = CommittedTableStore(table)
    with handling(0):
        await store.put(b"c-1", b"aborted")

    store.discard()
    await store.on_committed({0})

    assert table.rows == {b"c-1": b"committed"}
    with handling(0):
        assert store.get(b"c-1") == b"committed"


async def test_writing_outside_a_record_is_refused() -> None:
    store = CommittedTableStore(FakeTable())

    with pytest.raises(RuntimeError, match="only while handling a record"):
        await store.put(b"c-1", b"v1")


class CommittingProducer:
    def __init__(self, open_ids: set[str], error: Exception | None = None) -> None:
        self._transaction_producers = dict.fromkeys(open_ids)
        self.error = error
        self.commits: list[dict[str, dict[TP, int]]] = []

    async def commit_transactions(
        self, by_transaction: dict[str, dict[TP, int]], group_id: str, **_: Any
    ) -> None:
        if self.error is not None:
            raise self.error
        self.commits.append(dict(by_transaction))


class CommitApp(TactApp):
    """Only what the transaction manager reads of the app."""

    def __init__(self) -> None:
        self._on_committed = []
        self.crashes: list[BaseException] = []
        self.conf = SimpleNamespace(id="tact")  # type: ignore[assignment]
        self.assignor = SimpleNamespace(group_for_topic=lambda topic: 1)  # type: ignore[assignment]

    async def crash(self, reason: BaseException) -> None:
        self.crashes.append(reason)


def _manager(app: CommitApp, producer: CommittingProducer) -> Any:
    return EventScopedTransactionManager(
        SimpleNamespace(app=app), consumer=None, producer=producer
    )


async def test_commit_reports_the_partitions_of_committed_transactions() -> None:
    app = CommitApp()
    reported: list[set[int]] = []

    async def record(partitions: Any) -> None:
        reported.append(set(partitions))

    app.on_committed(record)
    # Partition 5's producer was stopped in a rebalance: Faust skips it.
    producer = CommittingProducer({"tact-1-0", "tact-1-3"})
    manager = _manager(app, producer)

    await manager.commit(
        {TP("intents", 0): 10, TP("lifecycle", 3): 7, TP("intents", 5): 2}
    )

    assert reported == [{0, 3}]
    committed = {tid for commit in producer.commits for tid in commit}
    assert committed == {"tact-1-0", "tact-1-3", "tact-1-5"}


async def test_a_fenced_commit_crashes_and_applies_nothing() -> None:
    app = CommitApp()
    reported: list[Any] = []

    async def record(partitions: Any) -> None:
        reported.append(partitions)

    app.on_committed(record)
    manager = _manager(app, CommittingProducer({"tact-1-0"}, ProducerFenced()))

    assert await manager.commit({TP("intents", 0): 10}) is False

    assert reported == []
    assert len(app.crashes) == 1


async def test_at_least_once_writes_the_table_and_queues_its_changelog_record() -> None:
    table = FakeTable()
    table._on_changelog_sent = lambda fut: None  # type: ignore[attr-defined]
    store = TableStore(table)

    with handling(3):
        await store.put(b"c-1", b"v1")

    assert table.rows == {b"c-1": b"v1"}
    assert table._offsets == {3: 0}
