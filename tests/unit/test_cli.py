"""The `tact` command as an operator runs it."""

from __future__ import annotations

import importlib
import os
import subprocess
import sys
from pathlib import Path

import pytest

from app import cli

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "deploy" / "examples"


def _tact(*args: str, cwd: Path = ROOT) -> subprocess.CompletedProcess[bytes]:
    script = Path(sys.executable).with_name("tact")
    command = [str(script)] if script.exists() else [sys.executable, "-m", "app.cli"]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run(
        [*command, *args],
        cwd=cwd,
        capture_output=True,
        timeout=60,
        check=False,
        env=env,
    )


def test_replay_of_the_story_prints_identical_bytes_twice(tmp_path: Path) -> None:
    args = (
        "replay",
        "--policy",
        "deploy/examples/travel-policy.yaml",
        "deploy/examples/story.jsonl",
        "--dead-letters",
        str(tmp_path / "dead.jsonl"),
    )

    first = _tact(*args)
    second = _tact(*args)

    assert first.returncode == 0, first.stderr
    assert first.stdout == second.stdout
    assert first.stdout.count(b"\n") == 17
    assert b"1 dead letter" in first.stderr
    assert (tmp_path / "dead.jsonl").read_bytes().count(b"\n") == 1


def test_policy_check_of_the_example_succeeds() -> None:
    result = _tact("policy", "check", "deploy/examples/travel-policy.yaml")

    assert result.returncode == 0
    assert result.stdout.startswith(b"travel-default (travel-default@")


def test_policy_check_of_a_bad_policy_exits_2_naming_the_line(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("version: 1\nsettle: soon\n")

    result = _tact("policy", "check", str(bad))

    assert result.returncode == 2
    assert b'settle: "soon" is not a duration' in result.stderr
    assert b"(line 2)" in result.stderr


def test_worker_without_the_streaming_layer_says_so(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    def refuse(name: str) -> None:
        raise ImportError(f"No module named {name!r}")

    monkeypatch.setattr(importlib, "import_module", refuse)

    status = cli.main(["worker", "--flag"])

    assert status == 1
    assert "cannot import app.streams.worker" in capsys.readouterr().err


def test_demo_passes_extra_arguments_through(monkeypatch: pytest.MonkeyPatch) -> None:
    received: list[list[str]] = []

    class Demo:
        @staticmethod
        def main(args: list[str]) -> int:
            received.append(args)
            return 0

    monkeypatch.setattr(importlib, "import_module", lambda name: Demo)

    status = cli.main(["demo", "--customers", "3", "extra"])

    assert status == 0
    assert received == [["--customers", "3", "extra"]]


def test_replay_to_an_unwritable_dead_letter_file_exits_2_saying_so(
    tmp_path: Path,
) -> None:
    unwritable = tmp_path / "missing-folder" / "dead.jsonl"

    result = _tact(
        "replay",
        "--policy",
        "deploy/examples/travel-policy.yaml",
        "--dead-letters",
        str(unwritable),
        "deploy/examples/story.jsonl",
    )

    assert result.returncode == 2
    assert b"cannot write" in result.stderr
    assert b"Traceback" not in result.stderr
