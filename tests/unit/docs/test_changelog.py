"""CHANGELOG.md lists what exists: rules, policy extensions, the pinned Kafka."""

from __future__ import annotations

import re

import pytest

from tests.unit.docs.blocks import CHANGELOG, ROOT, engine_rule_names, section

EXTENSIONS = (
    "limits.max_pending",
    "remember.decided_intents",
    "remember.applied_events",
    "remember.max_ids",
    "late_veto.lookback",
    "cooldowns[].at_most",
)


def _unreleased() -> str:
    return section(CHANGELOG, "## [Unreleased]")


def test_the_first_release_section_is_unreleased() -> None:
    releases = re.findall(r"^## (.+)$", CHANGELOG.read_text(encoding="utf-8"), re.M)
    assert releases[0] == "[Unreleased]"


@pytest.mark.parametrize("extension", EXTENSIONS)
def test_every_policy_extension_is_listed(extension: str) -> None:
    assert f"`{extension}`" in _unreleased()


def test_every_rule_is_listed() -> None:
    text = _unreleased()

    missing = [r for r in sorted(engine_rule_names()) if f"`{r}`" not in text]

    assert missing == []


def test_the_listed_kafka_version_is_the_pinned_one() -> None:
    pom = (ROOT / "deploy" / "kafka" / "pom.xml").read_text(encoding="utf-8")
    pinned = re.search(r"<kafka\.version>([^<]+)</kafka\.version>", pom)

    assert pinned is not None
    assert f"Local Kafka {pinned.group(1)}" in _unreleased()
