"""docs/policy.md says what the policy language and the engine actually do."""

from __future__ import annotations

import io
import json
import re
from pathlib import Path
from typing import Any

import orjson
import pytest

from app import cli
from app.engine import policy as policy_module
from app.engine import replay
from app.engine.policy import load_policy, parse_policy
from app.errors import PolicyError
from tests.unit.docs.blocks import (
    EXAMPLES,
    POLICY_DOC,
    SCHEMAS,
    backticked,
    code_blocks,
    engine_rule_names,
    section,
    table_rows,
)

TRAVEL_POLICY = EXAMPLES / "travel-policy.yaml"
STORY = EXAMPLES / "story.jsonl"
_VERSION_HASH = re.compile(r"@[0-9a-f]{12}\b")


def _reason_rows() -> list[list[str]]:
    return [
        row for row in table_rows(section(POLICY_DOC, "## Reasons")) if len(row) == 5
    ]


def _documented_rules() -> set[str]:
    return {backticked(row[0])[0] for row in _reason_rows() if backticked(row[0])}


def _documented_details() -> list[str]:
    return [backticked(row[4])[0] for row in _reason_rows() if backticked(row[4])]


def _policy_schema() -> dict[str, Any]:
    with (SCHEMAS / "policy.schema.json").open("rb") as handle:
        schema: dict[str, Any] = json.load(handle)
    return schema


def _fields(schema: dict[str, Any]) -> set[str]:
    """Every property name below a schema node, through arrays and maps."""
    names: set[str] = set()
    for name, child in schema.get("properties", {}).items():
        names.add(name)
        names |= _fields(child)
    for key in ("items", "additionalProperties"):
        child = schema.get(key)
        if isinstance(child, dict):
            names |= _fields(child)
    return names


def _replay(policy_text: str, lines: list[bytes], *, table: bool = False) -> str:
    out = io.BytesIO()
    replay.run(
        parse_policy(policy_text, "probe.yaml"), lines, "probe", out, table=table
    )
    return out.getvalue().decode()


def test_every_rule_the_engine_can_emit_is_in_the_reasons_table() -> None:
    assert engine_rule_names() - _documented_rules() == set()


def test_the_reasons_table_names_only_rules_the_engine_has() -> None:
    assert _documented_rules() - engine_rule_names() == set()


def test_every_rule_policy_check_names_is_documented() -> None:
    lines = load_policy(TRAVEL_POLICY).rules_in_force()
    always = lines[0].removeprefix("always: ").split(", ")
    prefixes = {line.split(":", 1)[0] for line in lines[1:]}
    named = set(always) | (prefixes & engine_rule_names())

    assert named - _documented_rules() == set()


def test_every_top_level_policy_section_has_a_heading() -> None:
    text = POLICY_DOC.read_text(encoding="utf-8")
    sections = _policy_schema()["properties"]

    missing = [name for name in sections if f"\n### `{name}`\n" not in text]

    assert missing == []


def test_every_policy_field_is_named_in_the_docs() -> None:
    text = POLICY_DOC.read_text(encoding="utf-8")

    missing = sorted(
        name for name in _fields(_policy_schema()) if f"`{name}`" not in text
    )

    assert missing == []


@pytest.mark.parametrize(
    ("field", "default"),
    [
        ("retain", policy_module.DEFAULT_RETAIN),
        ("at_most", policy_module.DEFAULT_AT_MOST),
        ("max_pending", str(policy_module.DEFAULT_MAX_PENDING)),
        ("decided_intents", policy_module.DEFAULT_REMEMBER),
        ("applied_events", policy_module.DEFAULT_REMEMBER),
        ("max_ids", str(policy_module.DEFAULT_MAX_IDS)),
        ("lookback", policy_module.DEFAULT_LOOKBACK),
    ],
)
def test_documented_default_is_the_loaders(field: str, default: str) -> None:
    rows = table_rows(POLICY_DOC.read_text(encoding="utf-8"))

    row = next(row for row in rows if row[0] == f"`{field}`")

    assert f"`{default}`" in row


def test_every_yaml_example_is_a_valid_policy() -> None:
    examples = [b for b in code_blocks(POLICY_DOC) if b.info == "yaml"]

    for block in examples:
        parse_policy(block.text, f"policy.md {block.label}")

    assert examples


def test_the_invalid_policy_example_fails_with_the_documented_problems() -> None:
    blocks = code_blocks(POLICY_DOC)
    position = next(i for i, b in enumerate(blocks) if b.info == "yaml invalid")
    documented = blocks[position + 1].text.splitlines()

    with pytest.raises(PolicyError) as raised:
        parse_policy(blocks[position].text, "bad.yaml")

    assert str(raised.value).splitlines() == documented


def test_policy_check_prints_the_documented_summary(
    capsys: pytest.CaptureFixture[str],
) -> None:
    documented = next(
        b.text
        for b in code_blocks(POLICY_DOC)
        if b.info == "text" and "is valid" in b.text
    )

    status = cli.main(["policy", "check", str(TRAVEL_POLICY)])

    assert status == cli.EXIT_OK
    printed = capsys.readouterr().out
    assert _VERSION_HASH.sub("@", printed) == _VERSION_HASH.sub("@", documented)


def test_policy_check_of_an_invalid_policy_exits_with_the_documented_code(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("version: 2\n", encoding="utf-8")
    codes = table_rows(section(POLICY_DOC, "## Checking a policy"))

    status = cli.main(["policy", "check", str(bad)])

    assert status == cli.EXIT_USAGE
    assert [f"`{cli.EXIT_OK}`", f"`{cli.EXIT_USAGE}`"] == [row[0] for row in codes]
    assert "is invalid" in capsys.readouterr().err


def test_the_replay_line_example_is_a_valid_replay_line() -> None:
    block = next(b for b in code_blocks(POLICY_DOC) if b.language == "json")

    record = replay.parse_line(block.text.strip().encode(), 1)

    assert record.record.customer_id == "c-1001"


def test_the_worked_example_table_is_what_demo_replay_prints() -> None:
    documented = section(POLICY_DOC, "## Worked example: the travel policy")
    table = next(b.text for b in code_blocks(POLICY_DOC) if b.text in documented)

    printed = _replay(
        TRAVEL_POLICY.read_text(encoding="utf-8"),
        STORY.read_bytes().splitlines(),
        table=True,
    )

    assert printed.splitlines() == table.splitlines()


# A policy and records that make every rule object in every way it can; the
# travel story covers the rest.
PROBE_POLICY = """\
version: 1
name: probe
timezone_fallback: fail_closed
settle: 5s
categories:
  transactional: {exempt: true}
entities:
  booking:
    events: {booking.created: active}
    unknown: suppress
cooldowns:
  - after: complaint.filed
    for: 14d
    categories: [marketing]
frequency_caps:
  - channels: [push]
    max: 1
    per: day
quiet_hours:
  - channels: [sms]
    from: "21:00"
    to: "08:00"
"""


def _event(customer: str, at: str, event_type: str, **fields: Any) -> bytes:
    value = {
        "event_id": f"ev-{customer}-{event_type}-{at}",
        "customer_id": customer,
        "type": event_type,
        "occurred_at": at,
        **fields,
    }
    return orjson.dumps(
        {"topic": "customer-lifecycle", "timestamp": at, "value": value}
    )


def _intent(
    intent_id: str, customer: str, at: str, channel: str, category: str, **fields: Any
) -> bytes:
    value = {
        "intent_id": intent_id,
        "customer_id": customer,
        "channel": channel,
        "category": category,
        "created_at": at,
        **fields,
    }
    return orjson.dumps(
        {"topic": "notification-intents", "timestamp": at, "value": value}
    )


def _probe_lines() -> list[bytes]:
    day = "2026-02-01T"
    opt_out = "consent.opted_out"
    lines = [
        _event(
            "c-1",
            f"{day}09:00:00Z",
            opt_out,
            attributes={"channel": "email", "category": "marketing"},
        ),
        _event("c-2", f"{day}09:00:00Z", opt_out, attributes={"channel": "sms"}),
        _event("c-3", f"{day}09:00:00Z", opt_out, attributes={"category": "upsell"}),
        _event("c-4", f"{day}09:00:00Z", opt_out),
        _event("c-5", f"{day}09:00:00Z", "complaint.filed"),
        _intent("in-1", "c-1", f"{day}10:00:00Z", "email", "marketing"),
        _intent("in-2", "c-2", f"{day}10:00:00Z", "sms", "marketing"),
        _intent("in-3", "c-3", f"{day}10:00:00Z", "email", "upsell"),
        _intent("in-4", "c-4", f"{day}10:00:00Z", "email", "marketing"),
        _intent("in-5", "c-5", f"{day}10:00:00Z", "email", "marketing"),
        _intent(
            "in-6",
            "c-6",
            f"{day}10:00:00Z",
            "email",
            "reminder",
            about=[{"type": "booking", "id": "bk-1"}],
        ),
        _intent("in-7", "c-7", f"{day}10:00:00Z", "email", "reminder"),
        _intent("in-7", "c-7", f"{day}10:00:01Z", "email", "reminder"),
        _intent("in-8", "c-8", f"{day}10:00:00Z", "sms", "reminder"),
        _intent("in-9", "c-9", f"{day}10:00:00Z", "push", "reminder"),
        _intent("in-10", "c-9", f"{day}10:01:00Z", "push", "reminder"),
        _intent(
            "in-11",
            "c-10",
            f"{day}10:05:00Z",
            "email",
            "reminder",
            expires_at=f"{day}10:04:00Z",
        ),
        _intent(
            "in-12",
            "c-10",
            f"{day}10:05:00Z",
            "email",
            "reminder",
            expires_at=f"{day}10:05:03Z",
        ),
        _event("c-11", f"{day}11:00:00Z", "account.closed"),
        _intent("in-13", "c-11", f"{day}11:01:00Z", "email", "reminder"),
        _event("c-12", f"{day}11:03:00Z", "account.erased"),
        _intent("in-14", "c-12", f"{day}11:04:00Z", "email", "transactional"),
        _event(
            "c-13",
            f"{day}12:00:00Z",
            "profile.updated",
            attributes={"timezone": "Europe/Berlin"},
        ),
        _intent(
            "in-15",
            "c-13",
            f"{day}22:00:00Z",
            "sms",
            "reminder",
            expires_at="2026-02-02T06:00:00Z",
        ),
    ]
    # One more waiting intent than the default limit allows.
    lines.extend(
        _intent(
            f"in-w{n}",
            "c-14",
            f"{day}23:00:00Z",
            "email",
            "reminder",
            send_at="2026-03-01T00:00:00Z",
        )
        for n in range(policy_module.DEFAULT_MAX_PENDING + 1)
    )
    return lines


@pytest.fixture(scope="module")
def produced_details() -> set[str]:
    """Every reason detail of the probe and of the travel story."""
    outputs = [
        _replay(PROBE_POLICY, _probe_lines()),
        _replay(
            TRAVEL_POLICY.read_text(encoding="utf-8"), STORY.read_bytes().splitlines()
        ),
    ]
    return {
        reason["detail"]
        for output in outputs
        for line in output.splitlines()
        for reason in orjson.loads(line)["reasons"]
    }


def test_every_example_detail_is_worded_as_the_engine_words_it(
    produced_details: set[str],
) -> None:
    documented = _documented_details()

    assert [d for d in documented if d not in produced_details] == []
    assert len(documented) == len(_reason_rows())


def test_every_consent_scope_is_worded_as_the_engine_words_it(
    produced_details: set[str],
) -> None:
    rows = table_rows(section(POLICY_DOC, "## Reasons"))
    phrases = [backticked(row[1])[0] for row in rows if len(row) == 2]

    unmatched = [p for p in phrases if not any(p in d for d in produced_details)]

    assert len(phrases) == 4
    assert unmatched == []
