"""Tact over a real broker: throughput, latency, state, recovery, scaling.

Every run gets a private single-node broker on a free port of its own (never
the ports the local stack or the test suite use) and stops it at the end.
Throughput is the slope of the consumer group's committed offsets between
10% and 90% of the input, so start-up and the last straggling commit do not
count, and the baseline pass-through is measured the same way.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import GroupCoordinatorNotAvailableError

from app.engine.times import HOUR_US
from app.settings import Settings
from app.streams.handler import partition_for
from tests.benchmarks import workload
from tests.support.broker import KAFKA_SCRIPT, REPO, free_port
from tests.support.kafka_io import read_all, wait_for_leaders
from tests.support.worker import Stack, WorkerProcess

logger = logging.getLogger(__name__)

PARTITIONS = 4
FIRST_BENCH_PORT = 39_092
POLL_S = 0.25
SUSTAINED_FROM, SUSTAINED_TO = 0.1, 0.9
LOADS = (0.25, 0.5, 0.75)
INTENT_ID_HEADER = "tact-intent-id"
# How long approvals may trail the last intent of a load before they count
# as lost.
STRAGGLER_TIMEOUT_S = 15
PASSTHROUGH_OUTPUT = "bench-passthrough-out"
FAUST_OUTPUT = "bench-faust-out"
RECOVERY_METRIC = "tact_table_recovery_seconds"


@dataclass(frozen=True)
class KafkaSize:
    records: int
    customers: int
    load_s: float  # how long each fixed offered load runs
    drain_timeout_s: float
    recovered_customers: int  # states in the changelog of the recovery at scale


FULL = KafkaSize(
    records=200_000,
    customers=100_000,
    load_s=20,
    drain_timeout_s=600,
    recovered_customers=1_000_000,
)
QUICK = KafkaSize(
    records=20_000,
    customers=10_000,
    load_s=6,
    drain_timeout_s=180,
    recovered_customers=100_000,
)


@contextmanager
def private_broker(work: Path) -> Iterator[str]:
    """A broker of our own for the bench; its bootstrap address."""
    port = FIRST_BENCH_PORT
    while not (free_port("127.0.0.1", port) and free_port("127.0.0.1", port + 1)):
        port += 2
    env = {
        **os.environ,
        "TACT_KAFKA_PORT": str(port),
        "TACT_KAFKA_DATA": str(work / f"kafka-{port}"),
        "TACT_KAFKA_HEAP": "1g",
    }
    script = ["bash", str(KAFKA_SCRIPT)]
    subprocess.run([*script, "up"], env=env, check=True, capture_output=True)
    logger.info("bench broker up port=%d", port)
    try:
        yield f"127.0.0.1:{port}"
    finally:
        subprocess.run([*script, "down"], env=env, check=False, capture_output=True)


def run(size: KafkaSize, work: Path) -> dict[str, Any]:
    """Every Kafka figure of one bench run."""
    return asyncio.run(_run(size, work))


async def _run(size: KafkaSize, work: Path) -> dict[str, Any]:
    results: dict[str, Any] = {
        "records": size.records,
        "customers": size.customers,
        # The workers run at the default unless the caller's environment
        # names one.
        "processing_guarantee": os.environ.get(
            "TACT_PROCESSING_GUARANTEE", Settings().processing_guarantee
        ),
        "commit_interval_s": float(
            os.environ.get("TACT_COMMIT_INTERVAL", Settings().commit_interval_s)
        ),
    }
    with private_broker(work) as bootstrap:
        # 1. One input, produced once, read by every contender.
        inputs = Stack(bootstrap, "bench-input", workload.POLICY_PATH, PARTITIONS)
        await _create_topics(
            bootstrap,
            [inputs.lifecycle, inputs.intents, PASSTHROUGH_OUTPUT, FAUST_OUTPUT],
        )
        total = await _produce_input(bootstrap, inputs, size, work)
        input_topics = [inputs.lifecycle, inputs.intents]

        # 2. The baseline: a raw aiokafka pass-through process.
        results["baseline"] = await _passthrough_rate(
            "tests.benchmarks.kafka_passthrough",
            "bench-passthrough",
            [PASSTHROUGH_OUTPUT],
            bootstrap,
            input_topics,
            total,
            work,
        )

        # 3. Stock Faust with a table and none of Tact's work.
        results["faust"] = await _passthrough_rate(
            "tests.benchmarks.faust_passthrough",
            "bench-faust",
            [
                FAUST_OUTPUT,
                str(work / "faust-data"),
                results["processing_guarantee"],
                str(results["commit_interval_s"]),
            ],
            bootstrap,
            input_topics,
            total,
            work,
        )
        results["faust"]["ratio_to_baseline"] = (
            results["faust"]["records_per_s"] / results["baseline"]["records_per_s"]
        )

        # 4. One Tact worker: sustained throughput, then its state.
        stack = _stack(bootstrap, "bench-one", inputs)
        worker = WorkerProcess(stack, work / "one-data", work / "one.log")
        try:
            rate = await _while_started(
                [worker], bootstrap, stack.prefix, input_topics, total, size
            )
            results["tact"] = rate
            results["tact"]["ratio_to_baseline"] = (
                rate["records_per_s"] / results["baseline"]["records_per_s"]
            )
            results["tact"]["ratio_to_faust"] = (
                rate["records_per_s"] / results["faust"]["records_per_s"]
            )

            # 5. Latency at fixed shares of the measured maximum.
            maximum = rate["records_per_s"]
            results["latency"] = [
                await _latency(bootstrap, stack, inputs.intents, maximum, share, size)
                for share in LOADS
            ]
            results["state"] = {
                "worker_rss_bytes": _rss_bytes(worker),
                "rocksdb_bytes": _folder_bytes(work / "one-data"),
                **await _encoded_state(bootstrap, stack.prefix),
            }
        finally:
            worker.stop()

        # 6. Recovery of the table from its changelog into an empty folder,
        # then of a changelog grown to the size the target names.
        results["recovery"] = _recovery(stack, work)
        results["recovery_at_scale"] = await _recovery_at_scale(
            stack, size.recovered_customers, results["recovery"], work
        )

        # 7. Two workers on the same partitions; a crash is a result too.
        try:
            scaling = await _scaling(bootstrap, inputs, input_topics, total, size, work)
        except (WorkerCrashed, RuntimeError, TimeoutError) as exc:
            logger.warning("two-worker run failed error=%s", exc)
            scaling = {"records_per_s": None, "error": str(exc)[-2000:]}
        scaling["one_worker_records_per_s"] = rate["records_per_s"]
        if scaling["records_per_s"] is not None:
            scaling["ratio_two_to_one"] = (
                scaling["records_per_s"] / rate["records_per_s"]
            )
        results["scaling"] = scaling
    return results


async def _while_started(
    workers: list[WorkerProcess],
    bootstrap: str,
    group: str,
    topics: list[str],
    total: int,
    size: KafkaSize,
) -> dict[str, Any]:
    """Start the workers and measure their group; sampling starts first, so
    records decided while a worker still reports unready are counted."""
    rate = asyncio.create_task(
        _sustained_rate(bootstrap, group, topics, total, size.drain_timeout_s, workers)
    )
    for worker in workers:
        worker.start()
    for worker in workers:
        await asyncio.to_thread(worker.wait_ready)
    return await rate


class WorkerCrashed(RuntimeError):
    """A worker exited during a measurement; the figure is reported missing."""


def _stack(bootstrap: str, prefix: str, inputs: Stack) -> Stack:
    """A worker stack of its own (group, table, outputs) on the shared inputs."""
    return Stack(
        bootstrap,
        prefix,
        workload.POLICY_PATH,
        PARTITIONS,
        extra_env={
            "TACT_TOPIC_LIFECYCLE": inputs.lifecycle,
            "TACT_TOPIC_INTENTS": inputs.intents,
        },
    )


async def _create_topics(
    bootstrap: str, names: list[str], config: dict[str, str] | None = None
) -> None:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        await admin.create_topics(
            [NewTopic(name, PARTITIONS, 1, topic_configs=config) for name in names]
        )
        await wait_for_leaders(admin, names)
    finally:
        await admin.close()


async def _produce_input(
    bootstrap: str, inputs: Stack, size: KafkaSize, work: Path
) -> int:
    """Generate the bench's input of the last hour, produce it to the input
    topics of `inputs`, and return how many records that is."""
    path = workload.generate(
        work / f"kafka-{size.records}-{size.customers}-{time.time_ns()}.jsonl",
        size.records,
        size.customers,
        start_us=time.time_ns() // 1000 - HOUR_US,
        span_us=HOUR_US,
    )
    rows = workload.records_of(path)
    path.unlink()
    topics = {
        workload.LIFECYCLE_TOPIC: inputs.lifecycle,
        workload.INTENTS_TOPIC: inputs.intents,
    }
    await _produce_all(bootstrap, [(topics[t], k, v) for t, k, v, _ in rows])
    return len(rows)


async def _produce_all(
    bootstrap: str,
    rows: Iterable[tuple[str, bytes, bytes]],
    partition_of: Callable[[bytes], int] | None = None,
) -> None:
    """Produce (topic, key, value) rows; on the partition `partition_of`
    gives a key, else on the producer's."""
    producer = AIOKafkaProducer(
        bootstrap_servers=bootstrap, acks="all", linger_ms=20, max_batch_size=256_000
    )
    await producer.start()
    try:
        started = time.perf_counter()
        produced = 0
        pending = []
        for topic, key, value in rows:
            partition = partition_of(key) if partition_of else None
            pending.append(
                await producer.send(topic, value, key=key, partition=partition)
            )
            produced += 1
            if len(pending) >= 5_000:
                await asyncio.gather(*pending)
                pending = []
        await asyncio.gather(*pending)
        logger.info(
            "records produced records=%d seconds=%.1f",
            produced,
            time.perf_counter() - started,
        )
    finally:
        await producer.stop()


async def _passthrough_rate(
    module: str,
    group: str,
    options: list[str],
    bootstrap: str,
    input_topics: list[str],
    total: int,
    work: Path,
) -> dict[str, Any]:
    """The sustained rate of a pass-through process while `python -m module
    BOOTSTRAP GROUP OPTIONS... INPUT...` runs; its output goes to GROUP.log
    in `work`."""
    args = [bootstrap, group, *options, *input_topics]
    with (work / f"{group}.log").open("wb") as log:
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", module, *args, cwd=REPO, stdout=log, stderr=log
        )
    rate = asyncio.create_task(
        _sustained_rate(bootstrap, group, input_topics, total, 600)
    )
    exited = asyncio.create_task(process.wait())
    try:
        await asyncio.wait({rate, exited}, return_when=asyncio.FIRST_COMPLETED)
        if not rate.done():
            rate.cancel()
            raise RuntimeError(
                f"{module} exited with {process.returncode}, see {group}.log"
            )
        return rate.result()
    finally:
        exited.cancel()
        if process.returncode is None:
            process.send_signal(signal.SIGTERM)
        try:
            await asyncio.wait_for(process.wait(), timeout=30)
        except TimeoutError:
            process.kill()
            await process.wait()


async def _committed(admin: AIOKafkaAdminClient, group: str, topics: list[str]) -> int:
    try:
        offsets = await admin.list_consumer_group_offsets(group)
    except GroupCoordinatorNotAvailableError:
        # The offsets topic is created with the first group; until then
        # nothing is committed.
        return 0
    return sum(
        meta.offset
        for tp, meta in offsets.items()
        if tp.topic in topics and meta.offset > 0
    )


async def _sustained_rate(
    bootstrap: str,
    group: str,
    topics: list[str],
    total: int,
    timeout_s: float,
    workers: Sequence[WorkerProcess] = (),
) -> dict[str, Any]:
    """Records per second of a group between 10% and 90% of `total`."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    samples: list[tuple[float, int]] = []
    try:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            samples.append((time.monotonic(), await _committed(admin, group, topics)))
            if samples[-1][1] >= total:
                break
            for worker in workers:
                if worker.process is not None and worker.process.poll() is not None:
                    raise WorkerCrashed(worker.log_tail(20))
            await asyncio.sleep(POLL_S)
        else:
            raise TimeoutError(
                f"group {group} did not finish in {timeout_s}s: {samples[-1]}"
            )
    finally:
        await admin.close()
    low = _first_time(samples, SUSTAINED_FROM * total)
    high = _first_time(samples, SUSTAINED_TO * total)
    records = (SUSTAINED_TO - SUSTAINED_FROM) * total
    return {
        "records_per_s": records / max(high[0] - low[0], POLL_S),
        "span_s": high[0] - low[0],
        "first_to_last_s": samples[-1][0] - _first_time(samples, 1)[0],
    }


def _first_time(samples: list[tuple[float, int]], count: float) -> tuple[float, int]:
    return next(sample for sample in samples if sample[1] >= count)


async def _latency(
    bootstrap: str,
    stack: Stack,
    intents: str,
    maximum: float,
    share: float,
    size: KafkaSize,
    prefix: str = "lat",
) -> dict[str, Any]:
    """Produce-to-visible latency of approved intents at a fixed offered rate.

    The intents are service emails for customers seen nowhere else, which
    every rule of the bench policy lets through; `prefix` keeps their ids
    apart from those of other runs on the same input topic.
    """
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap, isolation_level="read_committed"
    )
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=0)
    await consumer.start()
    await producer.start()
    sent: dict[str, float] = {}
    seen: dict[str, float] = {}
    try:
        partitions = [TopicPartition(stack.approved, p) for p in range(PARTITIONS)]
        consumer.assign(partitions)
        await consumer.seek_to_end(*partitions)
        for tp in partitions:
            await consumer.position(tp)
        all_seen = asyncio.Event()
        reader = asyncio.create_task(_read_approved(consumer, sent, seen, all_seen))
        rate = share * maximum
        await _offer(
            producer, intents, rate, size.load_s, f"{prefix}-{share:.2f}", sent
        )
        await producer.flush()
        # The reader may have caught up during the load; wait for the tail.
        all_seen.clear()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(all_seen.wait(), STRAGGLER_TIMEOUT_S)
        reader.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await reader
    finally:
        await producer.stop()
        await consumer.stop()
    latencies_ms = sorted(
        (seen[intent_id] - at) * 1000
        for intent_id, at in sent.items()
        if intent_id in seen
    )
    return {
        "share_of_max": share,
        "offered_per_s": share * maximum,
        "sent": len(sent),
        "approved_seen": len(latencies_ms),
        "p50_ms": _quantile(latencies_ms, 0.5),
        "p99_ms": _quantile(latencies_ms, 0.99),
        "p999_ms": _quantile(latencies_ms, 0.999),
    }


async def _offer(
    producer: AIOKafkaProducer,
    topic: str,
    rate: float,
    duration_s: float,
    prefix: str,
    sent: dict[str, float],
) -> None:
    """Send intents at `rate` per second for `duration_s`, in 5 ms ticks."""
    started = time.monotonic()
    number = 0
    while (elapsed := time.monotonic() - started) < duration_s:
        while number < rate * elapsed:
            customer = f"{prefix}-{number}"
            intent_id = f"in-{customer}"
            value = {
                "intent_id": intent_id,
                "customer_id": customer,
                "channel": "email",
                "category": "service",
                "campaign_id": "bench-latency",
                "created_at": _rfc3339_now(),
                "payload": {"template": "tpl-latency"},
            }
            sent[intent_id] = time.time()
            await producer.send(topic, orjson.dumps(value), key=customer.encode())
            number += 1
        await asyncio.sleep(0.005)


async def _read_approved(
    consumer: AIOKafkaConsumer,
    sent: dict[str, float],
    seen: dict[str, float],
    all_seen: asyncio.Event,
) -> None:
    """Note when each approved intent becomes visible; set `all_seen` once
    every intent sent so far has been seen."""
    while True:
        batches = await consumer.getmany(timeout_ms=100)
        now = time.time()
        for messages in batches.values():
            for message in messages:
                headers = dict(message.headers or ())
                intent_id = headers.get(INTENT_ID_HEADER)
                if intent_id is not None:
                    seen.setdefault(intent_id.decode(), now)
        if sent and len(seen) >= len(sent):
            all_seen.set()


def _rfc3339_now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


def _quantile(values: Sequence[float], q: float) -> float | None:
    if not values:
        return None
    return values[min(int(q * len(values)), len(values) - 1)]


async def _encoded_state(bootstrap: str, app_id: str) -> dict[str, Any]:
    """Sizes of each customer's newest encoded state, from the changelog."""
    records = await read_all(bootstrap, f"{app_id}-customers-changelog", PARTITIONS)
    newest: dict[bytes | None, int] = {}
    for _, key, value in records:
        newest[key] = len(value or b"")
    sizes = sorted(newest.values())
    return {
        "customers": len(sizes),
        "encoded_bytes_mean": statistics.fmean(sizes) if sizes else None,
        "encoded_bytes_p50": _quantile(sizes, 0.5),
        "encoded_bytes_p99": _quantile(sizes, 0.99),
        "encoded_bytes_max": sizes[-1] if sizes else None,
    }


def _recovery(stack: Stack, work: Path) -> dict[str, Any]:
    """Time to ready with the table to recover, and without any table.

    The difference is the recovery itself; the rest is what every start
    costs (imports, joining the group, topic checks). The start with no
    table is the second one of its stack, so that creating its topics is
    not counted either. The worker's own figure, from assignment to ready,
    comes from its recovery metric.
    """
    empty = Stack(
        stack.bootstrap,
        "bench-empty",
        workload.POLICY_PATH,
        PARTITIONS,
    )
    _time_to_ready(empty, work / "empty-first-data", work / "empty-first.log")
    empty_start = _time_to_ready(empty, work / "empty-data", work / "empty.log")
    start = _time_to_ready(stack, work / "recovered-data", work / "recovered.log")
    return {
        "seconds_to_ready": start.seconds,
        "empty_start_seconds": empty_start.seconds,
        "recovery_seconds": max(start.seconds - empty_start.seconds, 0.0),
        "reported_recovery_seconds": start.reported_recovery_s,
        "worker_rss_bytes": start.rss_bytes,
        "rocksdb_bytes": _folder_bytes(work / "recovered-data"),
    }


async def _recovery_at_scale(
    source: Stack, customers: int, small: dict[str, Any], work: Path
) -> dict[str, Any]:
    """Recovery of `customers` states into an empty folder.

    The states are the bench worker's own, copied under new customer ids
    until there are `customers` of them, each on its murmur2 partition.
    """
    records = await read_all(
        source.bootstrap, f"{source.prefix}-customers-changelog", PARTITIONS
    )
    newest = {key: value for _, key, value in records if key and value}
    samples = list(newest.items())
    stack = Stack(source.bootstrap, "bench-scale", workload.POLICY_PATH, PARTITIONS)
    changelog = f"{stack.prefix}-customers-changelog"
    await _create_topics(source.bootstrap, [changelog], {"cleanup.policy": "compact"})
    await _produce_all(
        source.bootstrap,
        _copied_states(changelog, samples, customers),
        lambda key: partition_for(key.decode(), PARTITIONS),
    )
    start = _time_to_ready(stack, work / "scale-data", work / "scale.log")
    recovery_s = max(start.seconds - small["empty_start_seconds"], 0.0)
    return {
        "customers": customers,
        "seconds_to_ready": start.seconds,
        "recovery_seconds": recovery_s,
        "recovery_seconds_per_million": recovery_s * 1_000_000 / customers,
        "reported_recovery_seconds": start.reported_recovery_s,
        "worker_rss_bytes": start.rss_bytes,
        "rocksdb_bytes": _folder_bytes(work / "scale-data"),
    }


def _copied_states(
    topic: str, samples: Sequence[tuple[bytes, bytes]], customers: int
) -> Iterator[tuple[str, bytes, bytes]]:
    """`customers` changelog rows, each a sample's state under a new id."""
    for n in range(customers):
        key, value = samples[n % len(samples)]
        customer_id = f"scale-{n:07d}"
        # The state names its customer; the copy names the new one.
        value = value.replace(
            b'"c":' + orjson.dumps(key.decode()),
            b'"c":' + orjson.dumps(customer_id),
            1,
        )
        yield topic, customer_id.encode(), value


@dataclass(frozen=True)
class Start:
    seconds: float  # process start to ready
    rss_bytes: int | None  # once ready
    reported_recovery_s: float | None  # the worker's recovery metric


def _time_to_ready(stack: Stack, data_dir: Path, log_path: Path) -> Start:
    worker = WorkerProcess(stack, data_dir, log_path)
    started = time.monotonic()
    worker.start()
    try:
        worker.wait_ready(timeout_s=600)
        seconds = time.monotonic() - started
        _, metrics = worker.get("/metrics")
        return Start(seconds, _rss_bytes(worker), _gauge(metrics, RECOVERY_METRIC))
    finally:
        worker.stop()


def _gauge(text: bytes, name: str) -> float | None:
    for line in text.decode().splitlines():
        metric, _, value = line.partition(" ")
        if metric == name:
            return float(value)
    return None


async def _scaling(
    bootstrap: str,
    inputs: Stack,
    input_topics: list[str],
    total: int,
    size: KafkaSize,
    work: Path,
) -> dict[str, Any]:
    stack = _stack(bootstrap, "bench-two", inputs)
    workers = [
        WorkerProcess(stack, work / f"two-data-{n}", work / f"two-{n}.log")
        for n in (1, 2)
    ]
    try:
        return await _while_started(
            workers, bootstrap, stack.prefix, input_topics, total, size
        )
    finally:
        for worker in workers:
            worker.stop()


def _rss_bytes(worker: WorkerProcess) -> int | None:
    if worker.process is None:
        return None
    status = Path(f"/proc/{worker.process.pid}/status")
    for line in status.read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    return None


def _folder_bytes(folder: Path) -> int:
    return sum(path.stat().st_size for path in folder.rglob("*") if path.is_file())
