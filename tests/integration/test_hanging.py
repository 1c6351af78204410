"""A transaction the broker left open on a partition, closed again."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from aiokafka import TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from app.streams.hanging import COMMIT, Ended, close_hanging
from tests.support.kafka_io import (
    end_offsets,
    read_all,
    transactional_producer,
    wait_for_leaders,
)
from tests.support.private_broker import PrivateBroker

pytestmark = [pytest.mark.kafka, pytest.mark.timeout(240)]


@pytest.fixture
def unverified_broker(tmp_path: Path) -> Iterator[PrivateBroker]:
    """A broker that takes a transactional record for a partition its
    transaction never added: the coordinator then writes no marker there,
    which is what it does when it skips a partition with no leader."""
    extra = tmp_path / "unverified.properties"
    extra.write_text("transaction.partition.verification.enable=false\n")
    broker = PrivateBroker(tmp_path / "kafka", extra_config=extra)
    broker.up()
    try:
        yield broker
    finally:
        broker.down()


async def test_an_empty_transaction_of_the_same_outcome_ends_a_hanging_one(
    unverified_broker: PrivateBroker,
) -> None:
    bootstrap = unverified_broker.bootstrap
    outputs, offsets = "dead-letters", "changelog"
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(t, 1, 1) for t in (outputs, offsets)])
        await wait_for_leaders(admin, [outputs, offsets])
    finally:
        await admin.close()
    hanging = TopicPartition(outputs, 0)
    producer = transactional_producer(bootstrap)
    await producer.start()
    try:
        await producer.begin_transaction()
        await producer.send_and_wait(offsets, b"state", partition=0)
        producer._txn_manager._txn_partitions.add(hanging)
        written = await producer.send_and_wait(outputs, b"letter", partition=0)
        await producer.commit_transaction()
        stuck = await end_offsets(bootstrap, [hanging], "read_committed")
        committed_before = await read_all(bootstrap, outputs, 1)

        await close_hanging(producer, {hanging: Ended(written.offset, COMMIT, 0.0)})
        after = await read_all(bootstrap, outputs, 1, settled=True)
    finally:
        await producer.stop()

    assert stuck[hanging] == written.offset
    assert committed_before == []
    assert [v for _, _, v in after] == [b"letter"]
