"""`python -m tests.benchmarks.commit_interval [SECONDS ...]`: what the
commit interval costs and buys.

One worker per interval drains the same input on one private broker, then
takes intents at half of the rate it just reached: under exactly_once an
approved send is visible only once its transaction commits, so a shorter
interval lowers latency and lowers that rate with it. Intervals alternate
over rounds, and the ratios compare each round's workers with the first
interval's. Writes tests/benchmarks/results/commit-interval.json.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import orjson
from aiokafka import AIOKafkaConsumer, TopicPartition

from tests.benchmarks import kafka_bench, workload
from tests.support.broker import REPO
from tests.support.worker import Stack, WorkerProcess

logger = logging.getLogger(__name__)

RESULTS = REPO / "tests" / "benchmarks" / "results" / "commit-interval.json"
SIZE = kafka_bench.KafkaSize(
    records=20_000,
    customers=10_000,
    load_s=10,
    drain_timeout_s=600,
    recovered_customers=0,
)
SHARE = 0.5


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.benchmarks.commit_interval")
    parser.add_argument("intervals", nargs="*", type=float, default=[0.1, 0.02])
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s bench %(message)s", stream=sys.stderr
    )
    logging.getLogger("aiokafka").setLevel(logging.WARNING)
    work = REPO / "var" / "bench" / f"commit-interval-{time.time_ns()}"
    runs = asyncio.run(_run(args.intervals, args.rounds, work))
    ratios = _ratios(runs, args.intervals[0])
    results = {
        "started_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "records": SIZE.records,
        "load_share": SHARE,
        "runs": runs,
        "ratios_to_first": ratios,
    }
    RESULTS.write_bytes(orjson.dumps(results, option=orjson.OPT_INDENT_2))
    print(_table(runs, ratios))
    return 0


async def _run(intervals: list[float], rounds: int, work: Path) -> list[dict[str, Any]]:
    runs = []
    with kafka_bench.private_broker(work) as bootstrap:
        inputs = Stack(
            bootstrap, "bench-input", workload.POLICY_PATH, kafka_bench.PARTITIONS
        )
        topics = [inputs.lifecycle, inputs.intents]
        await kafka_bench._create_topics(bootstrap, topics)
        await kafka_bench._produce_input(bootstrap, inputs, SIZE, work)
        # The first worker on a fresh broker measured two to three times the
        # latency of every later one, cause not found: it warms up, unreported.
        await _one(bootstrap, inputs, topics, intervals[0], -1, work)
        for number in range(rounds):
            for interval in intervals:
                runs.append(
                    await _one(bootstrap, inputs, topics, interval, number, work)
                )
    return runs


async def _one(
    bootstrap: str,
    inputs: Stack,
    topics: list[str],
    interval: float,
    number: int,
    work: Path,
) -> dict[str, Any]:
    name = f"ci-{interval:g}-{number}" if number >= 0 else "ci-warm-up"
    stack = kafka_bench._stack(bootstrap, name, inputs)
    stack.extra_env["TACT_COMMIT_INTERVAL"] = str(interval)
    worker = WorkerProcess(stack, work / f"{name}-data", work / f"{name}.log")
    try:
        # Every record so far, the earlier runs' latency intents among them.
        total = await _records_in(bootstrap, topics)
        rate = await kafka_bench._while_started(
            [worker], bootstrap, stack.prefix, topics, total, SIZE
        )
        latency = await kafka_bench._latency(
            bootstrap,
            stack,
            inputs.intents,
            rate["records_per_s"],
            SHARE,
            SIZE,
            prefix=name,
        )
    finally:
        worker.stop()
    logger.info(
        "commit interval=%g round=%d records_per_s=%.0f p50_ms=%.1f p99_ms=%.1f",
        interval,
        number,
        rate["records_per_s"],
        latency["p50_ms"],
        latency["p99_ms"],
    )
    return {"interval_s": interval, "round": number, "rate": rate, "latency": latency}


async def _records_in(bootstrap: str, topics: list[str]) -> int:
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap)
    await consumer.start()
    try:
        partitions = [
            TopicPartition(topic, p)
            for topic in topics
            for p in range(kafka_bench.PARTITIONS)
        ]
        return sum((await consumer.end_offsets(partitions)).values())
    finally:
        await consumer.stop()


def _ratios(runs: list[dict[str, Any]], first: float) -> dict[str, float]:
    """Median over rounds of each interval's rate over the first interval's."""
    base = {
        r["round"]: r["rate"]["records_per_s"] for r in runs if r["interval_s"] == first
    }
    by_interval: dict[float, list[float]] = {}
    for run in runs:
        by_interval.setdefault(run["interval_s"], []).append(
            run["rate"]["records_per_s"] / base[run["round"]]
        )
    return {f"{i:g}": statistics.median(v) for i, v in by_interval.items()}


def _table(runs: list[dict[str, Any]], ratios: dict[str, float]) -> str:
    lines = [
        "| commit interval | round | records/s | ratio (median) | p50 | p99 | p99.9 |",
        "|---|---|---|---|---|---|---|",
    ]
    for run in runs:
        latency = run["latency"]
        interval = f"{run['interval_s']:g}"
        lines.append(
            f"| {interval} s | {run['round']} "
            f"| {run['rate']['records_per_s']:,.0f} "
            f"| {ratios[interval]:.2f} "
            f"| {latency['p50_ms']:.0f} ms | {latency['p99_ms']:.0f} ms "
            f"| {latency['p999_ms']:.0f} ms |"
        )
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
