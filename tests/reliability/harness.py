"""Drive a seeded load through real workers while faults are injected.

1. Work out the ground truth by replaying the load.
2. Start one worker.
3. For each batch: produce it, inject the faults planned for it, and wait
   until the consumer group has committed the whole batch (see load.py for
   why the next batch must wait).
4. Once everything is committed, compare the outputs with the ground truth.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass

from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError

from tests.reliability.faults import Fault, Injector
from tests.reliability.load import LIFECYCLE, Batch, Load, ground_truth
from tests.reliability.verify import Report, check_outputs, input_lag
from tests.support.cluster import Cluster
from tests.support.private_broker import PrivateBroker
from tests.support.worker import Stack

logger = logging.getLogger(__name__)

POLL_S = 0.25


@dataclass
class Run:
    stack: Stack
    cluster: Cluster
    broker: PrivateBroker
    load: Load
    faults: list[Fault]
    guarantee: str
    scale: str
    session_timeout_s: float
    batch_timeout_s: float


async def run(chaos: Run) -> Report:
    # 1. Ground truth.
    truth = ground_truth(chaos.load)
    report = Report(
        guarantee=chaos.guarantee,
        seed=chaos.load.seed,
        scale=chaos.scale,
        records=sum(len(b.records) for b in chaos.load.batches),
        intents_approved=len(truth.approved_ids),
    )
    injector = Injector(chaos.cluster, chaos.broker, chaos.session_timeout_s)

    # 2. One worker.
    await asyncio.to_thread(chaos.cluster.start, 0)

    # 3. Batches and faults.
    for batch in chaos.load.batches:
        await _produce(chaos.stack, batch)
        for fault in (f for f in chaos.faults if f.batch == batch.index):
            await asyncio.sleep(fault.delay_s)
            await asyncio.to_thread(injector.inject, fault)
            report.faults[str(fault.kind)] += 1
        topic = (
            chaos.stack.lifecycle if batch.topic == LIFECYCLE else chaos.stack.intents
        )
        if not await _committed(chaos, topic, chaos.batch_timeout_s):
            logger.error("batch not committed in time batch=%d", batch.index)
            break

    # 4. Compare.
    await _committed(chaos, None, chaos.batch_timeout_s)
    report.worker_exits = len(chaos.cluster.exits)
    return await check_outputs(chaos.stack, truth, report)


async def _produce(stack: Stack, batch: Batch) -> None:
    """Produce a batch with murmur2 partitioning; each customer's records in
    order (the idempotent producer keeps order within a partition)."""
    topic = stack.lifecycle if batch.topic == LIFECYCLE else stack.intents
    producer = AIOKafkaProducer(
        bootstrap_servers=stack.bootstrap, acks="all", enable_idempotence=True
    )
    await producer.start()
    try:
        sent = [
            await producer.send(topic, record.payload, key=record.key)
            for record in batch.records
        ]
        await asyncio.gather(*sent)
    finally:
        await producer.stop()


async def _committed(chaos: Run, topic: str | None, timeout_s: float) -> bool:
    """Wait until the group has committed every record of `topic` (of both
    inputs when None), restarting workers that exit on their own."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        await asyncio.to_thread(chaos.cluster.heal)
        try:
            lag = await input_lag(chaos.stack)
        except KafkaError as error:
            logger.info("lag unknown yet error=%r", error)
        else:
            if not any(
                n for tp, n in lag.items() if topic is None or tp.topic == topic
            ):
                return True
        await asyncio.sleep(POLL_S)
    return False
