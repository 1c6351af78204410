"""The alert rules: valid for promtool, covered by its unit tests, and written
only against metrics a worker exports."""

from __future__ import annotations

from typing import Any

import pytest
import yaml

from tests.unit.deploy.prometheus_tools import (
    DEPLOY,
    metric_names,
    queryable_names,
    run_promtool,
)

PROMETHEUS = DEPLOY / "prometheus"
ALERTS = PROMETHEUS / "alerts.yaml"
ALERT_TESTS = PROMETHEUS / "alerts.test.yaml"
SEVERITIES = {"critical", "warning"}
CHECKED_CONFIGS = ["prometheus.yml", "prometheus-compose.yml"]
GUIDE = DEPLOY / "README.md"


def _rules() -> list[dict[str, Any]]:
    document = yaml.safe_load(ALERTS.read_text())
    return [rule for group in document["groups"] for rule in group["rules"]]


def _alert_cases() -> list[dict[str, Any]]:
    document = yaml.safe_load(ALERT_TESTS.read_text())
    return [case for test in document["tests"] for case in test["alert_rule_test"]]


def _output(result: Any) -> str:
    return f"{result.stdout}\n{result.stderr}"


def test_alert_rules_pass_promtool_check() -> None:
    result = run_promtool("check", "rules", str(ALERTS.relative_to(DEPLOY.parent)))

    assert result.returncode == 0, _output(result)


def test_alert_rules_pass_their_promtool_unit_tests() -> None:
    result = run_promtool("test", "rules", str(ALERT_TESTS.relative_to(DEPLOY.parent)))

    assert result.returncode == 0, _output(result)


@pytest.mark.parametrize("name", CHECKED_CONFIGS)
def test_prometheus_config_passes_promtool_check(name: str) -> None:
    config = PROMETHEUS / name

    result = run_promtool("check", "config", str(config.relative_to(DEPLOY.parent)))

    assert result.returncode == 0, _output(result)


def test_local_config_scrapes_the_worker_on_port_6066_as_job_tact() -> None:
    config = yaml.safe_load((PROMETHEUS / "prometheus.yml").read_text())

    jobs = {job["job_name"]: job for job in config["scrape_configs"]}

    targets = [t for group in jobs["tact"]["static_configs"] for t in group["targets"]]
    assert targets == ["127.0.0.1:6066"]
    assert config["rule_files"] == ["alerts.yaml"]


@pytest.mark.parametrize("rule", _rules(), ids=lambda rule: rule["alert"])
def test_every_alert_waits_before_firing_and_says_how_bad_and_what_to_do(
    rule: dict[str, Any],
) -> None:
    annotations = rule.get("annotations", {})

    severity = rule.get("labels", {}).get("severity")

    assert "for" in rule
    assert severity in SEVERITIES
    assert annotations.get("summary", "").strip()
    assert len(annotations.get("description", "").split()) >= 15


@pytest.mark.parametrize("rule", _rules(), ids=lambda rule: rule["alert"])
def test_every_alert_queries_only_exported_metrics(rule: dict[str, Any]) -> None:
    names = metric_names(rule["expr"])

    unknown = names - queryable_names()

    assert names
    assert not unknown, f"{rule['alert']} queries {sorted(unknown)}"


@pytest.mark.parametrize("rule", _rules(), ids=lambda rule: rule["alert"])
def test_every_alert_has_a_firing_and_a_quiet_test_case(rule: dict[str, Any]) -> None:
    cases = [case for case in _alert_cases() if case["alertname"] == rule["alert"]]

    firing = [case for case in cases if case.get("exp_alerts")]
    quiet = [case for case in cases if not case.get("exp_alerts")]

    assert firing, f"no case in {ALERT_TESTS.name} expects {rule['alert']} to fire"
    assert quiet, f"no case in {ALERT_TESTS.name} expects {rule['alert']} to stay quiet"


def test_alerts_the_operators_rely_on_exist() -> None:
    expected = {
        "TactWorkerDown",
        "TactNotReady",
        "TactTableRecoverySlow",
        "TactConsumerLagGrowing",
        "TactPartitionStalled",
        "TactDeadLettersRising",
        "TactReleasesLate",
        "TactLateVetoesHigh",
    }

    names = {rule["alert"] for rule in _rules()}

    assert expected <= names


@pytest.mark.parametrize("rule", _rules(), ids=lambda rule: rule["alert"])
def test_every_alert_has_a_row_in_the_operators_guide(rule: dict[str, Any]) -> None:
    guide = GUIDE.read_text()

    row = f"| `{rule['alert']}` | {rule['labels']['severity']} |"

    assert row in guide
