"""Which output partitions hold a transaction the broker left open."""

from __future__ import annotations

from aiokafka import TopicPartition

from app.streams.hanging import ABORT, COMMIT, HANG_AFTER_S, Ended, Ledger

TID = "tact-1-5"
LETTERS = TopicPartition("tact-dead-letters", 5)
DECISIONS = TopicPartition("tact-decisions", 5)


def _ledger() -> Ledger:
    ledger = Ledger()
    ledger.written(TID, LETTERS, 6)
    ledger.written(TID, DECISIONS, 40)
    ledger.written(TID, DECISIONS, 41)
    ledger.ended(TID, COMMIT, now=100.0)
    return ledger


def test_partitions_are_checked_only_once_their_markers_had_time() -> None:
    ledger = _ledger()

    assert ledger.due(100.0 + HANG_AFTER_S / 2) == set()
    assert ledger.due(100.0 + HANG_AFTER_S) == {LETTERS, DECISIONS}


def test_a_partition_whose_stable_offset_stayed_at_its_record_is_hanging() -> None:
    ledger = _ledger()

    ledger.check({LETTERS: 6, DECISIONS: 43}, now=100.0 + HANG_AFTER_S)

    assert ledger.hanging() == {TID: {LETTERS: Ended(6, COMMIT, 100.0)}}
    assert ledger.due(1_000.0) == set()


def test_a_closed_partition_is_checked_again() -> None:
    ledger = _ledger()
    ledger.check({LETTERS: 6, DECISIONS: 43}, now=110.0)

    ledger.closed(TID, [LETTERS], now=120.0)

    assert ledger.hanging() == {}
    assert ledger.due(120.0 + HANG_AFTER_S) == {LETTERS}


def test_an_aborted_transaction_is_closed_by_an_abort() -> None:
    ledger = Ledger()
    ledger.written(TID, LETTERS, 9)
    ledger.ended(TID, ABORT, now=0.0)

    ledger.check({LETTERS: 9}, now=HANG_AFTER_S)

    assert ledger.hanging()[TID][LETTERS].outcome == ABORT


def test_records_of_the_open_transaction_wait_for_its_end() -> None:
    ledger = _ledger()
    ledger.written(TID, LETTERS, 12)

    assert ledger.due(1_000.0) == {LETTERS, DECISIONS}
    ledger.check({LETTERS: 12, DECISIONS: 43}, now=1_000.0)
    assert ledger.hanging() == {}


def test_a_producer_that_is_gone_is_forgotten() -> None:
    ledger = _ledger()

    ledger.forget(live=["tact-1-0"])

    assert ledger.due(1_000.0) == set()
