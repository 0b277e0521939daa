#!/usr/bin/env bash
# Builds the libFuzzer targets of fuzz/ with the STABLE toolchain (no
# nightly, no cargo-fuzz: plain `cargo build` with the sanitizer-coverage
# flags cargo-fuzz would pass, minus its nightly-only sanitizer flag) and
# runs each target for a bounded time from its seed corpus.
#
#   scripts/fuzz.sh [SECONDS_PER_TARGET] [TARGET...]
#
# SECONDS_PER_TARGET defaults to 15; TARGETs default to all of them.
# The seeds of fuzz/corpus/<target>/ are copied to a scratch corpus under
# target/fuzz/<target>/ (the repository is not modified; the scratch corpus
# keeps growing across runs on the same machine). FUZZ_JOBS targets run at
# once (default: the number of cores).
#
# A crash (panic, failed invariant, timeout, out-of-memory) makes the
# script exit non-zero and print the crashing input's path. Reproduce it
# with:  fuzz/target/<host>/release/<target> <input>
# and make it a regression test in the crate it crashed.
#
# Long runs by hand, e.g. an hour per target, all cores:
#   scripts/fuzz.sh 3600
# or one target with several libFuzzer workers:
#   scripts/fuzz.sh 0 stomp_frames   # build only (0 s), then:
#   fuzz/target/*/release/stomp_frames -jobs=2 -workers=2 target/fuzz/stomp_frames/corpus
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD

SECS=${1:-15}
shift || true
ALL_TARGETS=(
  websocket_frames websocket_handshake
  engineio_packet engineio_session
  socketio_packet
  sockjs_frames sockjs_session
  stomp_frames stomp_session
)
if (($#)); then TARGETS=("$@"); else TARGETS=("${ALL_TARGETS[@]}"); fi
JOBS=${FUZZ_JOBS:-$(nproc)}

HOST=$(rustc -vV | sed -n 's/^host: //p')
export CARGO_TARGET_DIR=$ROOT/fuzz/target
# What `cargo fuzz build --sanitizer none` passes, all stable rustc flags.
# `--target` keeps them off build scripts and proc macros.
FUZZ_RUSTFLAGS="--cfg fuzzing -Cpasses=sancov-module \
-Cllvm-args=-sanitizer-coverage-level=4 \
-Cllvm-args=-sanitizer-coverage-inline-8bit-counters \
-Cllvm-args=-sanitizer-coverage-pc-table \
-Cllvm-args=-sanitizer-coverage-trace-compares \
-Cdebug-assertions -Coverflow-checks"
echo "fuzz: building ${#TARGETS[@]} targets ($HOST)"
if ! (cd fuzz && cargo metadata --locked --format-version 1 >/dev/null); then
  echo "fuzz: fuzz/Cargo.lock is out of date (a core crate's dependencies changed?):"
  echo "fuzz: run  (cd fuzz && cargo update --workspace)  and commit fuzz/Cargo.lock"
  exit 1
fi
(cd fuzz && RUSTFLAGS="$FUZZ_RUSTFLAGS" cargo build --release --locked \
  --target "$HOST" $(printf -- '--bin %s ' "${TARGETS[@]}"))
BIN=$CARGO_TARGET_DIR/$HOST/release
((SECS > 0)) || exit 0

SCRATCH=$ROOT/target/fuzz
run_one() {
  local t=$1 dir=$SCRATCH/$1
  mkdir -p "$dir/corpus" "$dir/artifacts"
  rm -f "$dir/artifacts/"* "$dir/result" "$dir/report"
  cp fuzz/corpus/"$t"/* "$dir/corpus/"
  # -timeout: one input running longer than 10 s counts as a crash (hang).
  if "$BIN/$t" -max_total_time="$SECS" -timeout=10 -rss_limit_mb=2048 \
      -artifact_prefix="$dir/artifacts/" -print_final_stats=1 \
      "$dir/corpus" >"$dir/log" 2>&1; then
    echo ok >"$dir/result"
    printf 'fuzz: %-20s ok   %s\n' "$t" \
      "$(grep -E '^stat::number_of_executed_units' "$dir/log" | awk '{print $2 " runs"}')"
  else
    printf 'fuzz: %-20s FAILED\n' "$t"
    {
      echo "---- $t"
      # The panic (or libFuzzer's report), without the backtrace and dump.
      grep -E -A3 '(panicked at|^==[0-9]+== ERROR|^SUMMARY)' "$dir/log" |
        grep -v -E '^ +[0-9]+: |^ +at |^stack backtrace|^NOTE|^ +Combine' | cut -c1-300 | head -20 || true
      for a in "$dir/artifacts/"*; do
        [ -e "$a" ] && echo "fuzz: crashing input: $a ($(wc -c <"$a") bytes)"
      done
      echo "fuzz: reproduce with: $BIN/$t <input>   (full log: $dir/log)"
    } >"$dir/report"
    return 1
  fi
}

for t in "${TARGETS[@]}"; do
  while (($(jobs -rp | wc -l) >= JOBS)); do wait -n || true; done
  run_one "$t" &
done
wait || true
failed=()
for t in "${TARGETS[@]}"; do
  [ -f "$SCRATCH/$t/result" ] || failed+=("$t")
done
if ((${#failed[@]})); then
  for t in "${failed[@]}"; do cat "$SCRATCH/$t/report" 2>/dev/null || true; done
  echo "fuzz: FAILED: ${failed[*]}"
  exit 1
fi
echo "fuzz: all ${#TARGETS[@]} targets ran ${SECS}s without a crash"
