"""The bench's results as JSON (for diffs) and as a markdown table (to read)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson

RESULTS = Path(__file__).with_name("results")
KIB = 1024
MIB = KIB * KIB

# Targets are reported against, never asserted.
TARGET_ENGINE_RATIO = 0.5
TARGET_E2E_RATIO = 0.5
TARGET_P99_MS_AT_HALF = 50.0
TARGET_STATE_BYTES = KIB
TARGET_RECOVERY_S_PER_MILLION = 60.0


def write(results: dict[str, Any]) -> tuple[Path, Path]:
    """Write latest.json, latest.md and latest.png (latest-quick.* for a quick
    run, so a quick check never overwrites the committed full results)."""
    RESULTS.mkdir(parents=True, exist_ok=True)
    stem = "latest" if results["mode"] == "full" else "latest-quick"
    json_path = RESULTS / f"{stem}.json"
    md_path = RESULTS / f"{stem}.md"
    json_path.write_bytes(
        orjson.dumps(results, option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS) + b"\n"
    )
    md_path.write_text(markdown(results))
    if results.get("kafka"):
        plot(results["kafka"], RESULTS / f"{stem}.png")
    return json_path, md_path


def plot(kafka: dict[str, Any], path: Path) -> None:
    """Throughput against the baseline, and latency against offered load."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, (left, right) = plt.subplots(1, 2, figsize=(11, 4.2))
    names = [
        "aiokafka\npass-through",
        "Faust with\na table",
        "Tact,\none worker",
        "Tact,\ntwo workers",
    ]
    rates = [
        kafka["baseline"]["records_per_s"],
        kafka.get("faust", {}).get("records_per_s") or 0.0,
        kafka["tact"]["records_per_s"],
        kafka["scaling"].get("records_per_s") or 0.0,
    ]
    left.bar(names, rates, color=["#888888", "#b7b7b7", "#2b6cb0", "#63b3ed"])
    left.set_ylabel("records per second")
    left.set_title("Throughput, draining a backlog")
    left.tick_params(axis="x", labelsize=8)
    loads = kafka["latency"]
    offered = [row["offered_per_s"] for row in loads]
    for key, label in (("p50_ms", "p50"), ("p99_ms", "p99"), ("p999_ms", "p99.9")):
        right.plot(offered, [row[key] for row in loads], marker="o", label=label)
    right.axhline(
        TARGET_P99_MS_AT_HALF,
        color="#c53030",
        linestyle="--",
        linewidth=1,
        label="p99 target",
    )
    right.set_yscale("log")
    right.set_xlabel("offered intents per second")
    right.set_ylabel("produce to read_committed visible (ms)")
    right.set_title(
        f"Latency, {kafka['processing_guarantee']}, "
        f"commit every {kafka['commit_interval_s']:g} s"
    )
    right.legend()
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)


def markdown(results: dict[str, Any]) -> str:
    machine = results["machine"]
    lines = [
        "# Tact benchmark",
        "",
        f"Run `{results['mode']}` at {results['started_at']} on "
        f"{machine['cpus']} CPUs, "
        f"{machine['memory_gib']:.0f} GiB, Python {machine['python']}, "
        f"load average {machine['load_average']} at the start. The machine is "
        "shared, so every figure is compared with a baseline measured in the "
        "same run.",
        "",
        "| measure | Tact | baseline | ratio | target | met |",
        "|---|---|---|---|---|---|",
    ]
    engine = results.get("engine")
    if engine:
        ratio = engine["ratio_median"]
        lines.append(
            _row(
                f"engine: `tact replay`, {engine['records']:,} records over "
                f"{engine['customers']:,} customers "
                f"(median of {len(engine['rounds'])} rounds)",
                f"{engine['replay_records_per_s']:,.0f} records/s",
                f"{engine['passthrough_records_per_s']:,.0f} records/s "
                "(orjson line pass-through)",
                f"{ratio:.3f}",
                f"≥ {TARGET_ENGINE_RATIO}",
                ratio >= TARGET_ENGINE_RATIO,
            )
        )
    kafka = results.get("kafka")
    if kafka:
        tact, base = kafka["tact"], kafka["baseline"]
        lines.append(
            _row(
                f"end to end: one worker, {kafka['processing_guarantee']}, "
                f"commit interval {kafka['commit_interval_s']:g} s, "
                f"{kafka['records']:,} records over {kafka['customers']:,} customers",
                f"{tact['records_per_s']:,.0f} records/s",
                f"{base['records_per_s']:,.0f} records/s (aiokafka pass-through)",
                f"{tact['ratio_to_baseline']:.3f}",
                f"≥ {TARGET_E2E_RATIO}",
                tact["ratio_to_baseline"] >= TARGET_E2E_RATIO,
            )
        )
        faust = kafka.get("faust")
        if faust:
            lines.append(
                _row(
                    "Faust pass-through: one Faust worker that writes each "
                    "record to a RocksDB table and sends it on unchanged, same "
                    "guarantee and commit interval",
                    f"{faust['records_per_s']:,.0f} records/s",
                    f"{base['records_per_s']:,.0f} records/s (aiokafka pass-through)",
                    f"{faust['ratio_to_baseline']:.3f}",
                    "",
                    None,
                )
            )
            lines.append(
                _row(
                    "Tact against the Faust pass-through",
                    f"{tact['records_per_s']:,.0f} records/s",
                    f"{faust['records_per_s']:,.0f} records/s (Faust pass-through)",
                    f"{tact['ratio_to_faust']:.3f}",
                    "",
                    None,
                )
            )
        for load in kafka["latency"]:
            p99 = load["p99_ms"]
            is_half = load["share_of_max"] == 0.5
            lines.append(
                _row(
                    f"latency at {load['share_of_max']:.0%} of max "
                    f"({load['offered_per_s']:,.0f}/s offered, "
                    f"{load['approved_seen']}/{load['sent']} seen)",
                    f"p50 {_ms(load['p50_ms'])}, p99 {_ms(p99)}, "
                    f"p99.9 {_ms(load['p999_ms'])}",
                    "",
                    "",
                    f"p99 ≤ {TARGET_P99_MS_AT_HALF:.0f} ms" if is_half else "",
                    (p99 is not None and p99 <= TARGET_P99_MS_AT_HALF)
                    if is_half
                    else None,
                )
            )
        state = kafka["state"]
        typical = state["encoded_bytes_p50"]
        lines.append(
            _row(
                f"encoded state per customer ({state['customers']:,} customers)",
                f"p50 {typical} B, p99 {state['encoded_bytes_p99']} B, "
                f"mean {state['encoded_bytes_mean']:.0f} B",
                "",
                "",
                f"≤ {TARGET_STATE_BYTES} B typical",
                typical is not None and typical <= TARGET_STATE_BYTES,
            )
        )
        customers = max(state["customers"], 1)
        lines.append(
            _row(
                "RocksDB on disk, worker RSS",
                f"{state['rocksdb_bytes'] / customers:,.0f} B/customer on disk "
                f"({state['rocksdb_bytes'] / MIB:,.1f} MiB), RSS "
                f"{_mib(state['worker_rss_bytes'])}",
                "",
                "",
                "",
                None,
            )
        )
        recovery = kafka["recovery"]
        empty_s = recovery["empty_start_seconds"]
        lines.append(
            _row(
                f"recovery of the bench's {customers:,} customers into an empty "
                "folder (start to ready, less a start with no table)",
                f"{recovery['recovery_seconds']:.1f} s "
                f"({_reported(recovery)}; RSS after "
                f"{_mib(recovery['worker_rss_bytes'])})",
                f"{empty_s:.1f} s (start with no table)",
                f"{recovery['seconds_to_ready'] / empty_s:.2f}",
                "",
                None,
            )
        )
        scale = kafka.get("recovery_at_scale")
        if scale:
            per_million = scale["recovery_seconds_per_million"]
            lines.append(
                _row(
                    f"recovery of {scale['customers']:,} customers into an empty "
                    "folder (the bench's states under new ids)",
                    f"{scale['recovery_seconds']:.1f} s ({_reported(scale)}); "
                    f"{scale['rocksdb_bytes'] / scale['customers']:,.0f} "
                    f"B/customer on disk, RSS after {_mib(scale['worker_rss_bytes'])}",
                    f"{empty_s:.1f} s (start with no table)",
                    f"{scale['seconds_to_ready'] / empty_s:.2f}",
                    f"≤ {TARGET_RECOVERY_S_PER_MILLION:.0f} s per million",
                    per_million <= TARGET_RECOVERY_S_PER_MILLION,
                )
            )
        scaling = kafka["scaling"]
        two = scaling["records_per_s"]
        lines.append(
            _row(
                "scaling: two workers against one, same partitions",
                "a worker crashed (see latest.json)"
                if two is None
                else f"{two:,.0f} records/s",
                f"{scaling['one_worker_records_per_s']:,.0f} records/s (one worker)",
                "-" if two is None else f"{scaling['ratio_two_to_one']:.2f}",
                "",
                None,
            )
        )
    notes = list(results.get("notes", ()))
    if kafka:
        notes.append(
            "State, RSS and recovery count the customers of the latency runs "
            "too: each of those has one approved service email."
        )
        notes.append(
            "Throughput is the slope of the consumer group's committed offsets "
            "between 10% and 90% of the input, draining a backlog."
        )
    if notes:
        lines.extend(["", *(f"- {note}" for note in notes)])
    return "\n".join(lines) + "\n"


def _reported(recovery: dict[str, Any]) -> str:
    reported = recovery.get("reported_recovery_seconds")
    if reported is None:
        return "no figure from the worker"
    return f"{reported:.1f} s by the worker's own metric"


def _row(
    what: str, tact: str, base: str, ratio: str, target: str, met: bool | None
) -> str:
    mark = "" if met is None else ("yes" if met else "**no**")
    return f"| {what} | {tact} | {base} | {ratio} | {target} | {mark} |"


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.0f} ms"


def _mib(value: int | None) -> str:
    return "-" if value is None else f"{value / MIB:,.0f} MiB"
