"""Offsets committed in a transaction are read back only once visible."""

from __future__ import annotations

import uuid

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from app.streams.offsets import wait_for_stable_offsets
from tests.integration.conftest import TopicFactory

pytestmark = pytest.mark.kafka

PARTITIONS = 3
# Without the wait, most reads right after a commit return the offset from
# before it (two in three on the local broker).
COMMITS = 40


async def test_each_commit_is_read_back_after_waiting_for_stable_offsets(
    bootstrap: str, create_topic: TopicFactory
) -> None:
    topic = await create_topic("inputs", PARTITIONS)
    group = f"tact-test-{uuid.uuid4().hex}"
    tps = [TopicPartition(topic, p) for p in range(PARTITIONS)]
    producer = AIOKafkaProducer(
        bootstrap_servers=bootstrap, transactional_id=f"{group}-producer"
    )
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap, group_id=group, enable_auto_commit=False
    )
    await producer.start()
    await consumer.start()
    try:
        consumer.assign(tps)
        read_back = []
        for offset in range(1, COMMITS + 1):
            async with producer.transaction():
                await producer.send(topic, b"record", partition=offset % PARTITIONS)
                await producer.send_offsets_to_transaction(
                    {tp: offset for tp in tps}, group
                )
            assert await wait_for_stable_offsets(consumer, tps, timeout_s=10)
            read_back.append(await consumer.committed(tps[offset % PARTITIONS]))
    finally:
        await consumer.stop()
        await producer.stop()

    assert read_back == list(range(1, COMMITS + 1))


async def test_a_group_without_commits_is_stable(
    bootstrap: str, create_topic: TopicFactory
) -> None:
    topic = await create_topic("inputs", PARTITIONS)
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap,
        group_id=f"tact-test-{uuid.uuid4().hex}",
        enable_auto_commit=False,
    )
    await consumer.start()
    try:
        tps = [TopicPartition(topic, p) for p in range(PARTITIONS)]
        assert await wait_for_stable_offsets(consumer, tps, timeout_s=10)
        assert await consumer.committed(tps[0]) is None
    finally:
        await consumer.stop()
