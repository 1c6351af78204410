"""The Grafana dashboard and its provisioning: every panel queries something
real, in valid PromQL, against metrics a worker exports."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.unit.deploy.prometheus_tools import (
    DEPLOY,
    metric_names,
    queryable_names,
    run_promtool,
)

GRAFANA = DEPLOY / "grafana"
DASHBOARD = GRAFANA / "dashboards" / "tact.json"
DATASOURCES = GRAFANA / "provisioning" / "datasources"
PROVIDERS = GRAFANA / "provisioning" / "dashboards"
DATASOURCE_VARIABLE = "${datasource}"
# Grafana fills these in before the query reaches Prometheus.
_RANGE_VARIABLE = re.compile(r"\$__\w+")
_VARIABLE = re.compile(r"\$\{?\w+\}?")
_QUANTILE = re.compile(r"histogram_quantile\(([\d.]+)")
# What the dashboard must show; each metric at least once.
SHOWN = {
    "tact_records_consumed_total",
    "tact_decisions_total",
    "tact_decision_latency_seconds_bucket",
    "tact_consumer_lag_records",
    "tact_pending_intents",
    "tact_dead_letters_total",
    "tact_late_vetoes_total",
    "tact_release_lateness_seconds_bucket",
    "tact_table_recovery_seconds",
    "tact_ready",
}


def _dashboard() -> dict[str, Any]:
    dashboard: dict[str, Any] = json.loads(DASHBOARD.read_text())
    return dashboard


def _panels() -> list[dict[str, Any]]:
    return [panel for panel in _dashboard()["panels"] if panel["type"] != "row"]


def _exprs() -> list[str]:
    return [target["expr"] for panel in _panels() for target in panel["targets"]]


def _queries() -> list[Any]:
    return [
        pytest.param(target["expr"], id=f"{panel['title']} {target['refId']}")
        for panel in _panels()
        for target in panel["targets"]
    ]


def _as_prometheus_sees_it(expr: str) -> str:
    return _VARIABLE.sub(".*", _RANGE_VARIABLE.sub("5m", expr))


def _provisioning(folder: Path) -> list[dict[str, Any]]:
    return [yaml.safe_load(path.read_text()) for path in sorted(folder.glob("*.yaml"))]


def test_dashboard_is_json_with_a_stable_uid_and_no_database_id() -> None:
    dashboard = _dashboard()

    uid = dashboard.get("uid")

    assert uid
    assert dashboard.get("id") is None


@pytest.mark.parametrize("panel", _panels(), ids=lambda panel: panel["title"])
def test_every_panel_has_a_query_on_the_chosen_data_source(
    panel: dict[str, Any],
) -> None:
    targets = panel.get("targets", [])

    exprs = [target.get("expr", "").strip() for target in targets]

    assert exprs
    assert all(exprs)
    assert panel["datasource"]["uid"] == DATASOURCE_VARIABLE
    assert all(t["datasource"]["uid"] == DATASOURCE_VARIABLE for t in targets)


def test_panel_ids_are_unique() -> None:
    ids = [panel["id"] for panel in _dashboard()["panels"]]

    duplicates = {i for i in ids if ids.count(i) > 1}

    assert not duplicates


@pytest.mark.parametrize("expr", _queries())
def test_every_query_names_only_exported_metrics(expr: str) -> None:
    names = metric_names(expr)

    unknown = names - queryable_names()

    assert names
    assert not unknown, f"{expr} queries {sorted(unknown)}"


def test_dashboard_shows_every_metric_an_operator_needs() -> None:
    shown = set().union(*(metric_names(expr) for expr in _exprs()))

    missing = SHOWN - shown

    assert not missing


def test_decision_latency_shows_p50_p99_and_p99_9() -> None:
    exprs = [e for e in _exprs() if "tact_decision_latency_seconds_bucket" in e]

    quantiles = {q for e in exprs for q in _QUANTILE.findall(e)}

    assert quantiles == {"0.5", "0.99", "0.999"}


def test_every_query_is_valid_promql(tmp_path: Path) -> None:
    rules = [
        {"record": f"dashboard:query_{n}", "expr": _as_prometheus_sees_it(expr)}
        for n, expr in enumerate(_exprs())
    ]
    rules_file = tmp_path / "dashboard-queries.yaml"
    rules_file.write_text(yaml.safe_dump({"groups": [{"name": "q", "rules": rules}]}))

    result = run_promtool("check", "rules", str(rules_file))

    assert result.returncode == 0, f"{result.stdout}\n{result.stderr}"


def test_provisioned_datasource_has_the_uid_and_is_default() -> None:
    datasources = [
        ds for doc in _provisioning(DATASOURCES) for ds in doc["datasources"]
    ]

    prometheus = [ds for ds in datasources if ds["type"] == "prometheus"]

    assert len(prometheus) == 1
    assert prometheus[0]["isDefault"] is True
    assert prometheus[0]["uid"]


def test_dashboard_provider_loads_files_and_keeps_them_authoritative() -> None:
    providers = [p for doc in _provisioning(PROVIDERS) for p in doc["providers"]]

    files = [p for p in providers if p["type"] == "file"]

    assert len(files) == 1
    assert files[0]["options"]["path"]
    assert files[0]["allowUiUpdates"] is False


def _cells(panel: dict[str, Any]) -> set[tuple[int, int]]:
    grid = panel["gridPos"]
    columns = range(grid["x"], grid["x"] + grid["w"])
    rows = range(grid["y"], grid["y"] + grid["h"])
    return {(x, y) for x in columns for y in rows}


def test_no_two_panels_overlap() -> None:
    panels = _dashboard()["panels"]

    overlapping = [
        (a["title"], b["title"])
        for i, a in enumerate(panels)
        for b in panels[i + 1 :]
        if _cells(a) & _cells(b)
    ]

    assert not overlapping
