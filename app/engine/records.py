"""Lifecycle events and notification intents: decoding and checking records.

The checks are written by hand rather than run through jsonschema because they
sit on the hot path of every record; a unit test drives them from the schema
files in `schemas/` so the two cannot drift apart.
"""

from __future__ import annotations

import base64
import logging
import zoneinfo
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from functools import cache
from typing import Any, NamedTuple

import orjson

from app.engine.times import from_us, parse_time_us
from app.errors import RecordError

logger = logging.getLogger(__name__)

MIB = 1 << 20
_MAX_SHOWN_VALUE = 60
# Error kinds, also listed in schemas/dead-letter.schema.json.
TOO_LARGE = "too_large"
NOT_UTF8 = "not_utf8"
NOT_JSON = "not_json"
NOT_OBJECT = "not_object"
TOO_DEEP = "too_deep"
MISSING_FIELD = "missing_field"
WRONG_TYPE = "wrong_type"
BAD_TIME = "bad_time"
BAD_TIMEZONE = "bad_timezone"
BAD_VALUE = "bad_value"
# Raised by the worker, not by decoding: a record on another partition than
# its customer's, and a repartitioned record that names no source topic.
WRONG_PARTITION = "wrong_partition"
UNKNOWN_SOURCE = "unknown_source"
ERROR_KINDS = (
    TOO_LARGE,
    NOT_UTF8,
    NOT_JSON,
    NOT_OBJECT,
    TOO_DEEP,
    MISSING_FIELD,
    WRONG_TYPE,
    BAD_TIME,
    BAD_TIMEZONE,
    BAD_VALUE,
    WRONG_PARTITION,
    UNKNOWN_SOURCE,
)
PRIORITY_MIN = 0
PRIORITY_MAX = 100


@dataclass(frozen=True, slots=True)
class Limits:
    """Bounds that keep one hostile record from costing memory or stack."""

    max_record_bytes: int = MIB
    max_depth: int = 32


DEFAULT_LIMITS = Limits()


class EntityRef(NamedTuple):
    """A thing in the customer's world, e.g. booking bk-981."""

    type: str
    id: str

    def __str__(self) -> str:
        return f"{self.type} {self.id}"


class LifecycleEvent(NamedTuple):
    """Something that happened to a customer; `raw` is the record as decoded."""

    event_id: str
    customer_id: str
    type: str
    occurred_us: int
    entity: EntityRef | None
    attributes: Mapping[str, Any]
    raw: Mapping[str, Any]

    @property
    def occurred_at(self) -> datetime:
        return from_us(self.occurred_us)


class Intent(NamedTuple):
    """A notification some system wants sent; `raw` passes through on approval."""

    intent_id: str
    customer_id: str
    channel: str
    category: str
    campaign_id: str | None
    created_us: int
    send_us: int | None
    expires_us: int | None
    about: tuple[EntityRef, ...]
    dedupe_key: str | None
    priority: int | None
    raw: Mapping[str, Any]

    @property
    def created_at(self) -> datetime:
        return from_us(self.created_us)

    @property
    def send_at(self) -> datetime | None:
        return None if self.send_us is None else from_us(self.send_us)

    @property
    def expires_at(self) -> datetime | None:
        return None if self.expires_us is None else from_us(self.expires_us)


def decode_event(raw: bytes, limits: Limits = DEFAULT_LIMITS) -> LifecycleEvent:
    """Decode and check a lifecycle event record, or raise RecordError."""
    value, is_shallow = _load(raw, limits, "event")
    return _event_from_object(_require_object(value, "event", limits, is_shallow))


def decode_intent(raw: bytes, limits: Limits = DEFAULT_LIMITS) -> Intent:
    """Decode and check a notification intent record, or raise RecordError."""
    value, is_shallow = _load(raw, limits, "intent")
    return _intent_from_object(_require_object(value, "intent", limits, is_shallow))


def event_from_value(
    value: object, limits: Limits = DEFAULT_LIMITS, *, is_shallow: bool = False
) -> LifecycleEvent:
    """Check an already decoded lifecycle event (a replay line's `value`).

    `is_shallow` says the caller already knows the value is within the
    depth limit, which saves walking it.
    """
    return _event_from_object(_require_object(value, "event", limits, is_shallow))


def intent_from_value(
    value: object, limits: Limits = DEFAULT_LIMITS, *, is_shallow: bool = False
) -> Intent:
    """Check an already decoded notification intent (a replay line's `value`)."""
    return _intent_from_object(_require_object(value, "intent", limits, is_shallow))


def _event_from_object(obj: dict[str, Any]) -> LifecycleEvent:
    event = _usual_event(obj)
    return _checked_event(obj) if event is None else event


def _usual_event(obj: dict[str, Any]) -> LifecycleEvent | None:
    """The event of a record in the usual shape, or None to take the checked
    path, which names the first problem; most records take only this one."""
    get = obj.get
    event_id = get("event_id")
    customer_id = get("customer_id")
    event_type = get("type")
    if not (
        type(event_id) is str
        and event_id
        and type(customer_id) is str
        and customer_id
        and type(event_type) is str
        and _is_dotted(event_type)
    ):
        return None
    occurred = get("occurred_at")
    occurred_us = parse_time_us(occurred) if type(occurred) is str else None
    if occurred_us is None:
        return None
    entity = get("entity")
    ref = None
    if entity is not None:
        ref = _usual_ref(entity)
        if ref is None:
            return None
    attributes = get("attributes")
    if attributes is None:
        attributes = {}
    elif type(attributes) is dict:
        _check_attributes(attributes, event_type)
    else:
        return None
    return LifecycleEvent(
        event_id, customer_id, event_type, occurred_us, ref, attributes, obj
    )


def _checked_event(obj: dict[str, Any]) -> LifecycleEvent:
    event_id = _required_str(obj, "event_id", "event")
    customer_id = _required_str(obj, "customer_id", "event")
    event_type = _required_str(obj, "type", "event")
    if not _is_dotted(event_type):
        raise RecordError(
            BAD_VALUE,
            f"event.type: {_show(event_type)} is not of the form noun.verb",
        )
    attributes = obj.get("attributes")
    if attributes is None:
        attributes = {}
    elif not isinstance(attributes, dict):
        raise _wrong_type("event.attributes", attributes, "an object")
    else:
        _check_attributes(attributes, event_type)
    return LifecycleEvent(
        event_id=event_id,
        customer_id=customer_id,
        type=event_type,
        occurred_us=_required_time(obj, "occurred_at", "event"),
        entity=_optional_ref(obj.get("entity"), "event.entity"),
        attributes=attributes,
        raw=obj,
    )


def _intent_from_object(obj: dict[str, Any]) -> Intent:
    intent = _usual_intent(obj)
    return _checked_intent(obj) if intent is None else intent


def _usual_intent(obj: dict[str, Any]) -> Intent | None:
    """The intent of a record in the usual shape, or None to take the checked
    path, which names the first problem; most records take only this one."""
    get = obj.get
    intent_id = get("intent_id")
    customer_id = get("customer_id")
    channel = get("channel")
    category = get("category")
    campaign_id = get("campaign_id")
    dedupe_key = get("dedupe_key")
    if not (
        type(intent_id) is str
        and intent_id
        and type(customer_id) is str
        and customer_id
        and type(channel) is str
        and channel
        and type(category) is str
        and category
        and (campaign_id is None or type(campaign_id) is str)
        and (dedupe_key is None or type(dedupe_key) is str)
    ):
        return None
    created = get("created_at")
    created_us = parse_time_us(created) if type(created) is str else None
    if created_us is None:
        return None
    send = get("send_at")
    send_us = None
    if send is not None:
        send_us = parse_time_us(send) if type(send) is str else None
        if send_us is None:
            return None
    expires = get("expires_at")
    expires_us = None
    if expires is not None:
        expires_us = parse_time_us(expires) if type(expires) is str else None
        if expires_us is None:
            return None
    priority = get("priority")
    if priority is not None and not (
        type(priority) is int and PRIORITY_MIN <= priority <= PRIORITY_MAX
    ):
        return None
    about = get("about")
    refs: tuple[EntityRef, ...] = ()
    if about is not None:
        if type(about) is not list:
            return None
        found = []
        for item in about:
            ref = _usual_ref(item)
            if ref is None:
                return None
            found.append(ref)
        refs = tuple(found)
    return Intent(
        intent_id,
        customer_id,
        channel,
        category,
        campaign_id,
        created_us,
        send_us,
        expires_us,
        refs,
        dedupe_key,
        priority,
        obj,
    )


def _usual_ref(value: object) -> EntityRef | None:
    if type(value) is not dict:
        return None
    kind = value.get("type")
    key = value.get("id")
    if type(kind) is str and kind and type(key) is str and key:
        return EntityRef(kind, key)
    return None


def _checked_intent(obj: dict[str, Any]) -> Intent:
    intent_id = _required_str(obj, "intent_id", "intent")
    customer_id = _required_str(obj, "customer_id", "intent")
    channel = _required_str(obj, "channel", "intent")
    category = _required_str(obj, "category", "intent")
    created_us = _required_time(obj, "created_at", "intent")
    about = obj.get("about")
    if about is None:
        refs: tuple[EntityRef, ...] = ()
    elif not isinstance(about, list):
        raise _wrong_type("intent.about", about, "an array")
    else:
        refs = tuple(
            _required_ref(item, f"intent.about[{index}]")
            for index, item in enumerate(about)
        )
    return Intent(
        intent_id=intent_id,
        customer_id=customer_id,
        channel=channel,
        category=category,
        campaign_id=_optional_str(obj, "campaign_id", "intent"),
        created_us=created_us,
        send_us=_optional_time(obj, "send_at", "intent"),
        expires_us=_optional_time(obj, "expires_at", "intent"),
        about=refs,
        dedupe_key=_optional_str(obj, "dedupe_key", "intent"),
        priority=_optional_priority(obj),
        raw=obj,
    )


def dead_letter(
    error: RecordError,
    source: Mapping[str, Any],
    key: bytes | None,
    value: bytes,
    keep_bytes: int | None = None,
) -> dict[str, Any]:
    """The dead-letter record of a rejected input, original bytes in base64.

    With `keep_bytes`, key and value together keep at most that many of their
    first bytes (the key first), so that the dead letter fits in a Kafka
    record; `truncated` says whether anything was cut, and `source` still
    points at the whole record."""
    kept_key, kept_value = key, value
    if keep_bytes is not None:
        if kept_key is not None:
            kept_key = kept_key[:keep_bytes]
        kept_value = value[: keep_bytes - len(kept_key or b"")]
    return {
        "error": {"kind": error.kind, "message": error.message},
        "source": dict(source),
        "key": None if kept_key is None else base64.b64encode(kept_key).decode("ascii"),
        "value": base64.b64encode(kept_value).decode("ascii"),
        "key_bytes": None if key is None else len(key),
        "value_bytes": len(value),
        "truncated": kept_key != key or kept_value != value,
    }


def is_valid_timezone(name: str) -> bool:
    """Whether `name` is an IANA zone this process can load."""
    return name in _available_timezones()


@cache
def _available_timezones() -> frozenset[str]:
    # Scanning the zone database is slow, so it happens once per process.
    return frozenset(zoneinfo.available_timezones())


def _load(raw: bytes, limits: Limits, what: str) -> tuple[object, bool]:
    """The decoded value, and whether it is certainly within the depth limit."""
    if len(raw) > limits.max_record_bytes:
        raise RecordError(
            TOO_LARGE,
            f"{what}: record of {len(raw)} bytes exceeds the limit of "
            f"{limits.max_record_bytes} bytes",
        )
    try:
        value = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        try:
            raw.decode("utf-8")
        except UnicodeDecodeError:
            raise RecordError(NOT_UTF8, f"{what}: record is not UTF-8 text") from exc
        raise RecordError(NOT_JSON, f"{what}: record is not JSON ({exc})") from exc
    # Nesting can be no deeper than the number of opening brackets, so most
    # records skip the walk over every value.
    containers = raw.count(b"{") + raw.count(b"[")
    return value, containers <= limits.max_depth


def _require_object(
    value: object, what: str, limits: Limits, is_shallow: bool
) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise RecordError(
            NOT_OBJECT, f"{what}: record is {_json_kind(value)}, not a JSON object"
        )
    if not is_shallow and _is_too_deep(value, limits.max_depth):
        raise RecordError(
            TOO_DEEP, f"{what}: record nests deeper than {limits.max_depth} levels"
        )
    return value


def _is_too_deep(value: dict[str, Any], max_depth: int) -> bool:
    stack: list[tuple[object, int]] = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if depth > max_depth:
            return True
        if isinstance(item, dict):
            stack.extend((child, depth + 1) for child in item.values())
        elif isinstance(item, list):
            stack.extend((child, depth + 1) for child in item)
    return False


def _is_dotted(text: str) -> bool:
    parts = text.split(".")
    # str.split() breaks at exactly the characters str.isspace() accepts, so
    # a text splits into itself alone only when it has no whitespace.
    return len(parts) >= 2 and all(parts) and text.split() == [text]


def _check_attributes(attributes: dict[str, Any], event_type: str) -> None:
    for name in ("case_id", "channel", "category", "timezone"):
        value = attributes.get(name)
        if value is not None and not isinstance(value, str):
            raise _wrong_type(f"event.attributes.{name}", value, "a string")
    for name in ("starts_at", "ends_at"):
        value = attributes.get(name)
        if value is not None:
            _parse_time_field(value, f"event.attributes.{name}")
    zone = attributes.get("timezone")
    is_profile = event_type == "profile.updated"
    if is_profile and zone is not None and not is_valid_timezone(zone):
        raise RecordError(
            BAD_TIMEZONE,
            f"event.attributes.timezone: {_show(zone)} is not an IANA "
            "timezone name (e.g. Europe/Berlin)",
        )


def _required_str(obj: Mapping[str, Any], name: str, what: str) -> str:
    value = obj.get(name)
    if value is None:
        raise RecordError(MISSING_FIELD, f"{what}.{name} is required")
    if not isinstance(value, str):
        raise _wrong_type(f"{what}.{name}", value, "a string")
    if not value:
        raise RecordError(BAD_VALUE, f"{what}.{name} must not be empty")
    return value


def _optional_str(obj: Mapping[str, Any], name: str, what: str) -> str | None:
    value = obj.get(name)
    if value is None or isinstance(value, str):
        return value
    raise _wrong_type(f"{what}.{name}", value, "a string")


def _required_time(obj: Mapping[str, Any], name: str, what: str) -> int:
    value = obj.get(name)
    if value is None:
        raise RecordError(MISSING_FIELD, f"{what}.{name} is required")
    return _parse_time_field(value, f"{what}.{name}")


def _optional_time(obj: Mapping[str, Any], name: str, what: str) -> int | None:
    value = obj.get(name)
    if value is None:
        return None
    return _parse_time_field(value, f"{what}.{name}")


def _parse_time_field(value: object, field: str) -> int:
    if not isinstance(value, str):
        raise _wrong_type(field, value, "an RFC 3339 time string")
    us = parse_time_us(value)
    if us is None:
        raise RecordError(
            BAD_TIME, f"{field}: {_show(value)} is not an RFC 3339 time with an offset"
        )
    return us


def _optional_ref(value: object, field: str) -> EntityRef | None:
    if value is None:
        return None
    return _required_ref(value, field)


def _required_ref(value: object, field: str) -> EntityRef:
    if not isinstance(value, dict):
        raise _wrong_type(field, value, 'an object like {"type": ..., "id": ...}')
    return EntityRef(
        type=_required_str(value, "type", field), id=_required_str(value, "id", field)
    )


def _optional_priority(obj: Mapping[str, Any]) -> int | None:
    value = obj.get("priority")
    if value is None:
        return None
    # JSON has one number type: 50.0 is the integer 50, true is not a number.
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if not isinstance(value, int) or isinstance(value, bool):
        raise _wrong_type("intent.priority", value, "an integer")
    if not PRIORITY_MIN <= value <= PRIORITY_MAX:
        raise RecordError(
            BAD_VALUE,
            f"intent.priority: {value} is outside {PRIORITY_MIN}..{PRIORITY_MAX}",
        )
    return value


def _wrong_type(field: str, value: object, expected: str) -> RecordError:
    return RecordError(
        WRONG_TYPE, f"{field}: {_show(value)} is {_json_kind(value)}, not {expected}"
    )


def _show(value: object) -> str:
    try:
        text = orjson.dumps(value).decode("utf-8")
    except TypeError:
        text = repr(value)
    if len(text) > _MAX_SHOWN_VALUE:
        return text[: _MAX_SHOWN_VALUE - 3] + "..."
    return text


def _json_kind(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "an array"
    if isinstance(value, dict):
        return "an object"
    return type(value).__name__
