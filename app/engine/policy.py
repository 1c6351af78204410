"""The policy: loading, validating and indexing a policy file.

Loading happens once at start-up, so it can afford jsonschema and a second
pass over the YAML node tree for line numbers; what it produces is frozen and
indexed so the per-record path never re-reads the policy.
"""

from __future__ import annotations

import hashlib
import json
import logging
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

import jsonschema  # type: ignore[import-untyped]  # the package ships no type stubs
import yaml

from app.engine.records import is_valid_timezone
from app.engine.state import bucket_width
from app.engine.times import DURATION_PATTERN, HOUR_US, format_duration, parse_duration
from app.errors import PolicyError

logger = logging.getLogger(__name__)

MAX_CACHED_RULE_SETS = 1024

# A checkout keeps the schemas beside the package; a wheel installs them as
# data files under the environment's prefix.
SCHEMA_FOLDERS = (
    Path(__file__).resolve().parents[2] / "schemas",
    Path(sys.prefix) / "share" / "tact" / "schemas",
)


def schema_path(name: str) -> Path:
    """The path of one of Tact's JSON Schemas, wherever Tact is installed."""
    for folder in SCHEMA_FOLDERS:
        candidate = folder / name
        if candidate.is_file():
            return candidate
    raise FileNotFoundError(f"schema {name} is in none of {SCHEMA_FOLDERS}")


FAIL_CLOSED = "fail_closed"
PER_DAY = "day"
DROP = "drop"
DEFER = "defer"
CLOCK_PATTERN = r"^([01][0-9]|2[0-3]):[0-5][0-9]$"
DEFAULT_RETAIN = "90d"
DEFAULT_AT_MOST = "30d"
DEFAULT_MAX_PENDING = 100
DEFAULT_REMEMBER = "30d"
DEFAULT_MAX_IDS = 10_000
DEFAULT_LOOKBACK = "24h"
VERSION_HASH_DIGITS = 12
# A local calendar day lasts at most 25 hours (the day clocks go back); keep
# a little more so a day cap always sees every send since local midnight.
DAY_CAP_HISTORY_US = 26 * HOUR_US
_PATTERN_PHRASES = {
    DURATION_PATTERN: "is not a duration (like 30s, 5m, 24h, 14d)",
    CLOCK_PATTERN: 'is not a time of day (HH:MM in quotes, like "21:00")',
}

PathPart = str | int


@dataclass(frozen=True, slots=True)
class Selector:
    """Which intents a rule covers; None means every channel or category."""

    channels: frozenset[str] | None = None
    categories: frozenset[str] | None = None

    def covers(self, channel: str, category: str) -> bool:
        return (self.channels is None or channel in self.channels) and (
            self.categories is None or category in self.categories
        )


@dataclass(frozen=True, slots=True)
class EntityPolicy:
    type: str
    events: Mapping[str, str]
    blocking: frozenset[str]
    is_unknown_suppressed: bool
    retain_us: int


@dataclass(frozen=True, slots=True)
class EntityWindow:
    selector: Selector
    about: str
    until: str


@dataclass(frozen=True, slots=True)
class Cooldown:
    selector: Selector
    after: str
    for_us: int | None
    for_text: str | None
    until: str | None
    at_most_us: int


@dataclass(frozen=True, slots=True)
class FrequencyCap:
    selector: Selector
    max: int
    per_us: int | None  # None: the customer's local calendar day
    per_text: str
    is_deferring: bool

    @property
    def history_us(self) -> int:
        return DAY_CAP_HISTORY_US if self.per_us is None else self.per_us


@dataclass(frozen=True, slots=True)
class QuietHours:
    selector: Selector
    start_minute: int
    end_minute: int
    from_text: str
    to_text: str
    is_deferring: bool


@dataclass(frozen=True, slots=True)
class Holdout:
    selector: Selector
    percent: float
    salt: str


@dataclass(frozen=True, slots=True)
class RuleSet:
    """The rules that can apply to one (channel, category), looked up once."""

    is_exempt: bool
    windows: tuple[EntityWindow, ...]
    cooldowns: tuple[Cooldown, ...]
    frequency_caps: tuple[FrequencyCap, ...]
    quiet_hours: tuple[QuietHours, ...]
    holdouts: tuple[Holdout, ...]
    is_capped: bool


@dataclass(frozen=True, slots=True)
class Policy:
    """A validated policy; `version` goes into every decision it makes."""

    name: str
    version: str
    source_name: str
    timezone_fallback: str | None  # None: fail closed
    settle_us: int
    exempt_categories: frozenset[str]
    entities: Mapping[str, EntityPolicy]
    windows: tuple[EntityWindow, ...]
    cooldowns: tuple[Cooldown, ...]
    frequency_caps: tuple[FrequencyCap, ...]
    quiet_hours: tuple[QuietHours, ...]
    dedupe_window_us: int | None
    holdouts: tuple[Holdout, ...]
    max_pending: int
    decided_intents_us: int
    applied_events_us: int
    max_ids: int
    late_veto_us: int
    # Indexes derived from the rules above.
    transitions: Mapping[str, tuple[tuple[str, str], ...]]
    window_attributes: Mapping[str, frozenset[str]]
    cooldown_openers: Mapping[str, tuple[Cooldown, ...]]
    cooldown_closers: Mapping[str, tuple[Cooldown, ...]]
    send_history_us: int
    # Bucket widths of the id memories, fixed by their retention.
    decided_width_us: int
    applied_width_us: int
    dedupe_width_us: int
    _rule_sets: dict[tuple[str, str], RuleSet] = field(
        default_factory=dict, compare=False, repr=False
    )

    def rules_for(self, channel: str, category: str) -> RuleSet:
        """The rules covering this channel and category (memoised)."""
        key = (channel, category)
        rule_set = self._rule_sets.get(key)
        if rule_set is None:
            rule_set = self._build_rule_set(channel, category)
            # Channels and categories come from input: a bound keeps hostile
            # records from growing the cache without end.
            if len(self._rule_sets) < MAX_CACHED_RULE_SETS:
                self._rule_sets[key] = rule_set
        return rule_set

    def _build_rule_set(self, channel: str, category: str) -> RuleSet:
        if category in self.exempt_categories:
            # Exempt sends are neither checked by these rules nor counted by
            # them: a booking confirmation must not use up a marketing cap.
            return RuleSet(True, (), (), (), (), (), is_capped=False)
        caps = tuple(
            c for c in self.frequency_caps if c.selector.covers(channel, category)
        )
        return RuleSet(
            is_exempt=category in self.exempt_categories,
            windows=tuple(
                w for w in self.windows if w.selector.covers(channel, category)
            ),
            cooldowns=tuple(
                c for c in self.cooldowns if c.selector.covers(channel, category)
            ),
            frequency_caps=caps,
            quiet_hours=tuple(
                q for q in self.quiet_hours if q.selector.covers(channel, category)
            ),
            holdouts=tuple(
                h for h in self.holdouts if h.selector.covers(channel, category)
            ),
            is_capped=bool(caps),
        )

    def rules_in_force(self) -> list[str]:
        """Human summary lines, one per configured rule, for `tact policy check`."""
        lines = [
            "always: duplicate_intent, expired, consent, account_closed, "
            "account_erased",
            f"timezone fallback: {self.timezone_fallback or FAIL_CLOSED}",
            f"settle: {format_duration(self.settle_us)}",
        ]
        if self.exempt_categories:
            lines.append(
                f"exempt categories: {', '.join(sorted(self.exempt_categories))}"
            )
        for entity in self.entities.values():
            blocking = ", ".join(sorted(entity.blocking)) or "none"
            unknown = "suppress" if entity.is_unknown_suppressed else "allow"
            lines.append(
                f"entity_state: {entity.type} blocking [{blocking}], unknown {unknown}"
            )
        lines.extend(
            f"entity_window: {_describe(w.selector)} about {w.about} until {w.until}"
            for w in self.windows
        )
        for cooldown in self.cooldowns:
            if cooldown.until is None:
                length = f"for {cooldown.for_text}"
            else:
                length = f"until {cooldown.until}"
            selector = _describe(cooldown.selector)
            lines.append(f"cooldown: {selector} after {cooldown.after} {length}")
        for cap in self.frequency_caps:
            action = DEFER if cap.is_deferring else DROP
            lines.append(
                f"frequency_cap: {_describe(cap.selector)} max {cap.max} per "
                f"{cap.per_text}, {action}"
            )
        for quiet in self.quiet_hours:
            action = DEFER if quiet.is_deferring else DROP
            lines.append(
                f"quiet_hours: {_describe(quiet.selector)} {quiet.from_text}-"
                f"{quiet.to_text} local, {action}"
            )
        if self.dedupe_window_us is not None:
            lines.append(f"dedupe: window {format_duration(self.dedupe_window_us)}")
        lines.extend(
            f"holdout: {_describe(h.selector)} {h.percent:g}% (salt {h.salt})"
            for h in self.holdouts
        )
        lines.append(f"pending_limit: {self.max_pending} per customer")
        return lines


def load_policy(path: str | Path) -> Policy:
    """Read, validate and index a policy file; PolicyError lists every problem."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise PolicyError(str(path), [f"cannot read the file: {exc.strerror}"]) from exc
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise PolicyError(str(path), ["the file is not UTF-8 text"]) from exc
    return parse_policy(text, str(path))


def parse_policy(text: str, source_name: str) -> Policy:
    """Validate and index policy text; `source_name` names it in errors.

    1. Parse the YAML safely (no object construction) and index its lines.
    2. Validate against the policy schema.
    3. Check what the schema cannot: cross-references and value sanity.
    4. Build the frozen, indexed Policy.
    """
    # 1. Parse.
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
        document = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise PolicyError(source_name, [_yaml_problem(exc)]) from exc
    if document is None:
        document = {}
    lines: dict[tuple[PathPart, ...], int] = {}
    problems: list[tuple[int, str]] = []
    if node is not None:
        _index_lines(node, (), lines, problems)

    # 2. Schema.
    validator = jsonschema.Draft202012Validator(_policy_schema())
    for error in validator.iter_errors(document):
        path = tuple(error.absolute_path)
        if error.validator == "additionalProperties":
            # One problem per unknown key, each at its own line.
            known = set(error.schema.get("properties", {}))
            for key in sorted(set(error.instance) - known):
                child = (*path, str(key))
                problems.append(
                    (_line_of(lines, child), _located(child, "unknown field", lines))
                )
            continue
        problems.append((_line_of(lines, path), _schema_problem(error, path, lines)))

    # 3. Semantics.
    if isinstance(document, dict):
        for path, message in _semantic_problems(document):
            problems.append((_line_of(lines, path), _located(path, message, lines)))
    if problems:
        ordered = sorted(set(problems), key=lambda item: (item[0], item[1]))
        raise PolicyError(source_name, [message for _, message in ordered])

    # 4. Build.
    name = document.get("name") or Path(source_name).stem or "policy"
    digest = hashlib.sha256(text.encode("utf-8")).hexdigest()[:VERSION_HASH_DIGITS]
    policy = _build(document, name=name, version=f"{name}@{digest}", source=source_name)
    logger.info("policy loaded name=%s version=%s", policy.name, policy.version)
    return policy


@cache
def _policy_schema() -> dict[str, Any]:
    with schema_path("policy.schema.json").open("rb") as handle:
        schema: dict[str, Any] = json.load(handle)
    return schema


def _build(document: dict[str, Any], *, name: str, version: str, source: str) -> Policy:
    fallback = document.get("timezone_fallback", "UTC")
    entities = {
        entity_type: EntityPolicy(
            type=entity_type,
            events=dict(spec["events"]),
            blocking=frozenset(spec.get("blocking", ())),
            is_unknown_suppressed=spec.get("unknown", "allow") == "suppress",
            retain_us=_duration(spec.get("retain", DEFAULT_RETAIN)),
        )
        for entity_type, spec in sorted(document.get("entities", {}).items())
    }
    windows = tuple(
        EntityWindow(selector=_selector(spec), about=spec["about"], until=spec["until"])
        for spec in document.get("windows", ())
    )
    cooldowns = tuple(
        Cooldown(
            selector=_selector(spec),
            after=spec["after"],
            for_us=None if "for" not in spec else _duration(spec["for"]),
            for_text=spec.get("for"),
            until=spec.get("until"),
            at_most_us=_duration(spec.get("at_most", DEFAULT_AT_MOST)),
        )
        for spec in document.get("cooldowns", ())
    )
    caps = tuple(
        FrequencyCap(
            selector=_selector(spec),
            max=spec["max"],
            per_us=None if spec["per"] == PER_DAY else _duration(spec["per"]),
            per_text=spec["per"],
            is_deferring=spec.get("on_exceed", DROP) == DEFER,
        )
        for spec in document.get("frequency_caps", ())
    )
    quiet_hours = tuple(
        QuietHours(
            selector=_selector(spec),
            start_minute=_minute_of_day(spec["from"]),
            end_minute=_minute_of_day(spec["to"]),
            from_text=spec["from"],
            to_text=spec["to"],
            is_deferring=spec.get("action", DEFER) == DEFER,
        )
        for spec in document.get("quiet_hours", ())
    )
    holdouts = tuple(
        Holdout(
            selector=_selector(spec),
            percent=float(spec["percent"]),
            salt=str(spec["salt"]),
        )
        for spec in document.get("holdouts", ())
    )
    dedupe = document.get("dedupe")
    limits = document.get("limits", {})
    remember = document.get("remember", {})
    late_veto = document.get("late_veto", {})
    dedupe_us = None if dedupe is None else _duration(dedupe["window"])
    decided_us = _duration(remember.get("decided_intents", DEFAULT_REMEMBER))
    applied_us = _duration(remember.get("applied_events", DEFAULT_REMEMBER))

    transitions: dict[str, list[tuple[str, str]]] = {}
    for entity in entities.values():
        for event_type, status in sorted(entity.events.items()):
            transitions.setdefault(event_type, []).append((entity.type, status))
    window_attributes: dict[str, set[str]] = {}
    for window in windows:
        window_attributes.setdefault(window.about, set()).add(window.until)
    openers: dict[str, list[Cooldown]] = {}
    closers: dict[str, list[Cooldown]] = {}
    for cooldown in cooldowns:
        openers.setdefault(cooldown.after, []).append(cooldown)
        if cooldown.until is not None:
            closers.setdefault(cooldown.until, []).append(cooldown)

    return Policy(
        name=name,
        version=version,
        source_name=source,
        timezone_fallback=None if fallback == FAIL_CLOSED else fallback,
        settle_us=_duration(document.get("settle", "0s")),
        exempt_categories=frozenset(
            category
            for category, spec in document.get("categories", {}).items()
            if spec.get("exempt", False)
        ),
        entities=entities,
        windows=windows,
        cooldowns=cooldowns,
        frequency_caps=caps,
        quiet_hours=quiet_hours,
        dedupe_window_us=dedupe_us,
        holdouts=holdouts,
        max_pending=limits.get("max_pending", DEFAULT_MAX_PENDING),
        decided_intents_us=decided_us,
        applied_events_us=applied_us,
        max_ids=remember.get("max_ids", DEFAULT_MAX_IDS),
        late_veto_us=_duration(late_veto.get("lookback", DEFAULT_LOOKBACK)),
        transitions={k: tuple(v) for k, v in transitions.items()},
        window_attributes={k: frozenset(v) for k, v in window_attributes.items()},
        cooldown_openers={k: tuple(v) for k, v in openers.items()},
        cooldown_closers={k: tuple(v) for k, v in closers.items()},
        send_history_us=max((cap.history_us for cap in caps), default=0),
        decided_width_us=bucket_width(decided_us),
        applied_width_us=bucket_width(applied_us),
        dedupe_width_us=0 if dedupe_us is None else bucket_width(dedupe_us),
    )


def _semantic_problems(
    document: dict[str, Any],
) -> list[tuple[tuple[PathPart, ...], str]]:
    """Problems the schema cannot see; tolerant of shapes the schema rejected."""
    problems: list[tuple[tuple[PathPart, ...], str]] = []
    fallback = document.get("timezone_fallback")
    if (
        isinstance(fallback, str)
        and fallback != FAIL_CLOSED
        and not is_valid_timezone(fallback)
    ):
        problems.append(
            (
                ("timezone_fallback",),
                f"{_show(fallback)} is not an IANA timezone or {FAIL_CLOSED}",
            )
        )
    entities = document.get("entities")
    entity_types = set(entities) if isinstance(entities, dict) else set()
    if isinstance(entities, dict):
        for entity_type, spec in entities.items():
            if not isinstance(spec, dict):
                continue
            events = spec.get("events")
            statuses = set(events.values()) if isinstance(events, dict) else set()
            blocking = spec.get("blocking")
            if isinstance(blocking, list):
                for index, status in enumerate(blocking):
                    if isinstance(status, str) and status not in statuses:
                        problems.append(
                            (
                                ("entities", entity_type, "blocking", index),
                                f"status {_show(status)} is never set by any of "
                                f"the {entity_type} events",
                            )
                        )
    for index, window in _items(document, "windows"):
        about = window.get("about")
        if isinstance(about, str) and about not in entity_types:
            problems.append(
                (
                    ("windows", index, "about"),
                    f"{_show(about)} is not an entity type declared under entities",
                )
            )
    for index, cooldown in _items(document, "cooldowns"):
        has_for, has_until = "for" in cooldown, "until" in cooldown
        if has_for == has_until:
            problems.append(
                (("cooldowns", index), "needs exactly one of `for` and `until`")
            )
        if has_for and "at_most" in cooldown:
            problems.append(
                (("cooldowns", index, "at_most"), "only applies to an `until` cooldown")
            )
    for index, quiet in _items(document, "quiet_hours"):
        start, end = quiet.get("from"), quiet.get("to")
        if isinstance(start, str) and start == end:
            problems.append(
                (("quiet_hours", index, "to"), "must differ from `from` (empty window)")
            )
    return problems


def _items(document: dict[str, Any], section: str) -> list[tuple[int, dict[str, Any]]]:
    value = document.get(section)
    if not isinstance(value, list):
        return []
    return [(index, item) for index, item in enumerate(value) if isinstance(item, dict)]


def _selector(spec: Mapping[str, Any]) -> Selector:
    channels = spec.get("channels")
    categories = spec.get("categories")
    return Selector(
        channels=None if channels is None else frozenset(channels),
        categories=None if categories is None else frozenset(categories),
    )


def _describe(selector: Selector) -> str:
    channels = (
        "/".join(sorted(selector.channels)) if selector.channels else "any channel"
    )
    categories = (
        "/".join(sorted(selector.categories)) if selector.categories else "any category"
    )
    return f"{channels} {categories}"


def _duration(text: str) -> int:
    us = parse_duration(text)
    if us is None:
        # Unreachable after validation; kept so a bad build fails loudly.
        raise ValueError(f"not a duration: {text!r}")
    return us


def _minute_of_day(text: str) -> int:
    hours, minutes = text.split(":")
    return int(hours) * 60 + int(minutes)


def _index_lines(
    node: yaml.Node,
    path: tuple[PathPart, ...],
    lines: dict[tuple[PathPart, ...], int],
    problems: list[tuple[int, str]],
) -> None:
    """Record the 1-based line of every value, and report duplicate keys.

    safe_load keeps the last of two equal keys without a word; in a policy
    that silently drops a rule, so it is an error here.
    """
    lines[path] = node.start_mark.line + 1
    if isinstance(node, yaml.MappingNode):
        seen: set[str] = set()
        for key_node, value_node in node.value:
            key = str(key_node.value)
            child = (*path, key)
            if key in seen:
                line = key_node.start_mark.line + 1
                problems.append(
                    (line, f"{_format_path(child)}: appears twice (line {line})")
                )
            seen.add(key)
            _index_lines(value_node, child, lines, problems)
    elif isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            _index_lines(item, (*path, index), lines, problems)


def _line_of(
    lines: Mapping[tuple[PathPart, ...], int], path: tuple[PathPart, ...]
) -> int:
    # A missing key has no line of its own: use the nearest enclosing value.
    while path not in lines and path:
        path = path[:-1]
    return lines.get(path, 0)


def _located(
    path: tuple[PathPart, ...], message: str, lines: Mapping[tuple[PathPart, ...], int]
) -> str:
    line = _line_of(lines, path)
    suffix = f" (line {line})" if line else ""
    return f"{_format_path(path)}: {message}{suffix}"


def _schema_problem(
    error: jsonschema.ValidationError,
    path: tuple[PathPart, ...],
    lines: Mapping[tuple[PathPart, ...], int],
) -> str:
    value = error.instance
    validator = error.validator
    if validator == "pattern" and isinstance(error.validator_value, str):
        phrase = _PATTERN_PHRASES.get(error.validator_value, "has the wrong form")
        message = f"{_show(value)} {phrase}"
    elif validator == "anyOf" and path and path[-1] == "per":
        message = f"{_show(value)} is not a duration (like 24h) or day"
    elif validator == "required":
        message = error.message.replace("'", "`")
    elif (
        validator == "type"
        and path
        and isinstance(value, int)
        and path[-1]
        in (
            "from",
            "to",
        )
    ):
        message = f'{_show(value)} is not a string; quote times of day, like "21:00"'
    elif validator == "type":
        message = f"{_show(value)} is not of type {error.validator_value}"
    elif validator in ("enum", "const"):
        allowed = (
            error.validator_value if validator == "enum" else [error.validator_value]
        )
        message = f"{_show(value)} is not one of {', '.join(_show(a) for a in allowed)}"
    else:
        message = error.message
    return _located(path, message, lines)


def _yaml_problem(exc: yaml.YAMLError) -> str:
    mark = getattr(exc, "problem_mark", None)
    problem = getattr(exc, "problem", None) or str(exc)
    if mark is None:
        return f"not valid YAML: {problem}"
    return f"not valid YAML: {problem} (line {mark.line + 1})"


def _format_path(path: tuple[PathPart, ...]) -> str:
    text = ""
    for part in path:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else part)
    return text or "policy"


def _show(value: object) -> str:
    try:
        return json.dumps(value, default=str)
    except (TypeError, ValueError):
        return repr(value)
