"""Seeded faults and how to inject them into a running cluster.

A fault plan is a function of the seed: the same seed gives the same faults
at the same batches with the same delays and targets, so a failing run can
be replayed. (Which record a worker is processing when the signal lands
still depends on the machine's speed.)
"""

from __future__ import annotations

import logging
import random
import signal
import time
from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum

from tests.support.cluster import Cluster
from tests.support.private_broker import PrivateBroker

logger = logging.getLogger(__name__)

MAX_WORKERS = 3
# How long past the session timeout a paused worker stays paused: long enough
# for the group to expel it and hand its partitions to another worker.
PAST_SESSION_S = 4.0


class Kind(StrEnum):
    KILL = "sigkill"
    TERM = "sigterm"
    PAUSE = "sigstop_zombie"
    SCALE_OUT = "scale_out"
    SCALE_IN = "scale_in"
    WIPE = "wipe_rocksdb"
    BROKER_RESTART = "broker_restart"
    BROKER_KILL = "broker_kill"


WORKER_FAULTS = (
    Kind.KILL,
    Kind.TERM,
    Kind.PAUSE,
    Kind.SCALE_OUT,
    Kind.SCALE_IN,
    Kind.WIPE,
)
BROKER_FAULTS = (Kind.BROKER_RESTART, Kind.BROKER_KILL)


@dataclass(frozen=True)
class Fault:
    kind: Kind
    batch: int  # injected while this batch is being processed
    delay_s: float  # after the batch has been produced
    pick: float  # which running worker is hit, as a fraction of the running ones
    downtime_s: float  # how long a stopped worker stays down

    def __str__(self) -> str:
        return f"{self.kind} at batch {self.batch} +{self.delay_s:.2f}s"


def plan(seed: int, batches: int, kinds: Sequence[Kind]) -> list[Fault]:
    """One fault per entry of `kinds`, spread over the batches in order.

    Each SCALE_IN is placed after a SCALE_OUT, so that it has extra workers
    to remove.
    """
    rng = random.Random(f"faults-{seed}")
    order = list(kinds)
    rng.shuffle(order)
    order = _scale_in_after_scale_out(order)
    positions = sorted(rng.randrange(batches) for _ in order)
    return [
        Fault(
            kind=kind,
            batch=batch,
            delay_s=round(rng.uniform(0.0, 0.6), 3),
            pick=rng.random(),
            downtime_s=round(rng.uniform(0.0, 2.0), 3),
        )
        for kind, batch in zip(order, positions, strict=True)
    ]


def _scale_in_after_scale_out(order: list[Kind]) -> list[Kind]:
    outs = 0
    fixed: list[Kind] = []
    waiting = 0
    for kind in order:
        if kind is Kind.SCALE_IN and outs == 0:
            waiting += 1
            continue
        fixed.append(kind)
        if kind is Kind.SCALE_OUT:
            outs += 1
            while waiting and outs:
                fixed.append(Kind.SCALE_IN)
                waiting -= 1
                outs -= 1
        elif kind is Kind.SCALE_IN:
            outs -= 1
    fixed.extend([Kind.SCALE_IN] * waiting)
    return fixed


class Injector:
    """Carries out faults; blocking, so the harness runs it in a thread."""

    def __init__(
        self, cluster: Cluster, broker: PrivateBroker, session_timeout_s: float
    ) -> None:
        self.cluster = cluster
        self.broker = broker
        self.session_timeout_s = session_timeout_s

    def inject(self, fault: Fault) -> None:
        logger.info("injecting fault=%s running=%s", fault, self.cluster.running)
        kind = fault.kind
        if kind is Kind.KILL:
            self._stop_and_restart(fault, signal.SIGKILL)
        elif kind is Kind.TERM:
            self._stop_and_restart(fault, signal.SIGTERM)
        elif kind is Kind.WIPE:
            self._stop_and_restart(fault, signal.SIGKILL, wipe=True)
        elif kind is Kind.PAUSE:
            self._zombie(fault)
        elif kind is Kind.SCALE_OUT:
            for slot in range(MAX_WORKERS):
                if slot not in self.cluster.workers:
                    self.cluster.start(slot, wait_ready=False)
        elif kind is Kind.SCALE_IN:
            for slot in self.cluster.running[1:]:
                self.cluster.signal(slot, signal.SIGTERM)
        elif kind is Kind.BROKER_RESTART:
            self.broker.restart()
        elif kind is Kind.BROKER_KILL:
            self.broker.restart(hard=True)

    def _target(self, fault: Fault) -> int:
        running = self.cluster.running
        if not running:
            raise RuntimeError(f"no worker runs to inject {fault} into")
        return running[min(int(fault.pick * len(running)), len(running) - 1)]

    def _stop_and_restart(self, fault: Fault, sig: int, *, wipe: bool = False) -> None:
        slot = self._target(fault)
        self.cluster.signal(slot, sig)
        if wipe:
            self.cluster.wipe(slot)
        time.sleep(fault.downtime_s)
        self.cluster.start(slot, wait_ready=False)

    def _zombie(self, fault: Fault) -> None:
        """Freeze a worker until the group expels it, with another worker to
        take its partitions, then let it run again: it must be fenced."""
        if len(self.cluster.running) < 2:
            spare = next(s for s in range(MAX_WORKERS) if s not in self.cluster.workers)
            self.cluster.start(spare, wait_ready=True)
        slot = self._target(fault)
        self.cluster.pause(slot)
        time.sleep(self.session_timeout_s + PAST_SESSION_S)
        self.cluster.resume(slot)
