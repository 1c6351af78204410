"""Prometheus metrics of a Tact worker.

Every label has bounded cardinality: topic names, partitions, outcomes, rule
names, error kinds and channels that the policy names (any other channel is
counted as ``other``). Customer, intent and campaign ids never become labels.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

REGISTRY = CollectorRegistry(auto_describe=True)

LATENCY_BUCKETS = (
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1,
    2.5,
    5,
    10,
)
LATENESS_BUCKETS = (0.01, 0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60, 300)

records_consumed = Counter(
    "tact_records_consumed_total",
    "Input records read, by topic and kind (lifecycle, intent, wakeup).",
    ["topic", "kind"],
    registry=REGISTRY,
)
decisions = Counter(
    "tact_decisions_total",
    "Decisions emitted, by outcome, first objecting rule (none if approved) "
    "and channel.",
    ["outcome", "rule", "channel"],
    registry=REGISTRY,
)
decision_latency = Histogram(
    "tact_decision_latency_seconds",
    "Time from an intent record's timestamp to its decision being emitted.",
    buckets=LATENCY_BUCKETS,
    registry=REGISTRY,
)
release_lateness = Histogram(
    "tact_release_lateness_seconds",
    "Time from a held intent's due time to its release.",
    buckets=LATENESS_BUCKETS,
    registry=REGISTRY,
)
pending_intents = Gauge(
    "tact_pending_intents",
    "Intents held in state waiting for their due time, on this worker.",
    registry=REGISTRY,
)
customers = Gauge(
    "tact_customers",
    "Customers with state in the partitions this worker owns.",
    registry=REGISTRY,
)
dead_letters = Counter(
    "tact_dead_letters_total",
    "Records sent to the dead-letter topic, by error kind.",
    ["kind"],
    registry=REGISTRY,
)
partition_mismatches = Counter(
    "tact_partition_mismatches_total",
    "Records whose partition does not match murmur2 of their customer_id, by "
    "topic and action taken (repartitioned or dead_lettered).",
    ["topic", "action"],
    registry=REGISTRY,
)
late_vetoes = Counter(
    "tact_late_vetoes_total",
    "Lifecycle events that arrived after an intent they would have stopped was "
    "approved within the look-back window, by rule and entity type.",
    ["rule", "entity_type"],
    registry=REGISTRY,
)
recovery_seconds = Gauge(
    "tact_table_recovery_seconds",
    "Duration of the last table recovery from the changelog.",
    registry=REGISTRY,
)
ready = Gauge(
    "tact_ready",
    "1 once table recovery is done and the agent consumes, else 0.",
    registry=REGISTRY,
)
consumer_lag = Gauge(
    "tact_consumer_lag_records",
    "Records between the last processed offset and the highwater, per input partition.",
    ["topic", "partition"],
    registry=REGISTRY,
)
last_record_age = Gauge(
    "tact_last_record_age_seconds",
    "Seconds since the last record of an input partition was processed.",
    ["topic", "partition"],
    registry=REGISTRY,
)
info = Gauge(
    "tact_info",
    "Always 1; labels carry the running version, policy version and guarantee.",
    ["version", "policy_version", "processing_guarantee"],
    registry=REGISTRY,
)

EXPORTED_NAMES = frozenset(
    {
        "tact_records_consumed_total",
        "tact_decisions_total",
        "tact_decision_latency_seconds",
        "tact_release_lateness_seconds",
        "tact_pending_intents",
        "tact_customers",
        "tact_dead_letters_total",
        "tact_partition_mismatches_total",
        "tact_late_vetoes_total",
        "tact_table_recovery_seconds",
        "tact_ready",
        "tact_consumer_lag_records",
        "tact_last_record_age_seconds",
        "tact_info",
    }
)
"""Metric family names as a dashboard or alert writes them (histograms add
``_bucket``, ``_sum`` and ``_count``; counters are exported with ``_total``)."""
