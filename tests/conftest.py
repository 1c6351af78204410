"""Options every test folder can read; fixtures live next to their tests."""

from __future__ import annotations

import pytest

CHAOS_SCALES = ("short", "full")


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("chaos", "fault-injection tests (tests/reliability)")
    group.addoption(
        "--chaos-seed",
        type=int,
        default=1,
        help="seed of the fault tests' load and fault plan (default 1)",
    )
    group.addoption(
        "--chaos-scale",
        choices=CHAOS_SCALES,
        default="short",
        help="short (the CI run) or full (more customers, records and faults)",
    )
    group.addoption(
        "--chaos-record",
        default=None,
        metavar="PATH",
        help="append each fault run's figures to this JSON-lines file",
    )
