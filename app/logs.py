"""Log output of a worker: Faust's text lines, or one JSON object a line."""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import Any

import faust
import orjson

from app.settings import Settings


class JsonFormatter(logging.Formatter):
    """One JSON object a line: time, level, logger, message, traceback."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        if record.exc_info:
            entry["traceback"] = self.formatException(record.exc_info)
        return orjson.dumps(entry).decode()


def logging_config(settings: Settings) -> dict[str, Any] | None:
    """A dictConfig for JSON lines on stderr; None keeps Faust's text format."""
    if settings.log_format != "json":
        return None
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"json": {"()": JsonFormatter}},
        "handlers": {
            "stderr": {"class": "logging.StreamHandler", "formatter": "json"},
        },
        "root": {"level": settings.log_level.upper(), "handlers": ["stderr"]},
    }


class QuietWorker(faust.Worker):
    """Faust's worker without its terminal spinner.

    At level warning or above Faust's worker turns the spinner on, and to
    spin it on every log record it sets the root logger to DEBUG: every
    debug line of Faust, aiokafka and Tact is then built and dropped, about
    a tenth of a worker's time.
    """

    def on_setup_root_logger(self, logger: logging.Logger, level: int) -> None:
        self.spinner = None
        super().on_setup_root_logger(logger, level)
