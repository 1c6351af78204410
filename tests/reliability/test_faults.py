"""Tact's processing guarantee, measured: faults against real workers.

Every run replays its seeded load offline for the ground truth, drives the
same load through `tact worker` processes while faults are injected, and
then checks the outputs read with read_committed: no approved send lost,
none twice, none that ground truth suppresses, each customer's sends in
order, every decision and dead letter exactly once, every input committed.
"""

from __future__ import annotations

import pytest

from tests.reliability import harness
from tests.reliability.conftest import SESSION_TIMEOUT_S, ChaosOptions
from tests.reliability.faults import BROKER_FAULTS, WORKER_FAULTS, Kind, plan
from tests.reliability.load import make_load
from tests.support.cluster import Cluster
from tests.support.private_broker import PrivateBroker
from tests.support.worker import Stack

pytestmark = [pytest.mark.kafka, pytest.mark.chaos]

BATCH_TIMEOUT_S = 120


def _faults(kinds: tuple[Kind, ...], options: ChaosOptions) -> list[Kind]:
    """Each kind once in the short run; three times each in the full run."""
    return list(kinds) * (1 if options.scale_name == "short" else 3)


async def _run(
    kinds: list[Kind],
    options: ChaosOptions,
    stack: Stack,
    cluster: Cluster,
    broker: PrivateBroker,
) -> harness.Run:
    load = make_load(options.seed, options.scale)
    return harness.Run(
        stack=stack,
        cluster=cluster,
        broker=broker,
        load=load,
        faults=plan(options.seed, len(load.batches), kinds),
        guarantee=options.guarantee,
        scale=options.scale_name,
        session_timeout_s=SESSION_TIMEOUT_S,
        batch_timeout_s=BATCH_TIMEOUT_S,
    )


async def test_worker_crashes_zombies_and_rebalances_lose_and_repeat_no_send(
    chaos_options: ChaosOptions,
    chaos_stack: Stack,
    cluster: Cluster,
    chaos_broker: PrivateBroker,
) -> None:
    kinds = _faults(WORKER_FAULTS, chaos_options)
    chaos = await _run(kinds, chaos_options, chaos_stack, cluster, chaos_broker)

    report = await harness.run(chaos)
    chaos_options.keep(report)

    assert sum(report.faults.values()) == len(kinds)
    assert report.violations() == {}, "\n" + report.table()


async def test_broker_restarts_lose_and_repeat_no_send(
    chaos_options: ChaosOptions,
    chaos_stack: Stack,
    cluster: Cluster,
    chaos_broker: PrivateBroker,
) -> None:
    # The short run restarts the broker once; the full run also kills it and
    # a worker.
    short = (Kind.BROKER_RESTART,)
    full = (*BROKER_FAULTS, Kind.KILL)
    kinds = _faults(
        short if chaos_options.scale_name == "short" else full, chaos_options
    )
    chaos = await _run(kinds, chaos_options, chaos_stack, cluster, chaos_broker)

    report = await harness.run(chaos)
    chaos_options.keep(report)

    assert sum(report.faults.values()) == len(kinds)
    assert report.violations() == {}, "\n" + report.table()
