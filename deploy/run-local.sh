#!/usr/bin/env bash
# `make run`: the local Kafka (unless one already runs), a Tact worker on local
# RocksDB under var/, and the motivating story played through them. Ctrl-C
# stops the worker and, if this script started it, the broker.
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/.." && pwd)
kafka="$here/kafka/kafka.sh"

started_kafka=no
cleanup() {
    if [ "$started_kafka" = yes ]; then
        "$kafka" down
    fi
}
trap cleanup EXIT
trap 'exit 0' INT TERM

if ! "$kafka" status >/dev/null 2>&1; then
    "$kafka" up
    started_kafka=yes
fi
echo "run: Ctrl-C stops the demo, the worker and the broker it started"
"$repo/.venv/bin/tact" demo --run-worker "$@"
