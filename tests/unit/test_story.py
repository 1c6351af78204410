"""The motivating story: a cancelled trip stops everything about it."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import orjson
import pytest

from app.engine.policy import load_policy
from app.engine.replay import run

EXAMPLES = Path(__file__).resolve().parents[2] / "deploy" / "examples"


@pytest.fixture(scope="module")
def decisions() -> dict[str, list[dict[str, Any]]]:
    """Every decision of the story, by intent_id, in the order made."""
    policy = load_policy(EXAMPLES / "travel-policy.yaml")
    out = io.BytesIO()
    with (EXAMPLES / "story.jsonl").open("rb") as lines:
        run(policy, lines, "story.jsonl", out, io.BytesIO())
    by_intent: dict[str, list[dict[str, Any]]] = {}
    for line in out.getvalue().splitlines():
        decision = orjson.loads(line)
        by_intent.setdefault(decision["intent_id"], []).append(decision)
    return by_intent


def _rules(decision: dict[str, Any]) -> list[str]:
    return [reason["rule"] for reason in decision["reasons"]]


@pytest.mark.parametrize(
    "intent_id", ["in-1001-remind-week", "in-1001-remind-day", "in-1001-taxi"]
)
def test_messages_about_the_cancelled_trip_are_suppressed(
    decisions: dict[str, list[dict[str, Any]]], intent_id: str
) -> None:
    [decision] = decisions[intent_id]

    assert decision["outcome"] == "suppressed"
    assert _rules(decision) == ["entity_state"]
    assert "booking bk-981 was refunded" in decision["reasons"][0]["detail"]


def test_reminder_is_decided_at_its_send_time_not_when_scheduled(
    decisions: dict[str, list[dict[str, Any]]],
) -> None:
    [decision] = decisions["in-1001-remind-week"]

    assert decision["decided_at"] == "2026-03-13T08:00:00Z"


def test_refund_confirmation_is_approved_despite_the_cancelled_booking(
    decisions: dict[str, list[dict[str, Any]]],
) -> None:
    first, repeat = decisions["in-1001-refund"]

    assert first["outcome"] == "approved"
    assert repeat["outcome"] == "suppressed"
    assert _rules(repeat) == ["duplicate_intent"]


def test_marketing_during_an_open_support_case_is_suppressed(
    decisions: dict[str, list[dict[str, Any]]],
) -> None:
    [decision] = decisions["in-1001-spring"]

    assert decision["outcome"] == "suppressed"
    assert _rules(decision) == ["cooldown"]
    assert "cs-77" in decision["reasons"][0]["detail"]


def test_marketing_after_the_case_closed_waits_for_the_end_of_quiet_hours(
    decisions: dict[str, list[dict[str, Any]]],
) -> None:
    deferred, released = decisions["in-1001-weekend"]

    assert deferred["outcome"] == "deferred"
    assert _rules(deferred) == ["quiet_hours"]
    # 08:00 in Berlin, winter time.
    assert deferred["release_at"] == "2026-03-08T07:00:00Z"
    assert released["outcome"] == "approved"
    assert released["decided_at"] == "2026-03-08T07:00:00Z"
    assert released["decision_id"] != deferred["decision_id"]


def test_the_unaffected_customer_gets_their_reminder_and_marketing(
    decisions: dict[str, list[dict[str, Any]]],
) -> None:
    approved = [
        intent_id
        for intent_id in (
            "in-2002-remind",
            "in-2002-spring-push-1",
            "in-2002-spring-push-2",
            "in-2002-spring-mail-1",
        )
        if decisions[intent_id][-1]["outcome"] == "approved"
    ]

    assert len(approved) == 4


def test_third_push_in_a_day_hits_the_frequency_cap(
    decisions: dict[str, list[dict[str, Any]]],
) -> None:
    [decision] = decisions["in-2002-lounge"]

    assert decision["outcome"] == "suppressed"
    assert _rules(decision) == ["frequency_cap"]


def test_repeat_mail_lists_every_rule_that_objected(
    decisions: dict[str, list[dict[str, Any]]],
) -> None:
    [decision] = decisions["in-2002-spring-mail-2"]

    assert decision["outcome"] == "suppressed"
    assert _rules(decision) == ["dedupe", "frequency_cap"]


def test_reminder_after_the_trip_started_is_outside_its_window(
    decisions: dict[str, list[dict[str, Any]]],
) -> None:
    [decision] = decisions["in-2002-late-remind"]

    assert _rules(decision) == ["entity_window"]


def test_holdout_customer_gets_no_marketing(
    decisions: dict[str, list[dict[str, Any]]],
) -> None:
    [decision] = decisions["in-3000-spring"]

    assert _rules(decision) == ["holdout"]


def test_broken_intent_is_not_decided(
    decisions: dict[str, list[dict[str, Any]]],
) -> None:
    assert "in-2002-broken" not in decisions
