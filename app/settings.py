"""Worker settings, read once from ``TACT_*`` environment variables.

Each field documents its variable and default; the README's settings table is
the same list. Settings are frozen: a running worker never changes them.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from app.errors import TactError

REPO_ROOT = Path(__file__).resolve().parents[1]
DEFAULT_POLICY = REPO_ROOT / "deploy" / "examples" / "travel-policy.yaml"

KiB = 1024
MiB = 1024 * KiB
# Base64 grows bytes by a third: 640 KiB of key and value leave room for the
# rest of a dead letter within the producer's 1 MiB request limit.
MAX_DEAD_LETTER_KEEP_BYTES = 640 * KiB

PROCESSING_GUARANTEES = ("exactly_once", "at_least_once")
SECURITY_PROTOCOLS = ("PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL")
SASL_MECHANISMS = ("PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512")
MISMATCH_ACTIONS = ("repartition", "dead_letter")
LOG_FORMATS = ("text", "json")
LOG_LEVELS = ("debug", "info", "warning", "error")


class SettingsError(TactError):
    """A ``TACT_*`` variable holds a value Tact cannot use; start-up stops."""


@dataclass(frozen=True)
class Settings:
    bootstrap_servers: str = field(
        default="127.0.0.1:9092",
        metadata={"env": "TACT_BOOTSTRAP_SERVERS", "doc": "Kafka bootstrap servers"},
    )
    policy_path: Path = field(
        default=DEFAULT_POLICY,
        metadata={"env": "TACT_POLICY", "doc": "policy YAML file"},
    )
    data_dir: Path = field(
        default=REPO_ROOT / "var" / "tact",
        metadata={"env": "TACT_DATA_DIR", "doc": "RocksDB data; one folder per worker"},
    )
    app_id: str = field(
        default="tact",
        metadata={"env": "TACT_APP_ID", "doc": "consumer group and table name prefix"},
    )
    web_bind: str = field(
        default="127.0.0.1",
        metadata={"env": "TACT_WEB_BIND", "doc": "HTTP bind address"},
    )
    web_port: int = field(
        default=6066, metadata={"env": "TACT_WEB_PORT", "doc": "HTTP port"}
    )
    web_host: str = field(
        default="127.0.0.1",
        metadata={
            "env": "TACT_WEB_HOST",
            "doc": "host name other workers use to reach this one's HTTP port",
        },
    )
    api_token: str | None = field(
        default=None,
        repr=False,
        metadata={
            "env": "TACT_API_TOKEN",
            "doc": "bearer token required by /customers and /explain; unset: none",
        },
    )
    security_protocol: str = field(
        default="PLAINTEXT",
        metadata={
            "env": "TACT_SECURITY_PROTOCOL",
            "doc": "PLAINTEXT, SSL, SASL_PLAINTEXT or SASL_SSL",
        },
    )
    sasl_mechanism: str = field(
        default="PLAIN",
        metadata={
            "env": "TACT_SASL_MECHANISM",
            "doc": "PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512 (SASL protocols only)",
        },
    )
    sasl_username: str | None = field(
        default=None,
        metadata={"env": "TACT_SASL_USERNAME", "doc": "SASL user name"},
    )
    sasl_password: str | None = field(
        default=None,
        repr=False,
        metadata={"env": "TACT_SASL_PASSWORD", "doc": "SASL password; never logged"},
    )
    ssl_cafile: Path | None = field(
        default=None,
        metadata={
            "env": "TACT_SSL_CAFILE",
            "doc": "CA bundle that signed the brokers' certificates; unset: system CAs",
        },
    )
    ssl_certfile: Path | None = field(
        default=None,
        metadata={
            "env": "TACT_SSL_CERTFILE",
            "doc": "client certificate (PEM), when the brokers require one",
        },
    )
    ssl_keyfile: Path | None = field(
        default=None,
        metadata={"env": "TACT_SSL_KEYFILE", "doc": "client certificate's key (PEM)"},
    )
    partitions: int = field(
        default=8,
        metadata={
            "env": "TACT_PARTITIONS",
            "doc": "partitions of the topics Tact creates (inputs when missing)",
        },
    )
    replication_factor: int = field(
        default=1,
        metadata={
            "env": "TACT_REPLICATION_FACTOR",
            "doc": "replication factor of the topics Tact creates",
        },
    )
    topic_lifecycle: str = field(
        default="customer-lifecycle",
        metadata={"env": "TACT_TOPIC_LIFECYCLE", "doc": "input: lifecycle events"},
    )
    topic_intents: str = field(
        default="notification-intents",
        metadata={"env": "TACT_TOPIC_INTENTS", "doc": "input: notification intents"},
    )
    topic_approved: str = field(
        default="notifications-approved",
        metadata={"env": "TACT_TOPIC_APPROVED", "doc": "output: approved sends"},
    )
    topic_decisions: str = field(
        default="notification-decisions",
        metadata={"env": "TACT_TOPIC_DECISIONS", "doc": "output: every decision"},
    )
    topic_dead_letters: str = field(
        default="tact-dead-letters",
        metadata={"env": "TACT_TOPIC_DEAD_LETTERS", "doc": "output: bad input"},
    )
    topic_wakeups: str = field(
        default="tact-wakeups",
        metadata={"env": "TACT_TOPIC_WAKEUPS", "doc": "internal: scheduled re-checks"},
    )
    topic_repartition: str = field(
        default="tact-repartition",
        metadata={
            "env": "TACT_TOPIC_REPARTITION",
            "doc": "internal: input records moved to their customer's partition",
        },
    )
    processing_guarantee: str = field(
        # The fault tests (tests/reliability/RESULTS.md) find exactly_once the
        # mode that neither loses nor repeats a send.
        default="exactly_once",
        metadata={
            "env": "TACT_PROCESSING_GUARANTEE",
            "doc": "exactly_once (Kafka transactions) or at_least_once (a crash "
            "can repeat a send)",
        },
    )
    partition_mismatch: str = field(
        default="repartition",
        metadata={
            "env": "TACT_PARTITION_MISMATCH",
            "doc": "a record on the wrong partition for its customer_id: "
            "repartition or dead_letter",
        },
    )
    commit_interval_s: float = field(
        default=0.1,
        metadata={
            "env": "TACT_COMMIT_INTERVAL",
            "doc": "seconds between offset commits (and transaction commits)",
        },
    )
    wakeup_interval_s: float = field(
        default=0.25,
        metadata={
            "env": "TACT_WAKEUP_INTERVAL",
            "doc": "seconds between scans of the in-memory due index",
        },
    )
    rocksdb_block_cache_bytes: int = field(
        default=64 * MiB,
        metadata={
            "env": "TACT_ROCKSDB_BLOCK_CACHE_BYTES",
            "doc": "RocksDB block cache per partition database",
        },
    )
    rocksdb_write_buffer_bytes: int = field(
        default=8 * MiB,
        metadata={
            "env": "TACT_ROCKSDB_WRITE_BUFFER_BYTES",
            "doc": "RocksDB write buffer size per partition database",
        },
    )
    rocksdb_write_buffers: int = field(
        default=2,
        metadata={
            "env": "TACT_ROCKSDB_WRITE_BUFFERS",
            "doc": "RocksDB write buffers per partition database",
        },
    )
    max_record_bytes: int = field(
        default=1 * MiB,
        metadata={
            "env": "TACT_MAX_RECORD_BYTES",
            "doc": "larger input records go to dead letters",
        },
    )
    dead_letter_keep_bytes: int = field(
        default=256 * KiB,
        metadata={
            "env": "TACT_DEAD_LETTER_KEEP_BYTES",
            "doc": "a dead letter keeps at most this many bytes of the record's "
            "key and value; at most 640 KiB, so that in base64 it fits a "
            "1 MiB Kafka record",
        },
    )
    max_nesting: int = field(
        default=32,
        metadata={
            "env": "TACT_MAX_NESTING",
            "doc": "deeper nested input records go to dead letters",
        },
    )
    log_level: str = field(
        default="info",
        metadata={"env": "TACT_LOG_LEVEL", "doc": "debug, info, warning or error"},
    )
    log_format: str = field(
        default="text",
        metadata={"env": "TACT_LOG_FORMAT", "doc": "text or json (one object a line)"},
    )

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        """Build settings from ``TACT_*`` variables; raise SettingsError listing
        every variable that does not parse."""
        env = os.environ if environ is None else environ
        values: dict[str, Any] = {}
        problems: list[str] = []
        for spec in fields(cls):
            name = spec.metadata["env"]
            if name not in env or env[name] == "":
                continue
            raw = env[name]
            try:
                values[spec.name] = _convert(spec.type, raw)
            except ValueError:
                problems.append(f"{name}={raw!r} is not a valid {spec.type}")
        if problems:
            raise SettingsError("; ".join(problems))
        settings = cls(**values)
        settings.validate()
        return settings

    def validate(self) -> None:
        problems = []
        if self.processing_guarantee not in PROCESSING_GUARANTEES:
            problems.append(
                f"TACT_PROCESSING_GUARANTEE must be one of {PROCESSING_GUARANTEES}"
            )
        if self.partition_mismatch not in MISMATCH_ACTIONS:
            problems.append(
                f"TACT_PARTITION_MISMATCH must be one of {MISMATCH_ACTIONS}"
            )
        if self.log_level not in LOG_LEVELS:
            problems.append(f"TACT_LOG_LEVEL must be one of {LOG_LEVELS}")
        if self.log_format not in LOG_FORMATS:
            problems.append(f"TACT_LOG_FORMAT must be one of {LOG_FORMATS}")
        if self.security_protocol not in SECURITY_PROTOCOLS:
            problems.append(
                f"TACT_SECURITY_PROTOCOL must be one of {SECURITY_PROTOCOLS}"
            )
        if self.security_protocol.startswith("SASL_"):
            if self.sasl_mechanism not in SASL_MECHANISMS:
                problems.append(f"TACT_SASL_MECHANISM must be one of {SASL_MECHANISMS}")
            if not self.sasl_username or self.sasl_password is None:
                problems.append(
                    "TACT_SASL_USERNAME and TACT_SASL_PASSWORD are required with "
                    f"TACT_SECURITY_PROTOCOL={self.security_protocol}"
                )
        if not 0 <= self.dead_letter_keep_bytes <= MAX_DEAD_LETTER_KEEP_BYTES:
            problems.append(
                "TACT_DEAD_LETTER_KEEP_BYTES must be between 0 and "
                f"{MAX_DEAD_LETTER_KEEP_BYTES}"
            )
        if self.partitions < 1:
            problems.append("TACT_PARTITIONS must be at least 1")
        if self.commit_interval_s <= 0 or self.wakeup_interval_s <= 0:
            problems.append("TACT_COMMIT_INTERVAL and TACT_WAKEUP_INTERVAL must be > 0")
        if problems:
            raise SettingsError("; ".join(problems))

    @property
    def input_topics(self) -> tuple[str, str]:
        return (self.topic_lifecycle, self.topic_intents)

    @property
    def internal_topics(self) -> tuple[str, str]:
        return (self.topic_wakeups, self.topic_repartition)

    @property
    def output_topics(self) -> tuple[str, str, str]:
        return (self.topic_approved, self.topic_decisions, self.topic_dead_letters)


def describe() -> list[tuple[str, str, str]]:
    """(variable, default, description) of every setting, for docs and --help."""
    rows = []
    for spec in fields(Settings):
        default = spec.default
        if isinstance(default, Path):
            with contextlib.suppress(ValueError):
                default = default.relative_to(REPO_ROOT)
        rows.append((spec.metadata["env"], str(default), spec.metadata["doc"]))
    return rows


def _convert(kind: Any, raw: str) -> Any:
    kind = str(kind)
    if kind == "int":
        return int(raw)
    if kind == "float":
        return float(raw)
    if kind in ("Path", "Path | None"):
        return Path(raw)
    return raw
