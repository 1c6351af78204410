#!/usr/bin/env bash
# Local single-node Apache Kafka (KRaft, combined broker and controller).
#
#   kafka.sh fetch   resolve the broker's jars with Maven into the cache folder
#   kafka.sh up      format storage if needed, start in the background, wait until ready
#   kafka.sh down    stop exactly the process `up` started, by its pid
#   kafka.sh status  say whether it runs
#
# Settings (environment):
#   TACT_KAFKA_HOST             listen address             (127.0.0.1)
#   TACT_KAFKA_PORT             client port                (9092)
#   TACT_KAFKA_CONTROLLER_PORT  KRaft controller port      (client port + 1)
#   TACT_KAFKA_DATA             storage, pid and log dir   (<repo>/var/kafka/<port>)
#   TACT_KAFKA_HEAP             JVM heap                   (512m)
#   TACT_KAFKA_START_TIMEOUT    seconds to wait for ready  (90)
#   TACT_KAFKA_EXTRA_CONFIG     file appended to server.properties, e.g. TLS and
#                               SASL listeners (a repeated key overrides)
#   TACT_KAFKA_FORMAT_ARGS      extra storage format arguments, e.g. --add-scram
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/../.." && pwd)

version=$(sed -n 's:.*<kafka.version>\(.*\)</kafka.version>.*:\1:p' "$here/pom.xml")
libs="$repo/.cache/kafka/$version/libs"
host=${TACT_KAFKA_HOST:-127.0.0.1}
port=${TACT_KAFKA_PORT:-9092}
controller_port=${TACT_KAFKA_CONTROLLER_PORT:-$((port + 1))}
data=${TACT_KAFKA_DATA:-$repo/var/kafka/$port}
heap=${TACT_KAFKA_HEAP:-512m}
start_timeout=${TACT_KAFKA_START_TIMEOUT:-90}
extra_config=${TACT_KAFKA_EXTRA_CONFIG:-}
format_args=${TACT_KAFKA_FORMAT_ARGS:-}
pid_file="$data/kafka.pid"
log_file="$data/log/server.log"

die() { echo "kafka: $*" >&2; exit 1; }

require_tools() {
    command -v java >/dev/null 2>&1 ||
        die "java not found: install a Java 17+ runtime (Debian: apt-get install openjdk-17-jre-headless)"
    local major
    major=$(java -XshowSettings:properties -version 2>&1 |
        sed -n 's/^ *java.specification.version = \([0-9]*\).*/\1/p')
    [ "${major:-0}" -ge 17 ] ||
        die "java ${major:-unknown} is too old: Kafka $version needs Java 17+"
}

fetch() {
    require_tools
    [ -f "$libs/.complete" ] && return 0
    command -v mvn >/dev/null 2>&1 ||
        die "mvn not found: install Maven 3.8+ (Debian: apt-get install maven)"
    echo "kafka: resolving Apache Kafka $version into ${libs#"$repo"/}"
    rm -rf "$libs"
    mvn --batch-mode --quiet -Dstyle.color=never -f "$here/pom.xml" dependency:copy-dependencies \
        -DincludeScope=runtime -DoutputDirectory="$libs" ||
        die "could not resolve Kafka $version with Maven (see the output above)"
    touch "$libs/.complete"
}

is_running() {
    [ -f "$pid_file" ] && kill -0 "$(cat "$pid_file")" 2>/dev/null
}

port_open() {
    (exec 3<>"/dev/tcp/$host/$port") 2>/dev/null
}

render_config() {
    mkdir -p "$data/logs" "$data/log"
    sed -e "s|@HOST@|$host|g" -e "s|@PORT@|$port|g" \
        -e "s|@CONTROLLER_PORT@|$controller_port|g" -e "s|@DATA_DIR@|$data|g" \
        "$here/server.properties.in" >"$data/server.properties"
    if [ -n "$extra_config" ]; then
        cat "$extra_config" >>"$data/server.properties"
    fi
}

java_command() {
    java_cmd=(java "-Xms$heap" "-Xmx$heap" -XX:+UseG1GC -XX:MaxGCPauseMillis=20
        -Djava.awt.headless=true
        "-Dkafka.logs.dir=$data/log"
        "-Dlog4j2.configurationFile=$here/log4j2.properties"
        -cp "$libs/*")
}

up() {
    fetch
    if is_running; then
        echo "kafka: already running on $host:$port (pid $(cat "$pid_file"))"
        return 0
    fi
    if port_open; then
        die "$host:$port is already taken by another process; set TACT_KAFKA_PORT"
    fi
    render_config
    java_command
    if [ ! -f "$data/logs/meta.properties" ]; then
        local cluster_id
        cluster_id=$("${java_cmd[@]}" kafka.tools.StorageTool random-uuid)
        # shellcheck disable=SC2086  # format_args holds several words on purpose
        "${java_cmd[@]}" kafka.tools.StorageTool format --standalone \
            --cluster-id "$cluster_id" --config "$data/server.properties" \
            $format_args >/dev/null
    fi
    : >"$log_file"
    nohup "${java_cmd[@]}" kafka.Kafka "$data/server.properties" \
        >"$data/log/stdout.log" 2>&1 </dev/null &
    echo $! >"$pid_file"

    local waited=0
    until port_open && grep -q "Kafka Server started" "$log_file" 2>/dev/null; do
        if ! is_running; then
            tail -n 30 "$log_file" "$data/log/stdout.log" >&2 || true
            rm -f "$pid_file"
            die "the broker exited during start-up (log: $log_file)"
        fi
        if [ "$waited" -ge $((start_timeout * 5)) ]; then
            down
            die "the broker did not become ready within ${start_timeout}s (log: $log_file)"
        fi
        sleep 0.2
        waited=$((waited + 1))
    done
    echo "kafka: Apache Kafka $version ready on $host:$port (pid $(cat "$pid_file"), log ${log_file#"$repo"/})"
}

down() {
    if ! is_running; then
        rm -f "$pid_file"
        echo "kafka: not running on $host:$port"
        return 0
    fi
    local pid
    pid=$(cat "$pid_file")
    kill -TERM "$pid"
    for _ in $(seq 1 150); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.2
    done
    if kill -0 "$pid" 2>/dev/null; then
        echo "kafka: pid $pid ignored SIGTERM for 30s; killing it" >&2
        kill -KILL "$pid" 2>/dev/null || true
    fi
    rm -f "$pid_file"
    echo "kafka: stopped (pid $pid)"
}

status() {
    if is_running; then
        echo "kafka: running on $host:$port (pid $(cat "$pid_file"))"
    else
        echo "kafka: not running on $host:$port"
        return 3
    fi
}

case "${1:-}" in
    fetch) fetch ;;
    up) up ;;
    down) down ;;
    status) status ;;
    *) echo "usage: $0 {fetch|up|down|status}" >&2; exit 2 ;;
esac
