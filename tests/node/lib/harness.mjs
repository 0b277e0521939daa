// Shared helpers: start/stop a Switchboard server, and a small promise-based
// wrapper around the npm `ws` client.
import { spawn } from 'node:child_process';
import { accessSync, constants, readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import net from 'node:net';
import http from 'node:http';
import https from 'node:https';
import { setTimeout as sleep } from 'node:timers/promises';
import WebSocket from 'ws';

export { WebSocket, sleep };

const live = new Set();
process.on('exit', () => {
  for (const child of live) {
    try { child.kill('SIGKILL'); } catch { /* already gone */ }
  }
});

export function serverBinary() {
  const bin = process.env.SWITCHBOARD_BIN;
  if (!bin) {
    throw new Error(
      'SWITCHBOARD_BIN is not set: point it at the switchboard server binary, e.g.\n' +
      '  SWITCHBOARD_BIN=$PWD/../../target/debug/switchboard node --test',
    );
  }
  try {
    accessSync(bin, constants.X_OK);
  } catch {
    throw new Error(`SWITCHBOARD_BIN=${bin} is not an executable file`);
  }
  return bin;
}

/** A free TCP port on 127.0.0.1 (listen on 0, read the port, close). */
export function freePort() {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.unref();
    srv.on('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address();
      srv.close(() => resolve(port));
    });
  });
}

/** The test-only certificate and key (tests/data/tls): `localhost` and 127.0.0.1. */
export const TEST_CERT = fileURLToPath(new URL('../../data/tls/cert.pem', import.meta.url));
export const TEST_KEY = fileURLToPath(new URL('../../data/tls/key.pem', import.meta.url));

/**
 * GET a path; resolves { status, headers, body } (body as string). With
 * `ca` (a PEM certificate to trust) the request is HTTPS.
 */
export function httpGet(port, path, { timeout = 2000, headers = {}, ca } = {}) {
  return new Promise((resolve, reject) => {
    const client = ca ? https : http;
    const req = client.get({ host: '127.0.0.1', port, path, headers, agent: false, timeout, ...(ca ? { ca } : {}) }, (res) => {
      const chunks = [];
      res.on('data', (c) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode, headers: res.headers, body: Buffer.concat(chunks).toString('utf8') }));
      res.on('error', reject);
    });
    req.on('timeout', () => req.destroy(new Error(`GET ${path} timed out`)));
    req.on('error', reject);
  });
}

/**
 * Start `switchboard serve --listen 127.0.0.1:PORT` and wait for GET /healthz.
 * Returns { port, http, ws, child, log(), stop() }. With `tls: true` the
 * server gets the test certificate ([tls], TEST_CERT / TEST_KEY): `http` and
 * `ws` are then https:// and wss:// URLs and `ca` is the certificate to trust.
 */
export async function startServer({ readyTimeout = 20000, env = {}, tls = false } = {}) {
  const bin = serverBinary();
  const port = await freePort();
  const tlsEnv = tls ? { SWITCHBOARD_TLS__CERT_FILE: TEST_CERT, SWITCHBOARD_TLS__KEY_FILE: TEST_KEY } : {};
  const ca = tls ? readFileSync(TEST_CERT) : undefined;
  // The server reads SWITCHBOARD_* variables as configuration overrides and
  // rejects unknown ones, so the test-harness variables are not passed on.
  const childEnv = { ...process.env, ...tlsEnv, ...env };
  delete childEnv.SWITCHBOARD_BIN;
  delete childEnv.SWITCHBOARD_SKIP_BROWSER;
  const child = spawn(bin, ['serve', '--listen', `127.0.0.1:${port}`], {
    stdio: ['ignore', 'pipe', 'pipe'],
    env: childEnv,
  });
  live.add(child);
  let output = '';
  const keep = (chunk) => {
    output += chunk.toString('utf8');
    if (output.length > 64 * 1024) output = output.slice(-64 * 1024);
  };
  child.stdout.on('data', keep);
  child.stderr.on('data', keep);
  let exited = null;
  const exitPromise = new Promise((resolve) => {
    child.on('exit', (code, signal) => {
      exited = { code, signal };
      live.delete(child);
      resolve(exited);
    });
    child.on('error', (err) => {
      exited = { code: null, signal: null, error: err };
      live.delete(child);
      resolve(exited);
    });
  });

  const server = {
    port,
    http: `${tls ? 'https' : 'http'}://127.0.0.1:${port}`,
    ws: `${tls ? 'wss' : 'ws'}://127.0.0.1:${port}`,
    ca,
    child,
    log: () => output,
    exited: () => exited,
    waitExit: (ms = 10000) => Promise.race([
      exitPromise,
      unrefDelay(ms).then(() => { throw new Error(`server did not exit within ${ms} ms`); }),
    ]),
    async stop() {
      if (exited) return exited;
      child.kill('SIGTERM');
      const res = await Promise.race([exitPromise, unrefDelay(5000).then(() => null)]);
      if (res) return res;
      child.kill('SIGKILL');
      return exitPromise;
    },
  };

  const deadline = Date.now() + readyTimeout;
  for (;;) {
    if (exited) {
      throw new Error(`switchboard exited before becoming ready (${JSON.stringify(exited)}); output:\n${output}`);
    }
    try {
      const res = await httpGet(port, '/healthz', { timeout: 1000, ca });
      if (res.status === 200) break;
    } catch { /* not listening yet */ }
    if (Date.now() > deadline) {
      await server.stop();
      throw new Error(`switchboard did not answer /healthz within ${readyTimeout} ms; output:\n${output}`);
    }
    await sleep(50);
  }
  return server;
}

/** A timer promise that does not keep the process alive. */
function unrefDelay(ms) {
  return new Promise((resolve) => setTimeout(resolve, ms).unref());
}

let uniq = 0;
/** A topic name unique to this process run (history does not leak between tests). */
export function uniqueTopic(prefix = 't') {
  uniq += 1;
  return `${prefix}-${process.pid}-${Date.now().toString(36)}-${uniq}`;
}

/** Reject after `ms` with a descriptive error. */
export function withTimeout(promise, ms, what) {
  let timer;
  return Promise.race([
    promise,
    new Promise((_, reject) => {
      timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms waiting for ${what}`)), ms);
    }),
  ]).finally(() => clearTimeout(timer));
}

/**
 * A `ws` client that queues everything it receives so tests can await
 * "the next message matching X" without racing the event loop.
 */
export class Client {
  constructor(ws) {
    this.ws = ws;
    this.queue = [];      // { data: Buffer, isBinary, text?, json? }
    this.waiters = [];    // { pred, resolve }
    this.nextId = 1;
    this.closed = null;
    this.closeWaiters = [];
    ws.on('message', (data, isBinary) => this.push({ data, isBinary }));
    ws.on('close', (code, reason) => {
      this.closed = { code, reason: reason.toString('utf8') };
      for (const w of this.closeWaiters) w(this.closed);
      this.closeWaiters = [];
    });
    ws.on('error', (err) => { this.error = err; });
  }

  static open(url, options = {}, timeout = 5000) {
    const ws = new WebSocket(url, { perMessageDeflate: false, ...options });
    const client = new Client(ws);
    return withTimeout(new Promise((resolve, reject) => {
      ws.once('open', () => resolve(client));
      ws.once('error', reject);
      ws.once('unexpected-response', (req, res) => reject(new Error(`unexpected HTTP ${res.statusCode} for ${url}`)));
    }), timeout, `open ${url}`);
  }

  push(msg) {
    if (!msg.isBinary) {
      msg.text = msg.data.toString('utf8');
      try { msg.json = JSON.parse(msg.text); } catch { msg.json = undefined; }
    }
    const i = this.waiters.findIndex((w) => w.pred(msg));
    if (i >= 0) {
      const [w] = this.waiters.splice(i, 1);
      w.resolve(msg);
    } else {
      this.queue.push(msg);
    }
  }

  /** Next received message (raw) satisfying pred; removed from the queue. */
  next(pred = () => true, timeout = 5000, what = 'a message') {
    const i = this.queue.findIndex(pred);
    if (i >= 0) return Promise.resolve(this.queue.splice(i, 1)[0]);
    let waiter;
    const p = new Promise((resolve) => {
      waiter = { pred, resolve };
      this.waiters.push(waiter);
    });
    return withTimeout(p, timeout, what).catch((err) => {
      this.waiters = this.waiters.filter((w) => w !== waiter);
      throw err;
    });
  }

  /** Next JSON object satisfying pred (on the parsed value). */
  async nextJson(pred = () => true, timeout = 5000, what = 'a JSON message') {
    const msg = await this.next((m) => m.json !== undefined && pred(m.json), timeout, what);
    return msg.json;
  }

  /** Receive `n` messages matching pred, in arrival order. */
  async take(n, pred = () => true, timeout = 5000, what = `${n} messages`) {
    const out = [];
    const deadline = Date.now() + timeout;
    while (out.length < n) {
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`timed out waiting for ${what}: got ${out.length}/${n}`);
      out.push(await this.next(pred, left, `${what} (got ${out.length}/${n})`));
    }
    return out;
  }

  send(data, options) {
    return new Promise((resolve, reject) => this.ws.send(data, options ?? {}, (err) => (err ? reject(err) : resolve())));
  }

  sendJson(obj) { return this.send(JSON.stringify(obj)); }

  /** Send an envelope request with a fresh id, await the reply carrying that id. */
  async request(body, timeout = 5000) {
    const id = body.id ?? `r${this.nextId++}`;
    await this.sendJson({ ...body, id });
    return this.nextJson(
      (m) => (m.type === 'ok' || m.type === 'error' || m.type === 'pong') && JSON.stringify(m.id) === JSON.stringify(id),
      timeout,
      `reply to ${JSON.stringify({ ...body, id })}`,
    );
  }

  /** Messages of type "message" currently queued (not consumed). */
  queuedJson(pred = () => true) {
    return this.queue.filter((m) => m.json !== undefined && pred(m.json)).map((m) => m.json);
  }

  waitClose(timeout = 5000) {
    if (this.closed) return Promise.resolve(this.closed);
    return withTimeout(new Promise((resolve) => this.closeWaiters.push(resolve)), timeout, 'close');
  }

  async close(code = 1000, reason = '') {
    if (this.closed) return this.closed;
    if (this.ws.readyState === WebSocket.CONNECTING || this.ws.readyState === WebSocket.OPEN) {
      this.ws.close(code, reason);
    }
    try {
      return await this.waitClose(3000);
    } catch {
      this.ws.terminate();
      return this.closed;
    }
  }

  terminate() { this.ws.terminate(); }
}

/** Open a /ws envelope client with an optional ?name=. */
export function envelopeClient(server, name) {
  const qs = name == null ? '' : `?name=${encodeURIComponent(name)}`;
  return Client.open(`${server.ws}/ws${qs}`);
}

export async function closeAll(clients) {
  await Promise.all(clients.filter(Boolean).map((c) => c.close().catch(() => c.terminate())));
}
