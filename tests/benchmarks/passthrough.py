"""The engine's baseline: parse each replay line with orjson, write its value.

Run as its own process (`python -m tests.benchmarks.passthrough FILE`), it is
the least any line-by-line JSON processor in Python must do, and so the
yardstick for `tact replay` on the same file.
"""

from __future__ import annotations

import sys

import orjson


def main(path: str) -> int:
    out = sys.stdout.buffer
    with open(path, "rb") as lines:
        for raw in lines:
            out.write(orjson.dumps(orjson.loads(raw)["value"]) + b"\n")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
