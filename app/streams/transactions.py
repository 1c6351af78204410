"""Keep every output of an event inside that event's Kafka transaction.

Faust's exactly-once mode picks the transactional producer for a send by the
*destination* topic's partition. Tact's outputs (approved sends, decisions,
dead letters) are not consumed by the worker, so Faust finds no transaction
for them and sends them outside any transaction, where a crash before the
commit repeats them. Here a send made while an event is processed joins the
transaction of the event's *source* partition — the same one that commits
that event's offset and its changelog writes. Sends made outside an event
(the wake-up timer) go through the plain producer: a wake-up is idempotent.
"""

from __future__ import annotations

from typing import Any

import faust
from faust import current_event
from faust.transport import by_url
from faust.transport.consumer import TransactionManager
from faust.types import TP, HeadersArg, RecordMetadata, TransportT


class EventScopedTransactionManager(TransactionManager):
    async def send(
        self,
        topic: str,
        key: bytes | None,
        value: bytes | None,
        partition: int | None,
        timestamp: float | None,
        headers: HeadersArg | None,
        *,
        transactional_id: str | None = None,
    ) -> Any:
        return await self.producer.send(
            topic,
            key,
            value,
            partition,
            timestamp,
            headers,
            transactional_id=self._transaction_of_current_event(),
        )

    async def send_and_wait(
        self,
        topic: str,
        key: bytes | None,
        value: bytes | None,
        partition: int | None,
        timestamp: float | None,
        headers: HeadersArg | None,
        *,
        transactional_id: str | None = None,
    ) -> RecordMetadata:
        fut = await self.send(topic, key, value, partition, timestamp, headers)
        result: RecordMetadata = await fut
        return result

    def _transaction_of_current_event(self) -> str | None:
        event = current_event()
        if event is None:
            return None
        source: TP = event.message.tp
        group = self.app.assignor.group_for_topic(source.topic)
        return f"{self.app.conf.id}-{group}-{source.partition}"


class TactApp(faust.App):
    """A Faust app whose transactions cover every output of an event."""

    def _new_transport(self) -> TransportT:
        base = by_url(self.conf.broker_consumer[0])

        class Transport(base):  # type: ignore[misc, valid-type]  # chosen at run time
            TransactionManager = EventScopedTransactionManager

        transport: TransportT = Transport(self.conf.broker_consumer, self)
        return transport
