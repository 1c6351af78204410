"""Loading and validating policies."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from app.engine.policy import MAX_CACHED_RULE_SETS, load_policy, parse_policy
from app.errors import PolicyError, TactError
from tests.unit.engine.helpers import MakePolicy

EXAMPLE = (
    Path(__file__).resolve().parents[3] / "deploy" / "examples" / "travel-policy.yaml"
)


def _problems(text: str) -> tuple[str, ...]:
    with pytest.raises(PolicyError) as caught:
        parse_policy(text, "bad.yaml")
    return caught.value.problems


def test_example_policy_loads_with_a_content_hash_version() -> None:
    policy = load_policy(EXAMPLE)

    assert policy.name == "travel-default"
    assert re.fullmatch(r"travel-default@[0-9a-f]{12}", policy.version)
    assert policy.settle_us == 5_000_000
    assert policy.exempt_categories == {"transactional"}


def test_version_changes_with_the_file_bytes() -> None:
    text = EXAMPLE.read_text()

    first = parse_policy(text, "a.yaml")
    second = parse_policy(text + "\n# a comment\n", "a.yaml")

    assert first.version != second.version
    assert first.version == parse_policy(text, "b.yaml").version


def test_every_section_is_optional() -> None:
    policy = parse_policy("", "minimal.yaml")

    assert policy.name == "minimal"
    assert policy.frequency_caps == ()
    assert policy.timezone_fallback == "UTC"
    assert policy.dedupe_window_us is None


def test_bad_duration_names_field_value_and_line() -> None:
    text = "version: 1\nfrequency_caps:\n  - max: 2\n    per: 24x\n"

    problems = _problems(text)

    assert problems == (
        'frequency_caps[0].per: "24x" is not a duration (like 24h) or day (line 4)',
    )


def test_every_problem_is_listed() -> None:
    text = (
        "version: 1\n"
        "settle: soon\n"
        "timezone_fallback: Mars/Olympus\n"
        "dedupe: {window: 1h, extra: 1}\n"
    )

    problems = _problems(text)

    assert problems == (
        'settle: "soon" is not a duration (like 30s, 5m, 24h, 14d) (line 2)',
        'timezone_fallback: "Mars/Olympus" is not an IANA timezone or fail_closed '
        "(line 3)",
        "dedupe.extra: unknown field (line 4)",
    )


def test_unquoted_time_of_day_gets_a_hint() -> None:
    text = 'quiet_hours:\n  - from: 21:00\n    to: "08:00"\n'

    [problem] = _problems(text)

    assert problem.startswith("quiet_hours[0].from: 1260 is not a string; quote")


def test_misspelled_section_is_an_error_not_a_silently_missing_rule() -> None:
    [problem] = _problems("frequncy_caps: []\n")

    assert problem == "frequncy_caps: unknown field (line 1)"


def test_duplicate_key_is_an_error() -> None:
    problems = _problems("settle: 5s\nsettle: 10s\n")

    assert problems == ("settle: appears twice (line 2)",)


def test_blocking_status_no_event_sets_is_an_error() -> None:
    text = (
        "entities:\n  booking:\n    events: {booking.cancelled: cancelled}\n"
        "    blocking: [canceled]\n"
    )

    [problem] = _problems(text)

    assert "never set" in problem
    assert problem.endswith("(line 4)")


def test_cooldown_needs_exactly_one_of_for_and_until() -> None:
    problems = _problems("cooldowns:\n  - after: a.b\n    for: 1d\n    until: c.d\n")

    assert problems == (
        "cooldowns[0]: needs exactly one of `for` and `until` (line 2)",
    )


def test_yaml_tags_that_construct_objects_are_refused() -> None:
    text = "name: !!python/object/apply:os.system ['true']\n"

    [problem] = _problems(text)

    assert problem.startswith("not valid YAML")


def test_policy_errors_share_the_tact_root_and_are_not_retriable() -> None:
    assert issubclass(PolicyError, TactError)
    assert PolicyError.retriable is False


def test_missing_file_is_a_policy_error(tmp_path: Path) -> None:
    with pytest.raises(PolicyError, match="cannot read"):
        load_policy(tmp_path / "absent.yaml")


def test_rule_lookups_for_unseen_channels_keep_the_cache_bounded(
    make_policy: MakePolicy,
) -> None:
    policy = make_policy()

    for number in range(MAX_CACHED_RULE_SETS + 500):
        policy.rules_for(f"channel-{number}", "marketing")

    assert len(policy._rule_sets) == MAX_CACHED_RULE_SETS
    assert policy.rules_for("channel-x", "marketing") == policy.rules_for(
        "channel-y", "marketing"
    )
