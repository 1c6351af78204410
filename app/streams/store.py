"""The customer table as the handler sees it: bytes in, bytes out.

Faust writes a table's local RocksDB at once and its changelog record
within the event's transaction. Under exactly_once that transaction can
still abort (a crash, a fenced zombie), and the local database would then
hold state Kafka never committed: when the worker decides on it again, an
intent it already saw in the aborted transaction looks like a retry and is
suppressed. So under exactly_once writes wait in memory, readable by the
handler, and reach RocksDB only once their transaction has committed, the
way table recovery would have applied them; what a rebalance or a failed
commit leaves behind is dropped, and Kafka has the truth.

Under both guarantees the changelog record is handed to the producer while
the record that caused it is handled. Faust's table API queues it in a
send buffer instead, whose task can still be sending it while a commit
runs: the record would then miss the transaction (or the offset commit)
of the state it carries.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Collection
from dataclasses import dataclass
from typing import Any

from faust import current_event

from app.streams.recovery import ChangelogRecord

logger = logging.getLogger(__name__)


class TableStore:
    """Writes the local table at once (at_least_once)."""

    def __init__(self, table: Any) -> None:
        self._table = table

    def get(self, key: bytes) -> bytes | None:
        return _read(self._table, key)

    async def put(self, key: bytes, value: bytes) -> None:
        partition = _event_partition()
        self._table.data[key] = value
        # Faust's own bookkeeping keeps the changelog offset the table holds.
        await _send_changelog(
            self._table, partition, key, value, self._table._on_changelog_sent
        )


@dataclass(frozen=True)
class _Change:
    """A table write whose changelog record is in an open transaction."""

    key: bytes
    value: bytes
    sent: Any  # Faust's FutureMessage for the changelog record


class CommittedTableStore:
    """Writes reach the local table only once their transaction commits
    (exactly_once, see the module doc)."""

    def __init__(self, table: Any) -> None:
        self._table = table
        # partition -> key -> latest uncommitted value, for reads
        self._latest: dict[int, dict[bytes, bytes]] = {}
        # partition -> uncommitted writes in order, for the commit
        self._changes: dict[int, list[_Change]] = {}

    def get(self, key: bytes) -> bytes | None:
        latest = self._latest.get(_event_partition())
        if latest is not None and key in latest:
            return latest[key]
        return _read(self._table, key)

    async def put(self, key: bytes, value: bytes) -> None:
        partition = _event_partition()
        sent = await _send_changelog(self._table, partition, key, value)
        self._latest.setdefault(partition, {})[key] = value
        self._changes.setdefault(partition, []).append(_Change(key, value, sent))

    @property
    def uncommitted(self) -> int:
        return sum(len(changes) for changes in self._changes.values())

    async def on_committed(self, partitions: Collection[int]) -> None:
        """Apply the writes of `partitions`, whose transactions committed."""
        for partition in partitions:
            changes = self._changes.pop(partition, [])
            self._latest.pop(partition, None)
            if not changes:
                continue
            results = await asyncio.gather(*(change.sent for change in changes))
            self._table.apply_changelog_batch(
                [
                    ChangelogRecord(
                        tp=result.topic_partition,
                        partition=partition,
                        offset=result.offset,
                        key=change.key,
                        value=change.value,
                    )
                    for change, result in zip(changes, results, strict=True)
                ]
            )

    def discard(self) -> None:
        """Forget every uncommitted write: its transaction will not commit."""
        if self._changes:
            logger.info("uncommitted table writes dropped writes=%d", self.uncommitted)
        self._changes.clear()
        self._latest.clear()


def _read(table: Any, key: bytes) -> bytes | None:
    # From the store itself: the table's own get reads RocksDB twice (a
    # membership test, then the value) and runs Faust's sensors.
    value: bytes | None = table.data.get(key)
    return value


async def _send_changelog(
    table: Any, partition: int, key: bytes, value: bytes, callback: Any = None
) -> Any:
    """Hand a table write's changelog record to the producer; its delivery."""
    return await table.changelog_topic.send(
        key=key,
        value=value,
        partition=partition,
        key_serializer="raw",
        value_serializer="raw",
        callback=callback,
    )


def _event_partition() -> int:
    event = current_event()
    if event is None:
        raise RuntimeError("the customer table is written only while handling a record")
    partition: int = event.message.partition
    return partition
