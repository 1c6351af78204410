"""Tact workers as real processes, for tests against the broker."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

from tests.support.broker import REPO

READY_TIMEOUT_S = 90


def free_tcp_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@dataclass
class Stack:
    """The names one test's workers share: its own topics, group and policy."""

    bootstrap: str
    prefix: str
    policy: Path
    partitions: int = 4
    extra_env: dict[str, str] = field(default_factory=dict)

    @property
    def lifecycle(self) -> str:
        return f"{self.prefix}-lifecycle"

    @property
    def intents(self) -> str:
        return f"{self.prefix}-intents"

    @property
    def approved(self) -> str:
        return f"{self.prefix}-approved"

    @property
    def decisions(self) -> str:
        return f"{self.prefix}-decisions"

    @property
    def dead_letters(self) -> str:
        return f"{self.prefix}-dead-letters"

    def env(self, data_dir: Path, web_port: int) -> dict[str, str]:
        return {
            **os.environ,
            "TACT_BOOTSTRAP_SERVERS": self.bootstrap,
            "TACT_APP_ID": self.prefix,
            "TACT_POLICY": str(self.policy),
            "TACT_DATA_DIR": str(data_dir),
            "TACT_WEB_PORT": str(web_port),
            "TACT_PARTITIONS": str(self.partitions),
            "TACT_TOPIC_LIFECYCLE": self.lifecycle,
            "TACT_TOPIC_INTENTS": self.intents,
            "TACT_TOPIC_APPROVED": self.approved,
            "TACT_TOPIC_DECISIONS": self.decisions,
            "TACT_TOPIC_DEAD_LETTERS": self.dead_letters,
            "TACT_TOPIC_WAKEUPS": f"{self.prefix}-wakeups",
            "TACT_TOPIC_REPARTITION": f"{self.prefix}-repartition",
            "TACT_LOG_LEVEL": "info",
            **self.extra_env,
        }


class WorkerProcess:
    """One `tact worker` process with its own data folder and HTTP port."""

    def __init__(self, stack: Stack, data_dir: Path, log_path: Path) -> None:
        self.stack = stack
        self.data_dir = data_dir
        self.log_path = log_path
        self.web_port = free_tcp_port()
        self.process: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.web_port}"

    def start(self) -> WorkerProcess:
        self._log = log = self.log_path.open("ab")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "app", "worker"],
            cwd=REPO,
            env=self.stack.env(self.data_dir, self.web_port),
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        return self

    def wait_ready(self, timeout_s: float = READY_TIMEOUT_S) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.process is not None and self.process.poll() is not None:
                raise RuntimeError(
                    f"worker exited with {self.process.returncode}:\n{self.log_tail()}"
                )
            if self.get("/readyz")[0] == 200:
                return
            time.sleep(0.25)
        raise TimeoutError(f"worker not ready in {timeout_s}s:\n{self.log_tail()}")

    def get(self, path: str, token: str | None = None) -> tuple[int, bytes]:
        return self.request("GET", path, token=token)

    def request(
        self,
        method: str,
        path: str,
        body: bytes | None = None,
        token: str | None = None,
    ) -> tuple[int, bytes]:
        request = urllib.request.Request(self.url + path, data=body, method=method)
        if token:
            request.add_header("Authorization", f"Bearer {token}")
        try:
            with urllib.request.urlopen(request, timeout=5) as answer:
                return answer.status, answer.read()
        except urllib.error.HTTPError as error:
            return error.code, error.read()
        except OSError:
            return 0, b""

    def stop(self, sig: int = signal.SIGTERM, timeout_s: float = 60) -> int:
        if self.process is None:
            return 0
        if self.process.poll() is None:
            self.process.send_signal(sig)
        try:
            code = self.process.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            self.process.kill()
            code = self.process.wait()
        self.process = None
        if self._log is not None:
            self._log.close()
            self._log = None
        return code

    def log_tail(self, lines: int = 60) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return "(no log)"
        return "\n".join(text.splitlines()[-lines:])
