#!/usr/bin/env bash
# Same-run A/B of two Socket.IO servers (e.g. `sio-switchboard` built from two
# commits): Socket.IO echo, 100 connections, IN_FLIGHT (16) acked events in
# flight each, alternating NEW and OLD for REPS (3) pairs; server on CPU 0,
# load generator on CPU 1. Prints one line per run (docs/benchmarks.md).
#   scripts/bench-ab-sio.sh NEW_BIN OLD_BIN
# Build the old one apart, e.g.:
#   git worktree add /tmp/old COMMIT && (cd /tmp/old && CARGO_TARGET_DIR=$PWD/../main/target/h-old \
#     cargo build --release -p switchboard-bench --bin sio-switchboard)
set -euo pipefail
cd "$(dirname "$0")/.."
NEW=$1
OLD=$2
BENCH=${SWITCHBOARD_BENCH:-$PWD/target/release/switchboard-bench}
for rep in $(seq 1 "${REPS:-3}"); do
  for which in new old; do
    bin=$NEW
    [ "$which" = old ] && bin=$OLD
    port=$((30000 + RANDOM % 10000))
    taskset -c 0 "$bin" --listen 127.0.0.1:$port >/dev/null 2>&1 &
    pid=$!
    sleep 0.5
    r=$(taskset -c 1 "$BENCH" sio-echo --url "ws://127.0.0.1:$port/socket.io/" --connections 100 \
      --in-flight "${IN_FLIGHT:-16}" --duration 8s --warmup 2s 2>&1 | tail -1)
    echo "rep $rep $which: $r"
    kill $pid
    wait $pid 2>/dev/null || true
  done
done
