"""How the worker's producers retry."""

from __future__ import annotations

from pathlib import Path

import pytest

from app.settings import Settings
from app.streams.pipeline import create_app
from app.streams.transactions import TRANSACTION_RETRY_BACKOFF_MS

AIOKAFKA_RETRY_BACKOFF_S = 0.1


async def test_transactional_producers_retry_sooner_than_the_plain_one(
    tmp_path: Path,
) -> None:
    app = create_app(Settings(data_dir=tmp_path, processing_guarantee="exactly_once"))
    transactional = app.producer._new_producer(transactional_id="tact-1-0")
    plain = app.producer._new_producer()
    try:
        assert (
            transactional._sender._retry_backoff == TRANSACTION_RETRY_BACKOFF_MS / 1000
        )
        assert transactional._txn_manager.transactional_id == "tact-1-0"
        # Everything else is Faust's: idempotent, every replica acknowledges.
        assert transactional._sender._acks == -1
        assert plain._sender._retry_backoff == AIOKAFKA_RETRY_BACKOFF_S
    finally:
        await transactional.stop()
        await plain.stop()


@pytest.mark.xfail(
    strict=True,
    reason="transactional producers retry every 20 ms, a broker outage too",
)
async def test_a_broker_outage_is_retried_no_faster_than_by_the_plain_producer(
    tmp_path: Path,
) -> None:
    app = create_app(Settings(data_dir=tmp_path, processing_guarantee="exactly_once"))
    transactional = app.producer._new_producer(transactional_id="tact-1-0")
    try:
        # aiokafka paces a refused send's retry, whatever the refusal, by this.
        assert transactional._sender._retry_backoff >= AIOKAFKA_RETRY_BACKOFF_S
    finally:
        await transactional.stop()


async def test_a_send_does_not_yield_to_the_event_loop_once_the_producer_runs(
    tmp_path: Path,
) -> None:
    app = create_app(Settings(data_dir=tmp_path, processing_guarantee="at_least_once"))
    app.producer._started.set()  # as after the worker started it
    getting = app.maybe_start_producer()

    # Driven by hand: a coroutine that yields to the loop returns from send().
    with pytest.raises(StopIteration) as finished:
        getting.send(None)

    assert finished.value.value is app.producer
