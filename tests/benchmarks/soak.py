"""`python -m tests.benchmarks.soak`: one worker through a long load, its
memory sampled all the way.

At least a million intents over 100,000 customers go through one worker at
the default processing guarantee; the worker's RSS is read every few
seconds. The run fails when the largest sample exceeds RSS_BOUND_BYTES,
the bound the README states. Results go to tests/benchmarks/results/soak.*.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import sys
import time
from pathlib import Path
from typing import Any

import orjson
from aiokafka.admin import AIOKafkaAdminClient

from app.engine.times import HOUR_US
from app.settings import Settings
from tests.benchmarks import workload
from tests.benchmarks.kafka_bench import (
    PARTITIONS,
    _committed,
    _create_topics,
    _produce_all,
    _rss_bytes,
    _stack,
    private_broker,
)
from tests.support.broker import REPO
from tests.support.worker import Stack, WorkerProcess

logger = logging.getLogger(__name__)

RESULTS = REPO / "tests" / "benchmarks" / "results"
WORK = REPO / "var" / "soak"
# What the README promises for one worker owning 4 partitions, at the defaults.
RSS_BOUND_BYTES = 1 << 30
SAMPLE_EVERY_S = 2.0
MIN_INTENTS = 1_000_000
CUSTOMERS = 100_000
RECORDS = 1_560_000  # about 1.02M intents: the workload's mix is 65% intents
TIMEOUT_S = 3 * 3600


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.benchmarks.soak")
    parser.add_argument("--records", type=int, default=RECORDS)
    parser.add_argument("--customers", type=int, default=CUSTOMERS)
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s soak %(message)s", stream=sys.stderr
    )
    logging.getLogger("aiokafka").setLevel(logging.WARNING)
    run_dir = WORK / f"run-{time.time_ns()}"
    run_dir.mkdir(parents=True)
    results = asyncio.run(_run(args.records, args.customers, run_dir))
    is_full = args.records == RECORDS and args.customers == CUSTOMERS
    name = "soak" if is_full else "soak-small"
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / f"{name}.json").write_bytes(
        orjson.dumps(results, option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS)
    )
    (RESULTS / f"{name}.md").write_text(markdown(results))
    print(markdown(results))
    if results["max_rss_bytes"] > RSS_BOUND_BYTES:
        logger.error(
            "worker RSS above the bound max=%d bound=%d",
            results["max_rss_bytes"],
            RSS_BOUND_BYTES,
        )
        return 1
    if is_full and results["intents"] < MIN_INTENTS:
        logger.error("too few intents intents=%d", results["intents"])
        return 1
    return 0


async def _run(records: int, customers: int, work: Path) -> dict[str, Any]:
    path = workload.generate(
        work / "input.jsonl",
        records,
        customers,
        start_us=time.time_ns() // 1000 - HOUR_US,
        span_us=HOUR_US,
    )
    rows = workload.records_of(path)
    path.unlink()
    intents = sum(1 for topic, *_ in rows if topic == workload.INTENTS_TOPIC)
    with private_broker(work) as bootstrap:
        inputs = Stack(bootstrap, "soak-input", workload.POLICY_PATH, PARTITIONS)
        await _create_topics(bootstrap, [inputs.lifecycle, inputs.intents])
        topics = {
            workload.LIFECYCLE_TOPIC: inputs.lifecycle,
            workload.INTENTS_TOPIC: inputs.intents,
        }
        await _produce_all(bootstrap, [(topics[t], k, v) for t, k, v, _ in rows])
        total = len(rows)
        del rows
        stack = _stack(bootstrap, "soak-worker", inputs)
        worker = WorkerProcess(stack, work / "data", work / "worker.log")
        worker.start()
        try:
            samples = await _sample(
                worker,
                bootstrap,
                stack.prefix,
                [inputs.lifecycle, inputs.intents],
                total,
            )
        finally:
            worker.stop()
    decided = samples[-1]["committed"]
    elapsed = samples[-1]["seconds"]
    return {
        "records": total,
        "intents": intents,
        "customers": customers,
        "processing_guarantee": os.environ.get(
            "TACT_PROCESSING_GUARANTEE", Settings().processing_guarantee
        ),
        "records_decided": decided,
        "seconds": elapsed,
        "records_per_s": decided / elapsed if elapsed else None,
        "max_rss_bytes": max(s["rss_bytes"] for s in samples),
        "rss_bound_bytes": RSS_BOUND_BYTES,
        "rss_by_progress": _by_progress(samples, total),
        "machine": {"cpus": os.cpu_count(), "load_average": os.getloadavg()},
    }


async def _sample(
    worker: WorkerProcess, bootstrap: str, group: str, topics: list[str], total: int
) -> list[dict[str, Any]]:
    """RSS and committed records every SAMPLE_EVERY_S until all are committed."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    started = time.monotonic()
    samples: list[dict[str, Any]] = []
    try:
        while time.monotonic() - started < TIMEOUT_S:
            if worker.process is None or worker.process.poll() is not None:
                raise RuntimeError("worker exited:\n" + worker.log_tail())
            committed = await _committed(admin, group, topics)
            samples.append(
                {
                    "seconds": time.monotonic() - started,
                    "committed": committed,
                    "rss_bytes": _rss_bytes(worker) or 0,
                }
            )
            if len(samples) % 30 == 0:
                logger.info(
                    "progress committed=%d of %d rss_mib=%.0f",
                    committed,
                    total,
                    samples[-1]["rss_bytes"] / 2**20,
                )
            if committed >= total:
                return samples
            await asyncio.sleep(SAMPLE_EVERY_S)
    finally:
        await admin.close()
    raise TimeoutError(f"not all records committed within {TIMEOUT_S} s")


def _by_progress(samples: list[dict[str, Any]], total: int) -> list[dict[str, Any]]:
    """The largest RSS seen up to each tenth of the input."""
    out = []
    for tenth in range(1, 11):
        upto = [s for s in samples if s["committed"] <= total * tenth / 10]
        if upto:
            out.append(
                {
                    "share": tenth / 10,
                    "max_rss_bytes": max(s["rss_bytes"] for s in upto),
                    "seconds": upto[-1]["seconds"],
                }
            )
    return out


def markdown(results: dict[str, Any]) -> str:
    mib = 2**20
    lines = [
        "# Soak: one worker, long load",
        "",
        f"{results['records']:,} records ({results['intents']:,} intents) over "
        f"{results['customers']:,} customers, processing guarantee "
        f"{results['processing_guarantee']}; {results['seconds']:.0f} s, "
        f"{results['records_per_s']:.0f} records/s.",
        "",
        f"Largest RSS: {results['max_rss_bytes'] / mib:.0f} MiB "
        f"(bound {results['rss_bound_bytes'] / mib:.0f} MiB).",
        "",
        "| input decided | largest RSS so far (MiB) | seconds |",
        "|---|---|---|",
    ]
    for row in results["rss_by_progress"]:
        lines.append(
            f"| {row['share']:.0%} | {row['max_rss_bytes'] / mib:.0f} "
            f"| {row['seconds']:.0f} |"
        )
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    sys.exit(main())
