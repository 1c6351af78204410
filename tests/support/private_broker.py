"""A broker of one's own, for tests that stop and restart it.

The session broker is shared by every integration test, so a test that
restarts the broker needs one nobody else uses: its own ports and its own data
folder, started and stopped with the same `deploy/kafka/kafka.sh` as the rest.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import time
from pathlib import Path

from tests.support.broker import KAFKA_SCRIPT, START_TIMEOUT_S, BrokerUnavailable
from tests.support.broker import free_port as is_free

# Away from the session broker (19092) and the local default (9092).
PORT_RANGE = (21000, 28999)
PORT_ATTEMPTS = 50
STOP_TIMEOUT_S = 60


def pick_ports(rng: random.Random | None = None) -> int:
    """A client port whose controller port (port + 1) is free as well."""
    rng = rng or random.Random()
    for _ in range(PORT_ATTEMPTS):
        port = rng.randrange(*PORT_RANGE)
        if is_free("127.0.0.1", port) and is_free("127.0.0.1", port + 1):
            return port
    raise BrokerUnavailable(f"no free port pair found in {PORT_RANGE}")


class PrivateBroker:
    """One single-node KRaft broker on its own port and data folder."""

    def __init__(self, data_dir: Path, port: int | None = None) -> None:
        self.data_dir = data_dir
        self.port = port or pick_ports()
        self.restarts = 0

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def log_path(self) -> Path:
        return self.data_dir / "log" / "server.log"

    def up(self) -> None:
        """Start the broker (formatting storage the first time); wait until ready."""
        started = self._script("up", START_TIMEOUT_S + 60)
        if started.returncode != 0:
            raise BrokerUnavailable(
                f"could not start a private broker on port {self.port}:\n"
                + started.stdout
                + started.stderr
            )

    def down(self) -> None:
        """Stop the broker with SIGTERM (a controlled shutdown), by its pid."""
        self._script("down", STOP_TIMEOUT_S)

    def kill(self) -> None:
        """Stop the broker with SIGKILL: no controlled shutdown, no flush."""
        pid = self._pid()
        if pid is not None:
            os.kill(pid, signal.SIGKILL)
            _wait_gone(pid)
        (self.data_dir / "kafka.pid").unlink(missing_ok=True)

    def restart(self, *, hard: bool = False) -> None:
        """Stop the broker (SIGKILL when `hard`) and start it on the same data."""
        if hard:
            self.kill()
        else:
            self.down()
        self.up()
        self.restarts += 1

    def _pid(self) -> int | None:
        try:
            return int((self.data_dir / "kafka.pid").read_text().strip())
        except (FileNotFoundError, ValueError):
            return None

    def _script(
        self, command: str, timeout_s: float
    ) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            ["bash", str(KAFKA_SCRIPT), command],
            env={
                **os.environ,
                "TACT_KAFKA_PORT": str(self.port),
                "TACT_KAFKA_DATA": str(self.data_dir),
                "TACT_KAFKA_HEAP": "768m",
            },
            capture_output=True,
            text=True,
            timeout=timeout_s,
            check=False,
        )


def _wait_gone(pid: int, timeout_s: float = STOP_TIMEOUT_S) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if not _is_alive(pid):
            return
        time.sleep(0.05)
    raise TimeoutError(f"broker pid {pid} still runs {timeout_s}s after SIGKILL")


def _is_alive(pid: int) -> bool:
    """Whether `pid` runs; a zombie nobody has reaped yet counts as gone."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return False
    state = next(
        (line for line in status.splitlines() if line.startswith("State:")), ""
    )
    return "zombie" not in state
