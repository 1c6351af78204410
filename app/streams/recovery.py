"""Where table recovery may stop reading a changelog partition.

Faust's recovery reads a changelog partition until it has seen the record
just below the end it was given. Under exactly_once that end is the last
stable offset, and just below it sits the marker that committed the last
transaction, a record no consumer is handed. Faust then waits for two idle
five-second polls before it gives up looking, on every start and every
rebalance. So the end handed to Faust is one past the last record a
read_committed consumer actually receives.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition

logger = logging.getLogger(__name__)

# Records read back from the end per try; a partition whose last window
# holds only aborted transactions is read further back, four times as far.
WINDOW = 512
SCAN_TIMEOUT_S = 10.0


async def ends_past_last_record(
    options: Mapping[str, Any],
    stable_ends: Mapping[Any, int],
    found: set[Any] | None = None,
) -> dict[Any, int]:
    """For each partition, one past its last committed record below its last
    stable offset; the last stable offset itself where that is not found in
    time (Faust then finds the end the slow way). The partitions whose last
    record was found are added to `found`."""
    ends = dict(stable_ends)
    wanted = [tp for tp, end in stable_ends.items() if end is not None and end > 0]
    if not wanted:
        return ends
    consumer = AIOKafkaConsumer(
        isolation_level="read_committed", enable_auto_commit=False, **options
    )
    await consumer.start()
    try:
        deadline = time.monotonic() + SCAN_TIMEOUT_S
        partitions = [TopicPartition(tp.topic, tp.partition) for tp in wanted]
        consumer.assign(partitions)
        firsts = await consumer.beginning_offsets(partitions)
        for tp, partition in zip(wanted, partitions, strict=True):
            last = await _last_record(
                consumer, partition, firsts[partition], ends[tp], deadline
            )
            if last is not None:
                ends[tp] = last + 1
                if found is not None:
                    found.add(tp)
            elif time.monotonic() < deadline:
                # Nothing committed in the whole partition.
                ends[tp] = firsts[partition]
    finally:
        await consumer.stop()
    return ends


async def _last_record(
    consumer: AIOKafkaConsumer,
    tp: TopicPartition,
    first: int,
    stable_end: int,
    deadline: float,
) -> int | None:
    """The offset of the last record below `stable_end`, reading back in
    growing windows; None when there is none or time ran out."""
    high, window = stable_end, WINDOW
    while high > first:
        low = max(high - window, first)
        consumer.seek(tp, low)
        last: int | None = None
        while await consumer.position(tp) < high:
            if time.monotonic() > deadline:
                logger.info("changelog end not found in time partition=%s", tp)
                return None
            batches = await consumer.getmany(tp, timeout_ms=200)
            for record in batches.get(tp, []):
                if record.offset < high:
                    last = record.offset
        if last is not None:
            return last
        high, window = low, window * 4
    return None
