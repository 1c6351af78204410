"""The real Kafka broker the integration tests run against.

Either the broker named by ``TACT_TEST_BOOTSTRAP`` or a private single-node
broker that the session starts with ``deploy/kafka/kafka.sh`` on its own port
and data folder, and stops again at the end.
"""

from __future__ import annotations

import os
import socket
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
KAFKA_SCRIPT = REPO / "deploy" / "kafka" / "kafka.sh"
TEST_PORT = 19092
START_TIMEOUT_S = 120


class BrokerUnavailable(RuntimeError):
    """No broker could be reached or started; integration tests must fail."""


@dataclass(frozen=True)
class Broker:
    bootstrap: str
    started_here: bool


def free_port(host: str, port: int) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex((host, port)) != 0


def _script_env(port: int, data_dir: Path) -> dict[str, str]:
    return {
        **os.environ,
        "TACT_KAFKA_PORT": str(port),
        "TACT_KAFKA_DATA": str(data_dir),
        "TACT_KAFKA_HEAP": "768m",
    }


@contextmanager
def session_broker(data_dir: Path) -> Iterator[Broker]:
    """Yield a running broker for the session; raise BrokerUnavailable if none."""
    named = os.environ.get("TACT_TEST_BOOTSTRAP")
    if named:
        host, _, port = named.rpartition(":")
        if free_port(host or "127.0.0.1", int(port)):
            raise BrokerUnavailable(
                f"TACT_TEST_BOOTSTRAP={named} names a broker that does not answer"
            )
        yield Broker(bootstrap=named, started_here=False)
        return

    if not free_port("127.0.0.1", TEST_PORT):
        raise BrokerUnavailable(
            f"port {TEST_PORT} is taken; stop what listens there or set "
            "TACT_TEST_BOOTSTRAP to a broker the tests may use"
        )
    env = _script_env(TEST_PORT, data_dir)
    started = subprocess.run(
        ["bash", str(KAFKA_SCRIPT), "up"],
        env=env,
        capture_output=True,
        text=True,
        timeout=START_TIMEOUT_S + 60,
        check=False,
    )
    if started.returncode != 0:
        raise BrokerUnavailable(
            "could not start the local Kafka broker:\n"
            + started.stdout
            + started.stderr
        )
    try:
        yield Broker(bootstrap=f"127.0.0.1:{TEST_PORT}", started_here=True)
    finally:
        subprocess.run(
            ["bash", str(KAFKA_SCRIPT), "down"],
            env=env,
            capture_output=True,
            timeout=60,
            check=False,
        )
