"""Fixtures for tests against a real Kafka broker: one broker per session,
fresh topics and consumer groups per test."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path

import pytest
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from tests.support.broker import Broker, session_broker
from tests.support.kafka_io import wait_for_leaders
from tests.support.worker import Stack, WorkerProcess

TopicFactory = Callable[..., Awaitable[str]]


@pytest.fixture(scope="session")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Broker]:
    data_dir: Path = tmp_path_factory.mktemp("kafka")
    with session_broker(data_dir) as running:
        yield running


@pytest.fixture
def bootstrap(broker: Broker) -> str:
    return broker.bootstrap


@pytest.fixture
def unique_name(request: pytest.FixtureRequest) -> Callable[[str], str]:
    """Names no other test uses: `<prefix>-<test name>-<random>`."""
    test = request.node.name.replace("[", "-").replace("]", "")[:40]

    def make(prefix: str) -> str:
        return f"{prefix}-{test}-{uuid.uuid4().hex[:8]}"

    return make


@pytest.fixture
async def create_topic(
    bootstrap: str, unique_name: Callable[[str], str]
) -> AsyncIterator[TopicFactory]:
    """Create fresh topics for one test and delete them afterwards."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    created: list[str] = []

    async def make(prefix: str, partitions: int = 1, **config: str) -> str:
        name = unique_name(prefix)
        await admin.create_topics(
            [NewTopic(name, partitions, 1, topic_configs=config or None)]
        )
        created.append(name)
        await wait_for_leaders(admin, [name])
        return name

    try:
        yield make
    finally:
        if created:
            await admin.delete_topics(created)
        await admin.close()


@pytest.fixture
def make_stack(
    bootstrap: str, unique_name: Callable[[str], str], tmp_path: Path
) -> Callable[..., Stack]:
    """A fresh set of topic names, consumer group and policy for one test."""

    def make(policy: str | Path, partitions: int = 4, **env: str) -> Stack:
        if isinstance(policy, str):
            path = tmp_path / f"policy-{uuid.uuid4().hex[:6]}.yaml"
            path.write_text(policy)
            policy = path
        return Stack(
            bootstrap=bootstrap,
            prefix=unique_name("tact"),
            policy=policy,
            partitions=partitions,
            extra_env=env,
        )

    return make


@pytest.fixture
def start_worker(tmp_path: Path) -> Iterator[Callable[..., WorkerProcess]]:
    """Start `tact worker` processes; every one is stopped after the test."""
    started: list[WorkerProcess] = []

    def start(stack: Stack, data_dir: Path | None = None) -> WorkerProcess:
        number = len(started)
        worker = WorkerProcess(
            stack,
            data_dir or tmp_path / f"worker-{number}",
            tmp_path / f"worker-{number}.log",
        )
        started.append(worker.start())
        worker.wait_ready()
        return worker

    yield start
    for worker in started:
        worker.stop()
