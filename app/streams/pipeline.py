"""The Faust app: one agent over both inputs, the customer table, wake-ups.

Faust notes that shape this module:
- The agent runs at concurrency 1: at higher concurrency Faust can commit an
  offset past a record still in flight, and that record is skipped after a
  restart.
- Tables can only be written while an event is processed, so the wake-up
  timer publishes to a topic keyed like the table and the agent does the
  release when it reads it.
- Table values are bytes assigned whole; Faust persists only assignments.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Iterator
from pathlib import Path
from typing import Any

import faust
import mode
from faust.types import TP, EventT, StreamT

from app import __version__, metrics
from app.engine import Policy, load_policy
from app.logs import QuietWorker, logging_config
from app.security import client_options, faust_credentials
from app.settings import Settings
from app.streams.handler import Headers, InputRecord, RecordHandler
from app.streams.recovery import ReadAheadTableManager
from app.streams.store import CommittedTableStore, TableStore
from app.streams.topics import TABLE_NAME
from app.streams.transactions import HandledOnlyConsumer, TactApp

logger = logging.getLogger(__name__)

PROGRESS_INTERVAL_S = 5.0
# A worker that joins while a restarted broker is still loading its topics
# is assigned nothing, and aiokafka asks for a new assignment only once its
# metadata shows the topics; Faust refreshes that every five minutes.
CONSUMER_METADATA_MAX_AGE_MS = 10_000


class FaustOutputs:
    """Sends through Faust, so that exactly-once mode puts them in the event's
    transaction."""

    def __init__(self, app: faust.App) -> None:
        self._app = app
        self._topics: dict[str, Any] = {}

    async def send(
        self,
        topic: str,
        key: bytes | None,
        value: bytes,
        headers: Headers | None = None,
    ) -> Awaitable[Any]:
        channel = self._topics.get(topic)
        if channel is None:
            channel = self._topics[topic] = self._app.topic(
                topic, key_serializer="raw", value_serializer="raw"
            )
        delivery: Awaitable[Any] = await channel.send(
            key=key, value=value, headers=headers or None
        )
        return delivery


def rocksdb_options(settings: Settings) -> dict[str, int]:
    """Memory per partition database: `write_buffers` x `write_buffer_bytes`
    of memtables plus a block cache of `block_cache_bytes`."""
    return {
        "write_buffer_size": settings.rocksdb_write_buffer_bytes,
        "max_write_buffer_number": settings.rocksdb_write_buffers,
        "block_cache_size": settings.rocksdb_block_cache_bytes,
        "block_cache_compressed_size": 0,
    }


def create_app(
    settings: Settings, policy: Policy | None = None, partitions: int | None = None
) -> faust.App:
    """Build the worker's Faust app; nothing connects until it starts."""
    policy = policy or load_policy(settings.policy_path)
    partitions = partitions or settings.partitions
    data_dir = Path(settings.data_dir)
    data_dir.mkdir(parents=True, exist_ok=True)

    brokers = [f"kafka://{server}" for server in settings.bootstrap_servers.split(",")]
    app = TactApp(
        settings.app_id,
        broker=brokers,
        store="rocksdb://",
        datadir=str(data_dir),
        processing_guarantee=settings.processing_guarantee,
        topic_partitions=partitions,
        topic_replication_factor=settings.replication_factor,
        # An unexpected error stops the worker instead of looping the agent:
        # the committed offset is kept and the orchestrator restarts it.
        agent_supervisor=mode.CrashingSupervisor,
        TableManager=ReadAheadTableManager,
        broker_commit_interval=settings.commit_interval_s,
        consumer_auto_offset_reset="earliest",
        consumer_metadata_max_age_ms=CONSUMER_METADATA_MAX_AGE_MS,
        web_bind=settings.web_bind,
        web_port=settings.web_port,
        web_host=settings.web_host,
        table_standby_replicas=0,
        key_serializer="raw",
        value_serializer="raw",
        logging_config=logging_config(settings),
        Worker=QuietWorker,
        broker_credentials=faust_credentials(settings),
    )

    app.client_options = client_options(settings)
    inputs = app.topic(
        settings.topic_lifecycle,
        settings.topic_intents,
        settings.topic_wakeups,
        settings.topic_repartition,
        key_serializer="raw",
        value_serializer="raw",
    )
    customers = app.Table(
        TABLE_NAME,
        partitions=partitions,
        key_type=bytes,
        value_type=bytes,
        options=rocksdb_options(settings),
    )
    store: TableStore | CommittedTableStore
    if settings.processing_guarantee == "exactly_once":
        store = CommittedTableStore(customers)
        app.on_committed(store.on_committed)
    else:
        store = TableStore(customers)
    handler = RecordHandler(settings, policy, partitions, store, FaustOutputs(app))
    wakeups = app.topic(
        settings.topic_wakeups, key_serializer="raw", value_serializer="raw"
    )

    @app.agent(inputs, concurrency=1)
    async def decide_records(stream: StreamT[bytes]) -> None:
        event: EventT[bytes]
        async for event in stream.events():
            message = event.message
            # No commit while a record is handled, and no acknowledgement
            # before it is (see transactions.py).
            async with app.handling():
                await handler.handle(
                    InputRecord(
                        topic=message.topic,
                        partition=message.partition,
                        offset=message.offset,
                        timestamp_ms=_timestamp_ms(message.timestamp),
                        key=message.key,
                        value=message.value,
                        headers=_headers(message.headers),
                    )
                )
                app.mark_handled(message)
                # Faust would acknowledge it only when the stream hands out
                # the next record, so a commit in between would carry this
                # record's outputs but not its offset.
                event.ack()

    recovery_started = [time.monotonic()]

    @app.on_partitions_assigned.connect  # type: ignore[arg-type]  # untyped signal
    async def start_recovery_clock(sender: Any, assigned: Any, **kwargs: Any) -> None:
        recovery_started[0] = time.monotonic()

    @customers.on_recover
    async def rebuild_due_index() -> None:
        consumer = app.consumer
        short = (
            consumer.unrecovered(customers)
            if isinstance(consumer, HandledOnlyConsumer)
            else {}
        )
        if short:
            # Deciding on part of the state would be wrong; a restart reads
            # the changelog again from what the table holds.
            logger.error(
                "table recovery stopped before the changelog's end, stopping "
                "partitions=%s",
                {tp.partition: reached for tp, reached in short.items()},
            )
            await app.crash(RuntimeError("table recovery incomplete"))
            return
        handler.rebuild_index(owned_states(customers))
        elapsed = time.monotonic() - recovery_started[0]
        metrics.recovery_seconds.set(elapsed)
        handler.is_recovered = True
        metrics.ready.set(1)
        logger.info("recovery done seconds=%.3f", elapsed)

    @app.timer(PROGRESS_INTERVAL_S)
    async def report_progress() -> None:
        report_partition_progress(app, handler)

    @app.timer(settings.wakeup_interval_s)
    async def send_wakeups() -> None:
        if app.rebalancing:
            return
        for key, value in handler.due_wakeups():
            await wakeups.send(key=key, value=value)

    @app.on_partitions_revoked.connect  # type: ignore[arg-type]  # untyped signal
    async def mark_unready(sender: Any, revoked: Any, **kwargs: Any) -> None:
        handler.is_recovered = False
        metrics.ready.set(0)
        if isinstance(store, CommittedTableStore):
            # Faust committed what it could before this signal; the rest is
            # handled again after the rebalance.
            await app.abort_open_transactions()
            store.discard()

    from app.web.views import register_views

    register_views(app, settings, policy, customers, handler)
    metrics.info.labels(__version__, policy.version, settings.processing_guarantee).set(
        1
    )
    logger.info(
        "app built policy=%s partitions=%d guarantee=%s",
        policy.version,
        partitions,
        settings.processing_guarantee,
    )
    return app


def report_partition_progress(app: faust.App, handler: RecordHandler) -> None:
    """Lag and age of the last processed record, per owned input partition."""
    now = time.monotonic()
    inputs = {*handler.settings.input_topics, *handler.settings.internal_topics}
    for tp in app.consumer.assignment():
        if tp.topic not in inputs:
            continue
        offset, at = handler.progress.get((tp.topic, tp.partition), (-1, None))
        highwater = app.consumer.highwater(tp)
        labels = (tp.topic, str(tp.partition))
        if highwater is not None and highwater >= 0:
            metrics.consumer_lag.labels(*labels).set(max(highwater - offset - 1, 0))
        if at is not None:
            metrics.last_record_age.labels(*labels).set(now - at)


def owned_states(table: Any) -> Iterator[tuple[int, bytes, bytes]]:
    """(partition, key, value) of every state in the partitions this worker
    owns, read one RocksDB partition at a time: the partition comes with
    the state instead of being hashed from each key, which took over half
    of the index rebuild."""
    store = table.data
    actives = table.app.assignor.assigned_actives()
    for partition, db in list(store._dbs.items()):
        if TP(table.changelog_topic_name, partition) in actives:
            for key, value in store._visible_items(db):
                yield partition, key, value


def _timestamp_ms(timestamp: float | None) -> int | None:
    return None if timestamp is None else int(timestamp * 1000)


def _headers(headers: Any) -> Headers:
    if not headers:
        return []
    items = headers.items() if isinstance(headers, dict) else headers
    return [(str(k), bytes(v or b"")) for k, v in items]
