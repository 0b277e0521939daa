#!/usr/bin/env bash
# Leak check (issue 7, "Leaks"): for every protocol and transport, a fresh
# server (pinned to CPU 0) gets N connections (default 19,000) opened and
# closed CYCLES times (default 10) by the load generator (CPU 1); its RSS is
# read after each opening and each closing. The baseline is read after a
# warm-up (WARMUP connections, default 1,000, opened and closed; the fresh
# process' RSS is in the report too). One JSON line per protocol on stdout
# (docs/benchmarks.md, "Leaks").
#   scripts/bench-leak.sh [N] [CYCLES] [PROTO...]
# Needs: cargo build --release -p switchboard-server -p switchboard-bench
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${SWITCHBOARD_BIN:-$PWD/target/release/switchboard}
BENCH=${SWITCHBOARD_BENCH:-$PWD/target/release/switchboard-bench}
N=${1:-19000}
CYCLES=${2:-10}
shift 2 || true
PROTOS=("$@")
((${#PROTOS[@]})) || PROTOS=(ws ws-envelope sio sockjs-ws sockjs-xhr stomp)
for proto in "${PROTOS[@]}"; do
  # Below the ephemeral range (32768+): a port a closed connection of the
  # previous protocol still holds (TIME_WAIT) would refuse the listener.
  port=$((20000 + RANDOM % 12000))
  # One shorter disconnect delay for SockJS xhr-streaming sessions, whose
  # connection closes before the session does.
  SWITCHBOARD_LOG=warn SWITCHBOARD_STOMP__TCP_LISTEN= SWITCHBOARD_SOCKJS__DISCONNECT_DELAY_MS=1000 \
    taskset -c 0 "$BIN" serve --listen 127.0.0.1:$port >/dev/null 2>&1 &
  pid=$!
  sleep 0.5
  case $proto in
    ws) args=(--proto ws --url ws://127.0.0.1:$port/ws/echo) ;;
    ws-envelope) args=(--proto ws --url ws://127.0.0.1:$port/ws) ;;
    sio) args=(--proto sio --url "ws://127.0.0.1:$port/socket.io/") ;;
    sockjs-ws) args=(--proto sockjs-ws --url ws://127.0.0.1:$port/sockjs/echo) ;;
    sockjs-xhr) args=(--proto sockjs-xhr --url http://127.0.0.1:$port/sockjs/echo) ;;
    stomp) args=(--proto stomp --url ws://127.0.0.1:$port/stomp) ;;
    *) echo "unknown protocol $proto" >&2; exit 2 ;;
  esac
  r=$(taskset -c 1 "$BENCH" idle "${args[@]}" --server-pid $pid --connections "$N" \
    --cycles "$CYCLES" --warmup "${WARMUP:-1000}" --source-ips 16 --closed-settle 10s --json)
  echo "{\"proto\":\"$proto\",\"load\":\"$(cut -d' ' -f1 /proc/loadavg)\",\"report\":$r}"
  kill $pid; wait $pid 2>/dev/null || true
done
