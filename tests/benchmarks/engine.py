"""Engine alone: `tact replay` against a JSON pass-through, as whole processes.

Both read the same generated file and write to /dev/null. They run
alternately, several rounds, so a burst of load from a neighbour slows both
sides of one round rather than one side of the comparison.
"""

from __future__ import annotations

import logging
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.benchmarks import workload
from tests.support.broker import REPO

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class EngineSize:
    records: int
    customers: int
    rounds: int


FULL = EngineSize(records=1_000_000, customers=100_000, rounds=3)
QUICK = EngineSize(records=100_000, customers=10_000, rounds=3)


def replay_file(size: EngineSize, work: Path) -> Path:
    name = f"replay-{size.records}-{size.customers}.jsonl"
    return workload.generate(work / name, size.records, size.customers)


def run(size: EngineSize, work: Path) -> dict[str, Any]:
    """Median replay and pass-through throughput, and their ratio per round."""
    path = replay_file(size, work)
    replay = [
        sys.executable,
        "-m",
        "app",
        "replay",
        "--policy",
        str(workload.POLICY_PATH),
        str(path),
    ]
    passthrough = [sys.executable, "-m", "tests.benchmarks.passthrough", str(path)]
    rounds = []
    for number in range(1, size.rounds + 1):
        base_s = _timed(passthrough)
        tact_s = _timed(replay)
        rounds.append({"passthrough_s": base_s, "replay_s": tact_s})
        logger.info(
            "engine round=%d passthrough_s=%.2f replay_s=%.2f ratio=%.3f",
            number,
            base_s,
            tact_s,
            base_s / tact_s,
        )
    ratios = [r["passthrough_s"] / r["replay_s"] for r in rounds]
    return {
        "records": size.records,
        "customers": size.customers,
        "rounds": rounds,
        "replay_records_per_s": size.records
        / statistics.median(r["replay_s"] for r in rounds),
        "passthrough_records_per_s": size.records
        / statistics.median(r["passthrough_s"] for r in rounds),
        "ratio_median": statistics.median(ratios),
    }


def _timed(command: list[str]) -> float:
    started = time.perf_counter()
    subprocess.run(
        command,
        cwd=REPO,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        check=True,
    )
    return time.perf_counter() - started
