"""`python -m tests.benchmarks [--quick] [--only engine|kafka]`: run the bench.

Writes tests/benchmarks/results/latest.json, latest.md and latest.png (a
quick run writes latest-quick.*). Generated inputs and broker data go to
var/bench/, which git ignores.
"""

from __future__ import annotations

import argparse
import logging
import os
import platform
import sys
import time
from typing import Any

from tests.benchmarks import engine, kafka_bench, report
from tests.support.broker import REPO

logger = logging.getLogger(__name__)

WORK = REPO / "var" / "bench"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.benchmarks")
    parser.add_argument(
        "--quick", action="store_true", help="small inputs: a run of a few minutes"
    )
    parser.add_argument(
        "--only", choices=("engine", "kafka"), help="run one part of the bench"
    )
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s bench %(message)s", stream=sys.stderr
    )
    # aiokafka reports every subscription change at INFO.
    logging.getLogger("aiokafka").setLevel(logging.WARNING)
    WORK.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    results: dict[str, Any] = {
        "mode": "quick" if args.quick else "full",
        "started_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "machine": _machine(),
        "notes": [],
    }
    if args.only in (None, "engine"):
        results["engine"] = engine.run(
            engine.QUICK if args.quick else engine.FULL, WORK
        )
    if args.only in (None, "kafka"):
        run_dir = WORK / f"run-{time.time_ns()}"
        results["kafka"] = kafka_bench.run(
            kafka_bench.QUICK if args.quick else kafka_bench.FULL, run_dir
        )
    results["seconds"] = time.monotonic() - started
    json_path, md_path = report.write(results)
    logger.info("results written json=%s markdown=%s", json_path, md_path)
    print(md_path.read_text())
    return 0


def _machine() -> dict[str, Any]:
    pages = os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    return {
        "cpus": os.cpu_count(),
        "memory_gib": pages / (1 << 30),
        "python": platform.python_version(),
        "load_average": " ".join(f"{x:.2f}" for x in os.getloadavg()),
    }


if __name__ == "__main__":
    sys.exit(main())
