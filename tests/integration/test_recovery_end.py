"""Where table recovery stops reading a transactional changelog."""

from __future__ import annotations

import uuid

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from app.streams.recovery import ends_past_last_record
from tests.integration.conftest import TopicFactory

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
    producer = AIOKafkaProducer(
        bootstrap_servers=bootstrap, transactional_id=f"tact-test-{uuid.uuid4().hex}"
    )
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
