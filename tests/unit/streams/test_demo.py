from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from app.engine.times import parse_time, to_us
from app.streams.demo import DEFAULT_STORY, Timeline, load_story, midday_zone, rebase

START = datetime(2026, 12, 3, 16, 0, tzinfo=UTC)


@pytest.mark.parametrize("hour", range(24))
def test_the_demo_zone_puts_customers_near_midday_at_any_hour(hour: int) -> None:
    now = START.replace(hour=hour)

    local = now.astimezone(ZoneInfo(midday_zone(now)))

    assert 11 <= local.hour <= 13


def test_the_timeline_paces_anchors_evenly_and_keeps_order_between_them() -> None:
    day = 86_400_000_000
    timeline = Timeline([0, 10 * day, 11 * day], start_us=1_000, pace_us=500)

    mapped = [timeline(t) for t in (0, 5 * day, 10 * day, 11 * day, 30 * day)]

    assert mapped[0] == 1_000
    assert mapped[2] == 1_500
    assert mapped[3] == 2_000
    assert mapped == sorted(mapped)
    assert mapped[4] > mapped[3]


def test_rebased_story_keeps_its_order_and_only_its_times_and_ids_change() -> None:
    story = load_story(DEFAULT_STORY)

    rebased = [
        r
        for r in rebase(story, START, 0.5, run_tag="r1", zone="Etc/GMT-2")
        if not r["value"].get("event_id", "").endswith("-zone")
    ]

    stamps = [to_us(parse_time(r["timestamp"])) for r in rebased]
    assert stamps == sorted(stamps)
    assert stamps[0] == to_us(START)
    assert stamps[-1] <= to_us(START + timedelta(seconds=0.5 * len(story)))
    assert [r["topic"] for r in rebased] == [r["topic"] for r in story]
    for before, after in zip(story, rebased, strict=True):
        value = after["value"]
        assert value["customer_id"] == before["value"]["customer_id"] + "-r1"
        assert value.get("payload") == before["value"].get("payload")
        if "timezone" in value.get("attributes", {}):
            assert value["attributes"]["timezone"] == "Etc/GMT-2"


def test_every_customer_is_in_the_demo_zone_before_their_first_intent() -> None:
    story = load_story(DEFAULT_STORY)

    rebased = rebase(story, START, 0.5, run_tag="r1", zone="Etc/GMT-2")

    zones: dict[str, str] = {}
    for record in rebased:
        value = record["value"]
        if "timezone" in value.get("attributes", {}):
            zones[value["customer_id"]] = value["attributes"]["timezone"]
        if "intent_id" in value:
            assert zones.get(value["customer_id"]) == "Etc/GMT-2", value["intent_id"]
    added = [r for r in rebased if r["value"].get("event_id", "").endswith("-zone")]
    assert {r["value"]["customer_id"] for r in added} == {"c-2002-r1", "c-3000-r1"}
    assert len(rebased) == len(story) + len(added)


def test_a_reminder_due_after_the_cancellation_stays_after_it() -> None:
    story = load_story(DEFAULT_STORY)

    rebased = {
        r["value"].get("intent_id") or r["value"].get("event_id"): r["value"]
        for r in rebase(story, START, 0.5, run_tag="", zone="UTC")
    }

    cancelled = parse_time(rebased["ev-1001-3"]["occurred_at"])
    reminder = parse_time(rebased["in-1001-remind-week"]["send_at"])
    assert cancelled is not None
    assert reminder is not None
    assert reminder > cancelled
