#!/usr/bin/env python3
"""Runs the Autobahn TestSuite server cases (via kosoku) against `switchboard`'s
/ws/echo with permessage-deflate enabled, and fails on any case whose behavior
is not OK, NON-STRICT or INFORMATIONAL or whose close is not clean.

Usage: run.py SWITCHBOARD_BIN KOSOKU_BIN [OUTDIR]
"""

import json
import os
import socket
import subprocess
import sys
import time
import urllib.request

# kosoku 0.1.0's own bug ("Strings must be encoded before hashing") makes these
# end in ERROR against every server, Node's ws included: reported, not failed.
KNOWN_RUNNER_ERRORS = {f"13.{g}.{i}" for g in (2, 5, 6, 7) for i in (1, 2, 3)}
GOOD = {"OK", "NON-STRICT", "INFORMATIONAL"}
GOOD_CLOSE = {"OK", "INFORMATIONAL"}


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_healthy(port, proc, timeout=30):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"switchboard exited early with {proc.returncode}")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=1) as r:
                if r.status == 200:
                    return
        except OSError:
            time.sleep(0.1)
    raise SystemExit("switchboard did not become healthy")


def main():
    server_bin, kosoku_bin = sys.argv[1], sys.argv[2]
    outdir = sys.argv[3] if len(sys.argv) > 3 else "target/autobahn"
    port = free_port()
    env = dict(os.environ)
    env.update({
        "SWITCHBOARD_WEBSOCKET__COMPRESSION": "true",
        # Compress every message, however small: kosoku 0.1.0 hashes an
        # uncompressed echo of a compression case as str and errors out
        # (a runner bug), so let the 12.*/13.* cases exercise deflate throughout.
        "SWITCHBOARD_WEBSOCKET__COMPRESSION_MIN_SIZE": "0",
        "SWITCHBOARD_WEBSOCKET__MAX_MESSAGE_SIZE": str(64 << 20),
        "SWITCHBOARD_LOG": "warn",
    })
    server = subprocess.Popen([server_bin, "serve", "--listen", f"127.0.0.1:{port}"], env=env)
    try:
        wait_healthy(port, server)
        cmd = [kosoku_bin, "-m", "fuzzingclient", "-p", "2", "-o", outdir,
               "-i", "1.*", "-i", "2.*", "-i", "3.*", "-i", "4.*", "-i", "5.*", "-i", "6.*",
               "-i", "7.*", "-i", "9.*", "-i", "10.*", "-i", "12.*", "-i", "13.*",
               f"ws://127.0.0.1:{port}/ws/echo"]
        print("+", " ".join(cmd), flush=True)
        started = time.time()
        run = subprocess.run(cmd, stdout=subprocess.DEVNULL)
        print(f"kosoku exited with {run.returncode} after {time.time() - started:.0f}s")
    finally:
        server.terminate()
        try:
            server.wait(timeout=10)
        except subprocess.TimeoutExpired:
            server.kill()
    with open(os.path.join(outdir, "index.json")) as f:
        index = json.load(f)
    failed, runner_errors, total = [], [], 0
    for agent, cases in index.items():
        for case_id, r in cases.items():
            total += 1
            ok = r["behavior"] in GOOD and r["behaviorClose"] in GOOD_CLOSE
            if ok:
                continue
            if case_id in KNOWN_RUNNER_ERRORS and r["behavior"] == "ERROR":
                runner_errors.append(case_id)
            else:
                failed.append((case_id, r["behavior"], r["behaviorClose"]))
    def key(c):
        return [int(x) for x in c[0].split(".")]
    for case_id, b, bc in sorted(failed, key=key):
        print(f"FAILED {case_id}: behavior={b} close={bc}")
    if runner_errors:
        print(f"runner's own errors (kosoku 0.1.0 bug, not counted): {', '.join(sorted(runner_errors, key=lambda c: [int(x) for x in c.split('.')]))}")
    expected = 517  # 1.* to 10.* and 12.*, 13.* server cases
    if total < expected - len(KNOWN_RUNNER_ERRORS):
        print(f"only {total} cases ran; expected about {expected}")
        failed.append(("count", str(total), ""))
    passed = total - len(failed) - len(runner_errors)
    print(f"autobahn: {passed} passed, {len(failed)} failed, {len(runner_errors)} skipped")
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
