#!/usr/bin/env bash
# Runs every test of Switchboard on a fresh machine of this kind, installing
# what the tests need first: Chromium and redis-server (Debian; the tests
# start their own redis-server on free ports), kosoku (PyPI, in a virtualenv),
# the Node test clients (npm, from the lockfile). Steps:
#   1. cargo tests (unit, integration, doc) of the whole workspace
#   2. the fuzz targets of every parser, 15 s each (scripts/fuzz.sh), and the
#      Autobahn TestSuite server cases via kosoku against /ws/echo
#   3. Python interop tests with stomp.py (PyPI)
#   4. Node interop tests with the real npm clients (ws, socket.io-client,
#      sockjs-client, @stomp/stompjs), and the headless Chromium tests of the
#      chat page
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD

step() { printf '\n==== %s (at %d s) ====\n' "$*" "$SECONDS"; }

step "install: system packages"
need_apt=()
command -v chromium >/dev/null 2>&1 || need_apt+=(chromium)
command -v redis-server >/dev/null 2>&1 || need_apt+=(redis-server)
if ((${#need_apt[@]})); then
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq "${need_apt[@]}" >/dev/null
fi
chromium --version
redis-server --version

step "install: kosoku and stomp.py (virtualenv)"
VENV=$ROOT/target/venv
[ -x "$VENV/bin/python" ] || python3 -m venv "$VENV"
"$VENV/bin/pip" install -q --disable-pip-version-check \
  -r tests/autobahn/requirements.txt -r tests/python/requirements.txt

step "install: node packages (lockfile)"
(cd tests/node && npm ci --no-audit --no-fund --loglevel=error)
# The chat page's browser client libraries, embedded by the server's build.
(cd crates/switchboard-server/web && npm ci --no-audit --no-fund --loglevel=error)

# The `ci` profile (Cargo.toml): release optimizations without LTO or debug
# info, one set of artifacts for the build and the test steps.
step "build"
cargo build --profile ci --locked --workspace --bins --examples
BIN=$ROOT/target/ci/switchboard
EXAMPLES=$ROOT/target/ci/examples

step "cargo test"
cargo test --profile ci --locked --workspace

step "fuzz (every parser's target, 15 s each, from its seed corpus)"
scripts/fuzz.sh 15

step "autobahn (kosoku)"
python3 tests/autobahn/run.py "$BIN" "$VENV/bin/kosoku" "$ROOT/target/autobahn"

step "python interop tests (stomp.py over TCP and WebSocket)"
SWITCHBOARD_BIN="$BIN" "$VENV/bin/python" -m unittest -v tests/python/test_stomp.py

step "node interop and browser tests"
(cd tests/node && SWITCHBOARD_BIN="$BIN" \
  SOCKETIO_PROTOCOL_SERVER_BIN="$EXAMPLES/socketio_protocol_server" \
  SOCKETIO_CHAT_BIN="$EXAMPLES/chat" \
  CHROMIUM_PATH="$(command -v chromium)" node --test --test-concurrency=1)

step "all tests passed"
