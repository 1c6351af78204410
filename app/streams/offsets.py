"""Committed offsets that include every transaction that has committed.

A transaction's offset commit becomes visible a little after the commit
returns: the broker marks the offsets pending until its commit marker is
written. Meanwhile a plain offset fetch answers with the offsets from
before the transaction, so a worker that seeks right after its own commit
(at a rebalance, say) reads that transaction's records again and decides
them a second time, on state that already holds the first time. Kafka's
answer is a fetch with `require_stable`, which reports such offsets as
unstable instead; aiokafka's fetch predates it. Here the worker asks with
`require_stable` until no partition is unstable, and only then seeks.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import defaultdict
from collections.abc import Iterable
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.errors import IncompatibleBrokerVersion
from aiokafka.protocol.api import Request, RequestStruct, Response
from aiokafka.protocol.types import (
    Boolean,
    CompactArray,
    CompactString,
    Int16,
    Int32,
    Int64,
    Schema,
    TaggedFields,
)

logger = logging.getLogger(__name__)

# Kafka's error codes for what a fetch with require_stable can answer.
COORDINATOR_LOAD_IN_PROGRESS = 14
COORDINATOR_NOT_AVAILABLE = 15
NOT_COORDINATOR = 16
UNSTABLE_OFFSET_COMMIT = 88
COORDINATOR_MOVED = {COORDINATOR_NOT_AVAILABLE, NOT_COORDINATOR}
RETRIABLE = {COORDINATOR_LOAD_IN_PROGRESS, UNSTABLE_OFFSET_COMMIT, *COORDINATOR_MOVED}
RETRY_S = 0.02


class OffsetFetchResponse_v7(Response):  # type: ignore[misc]  # untyped base
    API_KEY = 9
    API_VERSION = 7
    SCHEMA = Schema(
        ("throttle_time_ms", Int32),
        (
            "topics",
            CompactArray(
                ("name", CompactString("utf-8")),
                (
                    "partitions",
                    CompactArray(
                        ("partition_index", Int32),
                        ("committed_offset", Int64),
                        ("committed_leader_epoch", Int32),
                        ("metadata", CompactString("utf-8")),
                        ("error_code", Int16),
                        ("tags", TaggedFields),
                    ),
                ),
                ("tags", TaggedFields),
            ),
        ),
        ("error_code", Int16),
        ("tags", TaggedFields),
    )


class OffsetFetchRequest_v7(RequestStruct):  # type: ignore[misc]  # untyped base
    FLEXIBLE_VERSION = True
    API_KEY = 9
    API_VERSION = 7
    RESPONSE_TYPE = OffsetFetchResponse_v7
    SCHEMA = Schema(
        ("group_id", CompactString("utf-8")),
        (
            "topics",
            CompactArray(
                ("name", CompactString("utf-8")),
                ("partition_indexes", CompactArray(Int32)),
                ("tags", TaggedFields),
            ),
        ),
        ("require_stable", Boolean),
        ("tags", TaggedFields),
    )


class StableOffsetFetchRequest(Request[OffsetFetchRequest_v7]):  # type: ignore[misc]
    API_KEY = 9

    def __init__(self, group_id: str, partitions: Iterable[TopicPartition]) -> None:
        by_topic: defaultdict[str, list[int]] = defaultdict(list)
        for tp in partitions:
            by_topic[tp.topic].append(tp.partition)
        self._group_id = group_id
        self._topics: list[tuple[str, list[int], dict[int, bytes]]] = [
            (topic, sorted(ps), {}) for topic, ps in by_topic.items()
        ]

    def build(
        self, request_struct_class: type[OffsetFetchRequest_v7]
    ) -> OffsetFetchRequest_v7:
        return request_struct_class(self._group_id, self._topics, True, {})


async def wait_for_stable_offsets(
    consumer: AIOKafkaConsumer, partitions: Iterable[TopicPartition], timeout_s: float
) -> bool:
    """Return once no partition's committed offset waits on a transaction;
    False if that took longer than `timeout_s` or the broker cannot say."""
    wanted = list(partitions)
    if not wanted:
        return True
    # aiokafka has no public way to send its group coordinator a request.
    coordinator: Any = consumer._coordinator
    request = StableOffsetFetchRequest(coordinator.group_id, wanted)
    deadline = time.monotonic() + timeout_s
    waits = 0
    while True:
        await coordinator.ensure_coordinator_known()
        try:
            response = await coordinator._send_req(request)
        except IncompatibleBrokerVersion:
            logger.warning("broker cannot fetch stable offsets; seeking without")
            return False
        errors = _errors(response)
        if not errors:
            if waits:
                logger.info("committed offsets stable waits=%d", waits)
            return True
        unknown = errors - RETRIABLE
        if unknown:
            raise RuntimeError(f"offset fetch failed error_codes={sorted(unknown)}")
        if time.monotonic() > deadline:
            logger.warning(
                "committed offsets still unstable after %.0fs error_codes=%s",
                timeout_s,
                sorted(errors),
            )
            return False
        if errors & COORDINATOR_MOVED:
            coordinator.coordinator_dead()
        waits += 1
        await asyncio.sleep(RETRY_S)


def _errors(response: Any) -> set[int]:
    codes = {response.error_code} - {0}
    for _topic, partitions, _tags in response.topics:
        for _partition, _offset, _epoch, _metadata, code, _ptags in partitions:
            if code:
                codes.add(code)
    return codes
