"""Table recovery over a transactional changelog: where it stops, and the
read-ahead that applies it."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from faust.types import TP

from app.streams.recovery import ChangelogRecord, ends_past_last_record, read_changelog
from tests.integration.conftest import TopicFactory
from tests.support.kafka_io import transactional_producer

pytestmark = pytest.mark.kafka


async def _stable_ends(
    bootstrap: str, tps: list[TopicPartition]
) -> dict[TopicPartition, int]:
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap, isolation_level="read_committed"
    )
    await consumer.start()
    try:
        return dict(await consumer.end_offsets(tps))
    finally:
        await consumer.stop()


async def test_the_end_is_one_past_the_last_committed_record(
    bootstrap: str, create_topic: TopicFactory
) -> None:
    topic = await create_topic("changelog", partitions=3)
    producer = transactional_producer(bootstrap)
    await producer.start()
    try:
        # Partition 0: two committed transactions, then an aborted one.
        for value in (b"a", b"b"):
            async with producer.transaction():
                await producer.send_and_wait(topic, value, key=b"k", partition=0)
        await producer.begin_transaction()
        await producer.send_and_wait(topic, b"gone", key=b"k", partition=0)
        await producer.abort_transaction()
        # Partition 1: nothing committed, one aborted transaction.
        await producer.begin_transaction()
        await producer.send_and_wait(topic, b"gone", key=b"k", partition=1)
        await producer.abort_transaction()
        # Partition 2: empty.
    finally:
        await producer.stop()
    tps = [TopicPartition(topic, p) for p in range(3)]
    stable = await _stable_ends(bootstrap, tps)

    found: set[TopicPartition] = set()
    ends = await ends_past_last_record({"bootstrap_servers": bootstrap}, stable, found)

    # Offsets of partition 0: a=0, commit=1, b=2, commit=3, gone=4, abort=5.
    assert stable[tps[0]] == 6
    assert ends[tps[0]] == 3
    # Partition 1: gone=0, abort=1; nothing a consumer receives.
    assert ends[tps[1]] == 0
    assert ends[tps[2]] == 0
    # Only partition 0 has a last record to reach.
    assert found == {tps[0]}


async def _read(
    bootstrap: str,
    spans: dict[TP, tuple[int, int]],
    *,
    read_committed: bool = True,
    timeout_s: float = 30.0,
) -> tuple[dict[TP, list[tuple[int, bytes | None, bytes | None]]], dict[TP, int]]:
    applied: dict[TP, list[tuple[int, bytes | None, bytes | None]]] = {}

    def apply(tp: TP, records: Sequence[ChangelogRecord]) -> None:
        assert all(r.message.tp == tp and r.partition == tp.partition for r in records)
        applied.setdefault(tp, []).extend((r.offset, r.key, r.value) for r in records)

    reached = await read_changelog(
        {"bootstrap_servers": bootstrap},
        spans,
        apply,
        read_committed=read_committed,
        timeout_s=timeout_s,
    )
    return applied, reached


async def test_the_read_ahead_applies_committed_records_in_order(
    bootstrap: str, create_topic: TopicFactory
) -> None:
    topic = await create_topic("changelog", partitions=2)
    producer = transactional_producer(bootstrap)
    await producer.start()
    try:
        # Partition 0: k1=0, k2=1, commit=2, gone=3, abort=4, k1 tombstone=5,
        # commit=6, k3=7, commit=8.
        async with producer.transaction():
            await producer.send_and_wait(topic, b"v1", key=b"k1", partition=0)
            await producer.send_and_wait(topic, b"v2", key=b"k2", partition=0)
        await producer.begin_transaction()
        await producer.send_and_wait(topic, b"gone", key=b"k2", partition=0)
        await producer.abort_transaction()
        async with producer.transaction():
            await producer.send_and_wait(topic, None, key=b"k1", partition=0)
        async with producer.transaction():
            await producer.send_and_wait(topic, b"v3", key=b"k3", partition=0)
        # Partition 1: a=0, commit=1.
        async with producer.transaction():
            await producer.send_and_wait(topic, b"a", key=b"ka", partition=1)
    finally:
        await producer.stop()
    p0, p1 = TP(topic, 0), TP(topic, 1)

    applied, reached = await _read(bootstrap, {p0: (1, 5), p1: (0, 0)})

    # From offset 1 through 5: the aborted write is skipped, the tombstone
    # kept, and the record past the span's end left for later.
    assert applied[p0] == [(1, b"k2", b"v2"), (5, b"k1", None)]
    assert applied[p1] == [(0, b"ka", b"a")]
    assert reached == {p0: 5, p1: 0}


async def test_a_read_ahead_out_of_time_reports_only_what_it_applied(
    bootstrap: str, create_topic: TopicFactory
) -> None:
    topic = await create_topic("changelog")
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, linger_ms=50)
    await producer.start()
    try:
        # Far more than one fetch returns.
        sent = [
            await producer.send(topic, b"v" * 100_000, key=b"k%d" % n, partition=0)
            for n in range(300)
        ]
        await asyncio.gather(*sent)
    finally:
        await producer.stop()
    tp = TP(topic, 0)

    applied, reached = await _read(
        bootstrap, {tp: (0, 299)}, read_committed=False, timeout_s=0.0
    )

    offsets = [offset for offset, _, _ in applied.get(tp, [])]
    assert offsets == list(range(len(offsets)))
    assert reached[tp] == len(offsets) - 1
    assert reached[tp] < 299
