// Helpers for avalanche.test.mjs: a Switchboard process that can be restarted
// on the same port, and self-reconnecting subscribers for each protocol
// (Socket.IO, the /ws envelope, SockJS's websocket transport, STOMP over
// WebSocket) that re-subscribe after every reconnect as the chat page's
// transports do (crates/switchboard-server/assets/chat*.js) and record when
// they are back: connected, subscribed, and holding a fresh message. The
// subscribers live in worker threads (ClientPool; this module is also the
// workers' entry point), so that the test's own thread (restart, TCP probe,
// publisher, clock) is not held up by thousands of clients' callbacks.
import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import net from 'node:net';
import { Worker, isMainThread, parentPort, workerData } from 'node:worker_threads';
import { performance, monitorEventLoopDelay } from 'node:perf_hooks';
import { io } from 'socket.io-client';
import SockJS from 'sockjs-client';
import { Client as StompClient, ReconnectionTimeMode } from '@stomp/stompjs';
import { serverBinary, httpGet, WebSocket, sleep } from './harness.mjs';

/** Milliseconds since the epoch, sub-millisecond and comparable across threads. */
export const now = () => performance.timeOrigin + performance.now();

const live = new Set();
process.on('exit', () => {
  for (const child of live) {
    try { child.kill('SIGKILL'); } catch { /* already gone */ }
  }
});

/** One TCP connect to 127.0.0.1:port; resolves true if accepted. */
function probe(port) {
  return new Promise((resolve) => {
    const s = net.connect({ host: '127.0.0.1', port });
    s.once('connect', () => { s.destroy(); resolve(true); });
    s.once('error', () => { s.destroy(); resolve(false); });
  });
}

/**
 * Start `switchboard serve --listen 127.0.0.1:PORT` (the port given, so a
 * restart can reuse it). Resolves once it accepts TCP connections and
 * answers GET /healthz; `acceptedAt` is the first accepted probe
 * (performance.now(), probes every 5 ms).
 */
export async function startNode({ port, env = {}, readyTimeout = 20000 }) {
  const bin = serverBinary();
  const childEnv = { ...process.env, ...env };
  // The server rejects unknown SWITCHBOARD_* variables.
  for (const k of Object.keys(childEnv)) {
    if (k === 'SWITCHBOARD_BIN' || k === 'SWITCHBOARD_SKIP_BROWSER') delete childEnv[k];
  }
  const spawnedAt = now();
  const child = spawn(bin, ['serve', '--listen', `127.0.0.1:${port}`], { stdio: ['ignore', 'pipe', 'pipe'], env: childEnv });
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
    child.on('exit', (code, signal) => { exited = { code, signal, at: now() }; live.delete(child); resolve(exited); });
    child.on('error', (error) => { exited = { error: String(error), at: now() }; live.delete(child); resolve(exited); });
  });
  const node = {
    port,
    http: `http://127.0.0.1:${port}`,
    ws: `ws://127.0.0.1:${port}`,
    child,
    spawnedAt,
    acceptedAt: null,
    log: () => output,
    exited: () => exited,
    /** CPU time (user + system) the process used so far, in ms (Linux /proc; NaN elsewhere). */
    cpuMs() {
      try {
        const stat = readFileSync(`/proc/${child.pid}/stat`, 'utf8');
        const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
        return ((Number(f[11]) + Number(f[12])) * 1000) / 100; // utime, stime in clock ticks (USER_HZ 100)
      } catch {
        return NaN;
      }
    },
    /** SIGTERM; resolves the exit record, or rejects after `ms` (then SIGKILLs). */
    async terminate(ms = 10000) {
      if (exited) return exited;
      child.kill('SIGTERM');
      let timer;
      const res = await Promise.race([exitPromise, new Promise((r) => { timer = setTimeout(() => r(null), ms); })]);
      clearTimeout(timer);
      if (res) return res;
      child.kill('SIGKILL');
      await exitPromise;
      throw new Error(`switchboard did not exit within ${ms} ms of SIGTERM (killed); output:\n${output.slice(-4000)}`);
    },
    /** For `after`: SIGTERM, SIGKILL after 5 s, never throws. */
    async stop() {
      if (exited) return exited;
      await node.terminate(5000).catch(() => {});
      return exited;
    },
  };
  const deadline = spawnedAt + readyTimeout;
  for (;;) {
    if (exited) throw new Error(`switchboard exited before accepting (${JSON.stringify(exited)}); output:\n${output}`);
    if (await probe(port)) { node.acceptedAt = now(); break; }
    if (now() > deadline) {
      await node.stop();
      throw new Error(`switchboard did not accept on port ${port} within ${readyTimeout} ms; output:\n${output}`);
    }
    await sleep(5);
  }
  for (;;) {
    try {
      const res = await httpGet(port, '/healthz', { timeout: 2000 });
      if (res.status === 200) break;
    } catch { /* not serving yet */ }
    if (exited || now() > deadline) {
      await node.stop();
      throw new Error(`switchboard did not answer /healthz within ${readyTimeout} ms; output:\n${output}`);
    }
    await sleep(10);
  }
  return node;
}

/** Resolves when `pred()` holds (checked every `every` ms), rejects with `describe()` after `ms`. */
export async function until(pred, ms, what, describe = () => '', every = 20) {
  const deadline = now() + ms;
  while (!pred()) {
    if (now() > deadline) {
      const more = describe();
      throw new Error(`timed out after ${ms} ms waiting for ${what}${more ? `: ${more}` : ''}`);
    }
    await sleep(every);
  }
}

/** chat.js's backoff: exponential with "equal jitter" (half fixed, half random). */
export class Backoff {
  constructor({ base = 500, factor = 2, max = 5000 } = {}) {
    Object.assign(this, { base, factor, max, attempt: 0 });
  }
  next() {
    const ceiling = Math.min(this.max, this.base * this.factor ** this.attempt);
    this.attempt += 1;
    return Math.round(ceiling / 2 + Math.random() * (ceiling / 2));
  }
  reset() { this.attempt = 0; }
}

/**
 * What every subscriber records. `arm(gen)` starts a new measurement: the
 * subscriber counts as back (`rec` set) once a connection opened after the
 * arming has its subscription confirmed AND has delivered a message that the
 * publisher sent with `data.gen === gen`.
 */
class Subscriber {
  constructor(kind, i, topic) {
    this.kind = kind;
    this.i = i;
    this.topic = topic;
    this.name = `aval-${kind}-${i}`;
    this.gen = 1;
    this.cur = null;         // this connection: { openAt, subAt, msgAt }
    this.rec = null;         // { openAt, subAt, freshAt } once back
    this.downAt = null;      // first close seen since arming
    this.closeWhy = null;
    this.connects = 0;
    this.closes = 0;
    this.received = 0;
    this.stale = 0;          // messages of an older generation on a connection opened after arming
    this.lastSeq = null;     // the last seq seen (for `since`), and the generation it came from
    this.lastSeqGen = 0;
    this.notRecovered = 0;   // subscribe replies with recovered:false to a since
    this.claimedRecovered = 0; // recovered:true to a since from the previous process's topic
    this.errors = [];
    this.errorCount = 0;
    this.closedForGood = false;
  }

  arm(gen) {
    this.gen = gen;
    this.rec = null;
    this.downAt = null;
    this.closeWhy = null;
  }

  state() {
    const c = this.cur;
    return `${this.name} ${c ? `open${c.subAt != null ? '+subscribed' : ''}` : 'down'} ` +
      `(connects ${this.connects}, closes ${this.closes}, received ${this.received}` +
      `${this.errors.length ? `, last error ${this.errors[this.errors.length - 1]}` : ''})`;
  }

  onOpen() {
    this.connects++;
    this.cur = { openAt: now(), subAt: null, msgAt: null, gen: this.gen };
  }

  onSubscribed() {
    if (!this.cur) return;
    this.cur.subAt = now();
    this.check();
  }

  onData(data) {
    this.received++;
    const gen = data && typeof data === 'object' ? data.gen : undefined;
    const c = this.cur;
    if (!c) return;
    if (gen === this.gen && c.gen === this.gen) {
      if (c.msgAt == null) c.msgAt = now();
      this.check();
    } else if (c.gen === this.gen && typeof gen === 'number' && gen < this.gen) {
      this.stale++;
    }
  }

  /** A hub `message` ({seq, data}) of the envelope or Socket.IO: tracks the last seq as chat.js does. */
  onMessage(m) {
    if (typeof m.seq === 'number' && (this.lastSeq == null || m.seq > this.lastSeq)) {
      this.lastSeq = m.seq;
      this.lastSeqGen = m.data?.gen ?? 0;
    }
    this.onData(m.data);
  }

  /** The reply to a subscribe sent with `since` (undefined: none) taken from generation `sinceGen`. */
  onSubscribeReply(since, sinceGen, reply) {
    if (since != null && this.gen > 1 && sinceGen < this.gen && reply.recovered === true) this.claimedRecovered++;
    if (since != null && reply.recovered === false) {
      this.notRecovered++;
      // The topic's history restarted (a new process): continue from its
      // current seq, or the next `since` would be ahead of it again.
      if (typeof reply.seq === 'number' && reply.seq < this.lastSeq) {
        this.lastSeq = reply.seq;
        this.lastSeqGen = this.gen;
      }
    }
    this.onSubscribed();
  }

  onClose(why) {
    this.closes++;
    this.cur = null;
    if (this.downAt == null) { this.downAt = now(); this.closeWhy = String(why); }
  }

  check() {
    const c = this.cur;
    if (this.rec || !c || c.gen !== this.gen || c.subAt == null || c.msgAt == null) return;
    this.rec = { openAt: c.openAt, subAt: c.subAt, freshAt: now() };
  }

  error(e) {
    this.errorCount++;
    this.errors.push(String(e?.message ?? e));
    if (this.errors.length > 5) this.errors.shift();
  }
}

/**
 * The /ws JSON envelope (kind 'ws', over the `ws` package) or /sockjs/chat
 * (kind 'sockjs', sockjs-client restricted to its websocket transport), as
 * chat.js / chat-sockjs.js: own jittered backoff, `subscribe` with `since` =
 * the last seq seen after a reconnect.
 */
export class EnvelopeSubscriber extends Subscriber {
  constructor(kind, i, topic, base, backoff = {}) {
    super(kind, i, topic);
    this.base = base; // { http, ws }
    this.backoff = new Backoff(backoff);
    this.sock = null;
    this.timer = null;
    this.nextId = 1;
    this.subId = null;
  }

  openSocket() {
    const qs = `?name=${encodeURIComponent(this.name)}`;
    if (this.kind === 'sockjs') {
      return new SockJS(`${this.base.http}/sockjs/chat${qs}`, null, { transports: ['websocket'], timeout: 10000 });
    }
    return new WebSocket(`${this.base.ws}/ws${qs}`, { perMessageDeflate: false });
  }

  connect() { this.open(); }

  open() {
    this.timer = null;
    if (this.closedForGood) return;
    let sock;
    try {
      sock = this.openSocket();
    } catch (e) {
      this.error(e);
      this.schedule();
      return;
    }
    this.sock = sock;
    sock.onopen = () => {
      if (sock !== this.sock) return;
      this.backoff.reset();
      this.onOpen();
      this.subId = `s${this.nextId++}`;
      const body = { op: 'subscribe', topic: this.topic, id: this.subId };
      if (this.lastSeq != null) body.since = this.lastSeq;
      this.sent = { since: body.since, sinceGen: this.lastSeqGen };
      sock.send(JSON.stringify(body));
    };
    sock.onmessage = (ev) => {
      if (sock !== this.sock || typeof ev.data !== 'string') return;
      let m;
      try { m = JSON.parse(ev.data); } catch { return; }
      if (m.type === 'message' && m.topic === this.topic) {
        this.onMessage(m);
      } else if (m.type === 'ok' && m.id === this.subId) {
        this.onSubscribeReply(this.sent.since, this.sent.sinceGen, m);
      } else if (m.type === 'error' && m.id === this.subId) {
        this.error(`subscribe: ${m.code} ${m.message ?? ''}`);
      }
    };
    sock.onerror = (e) => { if (sock === this.sock) this.error(e?.message ?? 'socket error'); };
    sock.onclose = (ev) => {
      if (sock !== this.sock) return;
      this.sock = null;
      this.onClose(ev?.code);
      this.schedule();
    };
  }

  schedule() {
    if (this.closedForGood) return;
    clearTimeout(this.timer);
    this.timer = setTimeout(() => this.open(), this.backoff.next());
  }

  close() {
    this.closedForGood = true;
    clearTimeout(this.timer);
    this.timer = null;
    const s = this.sock;
    this.sock = null;
    if (s) {
      try {
        if (this.kind === 'ws') s.terminate(); else s.close();
      } catch { /* closing anyway */ }
    }
  }
}

/**
 * socket.io-client 4 on /socket.io/ (websocket transport), reconnecting by
 * itself with `reconnectionDelay` / `reconnectionDelayMax` /
 * `randomizationFactor`; re-subscribes (with `since`) on every `connect` as
 * chat-socketio.js does.
 */
export class SocketIoSubscriber extends Subscriber {
  constructor(i, topic, base, opts = {}) {
    super('socketio', i, topic);
    this.serverDisconnects = 0;
    this.socket = io(base.http, {
      forceNew: true,
      autoConnect: false,
      transports: ['websocket'],
      auth: { name: this.name },
      reconnection: true,
      reconnectionDelay: 500,
      reconnectionDelayMax: 5000,
      randomizationFactor: 0.5,
      timeout: 10000,
      ...opts,
    });
    const s = this.socket;
    s.on('connect', () => {
      this.onOpen();
      const cur = this.cur;
      const since = this.lastSeq;
      const sinceGen = this.lastSeqGen;
      const arg = since == null ? this.topic : { topic: this.topic, since };
      s.timeout(10000).emitWithAck('subscribe', arg).then((reply) => {
        if (this.cur !== cur) return;
        if (!reply?.ok) { this.error(`subscribe: ${JSON.stringify(reply)}`); return; }
        this.onSubscribeReply(since ?? undefined, sinceGen, reply);
      }, (e) => this.error(`subscribe: ${e.message}`));
    });
    s.on('message', (m) => {
      if (m && m.topic === this.topic) this.onMessage(m);
    });
    s.on('connect_error', (e) => this.error(`connect_error: ${e.message}`));
    s.on('disconnect', (reason) => {
      this.onClose(reason);
      // The one reason after which socket.io-client does not reconnect by itself.
      if (reason === 'io server disconnect' && !this.closedForGood) {
        this.serverDisconnects++;
        s.connect();
      }
    });
  }

  connect() { this.socket.connect(); }

  close() {
    this.closedForGood = true;
    this.socket.disconnect();
  }
}

const STOMP_SUBPROTOCOLS = ['v12.stomp', 'v11.stomp', 'v10.stomp'];

/**
 * @stomp/stompjs 7 over WebSocket on /stomp: `reconnectDelay` (drawn per
 * client in [0.5, 1.5] x `delay`, since stompjs itself has no jitter),
 * `reconnectTimeMode: EXPONENTIAL`, `maxReconnectDelay`; on every CONNECTED it
 * subscribes to /topic/<topic> with a receipt. STOMP has no catch-up.
 */
export class StompSubscriber extends Subscriber {
  constructor(i, topic, base, { delay = 500, max = 5000 } = {}) {
    super('stomp', i, topic);
    this.client = new StompClient({
      webSocketFactory: () => new WebSocket(`${base.ws}/stomp`, STOMP_SUBPROTOCOLS, { perMessageDeflate: false }),
      reconnectDelay: Math.round(delay * (0.5 + Math.random())),
      reconnectTimeMode: ReconnectionTimeMode.EXPONENTIAL,
      maxReconnectDelay: max,
      heartbeatIncoming: 10000,
      heartbeatOutgoing: 10000,
      connectionTimeout: 10000,
      debug: () => {},
      onConnect: () => {
        this.onOpen();
        const cur = this.cur;
        const receipt = `r-${this.i}-${this.connects}`;
        this.client.watchForReceipt(receipt, () => { if (this.cur === cur) this.onSubscribed(); });
        this.client.subscribe(`/topic/${this.topic}`, (msg) => {
          let data;
          try { data = JSON.parse(msg.body); } catch { data = msg.body; }
          this.onData(data);
        }, { receipt });
      },
      onStompError: (frame) => this.error(`ERROR ${frame.headers.message}`),
      onWebSocketClose: (ev) => { if (this.cur) this.onClose(ev?.code); },
      onWebSocketError: (ev) => this.error(`websocket error: ${ev?.message ?? ev?.error?.message ?? ev?.type ?? ''}`),
    });
  }

  connect() { this.client.activate(); }

  close() {
    this.closedForGood = true;
    return this.client.deactivate({ force: true }).catch(() => {});
  }
}

/**
 * The publisher: one plain `ws` /ws envelope connection (no reconnection of
 * its own; the test reopens it right after the restart), sending
 * `{gen, n, t}` to every topic each `periodMs`, without waiting for replies.
 */
export class Publisher {
  constructor(topics, periodMs) {
    this.topics = topics;
    this.periodMs = periodMs;
    this.ws = null;
    this.gen = 0;
    this.n = 0;
    this.sent = 0;
    this.timer = null;
  }

  async open(base, gen, timeout = 10000) {
    this.gen = gen;
    const ws = new WebSocket(`${base.ws}/ws?name=aval-publisher`, { perMessageDeflate: false });
    ws.on('message', () => {});
    await new Promise((resolve, reject) => {
      const t = setTimeout(() => { ws.terminate(); reject(new Error(`publisher: no open within ${timeout} ms`)); }, timeout);
      ws.once('open', () => { clearTimeout(t); resolve(); });
      ws.once('error', (e) => { clearTimeout(t); reject(e); });
    });
    ws.on('error', () => {});
    this.ws = ws;
    this.tick();
  }

  start() {
    if (!this.timer) this.timer = setInterval(() => this.tick(), this.periodMs);
  }

  tick() {
    const ws = this.ws;
    if (!ws || ws.readyState !== WebSocket.OPEN) return;
    const t = Date.now();
    for (const topic of this.topics) {
      ws.send(JSON.stringify({ op: 'publish', topic, data: { gen: this.gen, n: this.n++, t } }));
      this.sent++;
    }
  }

  drop() {
    const ws = this.ws;
    this.ws = null;
    if (ws) ws.terminate();
  }

  stop() {
    clearInterval(this.timer);
    this.timer = null;
    this.drop();
  }
}

export function percentile(sorted, p) {
  if (sorted.length === 0) return NaN;
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1))];
}

/** "p50 X / p99 Y / max Z ms" of the values. */
export function summary(values) {
  const s = [...values].sort((a, b) => a - b);
  const f = (x) => (Number.isFinite(x) ? x.toFixed(0) : '-');
  return `p50 ${f(percentile(s, 50))} / p99 ${f(percentile(s, 99))} / max ${f(s[s.length - 1])} ms`;
}

// ------------------------------------------------------------- worker pool

export const KINDS = ['socketio', 'ws', 'sockjs', 'stomp'];

function makeSubscriber({ i, kind, topic }, base) {
  switch (kind) {
    case 'socketio': return new SocketIoSubscriber(i, topic, base);
    case 'ws': return new EnvelopeSubscriber('ws', i, topic, base);
    case 'sockjs': return new EnvelopeSubscriber('sockjs', i, topic, base);
    case 'stomp': return new StompSubscriber(i, topic, base);
    default: throw new Error(`unknown kind ${kind}`);
  }
}

/** Up to `max` states of the subscribers not back yet. */
function missingStates(subs, max = 5) {
  return subs.filter((s) => !s.rec).slice(0, max).map((s) => s.state());
}

/** What a worker reports of one subscriber (times: ms since the epoch). */
function record(s) {
  return {
    i: s.i, kind: s.kind, rec: s.rec, downAt: s.downAt, closeWhy: s.closeWhy, stale: s.stale,
    notRecovered: s.notRecovered, claimedRecovered: s.claimedRecovered, serverDisconnects: s.serverDisconnects ?? 0,
    connects: s.connects, errorCount: s.errorCount, lastError: s.errors[s.errors.length - 1] ?? null,
  };
}

/** The worker side: hosts `workerData.items` subscribers, driven by ClientPool messages. */
function runWorker({ base, items, batch, batchTimeout }) {
  const subs = [];
  const lag = monitorEventLoopDelay({ resolution: 10 });
  let progress = null;
  const post = (m) => parentPort.postMessage(m);
  const back = () => subs.reduce((a, s) => a + (s.rec ? 1 : 0), 0);
  parentPort.on('message', async (m) => {
    try {
      if (m.type === 'connect') {
        for (let k = 0; k < items.length; k += batch) {
          const part = items.slice(k, k + batch).map((it) => makeSubscriber(it, base));
          subs.push(...part);
          for (const s of part) s.connect();
          await until(() => part.every((s) => s.rec), batchTimeout,
            `${part.length} clients to connect, subscribe and receive a first message`,
            () => `${part.filter((s) => !s.rec).length} not ready, e.g. ${missingStates(part).join('; ')}`);
        }
        post({ type: 'connected', id: m.id });
      } else if (m.type === 'arm') {
        for (const s of subs) s.arm(m.gen);
        lag.reset();
        lag.enable();
        clearInterval(progress);
        progress = setInterval(() => post({ type: 'progress', back: back() }), 20);
        post({ type: 'armed', id: m.id });
      } else if (m.type === 'report') {
        clearInterval(progress);
        lag.disable();
        post({
          type: 'report', id: m.id, records: subs.map(record), missing: missingStates(subs),
          lagP99: lag.percentile(99) / 1e6, lagMax: lag.max / 1e6,
        });
      } else if (m.type === 'close') {
        clearInterval(progress);
        await Promise.all(subs.map((s) => s.close()));
        post({ type: 'closed', id: m.id });
      }
    } catch (e) {
      post({ type: 'error', id: m.id, message: e.message });
    }
  });
}

if (!isMainThread && workerData?.avalanche) runWorker(workerData);

/**
 * N subscribers (kind i % 4, topic `topics[floor(i / 4) % topics.length]`, so
 * every topic has every kind) spread over `workers` worker threads by groups
 * of 4 consecutive clients (every worker has every kind).
 */
export class ClientPool {
  constructor({ clients, workers, base, topics, batch = 100, batchTimeout = 30000 }) {
    this.clients = clients;
    this.nextId = 1;
    this.pending = new Map();
    this.back = [];
    this.failure = null;
    this.workers = Array.from({ length: workers }, (_, w) => {
      const items = [];
      for (let i = 0; i < clients; i++) {
        if (Math.floor(i / KINDS.length) % workers !== w) continue;
        items.push({ i, kind: KINDS[i % KINDS.length], topic: topics[Math.floor(i / KINDS.length) % topics.length] });
      }
      const worker = new Worker(new URL(import.meta.url), {
        workerData: { avalanche: true, base: { http: base.http, ws: base.ws }, items, batch: Math.max(1, Math.ceil(batch / workers)), batchTimeout },
      });
      this.back.push(0);
      worker.on('message', (m) => {
        if (m.type === 'progress') { this.back[w] = m.back; return; }
        const p = this.pending.get(m.id);
        if (!p) return;
        this.pending.delete(m.id);
        if (m.type === 'error') p.reject(new Error(`worker ${w}: ${m.message}`));
        else p.resolve(m);
      });
      worker.on('error', (e) => { this.failure = e; for (const p of this.pending.values()) p.reject(e); this.pending.clear(); });
      return worker;
    });
  }

  request(w, body, timeout, what) {
    const id = this.nextId++;
    let timer;
    return new Promise((resolve, reject) => {
      this.pending.set(id, { resolve, reject });
      timer = setTimeout(() => { this.pending.delete(id); reject(new Error(`timed out after ${timeout} ms: ${what} (worker ${w})`)); }, timeout);
      this.workers[w].postMessage({ ...body, id });
    }).finally(() => clearTimeout(timer));
  }

  all(body, timeout, what) {
    return Promise.all(this.workers.map((_, w) => this.request(w, body, timeout, what)));
  }

  /** Connects every client (batches per worker); resolves once all are ready. */
  connect(timeout) { return this.all({ type: 'connect' }, timeout, 'the clients to connect'); }

  async arm(gen) {
    this.back.fill(0);
    await this.all({ type: 'arm', gen }, 10000, 'arming');
  }

  backCount() { return this.back.reduce((a, b) => a + b, 0); }

  /** { records (by i), missing (states of some not back), lagP99, lagMax } */
  async report() {
    const parts = await this.all({ type: 'report' }, 30000, 'the report');
    const records = parts.flatMap((p) => p.records).sort((a, b) => a.i - b.i);
    return {
      records,
      missing: parts.flatMap((p) => p.missing).slice(0, 5),
      lagP99: Math.max(...parts.map((p) => p.lagP99)),
      lagMax: Math.max(...parts.map((p) => p.lagMax)),
    };
  }

  async close() {
    await this.all({ type: 'close' }, 10000, 'closing').catch(() => {});
    await Promise.all(this.workers.map((w) => w.terminate()));
  }
}
