"""Several `tact worker` processes of one stack, in numbered slots.

A slot keeps its data folder and log across restarts, the way a pod of a
StatefulSet keeps its volume, so a restarted worker finds its RocksDB state
(unless a test deletes it). The cluster plays the orchestrator too: `heal`
restarts a worker that exited on its own, as Kubernetes would.
"""

from __future__ import annotations

import logging
import shutil
import signal
import time
from dataclasses import dataclass
from pathlib import Path

from tests.support.worker import Stack, WorkerProcess

logger = logging.getLogger(__name__)

STOP_TIMEOUT_S = 60


@dataclass(frozen=True)
class Exit:
    """A worker that ended without being asked to."""

    slot: int
    code: int
    log_tail: str


class Cluster:
    def __init__(self, stack: Stack, root: Path) -> None:
        self.stack = stack
        self.root = root
        self.workers: dict[int, WorkerProcess] = {}
        self.paused: set[int] = set()
        self.exits: list[Exit] = []
        self.starts = 0

    def data_dir(self, slot: int) -> Path:
        return self.root / f"worker-{slot}"

    def log_path(self, slot: int) -> Path:
        return self.root / f"worker-{slot}.log"

    @property
    def running(self) -> list[int]:
        """Slots with a live (possibly paused) process, in slot order."""
        return sorted(self.workers)

    def start(self, slot: int, *, wait_ready: bool = True) -> WorkerProcess:
        if slot in self.workers:
            raise RuntimeError(f"worker {slot} already runs")
        worker = WorkerProcess(self.stack, self.data_dir(slot), self.log_path(slot))
        self.workers[slot] = worker.start()
        self.starts += 1
        if wait_ready:
            worker.wait_ready()
        return worker

    def signal(self, slot: int, sig: int) -> None:
        """Stop a worker with `sig` (SIGKILL or SIGTERM) and wait for it to exit."""
        self.resume(slot)
        self.workers.pop(slot).stop(sig, timeout_s=STOP_TIMEOUT_S)

    def pause(self, slot: int) -> None:
        process = self.workers[slot].process
        if process is not None:
            process.send_signal(signal.SIGSTOP)
            self.paused.add(slot)

    def resume(self, slot: int) -> None:
        if slot not in self.paused:
            return
        self.paused.discard(slot)
        process = self.workers[slot].process
        if process is not None:
            process.send_signal(signal.SIGCONT)

    def wipe(self, slot: int) -> None:
        """Delete a stopped worker's RocksDB folder."""
        if slot in self.workers:
            raise RuntimeError(f"worker {slot} runs; stop it before wiping its data")
        shutil.rmtree(self.data_dir(slot), ignore_errors=True)

    def heal(self) -> list[Exit]:
        """Restart every worker whose process ended on its own; return them."""
        ended = []
        for slot, worker in sorted(self.workers.items()):
            process = worker.process
            if process is None or process.poll() is None:
                continue
            ended.append(Exit(slot, process.returncode, worker.log_tail(20)))
        for exit_ in ended:
            logger.warning("worker exited slot=%d code=%d", exit_.slot, exit_.code)
            self.workers.pop(exit_.slot).stop()
            self.start(exit_.slot, wait_ready=False)
        self.exits.extend(ended)
        return ended

    def close(self) -> None:
        """Stop every worker; a paused one is resumed first so SIGTERM lands."""
        for slot in list(self.paused):
            self.resume(slot)
        for slot in list(self.workers):
            self.workers.pop(slot).stop(signal.SIGTERM, timeout_s=STOP_TIMEOUT_S)

    def wait_all_ready(self, timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        for worker in self.workers.values():
            worker.wait_ready(max(deadline - time.monotonic(), 1.0))
