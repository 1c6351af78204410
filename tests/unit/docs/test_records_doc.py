"""docs/records.md says what the record schemas and the decoder actually accept."""

from __future__ import annotations

import json
import re
import uuid
from pathlib import Path
from typing import Any

import jsonschema  # type: ignore[import-untyped]  # the package ships no type stubs
import pytest
from referencing import Registry, Resource

from app.engine import core
from app.engine.decision import DECISION_NAMESPACE, decision_id
from app.engine.records import ERROR_KINDS, decode_event, decode_intent
from app.engine.rules import account_closed, account_erased, consent
from tests.unit.docs.blocks import (
    DOCS,
    RECORDS_DOC,
    ROOT,
    SCHEMAS,
    anchors,
    backticked,
    code_blocks,
    section,
    table_rows,
)

RECORD_SCHEMAS = (
    "lifecycle-event.schema.json",
    "intent.schema.json",
    "decision.schema.json",
    "approved-send.schema.json",
    "dead-letter.schema.json",
)
# The worker's own kinds are raised in the Faust layer; reading its source
# keeps this test from importing Faust.
_WORKER_KIND = re.compile(r'RecordError\(\s*"([a-z_]+)"')
_WORKER_HEADER = re.compile(r'^[A-Z_]+_HEADER = "([a-z-]+)"$', re.MULTILINE)
_LINK = re.compile(r"\]\(([^)\s]+)\)")
_METRIC = re.compile(r"\btact_[a-z_]+\b")


def _schema(name: str) -> dict[str, Any]:
    with (SCHEMAS / name).open("rb") as handle:
        schema: dict[str, Any] = json.load(handle)
    return schema


def _registry() -> Registry:
    resources = [
        (name, Resource.from_contents(_schema(name))) for name in RECORD_SCHEMAS
    ]
    return Registry().with_resources(resources)


def _fields(schema: dict[str, Any]) -> set[str]:
    """Every property name in a schema, through nesting, arrays and choices."""
    names: set[str] = set()
    for name, child in schema.get("properties", {}).items():
        names.add(name)
        names |= _fields(child)
    for key in ("items", "additionalProperties"):
        child = schema.get(key)
        if isinstance(child, dict):
            names |= _fields(child)
    for key in ("oneOf", "anyOf", "allOf"):
        for child in schema.get(key, ()):
            names |= _fields(child)
    return names


def _worker_sources() -> str:
    return "\n".join(
        path.read_text(encoding="utf-8")
        for path in sorted((ROOT / "app" / "streams").glob("*.py"))
    )


def _kinds_table() -> set[str]:
    text = section(RECORDS_DOC, "### Error kinds")
    return {backticked(row[0])[0] for row in table_rows(text) if backticked(row[0])}


def test_every_dead_letter_kind_of_the_decoder_is_documented() -> None:
    assert set(ERROR_KINDS) - _kinds_table() == set()


def test_every_dead_letter_kind_of_the_schema_is_documented() -> None:
    kinds = _schema("dead-letter.schema.json")["properties"]["error"]["properties"]
    assert set(kinds["kind"]["enum"]) - _kinds_table() == set()


def test_every_dead_letter_kind_the_worker_raises_is_documented() -> None:
    raised = set(_WORKER_KIND.findall(_worker_sources()))

    assert raised
    assert raised - _kinds_table() == set()


def test_the_kinds_table_names_only_kinds_that_exist() -> None:
    known = set(ERROR_KINDS) | set(_WORKER_KIND.findall(_worker_sources()))
    assert _kinds_table() - known == set()


@pytest.mark.parametrize("schema_name", RECORD_SCHEMAS)
def test_every_record_field_is_named_in_the_docs(schema_name: str) -> None:
    text = RECORDS_DOC.read_text(encoding="utf-8")
    fields = _fields(_schema(schema_name))

    missing = sorted(name for name in fields if f"`{name}`" not in text)

    assert missing == []


def test_every_built_in_event_type_is_documented() -> None:
    built_in = {
        consent.OPTED_OUT,
        consent.OPTED_IN,
        core.PROFILE_UPDATED,
        account_closed.EVENT_TYPE,
        account_erased.EVENT_TYPE,
    }
    rows = table_rows(section(RECORDS_DOC, "### Built-in event types"))

    documented = {backticked(row[0])[0] for row in rows}

    assert documented == built_in


def test_every_json_example_parses_and_names_its_schema() -> None:
    examples = [b for b in code_blocks(RECORDS_DOC) if b.language == "json"]

    for block in examples:
        json.loads(block.text)

    assert [b.label for b in examples if b.schema is None] == []


def test_every_json_example_matches_its_schema() -> None:
    registry = _registry()
    examples = [b for b in code_blocks(RECORDS_DOC) if b.schema is not None]

    for block in examples:
        validator = jsonschema.Draft202012Validator(
            _schema(block.schema), registry=registry
        )
        errors = [e.message for e in validator.iter_errors(json.loads(block.text))]
        assert errors == [], block.label

    assert {b.schema for b in examples} == set(RECORD_SCHEMAS)


def test_event_and_intent_examples_are_accepted_by_the_decoder() -> None:
    decoders = {
        "lifecycle-event.schema.json": decode_event,
        "intent.schema.json": decode_intent,
    }
    examples = [b for b in code_blocks(RECORDS_DOC) if b.schema in decoders]

    for block in examples:
        assert block.schema is not None
        decoders[block.schema](block.text.encode())

    assert len(examples) >= len(decoders)


def test_the_documented_decision_id_derivation_is_the_engines() -> None:
    text = RECORDS_DOC.read_text(encoding="utf-8")
    snippet = next(b for b in code_blocks(RECORDS_DOC) if b.language == "python")

    derived = str(eval(snippet.text, {"uuid": uuid}))  # our own doc's snippet

    assert str(DECISION_NAMESPACE) in text
    assert derived == decision_id("in-1001-weekend", 1)
    assert f"gives `{derived}`" in text


def test_the_documented_decision_examples_carry_derived_ids() -> None:
    examples = [
        json.loads(b.text)
        for b in code_blocks(RECORDS_DOC)
        if b.schema == "decision.schema.json"
    ]

    ids = [(e["decision_id"], e["intent_id"]) for e in examples]

    assert ids == [
        (decision_id(intent_id, number), intent_id)
        for number, (_, intent_id) in enumerate(ids, start=1)
    ]


def test_the_documented_headers_are_the_workers() -> None:
    headers = set(_WORKER_HEADER.findall(_worker_sources()))
    approved = {h for h in headers if h in ("tact-intent-id", "tact-decision-id")}
    text = section(RECORDS_DOC, "## Approved send")

    assert len(approved) == 2
    assert [h for h in approved if f"`{h}`" not in text] == []


@pytest.mark.parametrize("path", sorted(DOCS.glob("*.md")), ids=lambda p: p.name)
def test_every_relative_link_in_the_docs_resolves(path: Path) -> None:
    targets = _LINK.findall(path.read_text(encoding="utf-8"))

    broken = [t for t in targets if "://" not in t and not _resolves(path, t)]

    assert broken == []


def _resolves(page: Path, target: str) -> bool:
    file_part, _, anchor = target.partition("#")
    linked = page if not file_part else (page.parent / file_part).resolve()
    if not linked.exists():
        return False
    return not anchor or (linked.suffix == ".md" and anchor in anchors(linked))


@pytest.mark.parametrize("path", sorted(DOCS.glob("*.md")), ids=lambda p: p.name)
def test_every_metric_named_in_the_docs_exists(path: Path) -> None:
    defined = set(_METRIC.findall((ROOT / "app" / "metrics.py").read_text("utf-8")))

    named = set(_METRIC.findall(path.read_text(encoding="utf-8")))

    assert named - defined == set()
