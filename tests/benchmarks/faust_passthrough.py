"""The Faust pass-through: Tact's framework with none of Tact's work in it.

One agent over both input topics writes each record's value to a RocksDB
table under its key and sends the value on unchanged, under the processing
guarantee and commit interval Tact's worker runs with. No decoding, no
policy, and stock Faust throughout: none of Tact's transaction and commit
wiring, nor its leaner delivery of fetched records and sends. It tells how
much of the gap to the aiokafka pass-through is the framework's. Run as
`python -m tests.benchmarks.faust_passthrough BOOTSTRAP GROUP OUTPUT
DATA_DIR GUARANTEE COMMIT_INTERVAL INPUT...`; it runs until it is sent
SIGTERM.
"""

from __future__ import annotations

import sys
from typing import Any

import faust

from app.logs import QuietWorker

PARTITIONS = 4


def create_app(
    bootstrap: str,
    group: str,
    output: str,
    data_dir: str,
    guarantee: str,
    commit_interval_s: float,
    inputs: list[str],
) -> faust.App:
    app = faust.App(
        group,
        broker=f"kafka://{bootstrap}",
        store="rocksdb://",
        datadir=data_dir,
        processing_guarantee=guarantee,
        broker_commit_interval=commit_interval_s,
        topic_partitions=PARTITIONS,
        topic_replication_factor=1,
        table_standby_replicas=0,
        consumer_auto_offset_reset="earliest",
        key_serializer="raw",
        value_serializer="raw",
        web_enabled=False,
        # Without the terminal spinner, which at level warn would have every
        # debug line built and dropped (see app.logs).
        Worker=QuietWorker,
    )
    source = app.topic(*inputs, key_serializer="raw", value_serializer="raw")
    sink = app.topic(output, key_serializer="raw", value_serializer="raw")
    table = app.Table("values", partitions=PARTITIONS, key_type=bytes, value_type=bytes)

    @app.agent(source, concurrency=1)
    async def pass_on(stream: Any) -> None:
        async for event in stream.events():
            table[event.key] = event.value
            await sink.send(key=event.key, value=event.value)

    return app


if __name__ == "__main__":
    bootstrap, group, output, data_dir, guarantee, interval, *inputs = sys.argv[1:]
    app = create_app(
        bootstrap, group, output, data_dir, guarantee, float(interval), inputs
    )
    sys.argv = [sys.argv[0], "worker", "--loglevel", "warn"]
    app.main()
