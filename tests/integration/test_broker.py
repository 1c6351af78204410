"""The broker is fit for Tact: co-partitioned topics and transactions work."""

from __future__ import annotations

import asyncio

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.partitioner import DefaultPartitioner

from tests.integration.conftest import TopicFactory
from tests.support.kafka_io import read_all, transactional_producer

pytestmark = pytest.mark.kafka

PARTITIONS = 4


async def test_keys_land_on_the_same_partition_in_co_partitioned_topics(
    bootstrap: str, create_topic: TopicFactory
) -> None:
    lifecycle = await create_topic("lifecycle", PARTITIONS)
    intents = await create_topic("intents", PARTITIONS)
    keys = [f"cust-{i}".encode() for i in range(40)]

    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all")
    await producer.start()
    try:
        for key in keys:
            await producer.send_and_wait(lifecycle, b"event", key=key)
            await producer.send_and_wait(intents, b"intent", key=key)
    finally:
        await producer.stop()

    by_key_lifecycle = {
        k: p for p, k, _ in await read_all(bootstrap, lifecycle, PARTITIONS)
    }
    by_key_intents = {
        k: p for p, k, _ in await read_all(bootstrap, intents, PARTITIONS)
    }
    assert by_key_lifecycle == by_key_intents
    murmur2 = DefaultPartitioner()
    assert all(
        p == murmur2(k, list(range(PARTITIONS)), list(range(PARTITIONS)))
        for k, p in by_key_intents.items()
    )
    assert len(set(by_key_intents.values())) > 1


async def test_read_committed_sees_committed_transactions_only(
    bootstrap: str, create_topic: TopicFactory
) -> None:
    topic = await create_topic("approved", PARTITIONS)
    producer = transactional_producer(bootstrap)
    await producer.start()
    try:
        async with producer.transaction():
            await producer.send_and_wait(topic, b"committed-1", key=b"a")
            await producer.send_and_wait(topic, b"committed-2", key=b"b")
        await producer.begin_transaction()
        await producer.send_and_wait(topic, b"aborted", key=b"a")
        await producer.abort_transaction()
        async with producer.transaction():
            await producer.send_and_wait(topic, b"committed-3", key=b"c")
    finally:
        await producer.stop()

    committed = await read_all(bootstrap, topic, PARTITIONS)
    everything = await read_all(
        bootstrap, topic, PARTITIONS, isolation_level="read_uncommitted"
    )

    assert sorted(v for _, _, v in committed) == [
        b"committed-1",
        b"committed-2",
        b"committed-3",
    ]
    assert b"aborted" in {v for _, _, v in everything}


async def test_a_settled_read_waits_for_the_open_transaction(
    bootstrap: str, create_topic: TopicFactory
) -> None:
    topic = await create_topic("outputs", PARTITIONS)
    producer = transactional_producer(bootstrap)
    await producer.start()
    try:
        await producer.begin_transaction()
        await producer.send_and_wait(topic, b"pending", key=b"a")
        settled = asyncio.create_task(
            read_all(bootstrap, topic, PARTITIONS, settled=True)
        )
        stable = await read_all(bootstrap, topic, PARTITIONS)
        await asyncio.sleep(1.0)
        waiting = not settled.done()
        await producer.commit_transaction()
        after_commit = await settled
    finally:
        await producer.stop()

    assert stable == []
    assert waiting
    assert [v for _, _, v in after_commit] == [b"pending"]


async def test_consumed_offsets_commit_atomically_with_the_output(
    bootstrap: str, create_topic: TopicFactory, unique_name
) -> None:
    source = await create_topic("source", 1)
    sink = await create_topic("sink", 1)
    group = unique_name("group")
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap)
    await producer.start()
    await producer.send_and_wait(source, b"in-1", key=b"k")
    await producer.send_and_wait(source, b"in-2", key=b"k")
    await producer.stop()

    consumer = AIOKafkaConsumer(
        source,
        bootstrap_servers=bootstrap,
        group_id=group,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        isolation_level="read_committed",
    )
    transactional = transactional_producer(bootstrap)
    await consumer.start()
    await transactional.start()
    try:
        first = await consumer.getone()
        async with transactional.transaction():
            await transactional.send_and_wait(sink, first.value.upper(), key=first.key)
            await transactional.send_offsets_to_transaction(
                {TopicPartition(source, 0): first.offset + 1}, group
            )
        second = await consumer.getone()
        await transactional.begin_transaction()
        await transactional.send_and_wait(sink, second.value.upper(), key=second.key)
        await transactional.send_offsets_to_transaction(
            {TopicPartition(source, 0): second.offset + 1}, group
        )
        await transactional.abort_transaction()
        committed_offset = await consumer.committed(TopicPartition(source, 0))
    finally:
        await transactional.stop()
        await consumer.stop()

    assert committed_offset == 1
    assert [v for _, _, v in await read_all(bootstrap, sink, 1)] == [b"IN-1"]
