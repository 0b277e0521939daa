#!/usr/bin/env bash
# Runs the benchmark suite: Switchboard vs Node ws, tokio-tungstenite,
# fastwebsockets (and a raw TCP echo ceiling), servers pinned to CPU 0, the
# load generator to CPU 1, 3 repetitions, medians. About 8 minutes.
# Extra arguments go to `switchboard-bench suite` (e.g. --reps 1 --duration 2s).
# Results: stdout, target/bench/results.md and target/bench/results.jsonl.
set -euo pipefail
cd "$(dirname "$0")/../.."
cargo build --release -p switchboard-bench
[ -x target/release/switchboard ] || cargo build --release -p switchboard-server
(cd crates/switchboard-bench/node && npm ci --no-audit --no-fund --loglevel=error)
mkdir -p target/bench
exec target/release/switchboard-bench suite \
  --out target/bench/results.md --json-out target/bench/results.jsonl "$@"
