"""The compose file: the services it needs, one volume per worker, and every
file it mounts present in the repository."""

from __future__ import annotations

import base64
import re
from pathlib import Path, PurePosixPath
from typing import Any

import pytest
import yaml

from app.settings import describe
from tests.unit.deploy.prometheus_tools import DEPLOY

COMPOSE_DIR = DEPLOY / "compose"
COMPOSE = COMPOSE_DIR / "compose.yaml"
WORKERS = ["worker-1", "worker-2"]
SERVICES = {"kafka", *WORKERS, "prometheus", "grafana"}
KAFKA_POM = DEPLOY / "kafka" / "pom.xml"
CLUSTER_ID_BYTES = 16


def _compose() -> dict[str, Any]:
    document: dict[str, Any] = yaml.safe_load(COMPOSE.read_text())
    return document


def _service(name: str) -> dict[str, Any]:
    service: dict[str, Any] = _compose()["services"][name]
    return service


def _environment(service: dict[str, Any]) -> dict[str, str]:
    env = service.get("environment", {})
    if isinstance(env, list):
        env = dict(item.split("=", 1) for item in env)
    return {key: str(value) for key, value in env.items()}


def _mounts(service: dict[str, Any]) -> list[tuple[str, str]]:
    """(source, target) of each short-syntax volume entry."""
    mounts = []
    for entry in service.get("volumes", []):
        source, target = entry.split(":")[:2]
        mounts.append((source, target))
    return mounts


def _bind_mounts(service: dict[str, Any]) -> list[tuple[Path, str]]:
    return [
        ((COMPOSE_DIR / source).resolve(), target)
        for source, target in _mounts(service)
        if source.startswith((".", "/"))
    ]


def _mounted_file(service: str, target: str) -> Path:
    for source, mounted_at in _bind_mounts(_service(service)):
        if mounted_at == target:
            return source
    raise AssertionError(f"{service} mounts nothing at {target}")


def test_compose_defines_kafka_two_workers_prometheus_and_grafana() -> None:
    compose = _compose()

    services = set(compose["services"])

    assert services == SERVICES


def test_kafka_runs_the_release_the_local_broker_and_tests_use() -> None:
    local = re.search(r"<kafka.version>(.+)</kafka.version>", KAFKA_POM.read_text())

    image = _service("kafka")["image"]

    assert local is not None
    assert image == f"apache/kafka:{local[1]}"
    assert local[1].startswith("4.")


def test_kafka_is_a_single_kraft_node_whose_internal_topics_fit_one_broker() -> None:
    env = _environment(_service("kafka"))

    cluster_id = base64.urlsafe_b64decode(env["CLUSTER_ID"] + "==")

    assert env["KAFKA_PROCESS_ROLES"] == "broker,controller"
    assert env["KAFKA_CONTROLLER_QUORUM_VOTERS"] == f"{env['KAFKA_NODE_ID']}@kafka:9093"
    assert env["KAFKA_OFFSETS_TOPIC_REPLICATION_FACTOR"] == "1"
    assert env["KAFKA_TRANSACTION_STATE_LOG_REPLICATION_FACTOR"] == "1"
    assert env["KAFKA_TRANSACTION_STATE_LOG_MIN_ISR"] == "1"
    assert "INTERNAL://kafka:9092" in env["KAFKA_ADVERTISED_LISTENERS"]
    assert len(cluster_id) == CLUSTER_ID_BYTES


@pytest.mark.parametrize("name", WORKERS)
def test_worker_is_built_from_the_deploy_dockerfile(name: str) -> None:
    build = _service(name)["build"]

    context = (COMPOSE_DIR / build["context"]).resolve()

    assert (context / build["dockerfile"]).is_file()
    assert (context / build["dockerfile"]) == DEPLOY / "Dockerfile"


@pytest.mark.parametrize("name", WORKERS)
def test_worker_reaches_kafka_by_service_name_and_waits_until_it_is_healthy(
    name: str,
) -> None:
    service = _service(name)

    env = _environment(service)

    assert env["TACT_BOOTSTRAP_SERVERS"] == "kafka:9092"
    assert service["depends_on"]["kafka"]["condition"] == "service_healthy"


@pytest.mark.parametrize("name", WORKERS)
def test_worker_settings_are_all_tact_variables_the_worker_reads(name: str) -> None:
    env = _environment(_service(name))

    unknown = set(env) - {variable for variable, _, _ in describe()}

    assert all(key.startswith("TACT_") for key in env)
    assert not unknown


def test_each_worker_keeps_rocksdb_on_its_own_declared_volume() -> None:
    declared = set(_compose()["volumes"])

    data_volumes = []
    for name in WORKERS:
        service = _service(name)
        data_dir = _environment(service)["TACT_DATA_DIR"]
        data_volumes += [src for src, dst in _mounts(service) if dst == data_dir]

    assert len(data_volumes) == len(WORKERS)
    assert len(set(data_volumes)) == len(WORKERS)
    assert set(data_volumes) <= declared


def test_each_worker_listens_on_its_own_port_and_publishes_it_unchanged() -> None:
    ports = {name: _environment(_service(name))["TACT_WEB_PORT"] for name in WORKERS}

    published = {name: _service(name)["ports"] for name in WORKERS}

    assert len(set(ports.values())) == len(WORKERS)
    for name, port in ports.items():
        assert published[name] == [f"127.0.0.1:{port}:{port}"]


@pytest.mark.parametrize("name", WORKERS)
def test_worker_healthcheck_asks_healthz_on_its_own_port(name: str) -> None:
    service = _service(name)

    command = " ".join(service["healthcheck"]["test"])

    port = _environment(service)["TACT_WEB_PORT"]
    assert f"127.0.0.1:{port}/healthz" in command


@pytest.mark.parametrize("name", WORKERS)
def test_worker_advertises_the_name_its_peers_reach_it_by(name: str) -> None:
    service = _service(name)

    env = _environment(service)

    assert env["TACT_WEB_HOST"] == service["hostname"] == name


@pytest.mark.parametrize("name", sorted(SERVICES))
def test_every_mounted_file_exists_in_the_repository(name: str) -> None:
    mounts = _bind_mounts(_service(name))

    missing = [str(source) for source, _ in mounts if not source.exists()]

    assert not missing


@pytest.mark.parametrize("name", sorted(SERVICES))
def test_every_named_volume_is_declared(name: str) -> None:
    declared = set(_compose().get("volumes", {}))

    named = {
        src for src, _ in _mounts(_service(name)) if not src.startswith((".", "/"))
    }

    assert named <= declared


def test_prometheus_scrapes_both_workers_and_loads_the_alert_rules() -> None:
    config_path = _mounted_file("prometheus", "/etc/prometheus/prometheus.yml")
    config = yaml.safe_load(config_path.read_text())

    job = next(job for job in config["scrape_configs"] if job["job_name"] == "tact")
    targets = {t for group in job["static_configs"] for t in group["targets"]}

    workers = {f"{n}:{_environment(_service(n))['TACT_WEB_PORT']}" for n in WORKERS}
    assert targets == workers
    assert job.get("metrics_path", "/metrics") == "/metrics"
    rule_files = [
        PurePosixPath("/etc/prometheus") / rule_file
        for rule_file in config["rule_files"]
    ]
    assert [_mounted_file("prometheus", str(path)) for path in rule_files] == [
        DEPLOY / "prometheus" / "alerts.yaml"
    ]


def test_grafana_datasource_points_at_the_prometheus_service() -> None:
    folder = _mounted_file("grafana", "/etc/grafana/provisioning/datasources")
    documents = [yaml.safe_load(p.read_text()) for p in sorted(folder.glob("*.yaml"))]

    urls = [ds["url"] for doc in documents for ds in doc["datasources"]]

    assert urls == ["http://prometheus:9090"]


def test_grafana_loads_the_dashboards_from_the_folder_compose_mounts() -> None:
    folder = _mounted_file("grafana", "/etc/grafana/provisioning/dashboards")
    documents = [yaml.safe_load(p.read_text()) for p in sorted(folder.glob("*.yaml"))]

    paths = [p["options"]["path"] for doc in documents for p in doc["providers"]]

    assert len(paths) == 1
    dashboards = _mounted_file("grafana", paths[0])
    assert dashboards == DEPLOY / "grafana" / "dashboards"
    assert list(dashboards.glob("*.json"))
