"""The `tact` command: replay, policy check, and the worker and demo entry points."""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from app.engine import replay
from app.engine.policy import Policy, load_policy
from app.errors import PolicyError

logger = logging.getLogger(__name__)

EXIT_OK = 0
EXIT_FAILURE = 1
EXIT_USAGE = 2
_DELEGATES = {
    "worker": (
        "app.streams.worker",
        "run the Faust worker (extra arguments pass through)",
    ),
    "demo": (
        "app.streams.demo",
        "run the demo against local Kafka (extra arguments pass through)",
    ),
}


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the `tact` console script; returns the exit status."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] in _DELEGATES:
        # The delegate parses its own options; argparse would reject them here.
        return _delegate(argparse.Namespace(command=argv[0], extra=argv[1:]))
    parser = _parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.WARNING if not args.verbose else logging.DEBUG,
        format="%(levelname)s %(name)s %(message)s",
        stream=sys.stderr,
    )
    handler: Callable[[argparse.Namespace], int] = args.handler
    return handler(args)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="tact",
        description="Suppress notifications a customer no longer should get.",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    replay_parser = commands.add_parser(
        "replay", help="decide a JSON-lines file of records offline, no Kafka"
    )
    replay_parser.add_argument("--policy", required=True, type=Path, help="policy file")
    replay_parser.add_argument(
        "file", type=Path, help="records, one JSON object a line"
    )
    replay_parser.add_argument(
        "--dead-letters",
        type=Path,
        help="write rejected lines here (JSON lines); default: warn on stderr",
    )
    replay_parser.add_argument(
        "--format", choices=("jsonl", "table"), default="jsonl", help="output format"
    )
    replay_parser.set_defaults(handler=_replay)

    policy_parser = commands.add_parser("policy", help="work with policy files")
    policy_commands = policy_parser.add_subparsers(
        dest="policy_command", required=True, metavar="COMMAND"
    )
    check_parser = policy_commands.add_parser(
        "check", help="validate a policy and summarise it"
    )
    check_parser.add_argument("file", type=Path, help="policy file")
    check_parser.set_defaults(handler=_policy_check)

    for name, (_, help_text) in _DELEGATES.items():
        delegate = commands.add_parser(name, help=help_text, add_help=False)
        delegate.add_argument("extra", nargs=argparse.REMAINDER)
        delegate.set_defaults(handler=_delegate)
    return parser


def _replay(args: argparse.Namespace) -> int:
    policy = _load_policy_or_report(args.policy)
    if policy is None:
        return EXIT_USAGE
    try:
        source = args.file.open("rb")
    except OSError as exc:
        print(f"tact replay: cannot read {args.file}: {exc.strerror}", file=sys.stderr)
        return EXIT_USAGE
    dead_letters = None
    if args.dead_letters is not None:
        try:
            dead_letters = args.dead_letters.open("wb")
        except OSError as exc:
            source.close()
            print(
                f"tact replay: cannot write {args.dead_letters}: {exc.strerror}",
                file=sys.stderr,
            )
            return EXIT_USAGE
    try:
        with source:
            summary = replay.run(
                policy,
                source,
                str(args.file),
                sys.stdout.buffer,
                dead_letters,
                table=args.format == "table",
            )
    finally:
        if dead_letters is not None:
            dead_letters.close()
    sys.stdout.flush()
    print(summary, file=sys.stderr)
    return EXIT_OK


def _policy_check(args: argparse.Namespace) -> int:
    policy = _load_policy_or_report(args.file)
    if policy is None:
        return EXIT_USAGE
    print(f"{policy.name} ({policy.version}) is valid")
    for line in policy.rules_in_force():
        print(f"  {line}")
    return EXIT_OK


def _load_policy_or_report(path: Path) -> Policy | None:
    try:
        return load_policy(path)
    except PolicyError as exc:
        print(exc, file=sys.stderr)
        return None


def _delegate(args: argparse.Namespace) -> int:
    module_name, _ = _DELEGATES[args.command]
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        print(
            f"tact {args.command}: cannot import {module_name} ({exc}); "
            "is the streaming layer installed?",
            file=sys.stderr,
        )
        return EXIT_FAILURE
    entry = getattr(module, "main", None)
    if entry is None:
        print(f"tact {args.command}: {module_name} has no main()", file=sys.stderr)
        return EXIT_FAILURE
    result = entry(list(args.extra))
    return result if isinstance(result, int) else EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
