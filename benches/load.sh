#!/usr/bin/env bash
# Load benchmark for the webhook intake: 20,000 Alertmanager posts at concurrency 64 on
# loopback, with wrk, against a release build of `aegisir serve`.
#
# Reports requests per second, p50 and p99 reply latency, captures started, the events
# journal's line count against the posts sent, and the server's resident memory before and
# after. The posts cycle through a few distinct groups, so the expected capture count is the
# group count and every other post is a duplicate. No Slack URL is set: nothing leaves the
# machine.
#
# Usage: benches/load.sh
# REQUESTS, CONNECTIONS, THREADS and GROUP_COUNT override the defaults. Needs wrk and curl
# (Debian packages of those names; installed when missing and running as root).
set -euo pipefail

cd "$(dirname "$0")/.."

requests=${REQUESTS:-20000}
connections=${CONNECTIONS:-64}
threads=${THREADS:-2}
groups=${GROUP_COUNT:-4}
# The upper bound of one run; the script ends wrk as soon as every post got its reply.
max_duration=${MAX_DURATION:-120s}

if ! command -v wrk >/dev/null || ! command -v curl >/dev/null; then
    if [ "$(id -u)" -ne 0 ]; then
        echo "error: wrk or curl is missing; install them with: sudo apt-get install -y wrk curl" >&2
        exit 2
    fi
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk curl >/dev/null
fi

cargo build --release --bin aegisir

work_dir=$(mktemp -d)
server_pid=
cleanup() {
    if [ -n "$server_pid" ]; then
        kill "$server_pid" 2>/dev/null || true
        wait "$server_pid" 2>/dev/null || true
    fi
    rm -rf "$work_dir"
}
trap cleanup EXIT

port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
data_dir="$work_dir/logs"
base_url="http://127.0.0.1:$port"

# Reads the server's resident memory in kB from /proc/PID/status.
rss_kb() {
    awk '/^VmRSS:/ { print $2 }' "/proc/$server_pid/status"
}

# Prints the sum of a metric's samples from /metrics (0 when absent).
metric_sum() {
    curl -fsS "$base_url/metrics" | awk -v name="$1" '
        $1 == name || index($1, name "{") == 1 { sum += $2 }
        END { printf "%d\n", sum }'
}

# `env` replaces itself with the server, so $! is the server's pid.
env -C "$work_dir" -u SLACK_WEBHOOK_URL -u AEGISIR_AUTH_TOKEN RUST_LOG=warn \
    "$PWD/target/release/aegisir" serve --listen "127.0.0.1:$port" --data-dir "$data_dir" \
    >"$work_dir/server.log" 2>&1 &
server_pid=$!

for _ in $(seq 100); do
    if curl -fsS "$base_url/readyz" >/dev/null 2>&1; then
        break
    fi
    sleep 0.1
done
curl -fsS "$base_url/readyz" >/dev/null || { cat "$work_dir/server.log"; exit 1; }

rss_before=$(rss_kb)

journal="$data_dir/.aegisir/events.jsonl"

# Prints the number of notifications in the journal: every line except finished captures.
journal_notifications() {
    local lines captures
    lines=$(wc -l <"$journal" 2>/dev/null || echo 0)
    captures=$(grep -c '"outcome":"captured"' "$journal" 2>/dev/null || true)
    echo $((lines - ${captures:-0}))
}

echo "wrk: $requests posts, $connections connections, $threads threads, $groups groups"
AEGISIR_LOAD_REQUESTS=$requests AEGISIR_LOAD_THREADS=$threads AEGISIR_LOAD_GROUPS=$groups \
    AEGISIR_LOAD_BODY=fixtures/alertmanager/high_cpu_firing.json \
    wrk --threads "$threads" --connections "$connections" --duration "$max_duration" \
    --timeout 5s --script benches/load.lua "$base_url/alert" >"$work_dir/wrk.txt" &
wrk_pid=$!

# wrk sleeps for its whole --duration even when every thread is idle, so end it with
# SIGINT once the journal has every post or has stopped growing for two seconds.
previous=-1
unchanged=0
while kill -0 "$wrk_pid" 2>/dev/null; do
    sleep 0.2
    current=$(journal_notifications)
    if [ "$current" -ge "$requests" ]; then
        break
    fi
    if [ "$current" -eq "$previous" ] && [ "$current" -gt 0 ]; then
        unchanged=$((unchanged + 1))
        if [ "$unchanged" -ge 10 ]; then
            break
        fi
    else
        unchanged=0
    fi
    previous=$current
done
sleep 0.2
kill -INT "$wrk_pid" 2>/dev/null || true
wait "$wrk_pid"
cat "$work_dir/wrk.txt"
rss_after_load=$(rss_kb)

# Let the queued captures finish before counting them.
for _ in $(seq 120); do
    if [ "$(metric_sum aegisir_capture_queue_depth)" -eq 0 ] \
        && [ "$(find "$data_dir" -mindepth 1 -maxdepth 1 -name '.tmp-*' | wc -l)" -eq 0 ]; then
        break
    fi
    sleep 0.5
done
sleep 2
rss_after_captures=$(rss_kb)

posts_answered=$(awk '$1 == "posts_answered" { print $2 }' "$work_dir/wrk.txt")
journal_lines=$(wc -l <"$journal")
bundles=$(find "$data_dir" -mindepth 1 -maxdepth 1 -type d -not -name '.*' | wc -l)

echo
echo "captures started (bundles): $bundles (distinct groups: $groups)"
echo "captures by result (metric): $(metric_sum aegisir_captures_total)"
echo "journal lines: $journal_lines, of which notifications: $(journal_notifications) (posts answered: $posts_answered)"
echo "RSS before: ${rss_before} kB, after load: ${rss_after_load} kB, after captures: ${rss_after_captures} kB"
