"""In-memory index of when each customer next has something due.

The wake-up timer reads it instead of scanning the table. It holds only the
partitions this worker owns, is rebuilt from the table after every recovery,
and may be stale: a wake-up for a customer with nothing due is a no-op.
"""

from __future__ import annotations

import heapq
from collections.abc import Iterable


class DueIndex:
    def __init__(self) -> None:
        self._due: dict[str, tuple[int, int]] = {}  # customer -> (partition, due_us)
        self._heap: list[tuple[int, str]] = []

    def __len__(self) -> int:
        return len(self._due)

    def set(self, customer_id: str, partition: int, due_us: int | None) -> None:
        """Record the customer's next due time, or forget it when None."""
        if due_us is None:
            self._due.pop(customer_id, None)
            return
        current = self._due.get(customer_id)
        if current == (partition, due_us):
            return
        self._due[customer_id] = (partition, due_us)
        heapq.heappush(self._heap, (due_us, customer_id))

    def pop_due(self, now_us: int, retry_after_us: int) -> list[tuple[str, int]]:
        """Customers due at `now_us`, as (customer_id, due_us).

        Each stays in the index, due again `retry_after_us` later, so that a
        wake-up lost with a crashed producer is sent again; processing the
        wake-up replaces the entry with the customer's real next due time.
        """
        due: list[tuple[str, int]] = []
        while self._heap and self._heap[0][0] <= now_us:
            due_us, customer_id = heapq.heappop(self._heap)
            entry = self._due.get(customer_id)
            if entry is None or entry[1] != due_us:
                continue  # superseded by a later set()
            due.append((customer_id, due_us))
            retry = (entry[0], now_us + retry_after_us)
            self._due[customer_id] = retry
            heapq.heappush(self._heap, (retry[1], customer_id))
        return due

    def drop_partitions(self, partitions: Iterable[int]) -> None:
        gone = set(partitions)
        for customer_id in [c for c, (p, _) in self._due.items() if p in gone]:
            del self._due[customer_id]

    def clear(self) -> None:
        self._due.clear()
        self._heap.clear()
