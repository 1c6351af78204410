"""Compare what the workers wrote with the ground truth, and say it in figures.

Everything is read with `read_committed`, as delivery services read it.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import orjson
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient

from tests.reliability.load import GroundTruth, describe
from tests.support.kafka_io import read_all
from tests.support.worker import Stack


@dataclass
class Report:
    """The figures of one run; `violations` must be empty."""

    guarantee: str
    seed: int
    scale: str
    records: int
    intents_approved: int
    faults: Counter[str] = field(default_factory=Counter)
    lost: int = 0
    duplicated: int = 0
    wrong: int = 0
    misordered_customers: int = 0
    decisions_lost: int = 0
    decisions_duplicated: int = 0
    decisions_wrong: int = 0
    dead_letters_lost: int = 0
    dead_letters_duplicated: int = 0
    lag: int = 0
    worker_exits: int = 0
    examples: dict[str, list[str]] = field(default_factory=dict)

    CHECKED = (
        "lost",
        "duplicated",
        "wrong",
        "misordered_customers",
        "decisions_lost",
        "decisions_duplicated",
        "decisions_wrong",
        "dead_letters_lost",
        "dead_letters_duplicated",
        "lag",
    )

    # Under at_least_once a record handled again after a crash writes its
    # decision and dead letter again: the documented contract of the audit
    # topics in that mode, so there they are reported, not failed.
    AUDIT_REPEATS = (
        "decisions_duplicated",
        "decisions_wrong",
        "dead_letters_duplicated",
    )

    def violations(self) -> dict[str, int]:
        tolerated = self.AUDIT_REPEATS if self.guarantee == "at_least_once" else ()
        return {
            name: getattr(self, name)
            for name in self.CHECKED
            if getattr(self, name) and name not in tolerated
        }

    def table(self) -> str:
        faults = ", ".join(f"{k} {v}" for k, v in sorted(self.faults.items())) or "none"
        rows = [
            ("guarantee", self.guarantee),
            ("seed / scale", f"{self.seed} / {self.scale}"),
            ("input records", str(self.records)),
            ("approved by ground truth", str(self.intents_approved)),
            ("faults", faults),
            ("unasked worker exits", str(self.worker_exits)),
            *(
                (name.replace("_", " "), str(getattr(self, name)))
                for name in self.CHECKED
            ),
        ]
        width = max(len(name) for name, _ in rows)
        lines = [f"  {name.ljust(width)}  {value}" for name, value in rows]
        for name, ids in self.examples.items():
            lines.append(f"  e.g. {name}: {', '.join(ids[:5])}")
        return "\n".join(lines)

    def as_dict(self) -> dict[str, Any]:
        return {
            "guarantee": self.guarantee,
            "seed": self.seed,
            "scale": self.scale,
            "records": self.records,
            "faults": dict(self.faults),
            "worker_exits": self.worker_exits,
            **{name: getattr(self, name) for name in self.CHECKED},
            "examples": self.examples,
        }


async def check_outputs(stack: Stack, truth: GroundTruth, report: Report) -> Report:
    """Fill `report` from the output topics and the consumer group's offsets.

    1. Approved sends: lost, duplicated, wrong, and order per customer.
    2. Decisions: each ground-truth decision id exactly once, same outcome.
    3. Dead letters: one per bad input record.
    4. Lag of the consumer group on both inputs.

    Each output is read to its high watermark: right after a commit its
    offsets can be visible while its outputs' markers are still on the way.
    """
    bootstrap, partitions = stack.bootstrap, stack.partitions

    # 1. Approved sends.
    approved = await read_all(bootstrap, stack.approved, partitions, settled=True)
    sent: dict[str, list[str]] = {}
    counts: Counter[str] = Counter()
    decided_at: dict[str, list[str]] = {}
    for _, _, value in approved:
        send = orjson.loads(value or b"{}")
        counts[send["intent_id"]] += 1
        sent.setdefault(send["customer_id"], []).append(send["intent_id"])
        decided_at.setdefault(send["intent_id"], []).append(
            send["decision"]["decided_at"]
        )
    expected = truth.approved_ids
    lost = sorted(expected - set(counts))
    duplicated = sorted(i for i, n in counts.items() if n > 1)
    wrong = sorted(set(counts) - expected)
    misordered = sorted(
        customer
        for customer, ids in sent.items()
        if _first_seen(ids, expected)
        != [i for i in truth.approved.get(customer, []) if i in counts]
    )
    report.lost, report.duplicated, report.wrong = (
        len(lost),
        len(duplicated),
        len(wrong),
    )
    report.misordered_customers = len(misordered)
    for name, ids in (
        ("lost", lost),
        ("duplicated", duplicated),
        # When each copy was decided, to find the fault that repeated it.
        ("duplicated, decided at", [" ".join(decided_at[i]) for i in duplicated]),
        ("wrong", wrong),
        ("misordered", misordered),
    ):
        if ids:
            report.examples[name] = ids

    # 2. Decisions.
    decisions = await read_all(bootstrap, stack.decisions, partitions, settled=True)
    seen: Counter[str] = Counter()
    outcome: dict[str, str] = {}
    intent_of: dict[str, str] = {}
    live: dict[str, list[str]] = {}
    for partition, _, value in decisions:
        decision = orjson.loads(value or b"{}")
        decision_id, intent_id = decision["decision_id"], decision["intent_id"]
        seen[decision_id] += 1
        outcome[decision_id] = decision["outcome"]
        intent_of[decision_id] = intent_id
        live.setdefault(intent_id, []).append(
            f"{describe(decision)}@{partition} {decision['decided_at']}"
        )
    report.decisions_lost = len(set(truth.decisions) - set(seen))
    report.decisions_duplicated = sum(1 for n in seen.values() if n > 1)
    wrong_intents = sorted(
        {
            intent_of[d]
            for d, o in outcome.items()
            if truth.decision_outcomes.get(d) != o
        }
    )
    report.decisions_wrong = sum(
        1 for d, o in outcome.items() if truth.decision_outcomes.get(d) != o
    )
    if wrong_intents:
        # Each intent's decisions in both runs, to find where they part.
        report.examples["decisions wrong"] = [
            f"{i}: live {' | '.join(live[i])}; "
            f"replay {' | '.join(truth.described.get(i, []))}"
            for i in wrong_intents
        ]

    # 3. Dead letters.
    letters = await read_all(bootstrap, stack.dead_letters, partitions, settled=True)
    sources: Counter[tuple[str, int, int]] = Counter()
    for _, _, value in letters:
        source = orjson.loads(value or b"{}")["source"]
        sources[(source["topic"], source["partition"], source["offset"])] += 1
    report.dead_letters_lost = max(truth.dead_letters - len(sources), 0)
    report.dead_letters_duplicated = sum(n - 1 for n in sources.values() if n > 1)

    # 4. Lag.
    report.lag = sum((await input_lag(stack)).values())
    return report


def _first_seen(ids: list[str], expected: set[str]) -> list[str]:
    """`ids` without repeats and without sends ground truth does not approve."""
    seen: set[str] = set()
    out = []
    for intent_id in ids:
        if intent_id in expected and intent_id not in seen:
            seen.add(intent_id)
            out.append(intent_id)
    return out


async def input_lag(stack: Stack) -> dict[TopicPartition, int]:
    """Records of the inputs not yet committed by the workers' consumer group."""
    tps = [
        TopicPartition(topic, p)
        for topic in (stack.lifecycle, stack.intents)
        for p in range(stack.partitions)
    ]
    admin = AIOKafkaAdminClient(bootstrap_servers=stack.bootstrap)
    consumer = AIOKafkaConsumer(bootstrap_servers=stack.bootstrap)
    await admin.start()
    await consumer.start()
    try:
        committed = await admin.list_consumer_group_offsets(
            stack.prefix, partitions=tps
        )
        ends = await consumer.end_offsets(tps)
    finally:
        await consumer.stop()
        await admin.close()
    lag = {}
    for tp in tps:
        meta = committed.get(tp)
        offset = meta.offset if meta is not None and meta.offset >= 0 else 0
        lag[tp] = max(ends[tp] - offset, 0)
    return lag
