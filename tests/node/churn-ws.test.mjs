// The churn test of the reliability goal for chat-page-style WebSocket
// clients (the Socket.IO one is churn.test.mjs): N `ws` subscribers on the
// `/ws` JSON envelope of `switchboard serve` (docs/ws-envelope.md) receive a
// steady broadcast (one publisher, a numbered message every 20 ms for
// CHURN_SECONDS, 15 s) while every 2 s 10 % of them lose their connection
// (`terminate()`: the TCP connection destroyed, no close handshake, as a
// network drop) and reconnect 50-150 ms later, as the chat page does: a new
// WebSocket, then `subscribe` with `since` = the last `seq` seen and the
// `epoch` of the first reply, which replays what was missed from the topic's
// history before the live messages. Every subscriber must get every message
// exactly once and in order, and every re-subscribe must be answered
// `recovered: true`; the delivered share and the recovery delay (drop -> the
// `subscribe` reply; the missed messages follow it at once) p50/p99 are
// printed as diagnostics. A shorter control run re-subscribes without `since`
// and reports the share delivered (a diagnostic, not an assertion).
//
// The subscribers connect with `?presence=false`: with presence on, every
// drop and reconnect sends a leave and a join to every member (2 x N events
// per drop), which at N = 1,000 measures the Node client's JSON parsing more
// than the server; CHURN_PRESENCE=1 turns it on.
//
// N is CHURN_CLIENTS, 300 by default to keep the suite's time small; the
// goal's 1,000 by hand:
//   cargo build --release -p switchboard-server
//   SWITCHBOARD_BIN=$PWD/../../target/release/switchboard CHURN_CLIENTS=1000 \
//     node --test churn-ws.test.mjs
import { describe, test, after } from 'node:test';
import assert from 'node:assert/strict';
import { performance, monitorEventLoopDelay } from 'node:perf_hooks';
import { WebSocket, startServer, sleep, uniqueTopic } from './lib/harness.mjs';

const N = Number(process.env.CHURN_CLIENTS ?? 300);
const SECONDS = Number(process.env.CHURN_SECONDS ?? 15);
const PRESENCE = process.env.CHURN_PRESENCE === '1';
const PERIOD_MS = 20; // one publication every 20 ms
const CHURN_EVERY_MS = 2000;
const CHURN_SHARE = 0.1;

const servers = new Set();
const sockets = new Set();
after(async () => {
  for (const ws of sockets) ws.terminate();
  for (const s of servers) await s.stop();
});

function percentile(sorted, p) {
  if (sorted.length === 0) return NaN;
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)];
}

/** Opens a `/ws` connection; resolves once open. */
function open(server, name) {
  const qs = `?name=${encodeURIComponent(name)}${PRESENCE ? '' : '&presence=false'}`;
  const ws = new WebSocket(`${server.ws}/ws${qs}`, { perMessageDeflate: false });
  sockets.add(ws);
  ws.on('close', () => sockets.delete(ws));
  return new Promise((resolve, reject) => {
    ws.once('open', () => resolve(ws));
    ws.once('error', reject);
  });
}

/**
 * One subscriber as the chat page keeps it: its last `seq` and the topic's
 * `epoch`, a re-subscribe with both after every reconnect (`catchUp`), or a
 * plain one (the control run).
 */
class Subscriber {
  constructor(server, topic, i, catchUp) {
    Object.assign(this, { server, topic, i, catchUp });
    this.got = [];          // the publisher's counters, in arrival order
    this.lastSeq = null;
    this.epoch = null;
    this.drops = 0;
    this.dropAt = null;
    this.up = false;
    this.delays = [];       // drop -> subscribe reply, ms
    this.notRecovered = 0;
    this.errors = [];
    this.nextId = 1;
  }

  async connect() {
    const ws = await open(this.server, `sub-${this.i}`);
    this.ws = ws;
    const id = this.nextId++;
    const reply = new Promise((resolve) => {
      ws.on('message', (data) => {
        const m = JSON.parse(data.toString('utf8'));
        if (m.type === 'message' && m.topic === this.topic) {
          this.lastSeq = m.seq;
          this.got.push(m.data);
        } else if (m.type === 'ok' && m.id === id) {
          resolve(m);
        } else if (m.type === 'error') {
          this.errors.push(m);
        }
      });
    });
    const sub = { op: 'subscribe', topic: this.topic, id };
    if (this.catchUp && this.lastSeq != null) {
      sub.since = this.lastSeq;
      if (this.epoch != null) sub.epoch = this.epoch;
    }
    ws.send(JSON.stringify(sub));
    const r = await reply;
    if (this.lastSeq == null) this.lastSeq = r.seq;
    this.epoch = r.epoch;
    if (this.dropAt != null) {
      this.delays.push(performance.now() - this.dropAt);
      if (r.recovered !== true) this.notRecovered++;
    }
    this.up = true;
  }

  /** Loses the connection, and reconnects after 50-150 ms. */
  drop() {
    this.up = false;
    this.drops++;
    this.dropAt = performance.now();
    this.ws.terminate();
    return sleep(50 + Math.random() * 100).then(() => this.connect());
  }
}

async function churn({ clients, seconds, catchUp }) {
  const server = await startServer();
  servers.add(server);
  const topic = uniqueTopic('churn');
  const subs = Array.from({ length: clients }, (_, i) => new Subscriber(server, topic, i, catchUp));
  // everyone subscribed before the first publication: each is owed all of them
  for (let i = 0; i < clients; i += 100) {
    await Promise.all(subs.slice(i, i + 100).map((s) => s.connect()));
  }
  const publisher = await open(server, 'publisher');

  let churning = true;
  const reconnects = [];
  const churner = (async () => {
    await sleep(CHURN_EVERY_MS);
    while (churning) {
      const up = subs.filter((s) => s.up);
      for (let k = 0; k < Math.round(up.length * CHURN_SHARE); k++) {
        const j = k + Math.floor(Math.random() * (up.length - k));
        [up[k], up[j]] = [up[j], up[k]];
        reconnects.push(up[k].drop());
      }
      await sleep(CHURN_EVERY_MS);
    }
  })();

  const loop = monitorEventLoopDelay({ resolution: 10 });
  loop.enable();
  const total = Math.round((seconds * 1000) / PERIOD_MS);
  const t0 = performance.now();
  for (let n = 0; n < total; n++) {
    publisher.send(JSON.stringify({ op: 'publish', topic, data: n }));
    const due = t0 + (n + 1) * PERIOD_MS;
    const wait = due - performance.now();
    if (wait > 0) await sleep(wait);
  }
  churning = false;
  await churner;
  await Promise.all(reconnects);
  // the last publications and replays in flight
  const deadline = Date.now() + 10000;
  while (Date.now() < deadline && subs.some((s) => s.got.at(-1) !== total - 1)) {
    await sleep(50);
  }
  await sleep(200);
  loop.disable();

  const delivered = subs.reduce((a, s) => a + new Set(s.got).size, 0);
  const delays = subs.flatMap((s) => s.delays).sort((a, b) => a - b);
  return {
    subs,
    total,
    delivered,
    expected: total * clients,
    drops: subs.reduce((a, s) => a + s.drops, 0),
    delays,
    loopP99: loop.percentile(99) / 1e6,
  };
}

describe(`WebSocket (/ws envelope) churn: ${N} subscribers, 10 % dropping every 2 s`, { timeout: 120000 }, () => {
  test(`with history catch-up (since + epoch): 100 % delivered, once, in order (${N} clients, ${SECONDS} s)`, async (t) => {
    const r = await churn({ clients: N, seconds: SECONDS, catchUp: true });
    const share = (100 * r.delivered) / r.expected;
    t.diagnostic(`delivered ${r.delivered} / ${r.expected} = ${share.toFixed(2)} % over ${r.drops} drops; `
      + `recovery delay (drop -> subscribe reply) p50 ${percentile(r.delays, 50).toFixed(0)} ms, `
      + `p99 ${percentile(r.delays, 99).toFixed(0)} ms, max ${r.delays.at(-1)?.toFixed(0)} ms; `
      + `client event-loop delay p99 ${r.loopP99.toFixed(0)} ms`);
    assert.ok(r.drops >= Math.floor(N * CHURN_SHARE) * Math.floor(SECONDS / 2 - 1), `churn happened: ${r.drops} drops`);
    const want = Array.from({ length: r.total }, (_, n) => n);
    for (const s of r.subs) {
      assert.deepEqual(s.errors, [], `subscriber ${s.i}: no error replies`);
      assert.equal(s.notRecovered, 0, `subscriber ${s.i}: every re-subscribe recovered`);
      assert.equal(s.delays.length, s.drops, `subscriber ${s.i}: back after each of its ${s.drops} drops`);
      if (s.got.length !== r.total || s.got.some((v, n) => v !== n)) {
        assert.deepEqual(s.got, want, `subscriber ${s.i} (${s.drops} drops): every message once, in order`);
      }
    }
    assert.equal(r.delivered, r.expected);
  });

  test('control: re-subscribing without since (a diagnostic)', async (t) => {
    const r = await churn({ clients: Math.min(N, 300), seconds: Math.min(SECONDS, 7), catchUp: false });
    const share = (100 * r.delivered) / r.expected;
    t.diagnostic(`without catch-up: delivered ${r.delivered} / ${r.expected} = ${share.toFixed(2)} % over ${r.drops} drops`);
    assert.ok(r.drops > 0, 'churn happened');
    // what the dropped ones missed while away is gone; nothing arrives twice
    for (const s of r.subs) assert.equal(new Set(s.got).size, s.got.length, `subscriber ${s.i}: no duplicates`);
  });
});
