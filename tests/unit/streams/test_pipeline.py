"""How the Faust app is configured from Tact's settings."""

from __future__ import annotations

from pathlib import Path

from app.settings import Settings
from app.streams.pipeline import create_app


def test_a_worker_assigned_nothing_looks_for_its_topics_again_within_30_s(
    tmp_path: Path,
) -> None:
    app = create_app(Settings(data_dir=tmp_path))

    # Faust's default, five minutes, left a worker that joined a broker
    # still loading its topics with no partitions that long.
    assert app.conf.consumer_metadata_max_age_ms <= 30_000
