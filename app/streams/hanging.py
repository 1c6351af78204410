"""Find the transactions the broker left open on an output partition.

When a transaction ends while one of its partitions has no leader, as on
a topic with a single replica whose broker is shutting down, Kafka's
transaction coordinator skips that partition's marker and counts the
transaction as done. The partition keeps an open transaction that nothing
will end: read_committed readers stop at it, so every record written there
afterwards stays hidden too, until the same producer writes a marker to
that partition again. For a dead-letter partition that can be never.

The ledger keeps, for each transactional producer, the last offset it wrote
to each partition and how its transaction ended. Once the partition's last
stable offset has passed that offset the entry is done; if it has not a
few seconds after the end, the transaction is hanging, and the producer
closes it with an empty transaction of the same outcome on that partition.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from typing import Any

from aiokafka import AIOKafkaProducer, TopicPartition

COMMIT = "commit"
ABORT = "abort"

# A transaction's markers land within milliseconds of its end; this leaves
# room for a loaded broker before an open partition counts as hanging.
HANG_AFTER_S = 5.0


@dataclass(frozen=True)
class Ended:
    offset: int
    outcome: str
    at: float


class Ledger:
    """What each transactional producer wrote, until the broker shows the
    transaction that wrote it ended there."""

    def __init__(self) -> None:
        self._open: defaultdict[str, dict[TopicPartition, int]] = defaultdict(dict)
        self._ended: defaultdict[str, dict[TopicPartition, Ended]] = defaultdict(dict)
        self._hanging: defaultdict[str, dict[TopicPartition, Ended]] = defaultdict(dict)

    def written(self, transactional_id: str, tp: TopicPartition, offset: int) -> None:
        """A record of the open transaction reached `tp` at `offset`."""
        partitions = self._open[transactional_id]
        partitions[tp] = max(offset, partitions.get(tp, offset))

    def ended(self, transactional_id: str, outcome: str, now: float) -> None:
        """The open transaction of `transactional_id` committed or aborted."""
        ended = self._ended[transactional_id]
        for tp, offset in self._open.pop(transactional_id, {}).items():
            ended[tp] = Ended(offset, outcome, now)

    def due(self, now: float) -> set[TopicPartition]:
        """Partitions whose last stable offset should have passed by now."""
        return {
            tp
            for ended in self._ended.values()
            for tp, entry in ended.items()
            if now - entry.at >= HANG_AFTER_S
        }

    def check(self, stable_ends: Mapping[TopicPartition, int], now: float) -> None:
        """Settle the due entries against the partitions' last stable offsets."""
        for transactional_id, ended in self._ended.items():
            for tp, entry in list(ended.items()):
                end = stable_ends.get(tp)
                if end is None or now - entry.at < HANG_AFTER_S:
                    continue
                del ended[tp]
                if end <= entry.offset:
                    self._hanging[transactional_id][tp] = entry

    def hanging(self) -> dict[str, dict[TopicPartition, Ended]]:
        """Hanging partitions by producer: what to close and how."""
        return {tid: dict(tps) for tid, tps in self._hanging.items() if tps}

    def closed(
        self, transactional_id: str, partitions: Collection[TopicPartition], now: float
    ) -> None:
        """Markers were sent again; check the partitions once more later."""
        hanging = self._hanging[transactional_id]
        for tp in partitions:
            entry = hanging.pop(tp)
            self._ended[transactional_id][tp] = Ended(entry.offset, entry.outcome, now)

    def forget(self, live: Collection[str]) -> None:
        """Drop producers that are gone: another worker owns their partitions."""
        for book in (self._open, self._ended, self._hanging):
            for transactional_id in [t for t in book if t not in live]:
                del book[transactional_id]


async def close_hanging(
    producer: AIOKafkaProducer, partitions: Mapping[TopicPartition, Ended]
) -> None:
    """Write each partition's marker again, with the outcome it missed: an
    empty transaction that holds the partition, committed or aborted.

    `producer` wrote the hanging records and has nothing in its open
    transaction, if it has one; none is open when this returns."""
    txn: Any = producer._txn_manager
    for outcome in (COMMIT, ABORT):
        tps = [tp for tp, entry in partitions.items() if entry.outcome == outcome]
        if not tps:
            continue
        if not txn.is_in_transaction():
            await producer.begin_transaction()
        for tp in tps:
            txn.maybe_add_partition_to_txn(tp)
        if outcome == COMMIT:
            await producer.commit_transaction()
        else:
            await producer.abort_transaction()
