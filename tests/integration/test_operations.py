"""What SREs and CRM teams use: metrics, customer state, explain."""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Callable

import orjson
import pytest

from tests.integration.test_pipeline import (
    BK1,
    LIVE_POLICY,
    REMINDER,
    event,
    intent,
    now_text,
)
from tests.support.kafka_io import produce, wait_for_records
from tests.support.worker import Stack, WorkerProcess

pytestmark = [pytest.mark.kafka, pytest.mark.timeout(180)]

TOKEN = "test-token-8d1f"


def metric_total(text: bytes, name: str) -> float:
    """Sum of every sample of `name` in a Prometheus text exposition."""
    pattern = re.compile(rf"^{name}(?:\{{[^}}]*\}})? (\S+)$", re.MULTILINE)
    return sum(float(value) for value in pattern.findall(text.decode()))


async def metrics_once(
    worker: WorkerProcess, ready: Callable[[bytes], bool], timeout_s: float = 15
) -> bytes:
    """The worker's metrics once `ready(text)` holds (gauges update on a timer)."""
    deadline = time.monotonic() + timeout_s
    while True:
        _, text = worker.get("/metrics")
        if ready(text) or time.monotonic() > deadline:
            return text
        await asyncio.sleep(0.5)


async def test_metrics_count_what_the_decisions_topic_holds(
    make_stack: Callable[..., Stack], start_worker: Callable[..., WorkerProcess]
) -> None:
    stack = make_stack(LIVE_POLICY, partitions=1)
    worker = start_worker(stack)
    before = now_text()

    await produce(
        stack.bootstrap,
        stack.intents,
        [(b"c-m", intent(f"m-{i}", "c-m", channel="email")) for i in range(4)]
        + [(b"c-m", intent("m-4", "c-m", about=[BK1], **REMINDER))]
        + [(b"c-m", intent("m-0", "c-m", channel="email")), (b"c-m", b"{broken")],
    )
    decisions = await wait_for_records(
        stack.bootstrap, stack.decisions, 1, lambda got: len(got) >= 6
    )
    # The reminder went out; a cancellation that happened before it but
    # arrives only now is a late veto.
    cancelled = event(
        "c-m-e1", "c-m", "booking.cancelled", entity=BK1, occurred_at=before
    )
    await produce(stack.bootstrap, stack.lifecycle, [(b"c-m", cancelled)])
    await wait_for_records(
        stack.bootstrap, stack.dead_letters, 1, lambda g: len(g) >= 1
    )
    text = await metrics_once(
        worker,
        lambda t: (
            b"tact_consumer_lag_records{" in t
            and metric_total(t, "tact_late_vetoes_total") > 0
        ),
    )

    assert metric_total(text, "tact_decisions_total") == len(decisions) == 6
    assert metric_total(text, "tact_dead_letters_total") == 1
    assert metric_total(text, "tact_records_consumed_total") == 8
    assert metric_total(text, "tact_late_vetoes_total") == 1
    assert b'entity_type="booking"' in text
    assert b'outcome="suppressed",rule="duplicate_intent"' in text
    assert metric_total(text, "tact_decision_latency_seconds_count") == 6
    assert metric_total(text, "tact_ready") == 1
    assert metric_total(text, "tact_customers") == 1
    assert metric_total(text, "tact_consumer_lag_records") == 0
    assert metric_total(text, "tact_table_recovery_seconds") > 0
    assert b"c-m" not in text


async def test_customer_state_and_explain_answer_through_any_worker(
    make_stack: Callable[..., Stack], start_worker: Callable[..., WorkerProcess]
) -> None:
    stack = make_stack(LIVE_POLICY, partitions=4, TACT_API_TOKEN=TOKEN)
    first = start_worker(stack)
    second = start_worker(stack)
    customers = [f"c-{i}" for i in range(8)]
    await produce(
        stack.bootstrap,
        stack.lifecycle,
        [
            (c.encode(), event(f"{c}-e1", c, "booking.cancelled", entity=BK1))
            for c in customers
        ],
    )
    await produce(
        stack.bootstrap,
        stack.intents,
        [(c.encode(), intent(f"{c}-probe", c, channel="email")) for c in customers],
    )
    await wait_for_records(
        stack.bootstrap, stack.decisions, 4, lambda got: len(got) >= len(customers)
    )
    reminder = intent("explained", "c-3", about=[BK1], **REMINDER)

    answers = [
        (worker.get(f"/customers/{c}", token=TOKEN), c)
        for worker in (first, second)
        for c in customers
    ]
    unknown = first.get("/customers/c-nobody", token=TOKEN)
    no_token = second.get("/customers/c-3")
    explained = [
        worker.request("POST", "/explain", body=reminder, token=TOKEN)
        for worker in (first, second)
    ]
    bad_explain = first.request("POST", "/explain", body=b"{}", token=TOKEN)
    await produce(stack.bootstrap, stack.intents, [(b"c-3", reminder)])
    decided = await wait_for_records(
        stack.bootstrap,
        stack.decisions,
        4,
        lambda got: any(d["intent_id"] == "explained" for d in got),
    )

    for (status, body), customer in answers:
        assert status == 200, (customer, body)
        assert orjson.loads(body)["customer_id"] == customer
        assert b"cancelled" in body
    assert unknown[0] == 404
    assert orjson.loads(unknown[1])["status"] == 404
    assert no_token[0] == 401
    for status, body in explained:
        assert status == 200
        answer = orjson.loads(body)
        assert answer["decision"]["outcome"] == "suppressed"
        assert [r["rule"] for r in answer["decision"]["reasons"]] == ["entity_state"]
    assert bad_explain[0] == 400
    actual = next(d for d in decided if d["intent_id"] == "explained")
    assert actual["outcome"] == "suppressed"
    assert actual["reasons"] == orjson.loads(explained[0][1])["decision"]["reasons"]
