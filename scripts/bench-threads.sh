#!/usr/bin/env bash
# 1 vs 2 Tokio worker threads of the server, WebSocket echo (32 B and 4 KiB,
# 100 connections, 16 in flight), 3 repetitions interleaved; the load
# generator pinned to CPU 1, the server to CPU 0 (1 worker) or CPUs 0-1
# (2 workers). One JSON line per run on stdout (docs/benchmarks.md).
# Needs: cargo build --release -p switchboard-server -p switchboard-bench
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=$PWD/target/release/switchboard
BENCH=$PWD/target/release/switchboard-bench
for rep in 1 2 3; do
  for cfg in "1:0" "2:0,1"; do
    th=${cfg%%:*}; cpus=${cfg#*:}
    port=$((20000 + RANDOM % 20000))
    SWITCHBOARD_WORKER_THREADS=$th SWITCHBOARD_LOG=warn SWITCHBOARD_STOMP__TCP_LISTEN= taskset -c $cpus $BIN serve --listen 127.0.0.1:$port >/dev/null 2>&1 &
    pid=$!
    sleep 0.5
    for size in 32 4096; do
      r=$(taskset -c 1 $BENCH echo --url ws://127.0.0.1:$port/ws/echo --connections 100 --in-flight 16 --size $size --duration 8s --warmup 2s --json)
      echo "{\"rep\":$rep,\"threads\":$th,\"server_cpus\":\"$cpus\",\"size\":$size,\"load\":\"$(cut -d' ' -f1 /proc/loadavg)\",\"report\":$r}"
    done
    kill $pid; wait $pid 2>/dev/null || true
  done
done
