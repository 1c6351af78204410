"""Decoding lifecycle events and intents, and rejecting broken records."""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import jsonschema  # type: ignore[import-untyped]  # the package ships no type stubs
import orjson
import pytest

from app.engine.records import (
    ERROR_KINDS,
    Limits,
    dead_letter,
    decode_event,
    decode_intent,
    event_from_value,
    intent_from_value,
)
from app.errors import RecordError, TactError

SCHEMAS = Path(__file__).resolve().parents[3] / "schemas"


def _schema(name: str) -> dict[str, Any]:
    schema: dict[str, Any] = json.loads((SCHEMAS / name).read_text())
    return schema


def _intent_record(**overrides: Any) -> dict[str, Any]:
    record: dict[str, Any] = {
        "intent_id": "in-1",
        "customer_id": "c-1",
        "channel": "push",
        "category": "reminder",
        "created_at": "2026-03-01T09:00:00Z",
    }
    record.update(overrides)
    return record


def _event_record(**overrides: Any) -> dict[str, Any]:
    record: dict[str, Any] = {
        "event_id": "ev-1",
        "customer_id": "c-1",
        "type": "booking.created",
        "occurred_at": "2026-03-01T09:00:00Z",
    }
    record.update(overrides)
    return record


def _kind_of(raw: bytes, decode: Any) -> str:
    with pytest.raises(RecordError) as caught:
        decode(raw)
    return caught.value.kind


def test_intent_with_every_field_decodes() -> None:
    record = _intent_record(
        campaign_id="spring",
        send_at="2026-03-02T09:00:00+01:00",
        expires_at="2026-03-03T09:00:00Z",
        about=[{"type": "booking", "id": "bk-981"}],
        dedupe_key="reminder-bk-981",
        priority=50,
        payload={"title": "Your trip"},
        x_extra={"kept": True},
    )

    intent = decode_intent(orjson.dumps(record))

    assert intent.intent_id == "in-1"
    assert intent.send_at is not None
    assert intent.send_at.isoformat() == "2026-03-02T08:00:00+00:00"
    assert [str(ref) for ref in intent.about] == ["booking bk-981"]
    assert intent.priority == 50
    assert intent.raw["x_extra"] == {"kept": True}


def test_event_keeps_unknown_fields_in_raw() -> None:
    record = _event_record(entity={"type": "booking", "id": "bk-1"}, source="crm")

    event = decode_event(orjson.dumps(record))

    assert event.entity is not None
    assert event.entity.id == "bk-1"
    assert event.raw["source"] == "crm"


def test_bad_send_at_names_the_field_and_the_value() -> None:
    raw = orjson.dumps(_intent_record(send_at="tomorrow"))

    with pytest.raises(RecordError) as caught:
        decode_intent(raw)

    assert caught.value.kind == "bad_time"
    assert caught.value.message == (
        'intent.send_at: "tomorrow" is not an RFC 3339 time with an offset'
    )


def test_time_without_offset_is_a_bad_time() -> None:
    raw = orjson.dumps(_intent_record(created_at="2026-03-01T09:00:00"))

    assert _kind_of(raw, decode_intent) == "bad_time"


def test_impossible_calendar_date_is_a_bad_time() -> None:
    raw = orjson.dumps(_intent_record(created_at="2026-13-01T09:00:00Z"))

    assert _kind_of(raw, decode_intent) == "bad_time"


def test_record_over_the_size_limit_is_too_large() -> None:
    raw = orjson.dumps(_intent_record(payload="x" * 200))

    with pytest.raises(RecordError) as caught:
        decode_intent(raw, Limits(max_record_bytes=100))

    assert caught.value.kind == "too_large"


def test_record_nested_past_the_limit_is_too_deep() -> None:
    payload: Any = "leaf"
    for _ in range(10):
        payload = [payload]
    raw = orjson.dumps(_intent_record(payload=payload))

    with pytest.raises(RecordError) as caught:
        decode_intent(raw, Limits(max_depth=8))

    assert caught.value.kind == "too_deep"


def test_brackets_inside_strings_do_not_count_as_depth() -> None:
    raw = orjson.dumps(_intent_record(payload="[[[[[[[[[[[[{{{{{{{{"))

    intent = decode_intent(raw, Limits(max_depth=4))

    assert intent.raw["payload"].startswith("[")


@pytest.mark.parametrize(
    ("raw", "kind"),
    [
        (b"\xff\xfe{}", "not_utf8"),
        (b"{not json", "not_json"),
        (b"[1, 2]", "not_object"),
        (b'"text"', "not_object"),
    ],
)
def test_undecodable_bytes_get_a_stable_kind(raw: bytes, kind: str) -> None:
    assert _kind_of(raw, decode_intent) == kind


def test_profile_update_with_an_unknown_timezone_is_rejected() -> None:
    raw = orjson.dumps(
        _event_record(type="profile.updated", attributes={"timezone": "Mars/Olympus"})
    )

    assert _kind_of(raw, decode_event) == "bad_timezone"


def test_profile_update_with_an_iana_timezone_decodes() -> None:
    raw = orjson.dumps(
        _event_record(type="profile.updated", attributes={"timezone": "Europe/Berlin"})
    )

    assert decode_event(raw).attributes["timezone"] == "Europe/Berlin"


def test_event_type_must_be_noun_dot_verb() -> None:
    raw = orjson.dumps(_event_record(type="cancelled"))

    assert _kind_of(raw, decode_event) == "bad_value"


def test_priority_out_of_range_is_a_bad_value() -> None:
    raw = orjson.dumps(_intent_record(priority=101))

    assert _kind_of(raw, decode_intent) == "bad_value"


def test_record_errors_share_the_tact_root_and_are_not_retriable() -> None:
    assert issubclass(RecordError, TactError)
    assert RecordError.retriable is False


def test_dead_letter_keeps_the_original_bytes_and_matches_its_schema() -> None:
    value = b"{broken"
    error = RecordError("not_json", "intent: record is not JSON")
    source = {
        "topic": "notification-intents",
        "partition": 3,
        "offset": 17,
        "timestamp": 1767261600000,
    }

    record = dead_letter(error, source, b"c-1", value)

    jsonschema.validate(record, _schema("dead-letter.schema.json"))
    assert base64.b64decode(record["value"]) == value
    assert base64.b64decode(record["key"]) == b"c-1"
    assert record["error"] == {"kind": "not_json", "message": error.message}


def test_a_dead_letter_longer_than_its_limit_keeps_the_first_bytes_key_first() -> None:
    error = RecordError("wrong_type", "intent.channel: 7 is a number, not a string")
    source = {"topic": "t", "partition": 0, "offset": 5, "timestamp": None}
    key, value = b"k" * 10, b"v" * 100

    whole = dead_letter(error, source, key, value, keep_bytes=110)
    cut = dead_letter(error, source, key, value, keep_bytes=40)
    key_only = dead_letter(error, source, key, value, keep_bytes=4)
    no_key = dead_letter(error, source, None, value, keep_bytes=40)

    for record in (whole, cut, key_only, no_key):
        jsonschema.validate(record, _schema("dead-letter.schema.json"))
    assert (whole["truncated"], cut["truncated"], key_only["truncated"]) == (
        False,
        True,
        True,
    )
    assert base64.b64decode(whole["value"]) == value
    assert base64.b64decode(cut["key"]) == key
    assert base64.b64decode(cut["value"]) == value[:30]
    assert base64.b64decode(key_only["key"]) == b"kkkk"
    assert base64.b64decode(key_only["value"]) == b""
    assert base64.b64decode(no_key["value"]) == value[:40]
    assert (cut["key_bytes"], cut["value_bytes"]) == (10, 100)
    assert no_key["key_bytes"] is None


def test_dead_letter_schema_lists_exactly_the_error_kinds() -> None:
    schema = _schema("dead-letter.schema.json")

    kinds = schema["properties"]["error"]["properties"]["kind"]["enum"]

    assert tuple(kinds) == ERROR_KINDS


# The hand-written checks must accept exactly what the schemas accept. The
# cases below are driven by the schema files, so a field added to a schema
# without code (or the other way round) fails here.

SAMPLES: list[Any] = [
    None,
    42,
    4.5,
    50.0,
    True,
    "",
    "x",
    "a.b",
    "2026-04-01T09:30:00Z",
    "2026-04-01t09:30:00.25+05:30",
    "tomorrow",
    "2026-04-01T09:30:00",
    [],
    ["x"],
    [{"type": "booking", "id": "bk-1"}],
    [{"type": "booking"}],
    {},
    {"type": "booking", "id": "bk-1"},
    {"id": "bk-1"},
    -1,
    100,
    101,
]


def _schema_accepts(schema: dict[str, Any], record: dict[str, Any]) -> bool:
    is_valid: bool = jsonschema.Draft202012Validator(schema).is_valid(record)
    return is_valid


def _code_accepts(check: Any, record: dict[str, Any]) -> bool:
    try:
        check(record)
    except RecordError:
        return False
    return True


def _field_cases() -> list[tuple[str, str, Any]]:
    cases: list[tuple[str, str, Any]] = []
    for schema_name, prefix in (
        ("intent.schema.json", None),
        ("lifecycle-event.schema.json", None),
    ):
        schema = _schema(schema_name)
        for name in schema["properties"]:
            cases.extend((schema_name, name, sample) for sample in SAMPLES)
        if prefix is None and "attributes" in schema["properties"]:
            attributes = schema["properties"]["attributes"]["properties"]
            cases.extend(
                (schema_name, f"attributes.{name}", sample)
                for name in attributes
                for sample in SAMPLES
            )
    return cases


def _checker_and_base(schema_name: str) -> tuple[Any, dict[str, Any]]:
    if schema_name == "intent.schema.json":
        return intent_from_value, _intent_record()
    return event_from_value, _event_record()


@pytest.mark.parametrize(
    ("schema_name", "field"),
    [
        (name, field)
        for name in ("intent.schema.json", "lifecycle-event.schema.json")
        for field in _schema(name)["required"]
    ],
)
def test_every_required_schema_field_is_required_by_code(
    schema_name: str, field: str
) -> None:
    check, record = _checker_and_base(schema_name)
    del record[field]

    with pytest.raises(RecordError) as caught:
        check(record)

    assert not _schema_accepts(_schema(schema_name), record)
    assert caught.value.kind == "missing_field"
    assert field in caught.value.message


def test_code_and_schema_agree_on_every_field_and_sample() -> None:
    disagreements = []

    for schema_name, field, sample in _field_cases():
        check, record = _checker_and_base(schema_name)
        if field.startswith("attributes."):
            record["attributes"] = {field.split(".", 1)[1]: sample}
        else:
            record[field] = sample
        schema_says = _schema_accepts(_schema(schema_name), record)
        code_says = _code_accepts(check, record)
        if schema_says != code_says:
            disagreements.append((schema_name, field, sample, schema_says))

    assert disagreements == []
