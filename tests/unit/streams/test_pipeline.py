"""How the Faust app is configured from Tact's settings."""

from __future__ import annotations

from pathlib import Path

import pytest

from app.settings import Settings
from app.streams.pipeline import create_app


@pytest.mark.parametrize(
    ("guarantee", "linger_s"), [("exactly_once", 0.05), ("at_least_once", 0.0)]
)
def test_producers_hold_records_only_when_transactions_hide_them(
    guarantee: str, linger_s: float, tmp_path: Path
) -> None:
    settings = Settings.from_env(
        {
            "TACT_PROCESSING_GUARANTEE": guarantee,
            "TACT_COMMIT_INTERVAL": "0.1",
            "TACT_DATA_DIR": str(tmp_path),
        }
    )

    app = create_app(settings)

    assert app.conf.producer_linger == pytest.approx(linger_s)
