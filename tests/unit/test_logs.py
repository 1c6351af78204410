"""What a worker's log level leaves switched on."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path

import pytest

from app.settings import Settings
from app.streams.pipeline import create_app
from app.streams.worker import FAUST_LOG_LEVELS


@pytest.fixture
def root_logger() -> Iterator[logging.Logger]:
    root = logging.getLogger()
    level, handlers = root.level, list(root.handlers)
    yield root
    root.handlers[:] = handlers
    root.setLevel(level)


@pytest.mark.parametrize("level", ["info", "warning", "error"])
async def test_no_debug_record_is_built_below_the_workers_level(
    tmp_path: Path, root_logger: logging.Logger, level: str
) -> None:
    app = create_app(Settings(data_dir=tmp_path, log_level=level))
    worker = app.conf.Worker(
        app, loglevel=FAUST_LOG_LEVELS.get(level, level), redirect_stdouts=False
    )
    worker._setup_logging()
    for name in ("faust.topics", "aiokafka.producer.sender", "app.engine.core"):
        assert not logging.getLogger(name).isEnabledFor(logging.DEBUG)
    assert root_logger.getEffectiveLevel() == logging.getLevelName(level.upper())
