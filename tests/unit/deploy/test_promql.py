"""The metric-name reader the dashboard and alert tests rely on."""

from __future__ import annotations

from tests.unit.deploy.prometheus_tools import metric_names, queryable_names


def test_names_skip_functions_labels_keywords_and_durations() -> None:
    expr = (
        'histogram_quantile(0.99, sum by (job, le) (rate(tact_x_bucket{le="1", '
        'instance=~"$instance"}[$__rate_interval] offset 5m))) > 1e3 '
        "and on (job) absent(up) unless bool tact_y"
    )

    names = metric_names(expr)

    assert names == {"tact_x_bucket", "up", "tact_y"}


def test_an_unknown_name_is_not_queryable() -> None:
    names = metric_names("sum(rate(tact_made_up_total[5m]))")

    unknown = names - queryable_names()

    assert unknown == {"tact_made_up_total"}


def test_histograms_are_queryable_only_through_their_series() -> None:
    allowed = queryable_names()

    assert "tact_decision_latency_seconds_bucket" in allowed
    assert "tact_decision_latency_seconds" not in allowed
    assert "tact_decisions_total" in allowed
