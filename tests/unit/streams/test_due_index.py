from app.streams.due_index import DueIndex

RETRY = 5_000_000


def test_customer_is_due_once_its_time_has_come() -> None:
    index = DueIndex()
    index.set("c1", 0, 100)
    index.set("c2", 1, 300)

    assert index.pop_due(99, RETRY) == []
    assert index.pop_due(200, RETRY) == [("c1", 100)]


def test_a_later_set_supersedes_the_earlier_due_time() -> None:
    index = DueIndex()
    index.set("c1", 0, 100)
    index.set("c1", 0, 500)

    assert index.pop_due(200, RETRY) == []
    assert index.pop_due(500, RETRY) == [("c1", 500)]


def test_a_due_customer_comes_back_after_the_retry_delay_until_reset() -> None:
    index = DueIndex()
    index.set("c1", 0, 100)

    first = index.pop_due(100, RETRY)
    again_too_soon = index.pop_due(100 + RETRY - 1, RETRY)
    again = index.pop_due(100 + RETRY, RETRY)
    index.set("c1", 0, None)
    after_reset = index.pop_due(10 * RETRY, RETRY)

    assert first == [("c1", 100)]
    assert again_too_soon == []
    assert again == [("c1", 100 + RETRY)]
    assert after_reset == []


def test_dropped_partitions_are_never_due() -> None:
    index = DueIndex()
    index.set("c1", 0, 100)
    index.set("c2", 1, 100)

    index.drop_partitions([0])

    assert index.pop_due(1_000, RETRY) == [("c2", 100)]
    assert len(index) == 1
