"""Helpers shared by the deployment tests: running promtool, and reading the
metric names out of a PromQL expression."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

from app.metrics import EXPORTED_NAMES, REGISTRY

REPO = Path(__file__).resolve().parents[3]
DEPLOY = REPO / "deploy"
PROMTOOL_MISSING = (
    "promtool not found on PATH: install it with "
    "`apt-get install -y --no-install-recommends prometheus` (Debian), "
    "then run the tests again"
)
PROMTOOL_TIMEOUT_S = 30
HISTOGRAM_SUFFIXES = ("_bucket", "_sum", "_count")
SCRAPE_HEALTH_METRIC = "up"

_STRING = re.compile(r""""(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*'|`[^`]*`""")
_MATCHERS = re.compile(r"\{[^}]*\}")
_RANGE = re.compile(r"\[[^\]]*\]")
_GROUPING = re.compile(
    r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)"
)
# A name that is not part of a longer word, a number, a duration or a Grafana
# variable, and is not called like a function.
_NAME = re.compile(r"(?<![\w.:$])[A-Za-z_:][\w:]*(?![\w:])(?!\s*\()")
_KEYWORDS = frozenset({"and", "or", "unless", "bool", "offset", "inf", "nan"})


def run_promtool(*args: str) -> subprocess.CompletedProcess[str]:
    """Run promtool from the repository root; fail the test if it is missing."""
    path = shutil.which("promtool")
    if path is None:
        pytest.fail(PROMTOOL_MISSING, pytrace=False)
    return subprocess.run(
        [path, *args],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=PROMTOOL_TIMEOUT_S,
        check=False,
    )


def metric_names(expr: str) -> set[str]:
    """The metric names an expression selects, without functions, label names,
    keywords or durations."""
    text = _STRING.sub(" ", expr)
    text = _MATCHERS.sub(" ", text)
    text = _RANGE.sub(" ", text)
    text = _GROUPING.sub(" ", text)
    return {name for name in _NAME.findall(text) if name.lower() not in _KEYWORDS}


def queryable_names() -> frozenset[str]:
    """Every series name a query may select: what a worker exports (histograms
    only through their series suffixes) and Prometheus's own `up`."""
    histograms = {
        family.name for family in REGISTRY.collect() if family.type == "histogram"
    }
    series = {name + suffix for name in histograms for suffix in HISTOGRAM_SUFFIXES}
    return frozenset((EXPORTED_NAMES - histograms) | series | {SCRAPE_HEALTH_METRIC})
