"""Fixtures of the fault tests: a private broker they may restart, a fresh
stack of topics per test, and a cluster of workers stopped after each test."""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from aiokafka.admin import AIOKafkaAdminClient

from app.settings import Settings
from tests.reliability.load import POLICY, SCALES, Scale
from tests.reliability.verify import Report
from tests.support.cluster import Cluster
from tests.support.private_broker import PrivateBroker
from tests.support.worker import Stack

# Short enough that a frozen worker is expelled within the test, long enough
# for a loaded two-core machine to keep heartbeating (Kafka's minimum is 6 s).
SESSION_TIMEOUT_S = 8.0
PARTITIONS = 6  # shared evenly by one, two or three workers


@dataclass(frozen=True)
class ChaosOptions:
    seed: int
    scale_name: str
    record: Path | None
    guarantee: str

    @property
    def scale(self) -> Scale:
        return SCALES[self.scale_name]

    def keep(self, report: Report) -> None:
        """Append the run's figures to the --chaos-record file, if any."""
        if self.record is None:
            return
        self.record.parent.mkdir(parents=True, exist_ok=True)
        with self.record.open("a") as out:
            out.write(json.dumps(report.as_dict(), sort_keys=True) + "\n")


@pytest.fixture(scope="session")
def chaos_options(pytestconfig: pytest.Config) -> ChaosOptions:
    record = pytestconfig.getoption("--chaos-record")
    return ChaosOptions(
        seed=pytestconfig.getoption("--chaos-seed"),
        scale_name=pytestconfig.getoption("--chaos-scale"),
        record=Path(record) if record else None,
        guarantee=os.environ.get("TACT_PROCESSING_GUARANTEE")
        or Settings().processing_guarantee,
    )


@pytest.fixture(scope="session")
def chaos_broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PrivateBroker]:
    """A broker only these tests use, so restarting it disturbs no one else."""
    broker = PrivateBroker(tmp_path_factory.mktemp("chaos-kafka"))
    broker.up()
    try:
        yield broker
    finally:
        broker.down()


@pytest.fixture
async def chaos_stack(
    chaos_broker: PrivateBroker,
    chaos_options: ChaosOptions,
    request: pytest.FixtureRequest,
    tmp_path: Path,
) -> AsyncIterator[Stack]:
    """Fresh topic names, group and policy; every topic of the stack is
    deleted afterwards."""
    policy = tmp_path / "chaos-policy.yaml"
    policy.write_text(POLICY)
    name = request.node.name.replace("[", "-").replace("]", "").replace("_", "-")[:30]
    stack = Stack(
        bootstrap=chaos_broker.bootstrap,
        prefix=f"chaos-{name}-{uuid.uuid4().hex[:6]}",
        policy=policy,
        partitions=PARTITIONS,
        extra_env={
            "TACT_PROCESSING_GUARANTEE": chaos_options.guarantee,
            # Faust reads these from the environment itself.
            "BROKER_SESSION_TIMEOUT": str(SESSION_TIMEOUT_S),
            "BROKER_HEARTBEAT_INTERVAL": "1.0",
        },
    )
    yield stack
    await delete_topics(chaos_broker.bootstrap, stack.prefix)


@pytest.fixture
def cluster(chaos_stack: Stack, tmp_path: Path) -> Iterator[Cluster]:
    workers = Cluster(chaos_stack, tmp_path / "workers")
    workers.root.mkdir()
    try:
        yield workers
    finally:
        workers.close()


async def delete_topics(bootstrap: str, prefix: str) -> None:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        mine = [t for t in await admin.list_topics() if t.startswith(prefix)]
        if mine:
            await admin.delete_topics(mine)
    finally:
        await admin.close()


# Hard limits per test: the short run must fit CI; a full run is bigger.
TIMEOUT_S = {"short": 300, "full": 1500}


def pytest_collection_modifyitems(
    config: pytest.Config, items: list[pytest.Item]
) -> None:
    limit = TIMEOUT_S[config.getoption("--chaos-scale")]
    for item in items:
        if item.get_closest_marker("chaos") and not item.get_closest_marker("timeout"):
            item.add_marker(pytest.mark.timeout(limit))
