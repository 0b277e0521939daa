#!/usr/bin/env bash
# Runs the Switchboard server with the chat page on http://127.0.0.1:8080/
# (or where --listen says). Installs the chat page's browser client libraries
# from npm by lockfile first, so the binary embeds them. Extra arguments go to
# `switchboard serve` (e.g. --listen 0.0.0.0:8080 --config switchboard.toml).
set -euo pipefail
cd "$(dirname "$0")/.."
if command -v npm >/dev/null 2>&1; then
  (cd crates/switchboard-server/web && npm ci --no-audit --no-fund --loglevel=error)
else
  echo "npm not found: the chat page will offer raw WebSocket only" >&2
fi
exec cargo run --release --locked -p switchboard-server --bin switchboard -- serve "$@"
