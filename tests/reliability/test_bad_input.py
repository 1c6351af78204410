"""Generated bad input into a running worker: every record is dead-lettered,
and the worker neither crashes, hangs nor grows without bound."""

from __future__ import annotations

import asyncio
import zoneinfo
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
import pytest
from aiokafka import AIOKafkaProducer
from hypothesis import HealthCheck, given, seed, settings
from hypothesis import strategies as st

from tests.reliability.conftest import ChaosOptions
from tests.support.cluster import Cluster
from tests.support.kafka_io import read_all
from tests.support.worker import Stack

pytestmark = [pytest.mark.kafka, pytest.mark.chaos, pytest.mark.timeout(300)]

MAX_RECORD_BYTES = 16_384
MAX_NESTING = 16
EXAMPLES = {"short": 3, "full": 12}
WAIT_S = 90.0
# What the worker may gain over the run once it has warmed up.
RSS_GROWTH_LIMIT = 96 * 1024 * 1024
RSS_LIMIT = 1024 * 1024 * 1024
ZONES = zoneinfo.available_timezones()

LIFECYCLE = "lifecycle"
INTENTS = "intents"

customers = st.sampled_from([f"c-bad-{n}" for n in range(40)])
text = st.text(min_size=1, max_size=20)
# orjson writes 64-bit integers only.
integers = st.integers(-(2**63), 2**63 - 1)


def _now() -> str:
    return datetime.now(UTC).isoformat().replace("+00:00", "Z")


def _intent(customer: str, **extra: Any) -> dict[str, Any]:
    return {
        "intent_id": f"in-{customer}",
        "customer_id": customer,
        "channel": "email",
        "category": "marketing",
        "created_at": _now(),
        **extra,
    }


@st.composite
def garbage(draw: st.DrawFn) -> tuple[str, bytes]:
    return draw(st.sampled_from((LIFECYCLE, INTENTS))), draw(st.binary(max_size=400))


@st.composite
def truncated_json(draw: st.DrawFn) -> tuple[str, bytes]:
    whole = orjson.dumps(_intent(draw(customers), payload={"t": draw(text)}))
    # Every proper prefix of a serialized object is invalid JSON.
    return INTENTS, whole[: draw(st.integers(1, len(whole) - 1))]


@st.composite
def wrong_types(draw: st.DrawFn) -> tuple[str, bytes]:
    field = draw(st.sampled_from(("intent_id", "customer_id", "channel", "category")))
    wrong = draw(
        st.one_of(
            integers,
            st.booleans(),
            st.lists(integers, max_size=3),
            st.dictionaries(text, integers, max_size=2),
        )
    )
    return INTENTS, orjson.dumps(_intent(draw(customers), **{field: wrong}))


@st.composite
def deep_nesting(draw: st.DrawFn) -> tuple[str, bytes]:
    # Written by hand: JSON encoders refuse to nest this deep.
    opens = draw(st.lists(st.booleans(), min_size=MAX_NESTING + 1, max_size=2000))
    nested = b"".join(b"[" if is_list else b'{"n":' for is_list in opens)
    nested += b"1" + b"".join(b"]" if is_list else b"}" for is_list in reversed(opens))
    whole = orjson.dumps(_intent(draw(customers), payload="DEEP"))
    return INTENTS, whole.replace(b'"DEEP"', nested)


@st.composite
def huge_values(draw: st.DrawFn) -> tuple[str, bytes]:
    size = draw(st.integers(MAX_RECORD_BYTES, 4 * MAX_RECORD_BYTES))
    return INTENTS, orjson.dumps(_intent(draw(customers), payload={"blob": "x" * size}))


@st.composite
def invalid_utf8(draw: st.DrawFn) -> tuple[str, bytes]:
    whole = orjson.dumps(_intent(draw(customers), payload={"t": "MARK"}))
    bad = draw(st.sampled_from((b"\xff", b"\xc3\x28", b"\xed\xa0\x80", b"\xf8\x88")))
    return INTENTS, whole.replace(b"MARK", b"a" + bad + b"z")


@st.composite
def invalid_time_zones(draw: st.DrawFn) -> tuple[str, bytes]:
    zone = draw(text.filter(lambda z: z not in ZONES))
    customer = draw(customers)
    event = {
        "event_id": f"ev-{customer}-tz",
        "customer_id": customer,
        "type": "profile.updated",
        "occurred_at": _now(),
        "attributes": {"timezone": zone},
    }
    return LIFECYCLE, orjson.dumps(event)


bad_records = st.one_of(
    garbage(),
    truncated_json(),
    wrong_types(),
    deep_nesting(),
    huge_values(),
    invalid_utf8(),
    invalid_time_zones(),
)


def test_generated_bad_records_all_go_to_dead_letters_and_the_worker_stays_well(
    chaos_options: ChaosOptions, chaos_stack: Stack, cluster: Cluster
) -> None:
    stack = _limited(chaos_stack)
    cluster.stack = stack
    worker = cluster.start(0)
    produced: list[tuple[str, int, int]] = []
    sentinels: list[str] = []
    rss: list[int] = []

    @seed(chaos_options.seed)
    @settings(
        max_examples=EXAMPLES[chaos_options.scale_name],
        deadline=None,
        database=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )
    @given(batch=st.lists(bad_records, min_size=100, max_size=200))
    def feed(batch: list[tuple[str, bytes]]) -> None:
        sentinel = f"good-{len(sentinels)}"
        sentinels.append(sentinel)
        produced.extend(asyncio.run(_produce(stack, batch, sentinel)))
        asyncio.run(_wait_for(stack, len(produced), sentinels))
        rss.append(_rss_bytes(worker.process.pid if worker.process else 0))

    feed()
    letters = asyncio.run(
        read_all(stack.bootstrap, stack.dead_letters, stack.partitions)
    )
    status, _ = worker.get("/healthz")

    sources = [orjson.loads(v or b"{}")["source"] for _, _, v in letters]
    assert len(produced) >= 100 * EXAMPLES[chaos_options.scale_name]
    assert sorted((s["topic"], s["partition"], s["offset"]) for s in sources) == sorted(
        produced
    )
    assert worker.process is not None
    assert worker.process.poll() is None
    assert status == 200
    assert max(rss) < RSS_LIMIT
    assert rss[-1] - rss[0] < RSS_GROWTH_LIMIT, rss


def _limited(stack: Stack) -> Stack:
    return Stack(
        bootstrap=stack.bootstrap,
        prefix=stack.prefix,
        policy=stack.policy,
        partitions=stack.partitions,
        extra_env={
            **stack.extra_env,
            "TACT_MAX_RECORD_BYTES": str(MAX_RECORD_BYTES),
            "TACT_MAX_NESTING": str(MAX_NESTING),
        },
    )


async def _produce(
    stack: Stack, batch: list[tuple[str, bytes]], sentinel: str
) -> list[tuple[str, int, int]]:
    """Produce the bad records, then one good intent; return where the bad
    ones landed as (topic, partition, offset)."""
    topics = {LIFECYCLE: stack.lifecycle, INTENTS: stack.intents}
    producer = AIOKafkaProducer(
        bootstrap_servers=stack.bootstrap,
        acks="all",
        max_request_size=8 * MAX_RECORD_BYTES,
    )
    await producer.start()
    try:
        places = []
        for number, (which, value) in enumerate(batch):
            meta = await producer.send_and_wait(
                topics[which], value, key=f"k-{number % 17}".encode()
            )
            places.append((topics[which], meta.partition, meta.offset))
        good = _intent(f"c-{sentinel}", intent_id=sentinel)
        await producer.send_and_wait(
            stack.intents, orjson.dumps(good), key=good["customer_id"].encode()
        )
        return places
    finally:
        await producer.stop()


async def _wait_for(stack: Stack, letters: int, sentinels: list[str]) -> None:
    """Until every bad record so far is dead-lettered and every good intent
    decided; a worker that hangs fails here."""
    deadline = asyncio.get_running_loop().time() + WAIT_S
    while True:
        dead = await read_all(stack.bootstrap, stack.dead_letters, stack.partitions)
        decided = await read_all(stack.bootstrap, stack.decisions, stack.partitions)
        ids = {orjson.loads(v or b"{}")["intent_id"] for _, _, v in decided}
        if len(dead) >= letters and set(sentinels) <= ids:
            return
        if asyncio.get_running_loop().time() > deadline:
            raise TimeoutError(
                f"after {WAIT_S}s: {len(dead)} of {letters} dead letters, "
                f"good intents decided {sorted(ids & set(sentinels))} of {sentinels}"
            )
        await asyncio.sleep(0.5)


def _rss_bytes(pid: int) -> int:
    status: Callable[[], str] = Path(f"/proc/{pid}/status").read_text
    for line in status().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError(f"no VmRSS for pid {pid}")
