"""Tact over TLS and SASL: a private broker with SSL, SASL_SSL (PLAIN) and
SASL_PLAINTEXT (SCRAM) listeners, and a worker connecting through each."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.integration.test_pipeline import LIVE_POLICY, intent
from tests.support.broker import KAFKA_SCRIPT, free_port
from tests.support.kafka_io import produce, wait_for_records
from tests.support.worker import Stack, WorkerProcess

pytestmark = [pytest.mark.kafka, pytest.mark.timeout(240)]

PORT = 19292  # plaintext; the controller takes PORT + 1
SSL_PORT, SASL_SSL_PORT, SCRAM_PORT = PORT + 2, PORT + 3, PORT + 4
KEYSTORE_PASSWORD = "keystore-secret"
USER, PASSWORD = "tact", "tact-secret"


@dataclass(frozen=True)
class SecureBroker:
    plaintext: str
    cafile: Path


def run(*command: str, cwd: Path) -> None:
    subprocess.run(command, cwd=cwd, check=True, capture_output=True)


def make_certificates(folder: Path) -> None:
    """A throwaway CA and a broker certificate for 127.0.0.1, as PKCS12."""
    run(
        "openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
        "-subj", "/CN=tact-test-ca", "-keyout", "ca.key", "-out", "ca.pem",
        cwd=folder,
    )  # fmt: skip
    run(
        "openssl", "req", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=127.0.0.1",
        "-keyout", "broker.key", "-out", "broker.csr",
        cwd=folder,
    )  # fmt: skip
    (folder / "san.ext").write_text("subjectAltName=IP:127.0.0.1,DNS:localhost\n")
    run(
        "openssl", "x509", "-req", "-in", "broker.csr", "-CA", "ca.pem",
        "-CAkey", "ca.key", "-CAcreateserial", "-days", "2", "-extfile", "san.ext",
        "-out", "broker.pem",
        cwd=folder,
    )  # fmt: skip
    run(
        "openssl", "pkcs12", "-export", "-in", "broker.pem", "-inkey", "broker.key",
        "-certfile", "ca.pem", "-out", "broker.p12",
        "-passout", f"pass:{KEYSTORE_PASSWORD}",
        cwd=folder,
    )  # fmt: skip


def listener_config(folder: Path) -> str:
    keystore = folder / "broker.p12"
    plain_jaas = (
        "org.apache.kafka.common.security.plain.PlainLoginModule required "
        f'username="{USER}" password="{PASSWORD}" user_{USER}="{PASSWORD}";'
    )
    return f"""
listeners=PLAINTEXT://127.0.0.1:{PORT},CONTROLLER://127.0.0.1:{PORT + 1},\
SSL://127.0.0.1:{SSL_PORT},SASL_SSL://127.0.0.1:{SASL_SSL_PORT},\
SASL_PLAINTEXT://127.0.0.1:{SCRAM_PORT}
advertised.listeners=PLAINTEXT://127.0.0.1:{PORT},SSL://127.0.0.1:{SSL_PORT},\
SASL_SSL://127.0.0.1:{SASL_SSL_PORT},SASL_PLAINTEXT://127.0.0.1:{SCRAM_PORT}
listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT,SSL:SSL,\
SASL_SSL:SASL_SSL,SASL_PLAINTEXT:SASL_PLAINTEXT
ssl.keystore.type=PKCS12
ssl.keystore.location={keystore}
ssl.keystore.password={KEYSTORE_PASSWORD}
ssl.key.password={KEYSTORE_PASSWORD}
listener.name.sasl_ssl.sasl.enabled.mechanisms=PLAIN
listener.name.sasl_ssl.plain.sasl.jaas.config={plain_jaas}
listener.name.sasl_plaintext.sasl.enabled.mechanisms=SCRAM-SHA-256
listener.name.sasl_plaintext.scram-sha-256.sasl.jaas.config=\
org.apache.kafka.common.security.scram.ScramLoginModule required;
"""


@pytest.fixture(scope="module")
def secure_broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SecureBroker]:
    folder = tmp_path_factory.mktemp("secure-kafka")
    if not all(free_port("127.0.0.1", p) for p in range(PORT, SCRAM_PORT + 1)):
        pytest.fail(f"ports {PORT}-{SCRAM_PORT} are taken; the TLS test needs them")
    make_certificates(folder)
    extra = folder / "listeners.properties"
    extra.write_text(listener_config(folder))
    env = {
        **os.environ,
        "TACT_KAFKA_PORT": str(PORT),
        "TACT_KAFKA_DATA": str(folder / "data"),
        "TACT_KAFKA_HEAP": "512m",
        "TACT_KAFKA_EXTRA_CONFIG": str(extra),
        "TACT_KAFKA_FORMAT_ARGS": (
            f"--add-scram SCRAM-SHA-256=[name={USER},password={PASSWORD}]"
        ),
    }
    started = subprocess.run(
        ["bash", str(KAFKA_SCRIPT), "up"],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    if started.returncode != 0:
        pytest.fail("secure broker did not start:\n" + started.stdout + started.stderr)
    try:
        yield SecureBroker(plaintext=f"127.0.0.1:{PORT}", cafile=folder / "ca.pem")
    finally:
        subprocess.run(
            ["bash", str(KAFKA_SCRIPT), "down"],
            env=env,
            capture_output=True,
            check=False,
        )


CONNECTIONS = {
    "ssl": (SSL_PORT, {"TACT_SECURITY_PROTOCOL": "SSL"}),
    "sasl_ssl_plain": (
        SASL_SSL_PORT,
        {"TACT_SECURITY_PROTOCOL": "SASL_SSL", "TACT_SASL_MECHANISM": "PLAIN"},
    ),
    "sasl_scram": (
        SCRAM_PORT,
        {
            "TACT_SECURITY_PROTOCOL": "SASL_PLAINTEXT",
            "TACT_SASL_MECHANISM": "SCRAM-SHA-256",
        },
    ),
}


@pytest.mark.parametrize("connection", sorted(CONNECTIONS))
async def test_worker_decides_through_a_secured_listener(
    secure_broker: SecureBroker,
    make_stack: Callable[..., Stack],
    start_worker: Callable[..., WorkerProcess],
    connection: str,
) -> None:
    port, env = CONNECTIONS[connection]
    stack = make_stack(
        LIVE_POLICY,
        partitions=1,
        TACT_BOOTSTRAP_SERVERS=f"127.0.0.1:{port}",
        TACT_SSL_CAFILE=str(secure_broker.cafile),
        TACT_SASL_USERNAME=USER,
        TACT_SASL_PASSWORD=PASSWORD,
        **env,
    )
    worker = start_worker(stack)

    await produce(
        secure_broker.plaintext, stack.intents, [(b"c-tls", intent("tls-1", "c-tls"))]
    )
    decisions = await wait_for_records(
        secure_broker.plaintext, stack.decisions, 1, lambda got: len(got) >= 1
    )

    assert [(d["intent_id"], d["outcome"]) for d in decisions] == [
        ("tls-1", "approved")
    ]
    assert PASSWORD.encode() not in worker.log_path.read_bytes()
