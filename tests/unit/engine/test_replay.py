"""Replay: the clock from the file, releases across customers, dead letters."""

from __future__ import annotations

import base64
import io
from typing import Any

import orjson
import pytest

from app.engine.policy import Policy
from app.engine.replay import Summary, run
from tests.unit.engine.helpers import MakePolicy


def _line(topic: str, timestamp: Any, value: dict[str, Any]) -> bytes:
    key = value.get("customer_id")
    return orjson.dumps(
        {"topic": topic, "timestamp": timestamp, "key": key, "value": value}
    )


def _intent(
    intent_id: str, customer: str, created: str, **fields: Any
) -> dict[str, Any]:
    return {
        "intent_id": intent_id,
        "customer_id": customer,
        "channel": "push",
        "category": "marketing",
        "created_at": created,
        **fields,
    }


def _replay(
    policy: Policy, lines: list[bytes]
) -> tuple[list[dict[str, Any]], list[dict[str, Any]], Summary]:
    out, dead = io.BytesIO(), io.BytesIO()
    summary = run(policy, lines, "in.jsonl", out, dead)
    decisions = [orjson.loads(line) for line in out.getvalue().splitlines()]
    letters = [orjson.loads(line) for line in dead.getvalue().splitlines()]
    return decisions, letters, summary


@pytest.fixture
def policy(make_policy: MakePolicy) -> Policy:
    return make_policy(settle="5s")


def test_waiting_intents_are_released_in_due_order_across_customers(
    policy: Policy,
) -> None:
    lines = [
        _line(
            "notification-intents",
            "2026-03-01T10:00:00Z",
            _intent("a", "c-1", "2026-03-01T10:00:00Z", send_at="2026-03-01T12:00:00Z"),
        ),
        _line(
            "notification-intents",
            "2026-03-01T10:00:01Z",
            _intent("b", "c-2", "2026-03-01T10:00:01Z", send_at="2026-03-01T11:00:00Z"),
        ),
        _line(
            "notification-intents",
            "2026-03-01T13:00:00Z",
            _intent("c", "c-1", "2026-03-01T13:00:00Z"),
        ),
    ]

    decisions, _, _ = _replay(policy, lines)

    assert [(d["intent_id"], d["decided_at"]) for d in decisions] == [
        ("b", "2026-03-01T11:00:00Z"),
        ("a", "2026-03-01T12:00:00Z"),
        ("c", "2026-03-01T13:00:05Z"),
    ]


def test_clock_runs_on_after_the_last_record_until_nothing_waits(
    policy: Policy,
) -> None:
    lines = [
        _line(
            "notification-intents",
            1772359200000,
            _intent("a", "c-1", "2026-03-01T10:00:00Z", send_at="2026-04-01T09:00:00Z"),
        ),
    ]

    decisions, _, summary = _replay(policy, lines)

    assert [d["decided_at"] for d in decisions] == ["2026-04-01T09:00:00Z"]
    assert summary.outcomes["approved"] == 1


def test_bad_lines_become_dead_letters_and_replay_carries_on(policy: Policy) -> None:
    bad_intent = _line(
        "notification-intents",
        "2026-03-01T10:00:00Z",
        _intent("x", "c-1", "2026-03-01T10:00:00Z", send_at="tomorrow"),
    )
    lines = [
        b"{not json",
        b'{"topic": "elsewhere", "timestamp": 0, "value": {}}',
        bad_intent,
        _line(
            "notification-intents",
            "2026-03-01T10:00:01Z",
            _intent("ok", "c-1", "2026-03-01T10:00:01Z"),
        ),
    ]

    decisions, letters, summary = _replay(policy, lines)

    assert [d["intent_id"] for d in decisions] == ["ok"]
    assert [(dl["source"]["line"], dl["error"]["kind"]) for dl in letters] == [
        (1, "not_json"),
        (2, "bad_value"),
        (3, "bad_time"),
    ]
    assert base64.b64decode(letters[2]["value"]) == bad_intent
    assert letters[2]["error"]["message"] == (
        'intent.send_at: "tomorrow" is not an RFC 3339 time with an offset'
    )
    assert (summary.records, summary.dead_letters) == (4, 3)


def test_two_replays_give_identical_bytes(make_policy: MakePolicy) -> None:
    policy = make_policy(
        settle="5s",
        frequency_caps=[{"max": 1, "per": "1h", "on_exceed": "defer"}],
        quiet_hours=[{"from": "22:00", "to": "07:00"}],
    )
    lines = [
        _line(
            "notification-intents",
            f"2026-03-01T{hour:02d}:{minute:02d}:00Z",
            _intent(f"i-{hour}-{minute}", f"c-{minute % 3}", "2026-03-01T00:00:00Z"),
        )
        for hour in range(0, 24, 3)
        for minute in (0, 20, 40)
    ]
    runs = []

    for _ in range(2):
        out = io.BytesIO()
        run(policy, lines, "in.jsonl", out)
        runs.append(out.getvalue())

    assert runs[0] == runs[1]
    assert runs[0].count(b"\n") > len(lines)


def test_table_format_shows_rule_and_detail(policy: Policy) -> None:
    lines = [
        _line(
            "notification-intents",
            "2026-03-01T10:00:00Z",
            _intent(
                "a", "c-1", "2026-03-01T10:00:00Z", expires_at="2026-03-01T09:00:00Z"
            ),
        ),
    ]
    out = io.BytesIO()

    run(policy, lines, "in.jsonl", out, table=True)

    header, row = out.getvalue().decode().splitlines()
    assert header.split()[:6] == [
        "time",
        "customer",
        "campaign",
        "channel",
        "category",
        "outcome",
    ]
    assert "expired: it expired at 2026-03-01T09:00:00Z" in row
