"""Small helpers to write and read whole topics in tests."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Callable
from typing import Any

import orjson
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient

from tests.support.broker import START_TIMEOUT_S


async def wait_for_leaders(
    admin: AIOKafkaAdminClient, topics: list[str], timeout_s: float = 30.0
) -> None:
    """Return once every partition of `topics` has a leader, so the first
    produce does not race the controller."""
    deadline = time.monotonic() + timeout_s
    while True:
        described = await admin.describe_topics(topics)
        ready = all(
            topic["error_code"] == 0
            and topic["partitions"]
            and all(p["leader"] >= 0 for p in topic["partitions"])
            for topic in described
        )
        if ready:
            return
        if time.monotonic() > deadline:
            raise TimeoutError(f"topics {topics} have no leader after {timeout_s}s")
        await asyncio.sleep(0.1)


async def read_all(
    bootstrap: str,
    topic: str,
    partitions: int,
    *,
    isolation_level: str = "read_committed",
    settled: bool = False,
    timeout_s: float = START_TIMEOUT_S,
) -> list[tuple[int, bytes | None, bytes | None]]:
    """Every record of `topic` up to its current end, as (partition, key, value).

    Under read_committed the end is the last stable offset, which stops
    before any transaction still open. With `settled` the end is the high
    watermark, so the read also waits for those transactions to commit or
    abort: a transaction's commit marker reaches each of its partitions at
    its own time, and its consumer offsets can be visible before its
    outputs are."""
    assigned = [TopicPartition(topic, p) for p in range(partitions)]
    if settled:
        ends = await end_offsets(bootstrap, assigned, "read_uncommitted")
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap,
        isolation_level=isolation_level,
        enable_auto_commit=False,
    )
    await consumer.start()
    try:
        consumer.assign(assigned)
        await consumer.seek_to_beginning(*assigned)
        if not settled:
            ends = await consumer.end_offsets(assigned)
        records: list[tuple[int, bytes | None, bytes | None]] = []
        deadline = time.monotonic() + timeout_s
        while [tp for tp in assigned if await consumer.position(tp) < ends[tp]]:
            if time.monotonic() > deadline:
                raise TimeoutError(f"could not read {topic} to its end in {timeout_s}s")
            batch = await consumer.getmany(timeout_ms=500)
            for messages in batch.values():
                records.extend((m.partition, m.key, m.value) for m in messages)
        return records
    finally:
        await consumer.stop()


def transactional_producer(bootstrap: str) -> AIOKafkaProducer:
    """A producer with a transactional id of its own; start it to use it."""
    return AIOKafkaProducer(
        bootstrap_servers=bootstrap, transactional_id=f"tact-test-{uuid.uuid4().hex}"
    )


async def end_offsets(
    bootstrap: str, tps: list[TopicPartition], isolation_level: str
) -> dict[TopicPartition, int]:
    """Each partition's end as a consumer at `isolation_level` sees it."""
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap, isolation_level=isolation_level
    )
    await consumer.start()
    try:
        ends: dict[TopicPartition, int] = await consumer.end_offsets(tps)
        return ends
    finally:
        await consumer.stop()


async def produce(
    bootstrap: str,
    topic: str,
    records: list[tuple[bytes | None, bytes | None]],
    partition: int | None = None,
) -> list[int]:
    """Produce (key, value) pairs in order, murmur2-partitioned unless
    `partition` is given; return their offsets."""
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all")
    await producer.start()
    try:
        offsets = []
        for key, value in records:
            meta = await producer.send_and_wait(
                topic, value, key=key, partition=partition
            )
            offsets.append(meta.offset)
        return offsets
    finally:
        await producer.stop()


async def wait_for_records(
    bootstrap: str,
    topic: str,
    partitions: int,
    done: Callable[[list[dict[str, Any]]], bool],
    timeout_s: float = 60.0,
) -> list[dict[str, Any]]:
    """Read `topic` (JSON values) until `done(values)` holds; fail on timeout."""
    deadline = time.monotonic() + timeout_s
    values: list[dict[str, Any]] = []
    while time.monotonic() < deadline:
        records = await read_all(bootstrap, topic, partitions)
        values = [orjson.loads(v) for _, _, v in records if v is not None]
        if done(values):
            return values
        await asyncio.sleep(0.5)
    raise TimeoutError(f"{topic}: condition not met in {timeout_s}s; got {values}")
