"""`tact demo`: play the motivating story through Kafka and print decisions.

The story spans weeks; the demo keeps its order but squeezes it into seconds:
every record is produced `--pace` seconds after the previous one, and every
time inside it (occurred_at, send_at, a booking's starts_at, ...) is moved
onto the same squeezed timeline. Ids get a per-run suffix so that a second
run is not a replay of the first, and every customer's time zone is set to
one where it is now midday, so quiet hours do not hold the demo overnight: a
customer whose story sets none gets a profile update first.
"""

from __future__ import annotations

import argparse
import asyncio
import bisect
import contextlib
import logging
import os
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from app.engine.times import format_us, parse_time, to_us
from app.security import client_options
from app.settings import REPO_ROOT, Settings

logger = logging.getLogger(__name__)

DEFAULT_STORY = REPO_ROOT / "deploy" / "examples" / "story.jsonl"
READY_TIMEOUT_S = 120
ID_FIELDS = ("event_id", "intent_id", "customer_id")
OPAQUE_FIELDS = frozenset({"payload"})


def load_story(path: Path) -> list[dict[str, Any]]:
    """The story's records that are well-formed JSON objects; a broken line is
    kept as raw text so the worker can show it going to dead letters."""
    records: list[dict[str, Any]] = []
    for line in path.read_bytes().splitlines():
        if line.strip():
            records.append(orjson.loads(line))
    return records


def midday_zone(now: datetime) -> str:
    """A fixed-offset IANA zone in which `now` is between 11:00 and 13:00."""
    offset = (12 - now.hour) % 24
    if offset > 14:
        offset -= 24
    # Etc/GMT names invert the sign: Etc/GMT-3 is three hours ahead of UTC.
    return "Etc/GMT" if offset == 0 else f"Etc/GMT{-offset:+d}"


class Timeline:
    """Maps story times onto live times: record timestamps become evenly
    paced anchors; times between anchors are interpolated."""

    def __init__(self, story_us: list[int], start_us: int, pace_us: int) -> None:
        self._story = sorted(set(story_us))
        self._live = [start_us + i * pace_us for i in range(len(self._story))]
        self._pace = pace_us

    def __call__(self, t_us: int) -> int:
        story, live = self._story, self._live
        if t_us <= story[0]:
            return live[0] - (self._pace if t_us < story[0] else 0)
        if t_us >= story[-1]:
            return live[-1] + (self._pace if t_us > story[-1] else 0)
        i = bisect.bisect_right(story, t_us)
        s0, s1, l0, l1 = story[i - 1], story[i], live[i - 1], live[i]
        return l0 + (t_us - s0) * (l1 - l0) // (s1 - s0)


def rebase(
    records: list[dict[str, Any]],
    start: datetime,
    pace_s: float,
    run_tag: str,
    zone: str,
) -> list[dict[str, Any]]:
    """The story on a live timeline; see the module docstring."""
    stamps = [_record_time(r) for r in records]
    timeline = Timeline(stamps, to_us(start), int(pace_s * 1_000_000))
    out = []
    for record, stamp in zip(records, stamps, strict=True):
        value = _retime(record.get("value"), timeline, run_tag, zone)
        out.append(
            {
                **record,
                "timestamp": format_us(timeline(stamp)),
                "key": _tag(record.get("key"), run_tag),
                "value": value,
            }
        )
    return _zone_for_everyone(out, zone)


def _zone_for_everyone(
    records: list[dict[str, Any]], zone: str
) -> list[dict[str, Any]]:
    """`records` with a profile update setting `zone` before the first record
    of each customer whose story never sets a timezone."""
    lifecycle = next((r["topic"] for r in records if _value(r).get("event_id")), None)
    if lifecycle is None:
        return records
    zoned = {
        _value(r).get("customer_id")
        for r in records
        if "timezone" in (_value(r).get("attributes") or {})
    }
    out = []
    for record in records:
        customer = _value(record).get("customer_id")
        if isinstance(customer, str) and customer not in zoned:
            zoned.add(customer)
            out.append(
                {
                    "topic": lifecycle,
                    "timestamp": record["timestamp"],
                    "key": record.get("key"),
                    "value": {
                        "event_id": f"ev-{customer}-zone",
                        "customer_id": customer,
                        "type": "profile.updated",
                        "occurred_at": record["timestamp"],
                        "attributes": {"timezone": zone},
                    },
                }
            )
        out.append(record)
    return out


def _value(record: dict[str, Any]) -> dict[str, Any]:
    value = record.get("value")
    return value if isinstance(value, dict) else {}


def _record_time(record: dict[str, Any]) -> int:
    stamp = record["timestamp"]
    if isinstance(stamp, int):
        return stamp * 1000
    parsed = parse_time(stamp)
    if parsed is None:
        raise ValueError(f"story timestamp {stamp!r} is not an RFC 3339 time")
    return to_us(parsed)


def _retime(value: Any, timeline: Timeline, run_tag: str, zone: str) -> Any:
    if isinstance(value, dict):
        moved: dict[str, Any] = {}
        for key, item in value.items():
            if key in OPAQUE_FIELDS:
                moved[key] = item
            elif key in ID_FIELDS:
                moved[key] = _tag(item, run_tag)
            elif key == "timezone" and isinstance(item, str):
                moved[key] = zone
            else:
                moved[key] = _retime(item, timeline, run_tag, zone)
        return moved
    if isinstance(value, list):
        return [_retime(item, timeline, run_tag, zone) for item in value]
    if isinstance(value, str):
        parsed = parse_time(value)
        return value if parsed is None else format_us(timeline(to_us(parsed)))
    return value


def _tag(value: Any, run_tag: str) -> Any:
    return f"{value}-{run_tag}" if isinstance(value, str) and run_tag else value


async def produce(settings: Settings, records: Iterable[dict[str, Any]]) -> int:
    """Produce each record at its live timestamp; return how many were sent."""
    producer = AIOKafkaProducer(acks="all", linger_ms=0, **client_options(settings))
    await producer.start()
    sent = 0
    try:
        for record in records:
            due = _record_time(record) / 1e6
            await asyncio.sleep(max(due - time.time(), 0))
            key = record.get("key")
            await producer.send_and_wait(
                record["topic"],
                orjson.dumps(record["value"]),
                key=key.encode() if isinstance(key, str) else None,
                timestamp_ms=int(due * 1000),
            )
            sent += 1
    finally:
        await producer.stop()
    return sent


def decision_line(decision: dict[str, Any]) -> str:
    reasons = "; ".join(f"{r['rule']}: {r['detail']}" for r in decision["reasons"])
    if decision.get("release_at"):
        reasons += f" (re-check at {decision['release_at']})"
    return (
        f"{decision['decided_at'][11:19]}  {decision['customer_id']:<18} "
        f"{decision.get('campaign_id') or '-':<21} {decision['channel']:<6} "
        f"{decision['outcome']:<10} {reasons or '-'}"
    )


async def follow(settings: Settings, partitions: int, start: dict[int, int]) -> None:
    """Print every decision written after `start` until cancelled."""
    consumer = AIOKafkaConsumer(
        isolation_level="read_committed",
        enable_auto_commit=False,
        **client_options(settings),
    )
    await consumer.start()
    try:
        assigned = [
            TopicPartition(settings.topic_decisions, p) for p in range(partitions)
        ]
        consumer.assign(assigned)
        for tp in assigned:
            consumer.seek(tp, start.get(tp.partition, 0))
        while True:
            batch = await consumer.getmany(timeout_ms=500)
            lines = [
                orjson.loads(m.value)
                for messages in batch.values()
                for m in messages
                if m.value is not None
            ]
            for decision in sorted(lines, key=lambda d: d["decided_at"]):
                print(decision_line(decision), flush=True)
    finally:
        await consumer.stop()


async def end_offsets(settings: Settings, topic: str) -> tuple[int, dict[int, int]]:
    consumer = AIOKafkaConsumer(**client_options(settings))
    await consumer.start()
    try:
        partitions = sorted(await _partitions(consumer, topic))
        tps = [TopicPartition(topic, p) for p in partitions]
        ends = await consumer.end_offsets(tps)
        return len(partitions), {tp.partition: ends[tp] for tp in tps}
    finally:
        await consumer.stop()


async def _partitions(consumer: AIOKafkaConsumer, topic: str) -> set[int]:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        found = consumer.partitions_for_topic(topic)
        if found:
            return set(found)
        await consumer._client.force_metadata_update()
        await asyncio.sleep(0.2)
    raise RuntimeError(f"topic {topic} does not exist; is a Tact worker running?")


def start_worker(settings: Settings) -> subprocess.Popen[bytes]:
    log_path = Path(settings.data_dir).parent / "worker.log"
    log_path.parent.mkdir(parents=True, exist_ok=True)
    log = log_path.open("ab")
    print(f"demo: starting a worker (log: {_show_path(log_path)})", flush=True)
    return subprocess.Popen(
        [sys.executable, "-m", "app", "worker"],
        stdout=log,
        stderr=subprocess.STDOUT,
        env=os.environ.copy(),
    )


def wait_until_ready(
    settings: Settings, worker: subprocess.Popen[bytes] | None
) -> None:
    url = f"http://{settings.web_host}:{settings.web_port}/readyz"
    deadline = time.monotonic() + READY_TIMEOUT_S
    while time.monotonic() < deadline:
        if worker is not None and worker.poll() is not None:
            raise RuntimeError(f"the worker exited with status {worker.returncode}")
        with (
            contextlib.suppress(OSError),
            urllib.request.urlopen(url, timeout=1) as answer,
        ):
            if answer.status == 200:
                return
        time.sleep(0.5)
    raise RuntimeError(f"no worker became ready at {url} in {READY_TIMEOUT_S}s")


def stop_worker(worker: subprocess.Popen[bytes]) -> None:
    if worker.poll() is None:
        worker.send_signal(signal.SIGTERM)
    try:
        worker.wait(timeout=60)
    except subprocess.TimeoutExpired:
        worker.kill()
        worker.wait()


async def run_demo(
    settings: Settings, story: Path, pace_s: float, wait_s: float
) -> None:
    now = datetime.now(UTC)
    run_tag = now.strftime("r%H%M%S")
    zone = midday_zone(now)
    start = now + timedelta(seconds=1)
    records = rebase(load_story(story), start, pace_s, run_tag, zone)
    partitions, offsets = await end_offsets(settings, settings.topic_decisions)
    print(
        f"demo: playing {len(records)} records of {_show_path(story)} "
        f"(run {run_tag}, customers' time zone {zone})",
        flush=True,
    )
    printer = asyncio.create_task(follow(settings, partitions, offsets))
    try:
        await produce(settings, records)
        print("demo: story sent; decisions keep arriving as held intents come due")
        if wait_s > 0:
            await asyncio.sleep(wait_s)
        else:
            await asyncio.Event().wait()
    finally:
        printer.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await printer


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="tact demo", description=__doc__)
    parser.add_argument("--story", type=Path, default=DEFAULT_STORY)
    parser.add_argument(
        "--pace", type=float, default=0.5, help="seconds between records"
    )
    parser.add_argument(
        "--run-worker",
        action="store_true",
        help="start a worker for the demo and stop it at the end",
    )
    parser.add_argument(
        "--wait",
        type=float,
        default=0,
        help="seconds to keep printing after the story; 0: until Ctrl-C",
    )
    args = parser.parse_args(argv or [])
    settings = Settings.from_env()
    worker = start_worker(settings) if args.run_worker else None
    try:
        wait_until_ready(settings, worker)
        asyncio.run(run_demo(settings, args.story, args.pace, args.wait))
    except KeyboardInterrupt:
        print("\ndemo: stopping", flush=True)
    except RuntimeError as exc:
        print(f"demo: {exc}", file=sys.stderr)
        return 1
    finally:
        if worker is not None:
            stop_worker(worker)
    return 0


def _show_path(path: Path) -> str:
    try:
        return str(path.resolve().relative_to(REPO_ROOT))
    except ValueError:
        return str(path)
