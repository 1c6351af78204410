"""The Kubernetes manifests: probes on the right paths and port, a volume per
worker for RocksDB, a disruption budget that covers the workers, memory that
fits the RocksDB budget, and settings only through TACT_* variables."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from app.engine.policy import parse_policy
from app.settings import describe
from tests.unit.deploy.prometheus_tools import DEPLOY

KUBERNETES = DEPLOY / "kubernetes"
MANIFESTS = sorted(KUBERNETES.glob("*.yaml"))
KUSTOMIZATION = KUBERNETES / "kustomization.yaml"
SCRAPE_CONFIG = DEPLOY / "prometheus" / "prometheus-kubernetes.yml"
DOCKERFILE = DEPLOY / "Dockerfile"
GUIDE = DEPLOY / "README.md"
MiB = 1024 * 1024
QUANTITY_UNITS = {"Ki": 1024, "Mi": MiB, "Gi": 1024 * MiB}
# The least the memory limit must leave beside RocksDB for Python, faust,
# aiokafka's fetch and send buffers and the records being decoded.
PROCESS_HEADROOM_BYTES = 512 * MiB
DEFAULT_WRITE_BUFFERS = 2
# A worker must have time to commit and close RocksDB after SIGTERM.
MIN_GRACE_SECONDS = 30


def _documents() -> list[dict[str, Any]]:
    return [
        document
        for path in MANIFESTS
        if path != KUSTOMIZATION
        for document in yaml.safe_load_all(path.read_text())
        if document
    ]


def _one(kind: str, **match: Any) -> dict[str, Any]:
    found = [
        d
        for d in _documents()
        if d["kind"] == kind
        and all(d.get("spec", {}).get(k) == v for k, v in match.items())
    ]
    assert len(found) == 1, f"expected one {kind} {match}, found {len(found)}"
    return found[0]


def _statefulset() -> dict[str, Any]:
    return _one("StatefulSet")


def _pod() -> dict[str, Any]:
    pod: dict[str, Any] = _statefulset()["spec"]["template"]
    return pod


def _container() -> dict[str, Any]:
    containers = _pod()["spec"]["containers"]
    assert len(containers) == 1
    container: dict[str, Any] = containers[0]
    return container


def _env() -> dict[str, dict[str, Any]]:
    return {item["name"]: item for item in _container()["env"]}


def _value(name: str) -> str:
    value: str = _env()[name]["value"]
    return value


def _port_number(name_or_number: str | int) -> int:
    for port in _container()["ports"]:
        if name_or_number in (port["name"], port["containerPort"]):
            number: int = port["containerPort"]
            return number
    raise AssertionError(f"the container declares no port {name_or_number}")


def _bytes(quantity: str) -> int:
    match = re.fullmatch(r"(\d+)([KMG]i)", quantity)
    assert match, f"{quantity!r} is not a quantity like 1536Mi"
    return int(match[1]) * QUANTITY_UNITS[match[2]]


def _states(document: Path, size: int) -> bool:
    """Whether a document states an arithmetic result of `size` bytes."""
    return re.search(rf"=\s+{size // MiB} MiB", document.read_text()) is not None


@pytest.mark.parametrize("path", MANIFESTS, ids=lambda path: path.name)
def test_every_manifest_parses_and_names_its_kind(path: Path) -> None:
    documents = [d for d in yaml.safe_load_all(path.read_text()) if d]

    incomplete = [d for d in documents if not (d.get("apiVersion") and d.get("kind"))]

    assert documents
    assert not incomplete


def test_kustomization_applies_every_manifest_in_the_folder() -> None:
    kustomization = yaml.safe_load(KUSTOMIZATION.read_text())

    listed = set(kustomization["resources"])

    assert listed == {path.name for path in MANIFESTS if path != KUSTOMIZATION}


def test_workers_start_in_parallel() -> None:
    statefulset = _statefulset()

    policy = statefulset["spec"]["podManagementPolicy"]

    assert policy == "Parallel"


def test_every_worker_gets_its_own_volume_for_rocksdb() -> None:
    claims = _statefulset()["spec"]["volumeClaimTemplates"]

    mounts = {m["name"]: m["mountPath"] for m in _container()["volumeMounts"]}

    data = [claim for claim in claims if mounts.get(claim["metadata"]["name"])]
    assert len(data) == 1
    assert mounts[data[0]["metadata"]["name"]] == _value("TACT_DATA_DIR")
    assert data[0]["spec"]["accessModes"] == ["ReadWriteOnce"]
    assert data[0]["spec"]["resources"]["requests"]["storage"]


@pytest.mark.parametrize(
    ("probe", "path"),
    [
        ("livenessProbe", "/healthz"),
        ("startupProbe", "/healthz"),
        ("readinessProbe", "/readyz"),
    ],
)
def test_probe_asks_its_path_on_the_web_port(probe: str, path: str) -> None:
    http = _container()[probe]["httpGet"]

    port = _port_number(http["port"])

    assert http["path"] == path
    assert port == int(_value("TACT_WEB_PORT"))


def test_worker_has_time_to_close_rocksdb_after_sigterm() -> None:
    pod_spec = _pod()["spec"]

    grace = pod_spec["terminationGracePeriodSeconds"]

    assert grace >= MIN_GRACE_SECONDS


def test_memory_fits_the_rocksdb_budget_of_every_partition() -> None:
    env = _env()
    write_buffers = int(
        env.get("TACT_ROCKSDB_WRITE_BUFFERS", {}).get("value", DEFAULT_WRITE_BUFFERS)
    )
    per_database = write_buffers * int(_value("TACT_ROCKSDB_WRITE_BUFFER_BYTES")) + int(
        _value("TACT_ROCKSDB_BLOCK_CACHE_BYTES")
    )

    budget = int(_value("TACT_PARTITIONS")) * per_database

    resources = _container()["resources"]
    limit = _bytes(resources["limits"]["memory"])
    assert _bytes(resources["requests"]["memory"]) == limit
    assert limit >= budget + PROCESS_HEADROOM_BYTES
    for stated_in in (KUBERNETES / "statefulset.yaml", GUIDE):
        assert _states(stated_in, budget), f"{stated_in.name} gives another budget"
    assert _states(GUIDE, limit)


def test_settings_are_all_tact_variables_the_worker_reads() -> None:
    names = set(_env())

    unknown = names - {variable for variable, _, _ in describe()}

    assert all(name.startswith("TACT_") for name in names)
    assert not unknown
    assert _pod()["spec"]["enableServiceLinks"] is False


def test_api_token_comes_from_a_secret_and_no_secret_is_committed() -> None:
    token = _env()["TACT_API_TOKEN"]

    reference = token["valueFrom"]["secretKeyRef"]

    assert "value" not in token
    assert reference["name"]
    assert reference["key"]
    assert not [d for d in _documents() if d["kind"] == "Secret"]


def test_logs_are_json() -> None:
    log_format = _value("TACT_LOG_FORMAT")

    assert log_format == "json"


def test_disruption_budget_allows_one_worker_down_and_covers_the_pods() -> None:
    budget = _one("PodDisruptionBudget")

    selector = budget["spec"]["selector"]["matchLabels"]

    labels = _pod()["metadata"]["labels"]
    assert budget["spec"]["maxUnavailable"] == 1
    assert selector.items() <= labels.items()
    assert selector == _statefulset()["spec"]["selector"]["matchLabels"]


def test_statefulset_selects_its_own_pods() -> None:
    selector = _statefulset()["spec"]["selector"]["matchLabels"]

    labels = _pod()["metadata"]["labels"]

    assert selector.items() <= labels.items()


def test_headless_service_governs_the_statefulset_and_lists_recovering_pods() -> None:
    headless = _one("Service", clusterIP="None")

    name = headless["metadata"]["name"]

    assert _statefulset()["spec"]["serviceName"] == name
    assert headless["spec"]["publishNotReadyAddresses"] is True
    assert headless["spec"]["selector"].items() <= _pod()["metadata"]["labels"].items()


def test_cluster_ip_service_serves_http_and_metrics_of_ready_pods() -> None:
    service = _one("Service", type="ClusterIP")

    ports = service["spec"]["ports"]

    assert service["spec"]["selector"].items() <= _pod()["metadata"]["labels"].items()
    assert [_port_number(p["targetPort"]) for p in ports] == [
        int(_value("TACT_WEB_PORT"))
    ]
    assert not service["spec"].get("publishNotReadyAddresses", False)


def test_policy_file_comes_from_the_configmap_and_is_a_valid_policy() -> None:
    configmap = _one("ConfigMap")
    volume = next(
        v
        for v in _pod()["spec"]["volumes"]
        if v.get("configMap", {}).get("name") == configmap["metadata"]["name"]
    )
    mount = next(m for m in _container()["volumeMounts"] if m["name"] == volume["name"])
    key = Path(_value("TACT_POLICY")).relative_to(mount["mountPath"]).as_posix()

    policy = parse_policy(configmap["data"][key], f"configmap {key}")

    assert policy.name


def test_pods_ask_to_be_scraped_on_the_web_port() -> None:
    annotations = _pod()["metadata"]["annotations"]

    port = int(annotations["prometheus.io/port"])

    assert annotations["prometheus.io/scrape"] == "true"
    assert annotations["prometheus.io/path"] == "/metrics"
    assert port == _port_number(port) == int(_value("TACT_WEB_PORT"))


def test_cluster_scrape_job_keeps_exactly_the_tact_pods_on_their_http_port() -> None:
    config = yaml.safe_load(SCRAPE_CONFIG.read_text())
    job = next(job for job in config["scrape_configs"] if job["job_name"] == "tact")

    keeps = {
        tuple(rule["source_labels"]): rule["regex"]
        for rule in job["relabel_configs"]
        if rule.get("action") == "keep"
    }

    name_label = "__meta_kubernetes_pod_label_app_kubernetes_io_name"
    port_label = "__meta_kubernetes_pod_container_port_name"
    assert (
        keeps[(name_label,)] == _pod()["metadata"]["labels"]["app.kubernetes.io/name"]
    )
    assert keeps[(port_label,)] == _container()["ports"][0]["name"]


def test_pod_runs_as_the_image_user_without_privileges() -> None:
    image_user = re.findall(r"^USER (\d+)", DOCKERFILE.read_text(), re.MULTILINE)[-1]

    security = _pod()["spec"]["securityContext"]

    container = _container()["securityContext"]
    assert security["runAsNonRoot"] is True
    assert str(security["runAsUser"]) == image_user
    assert str(security["fsGroup"]) == image_user
    assert container["allowPrivilegeEscalation"] is False
    assert container["readOnlyRootFilesystem"] is True
