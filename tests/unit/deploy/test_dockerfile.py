"""The worker image: what it is built from, whom it runs as, and what it runs.
No Docker engine is needed; the Dockerfile is read as text."""

from __future__ import annotations

import json
import tomllib

from app.settings import describe
from tests.unit.deploy.prometheus_tools import DEPLOY, REPO

DOCKERFILE = DEPLOY / "Dockerfile"
ROOT_UID = 0


def _instructions() -> list[tuple[str, str]]:
    """(KEYWORD, arguments) of every instruction, continuation lines joined."""
    joined = DOCKERFILE.read_text().replace("\\\n", " ")
    lines = [line.strip() for line in joined.splitlines()]
    instructions = []
    for line in lines:
        if not line or line.startswith("#"):
            continue
        keyword, _, arguments = line.partition(" ")
        instructions.append((keyword.upper(), arguments.strip()))
    return instructions


def _arguments(keyword: str) -> list[str]:
    return [args for kw, args in _instructions() if kw == keyword]


def _env() -> dict[str, str]:
    pairs = [pair for args in _arguments("ENV") for pair in args.split()]
    return dict(pair.split("=", 1) for pair in pairs)


def test_image_starts_from_python_3_11_slim() -> None:
    instructions = _instructions()

    first = instructions[0]

    assert first == ("FROM", "python:3.11-slim")


def test_image_runs_as_a_numeric_non_root_user() -> None:
    users = _arguments("USER")

    uid = users[-1].split(":")[0]

    assert uid.isdigit()
    assert int(uid) != ROOT_UID


def test_image_runs_tact_worker_by_default() -> None:
    entrypoint = json.loads(_arguments("ENTRYPOINT")[-1])

    command = entrypoint + json.loads(_arguments("CMD")[-1])

    assert command == ["tact", "worker"]


def test_tact_command_is_a_console_script_of_the_project() -> None:
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]

    scripts = project["scripts"]

    assert "tact" in scripts


def test_image_exposes_the_web_port_it_configures() -> None:
    exposed = _arguments("EXPOSE")

    env = _env()

    assert exposed == ["6066"]
    assert env["TACT_WEB_PORT"] == "6066"
    assert env["TACT_WEB_BIND"] == "0.0.0.0"


def test_image_keeps_rocksdb_data_under_var_lib_tact() -> None:
    env = _env()

    data_dir = env["TACT_DATA_DIR"]

    assert data_dir == "/var/lib/tact"


def test_every_copied_path_exists_in_the_repository() -> None:
    copies = [args.split() for args in _arguments("COPY")]

    sources = [source for parts in copies for source in parts[:-1]]

    missing = [source for source in sources if not (REPO / source).exists()]
    assert sources
    assert not missing


def test_every_tact_variable_the_image_sets_is_a_setting() -> None:
    names = {name for name in _env() if name.startswith("TACT_")}

    unknown = names - {variable for variable, _, _ in describe()}

    assert names
    assert not unknown
