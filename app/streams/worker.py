"""`tact worker`: check the topics, then run the Faust worker."""

from __future__ import annotations

import asyncio
import logging
import os
import sys

from aiokafka.errors import KafkaError

from app.engine import load_policy
from app.errors import TactError
from app.settings import Settings
from app.streams.pipeline import create_app
from app.streams.topics import ensure_topics

logger = logging.getLogger(__name__)

# Faust's command line spells one level differently.
FAUST_LOG_LEVELS = {"warning": "warn"}


def main(argv: list[str] | None = None) -> int:
    """Run a worker until it is stopped; return an exit status on start-up errors."""
    try:
        settings = Settings.from_env()
        policy = load_policy(settings.policy_path)
        partitions = asyncio.run(ensure_topics(settings))
    except TactError as exc:
        print(f"tact worker: {exc}", file=sys.stderr)
        return 2
    except KafkaError as exc:
        print(
            f"tact worker: cannot reach Kafka at {settings.bootstrap_servers} "
            f"({exc}); check TACT_BOOTSTRAP_SERVERS and that the broker runs",
            file=sys.stderr,
        )
        return 2
    # asyncio.run() closed its loop; Faust's worker wants a current one.
    asyncio.set_event_loop(asyncio.new_event_loop())
    app = create_app(settings, policy=policy, partitions=partitions)
    sys.argv = [
        "tact",
        "worker",
        "--loglevel",
        FAUST_LOG_LEVELS.get(settings.log_level, settings.log_level),
        "--web-bind",
        settings.web_bind,
        "--web-port",
        str(settings.web_port),
        "--web-host",
        settings.web_host,
        *(argv or []),
    ]
    try:
        app.main()
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else 1
    else:
        code = 0
    # After a crash (a fenced producer, say) Faust can leave a thread running
    # that keeps the process alive; the orchestrator must see it exit.
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)
