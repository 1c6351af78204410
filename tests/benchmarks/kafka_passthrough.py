"""The Kafka baseline: consume the input topics, produce each value unchanged.

No decoding and no state: this is as fast as a one-process Python service
built on aiokafka can move these records here, the ceiling Tact's worker is
measured against. Run as `python -m tests.benchmarks.kafka_passthrough
BOOTSTRAP GROUP OUTPUT INPUT...`; it runs until it is sent SIGTERM.
"""

from __future__ import annotations

import asyncio
import signal
import sys

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

# Offsets are committed this often, so the bench can watch progress as
# closely as it watches Tact's (whose commit interval is 0.1 s).
COMMIT_INTERVAL_MS = 100


async def pass_through(
    bootstrap: str, group: str, output: str, inputs: list[str]
) -> None:
    consumer = AIOKafkaConsumer(
        *inputs,
        bootstrap_servers=bootstrap,
        group_id=group,
        auto_offset_reset="earliest",
        enable_auto_commit=True,
        auto_commit_interval_ms=COMMIT_INTERVAL_MS,
    )
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all")
    stopping = asyncio.Event()
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGTERM, stopping.set)
    await producer.start()
    await consumer.start()
    try:
        while not stopping.is_set():
            batches = await consumer.getmany(timeout_ms=200, max_records=2000)
            sends = [
                await producer.send(output, message.value, key=message.key)
                for messages in batches.values()
                for message in messages
            ]
            # A real service waits for its sends before it polls again.
            if sends:
                await asyncio.gather(*sends)
    finally:
        await consumer.stop()
        await producer.stop()


if __name__ == "__main__":
    bootstrap, group, output, *inputs = sys.argv[1:]
    asyncio.run(pass_through(bootstrap, group, output, inputs))
