// Helpers for the Socket.IO interop tests: start the Rust protocol test-suite
// server (crates/switchboard-socketio/examples/socketio_protocol_server.rs) and
// await socket.io-client events with timeouts.
import { spawn } from 'node:child_process';
import { accessSync, constants } from 'node:fs';
import { freePort, withTimeout } from './harness.mjs';

export { withTimeout };

const live = new Set();
process.on('exit', () => {
  for (const child of live) {
    try { child.kill('SIGKILL'); } catch { /* already gone */ }
  }
});

/**
 * The reason to skip (one line), or false when SOCKETIO_PROTOCOL_SERVER_BIN
 * is usable. Build the server with
 *   cargo build --release -p switchboard-socketio --example socketio_protocol_server
 * and set SOCKETIO_PROTOCOL_SERVER_BIN=$PWD/../../target/release/examples/socketio_protocol_server
 */
export function protocolServerSkip() {
  const bin = process.env.SOCKETIO_PROTOCOL_SERVER_BIN;
  if (!bin) {
    return 'SOCKETIO_PROTOCOL_SERVER_BIN is not set (cargo build --release -p switchboard-socketio ' +
      '--example socketio_protocol_server, then point it at target/release/examples/socketio_protocol_server)';
  }
  try {
    accessSync(bin, constants.X_OK);
  } catch {
    return `SOCKETIO_PROTOCOL_SERVER_BIN=${bin} is not an executable file`;
  }
  return false;
}

/** Like protocolServerSkip, for the binary in environment variable `name`. */
export function binSkip(name, hint) {
  const bin = process.env[name];
  if (!bin) return `${name} is not set (${hint})`;
  try {
    accessSync(bin, constants.X_OK);
  } catch {
    return `${name}=${bin} is not an executable file`;
  }
  return false;
}

/**
 * Start the protocol server (or `bin`, any server taking the port as its
 * argument) on a free port (or `port`); resolves once it printed
 * `listening on 127.0.0.1:PORT`. Returns { port, url, log(), stop() }.
 */
export async function startProtocolServer({ readyTimeout = 10000, bin = process.env.SOCKETIO_PROTOCOL_SERVER_BIN, port } = {}) {
  port ??= await freePort();
  const child = spawn(bin, [String(port)], { stdio: ['ignore', 'pipe', 'pipe'] });
  live.add(child);
  let output = '';
  let lines = [];
  let waiters = [];
  let partial = '';
  let exited = null;
  const exitPromise = new Promise((resolve) => {
    child.on('exit', (code, signal) => { exited = { code, signal }; live.delete(child); resolve(exited); });
    child.on('error', (error) => { exited = { error }; live.delete(child); resolve(exited); });
  });
  const ready = new Promise((resolve, reject) => {
    const keep = (chunk) => {
      const text = chunk.toString('utf8');
      partial += text;
      const parts = partial.split('\n');
      partial = parts.pop();
      for (const line of parts) {
        lines.push(line);
        waiters = waiters.filter((w) => !(w.re.test(line) && (w.resolve(line), true)));
      }
      output += text;
      if (output.length > 64 * 1024) output = output.slice(-64 * 1024);
      if (output.includes(`listening on 127.0.0.1:${port}`)) resolve();
    };
    child.stdout.on('data', keep);
    child.stderr.on('data', keep);
    exitPromise.then((e) => reject(new Error(`protocol server exited (${JSON.stringify(e)}); output:\n${output}`)));
  });
  const server = {
    port,
    url: `http://127.0.0.1:${port}`,
    log: () => output,
    /** Resolves with the first output line (seen so far or later) matching `re`. */
    waitLine(re, ms = 3000) {
      const seen = lines.find((l) => re.test(l));
      if (seen !== undefined) return Promise.resolve(seen);
      let w;
      const p = new Promise((resolve) => { w = { re, resolve }; waiters.push(w); });
      return withTimeout(p, ms, `a server line matching ${re}`).catch((e) => {
        waiters = waiters.filter((x) => x !== w);
        throw new Error(`${e.message}; output:\n${output.slice(-2000)}`);
      });
    },
    /** The output lines matching `re` so far. */
    lines: (re) => lines.filter((l) => re.test(l)),
    async stop() {
      if (exited) return exited;
      child.kill('SIGTERM');
      const t = setTimeout(() => child.kill('SIGKILL'), 3000);
      const res = await exitPromise;
      clearTimeout(t);
      return res;
    },
  };
  try {
    await withTimeout(ready, readyTimeout, 'the protocol server to listen');
  } catch (e) {
    await server.stop();
    throw e;
  }
  return server;
}

/** The next `event` of an emitter (socket.io-client / engine.io-client), as an array of its arguments. */
export function nextEvent(emitter, event, ms = 3000) {
  let handler;
  const p = new Promise((resolve) => {
    handler = (...args) => resolve(args);
    emitter.once(event, handler);
  });
  return withTimeout(p, ms, `event ${JSON.stringify(event)}`).catch((e) => {
    emitter.off(event, handler);
    throw e;
  });
}

/** Resolves when `pred()` holds (checked every 10 ms), rejects after `ms`. */
export async function until(pred, ms, what) {
  const deadline = Date.now() + ms;
  while (!pred()) {
    if (Date.now() > deadline) throw new Error(`timed out after ${ms} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}
