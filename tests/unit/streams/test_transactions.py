"""Which Kafka transaction each send of the worker joins."""

from __future__ import annotations

import contextlib
import weakref
from collections.abc import Iterator
from types import SimpleNamespace
from typing import Any

from faust.streams import _current_event
from faust.types import TP

from app.streams.transactions import EventScopedTransactionManager

APP_ID = "tact-test"
CHANGELOG = f"{APP_ID}-customers-changelog"
INPUT_GROUP = 1


class RecordingProducer:
    def __init__(self) -> None:
        self.sends: list[dict[str, Any]] = []

    async def send(self, topic: str, *args: Any, transactional_id: str | None) -> None:
        self.sends.append({"topic": topic, "transactional_id": transactional_id})


class FakeEvent:
    """Weak-referenceable, as Faust's current-event variable requires."""

    def __init__(self, tp: TP) -> None:
        self.message = SimpleNamespace(tp=tp)


def _manager(producer: RecordingProducer) -> EventScopedTransactionManager:
    app = SimpleNamespace(
        conf=SimpleNamespace(id=APP_ID),
        assignor=SimpleNamespace(group_for_topic=lambda topic: INPUT_GROUP),
        tables=SimpleNamespace(changelog_topics={CHANGELOG}),
    )
    return EventScopedTransactionManager(
        SimpleNamespace(app=app), consumer=None, producer=producer
    )


async def test_changelog_write_joins_the_transaction_of_its_partition() -> None:
    producer = RecordingProducer()
    manager = _manager(producer)

    # Faust's send buffer delivers table writes with no current event.
    await manager.send(CHANGELOG, b"c-1", b"state", 3, None, None)

    assert producer.sends == [
        {"topic": CHANGELOG, "transactional_id": f"{APP_ID}-{INPUT_GROUP}-3"}
    ]


async def test_send_outside_an_event_to_another_topic_is_not_transactional() -> None:
    producer = RecordingProducer()
    manager = _manager(producer)

    await manager.send(f"{APP_ID}-wakeups", b"c-1", b"{}", None, None, None)

    assert producer.sends[0]["transactional_id"] is None


async def test_send_during_an_event_joins_the_transaction_of_its_source() -> None:
    producer = RecordingProducer()
    manager = _manager(producer)
    event = FakeEvent(TP(f"{APP_ID}-intents", 2))

    with _current(event):
        await manager.send("notifications-approved", b"c-1", b"{}", None, None, None)

    assert producer.sends[0]["transactional_id"] == f"{APP_ID}-{INPUT_GROUP}-2"


@contextlib.contextmanager
def _current(event: FakeEvent) -> Iterator[None]:
    """Make `event` the current one, as a Faust stream does while it runs."""
    token = _current_event.set(weakref.ref(event))
    try:
        yield
    finally:
        _current_event.reset(token)
