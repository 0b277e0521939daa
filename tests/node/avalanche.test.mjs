// Avalanche: every client of a node reconnects at once. N subscribers, spread
// evenly over Socket.IO (socket.io-client 4, websocket transport), the /ws JSON
// envelope (`ws`), SockJS (/sockjs/chat, sockjs-client's websocket transport)
// and STOMP over WebSocket (@stomp/stompjs 7), each subscribed to one of
// AVALANCHE_TOPICS topics (default N / 50, at least 10), receive a steady
// trickle from a separate publisher (one message per topic every
// AVALANCHE_PUBLISH_MS, 100 ms). Then the server is
// restarted (SIGTERM, wait for its exit, start it again on the same port), so
// every client loses its connection at the same moment. For each client the
// recovery time is measured from the new process accepting (first TCP probe
// accepted) until it is reconnected AND re-subscribed AND has received a
// message published on the new process. All N must recover within
// AVALANCHE_BOUND_MS (30 s), the server must answer GET /healthz, and p50 /
// p99 / max are reported as diagnostics.
//
// Reconnection settings (the libraries' own options, or chat.js's backoff):
//   socket.io-client  reconnectionDelay 500, randomizationFactor 0.5, reconnectionDelayMax 5000
//   ws, sockjs        chat.js's Backoff: 500 ms doubling, equal jitter (50-100 % of it), max 5000
//   stompjs           reconnectDelay drawn in 250-750 ms per client (stompjs has no jitter),
//                     reconnectTimeMode EXPONENTIAL, maxReconnectDelay 5000
// The envelope and Socket.IO clients re-subscribe with `since` = the last seq
// they saw, as the chat page does; history lives in the server's memory, so
// after a restart that catch-up finds nothing (`recovered: false`): only
// reconnection and fresh delivery are asserted, not the messages published
// around the restart.
//
// The clients run in AVALANCHE_WORKERS worker threads (default: one per
// 1,000 clients, at most 4), the server control, the TCP probe and the
// publisher in the test's own thread, so that the clock and the publisher are
// not held up by the clients' callbacks.
//
// N is AVALANCHE_CLIENTS, 400 by default (the suite must stay fast); by hand:
//   CARGO_TARGET_DIR=$PWD/../../target/h-aval cargo build --release -p switchboard-server
//   SWITCHBOARD_BIN=$PWD/../../target/h-aval/release/switchboard AVALANCHE_CLIENTS=2000 \
//     node --test --test-concurrency=1 avalanche.test.mjs
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import os from 'node:os';
import { freePort, httpGet } from './lib/harness.mjs';
import { startNode, until, now, ClientPool, Publisher, KINDS, summary } from './lib/avalanche.mjs';

/** A positive integer from the environment; `def` when unset or empty. */
function envInt(name, def) {
  const raw = process.env[name];
  if (raw == null || raw === '') return def;
  const v = Number(raw);
  if (!Number.isInteger(v) || v < 1) throw new Error(`${name}=${raw}: expected a positive integer`);
  return v;
}

const N = envInt('AVALANCHE_CLIENTS', 400);
const WORKERS = envInt('AVALANCHE_WORKERS', Math.min(4, Math.max(1, Math.ceil(N / 1000))));
// About 50 clients per topic: every (re)subscription sends a presence `join`
// to the topic's other members, so the avalanche costs N x (N / TOPICS)
// events; with a few topics for thousands of clients that, not the
// reconnections, is what the clients' threads spend their time on.
const TOPICS = envInt('AVALANCHE_TOPICS', Math.max(10, Math.ceil(N / 50)));
const PUBLISH_MS = envInt('AVALANCHE_PUBLISH_MS', 100);
const BOUND_MS = envInt('AVALANCHE_BOUND_MS', 30000);

// No STOMP TCP listener: it would take 127.0.0.1:61613 from other servers.
const ENV = { SWITCHBOARD_STOMP__TCP_LISTEN: '' };

let node = null;
let publisher = null;
let pool = null;

after(async () => {
  if (publisher) publisher.stop();
  if (pool) await pool.close();
  if (node) await node.stop();
});

const load = () => os.loadavg().map((x) => x.toFixed(2)).join(' ');

test(`avalanche: ${N} clients (${KINDS.join(', ')}) reconnect at once after a server restart, all within ${BOUND_MS} ms`,
  { timeout: 60000 + BOUND_MS + N * 40 }, async (t) => {
    assert.ok(N >= KINDS.length, 'AVALANCHE_CLIENTS must be at least 4');
    const port = await freePort();
    node = await startNode({ port, env: ENV });
    const run = `${process.pid}-${Date.now().toString(36)}`;
    const topics = Array.from({ length: TOPICS }, (_, k) => `aval-${run}-${k}`);

    publisher = new Publisher(topics, PUBLISH_MS);
    await publisher.open(node, 1);
    publisher.start();

    // Every client ready: subscribed, with a message of generation 1.
    const tConnect = now();
    pool = new ClientPool({ clients: N, workers: WORKERS, base: node, topics });
    await pool.connect(30000 + N * 30);
    const connectMs = now() - tConnect;
    const load0 = load();

    // The restart. Generation 2: what the publisher sends on the new process.
    await pool.arm(2);
    publisher.drop();
    const tTerm = now();
    const exit = await node.terminate(15000);
    assert.ok(exit.signal === 'SIGTERM' || exit.code === 0,
      `the server exits cleanly on SIGTERM: ${JSON.stringify(exit)}; output:\n${node.log().slice(-2000)}`);
    const oldLog = node.log();
    node = null;
    node = await startNode({ port, env: ENV });
    const tAccept = node.acceptedAt;
    const cpu0 = node.cpuMs();
    await publisher.open(node, 2);
    const tPublisher = now();

    let timedOut = null;
    await until(() => pool.backCount() === N, BOUND_MS - (now() - tAccept),
      'every client to be back (reconnected, re-subscribed, a fresh message) after the restart', () => '', 10)
      .catch((e) => { timedOut = e; });
    const tAll = now();
    const serverCpu = node.cpuMs() - cpu0;
    const r = await pool.report();
    if (timedOut) {
      const missing = r.records.filter((x) => !x.rec);
      const byKind = KINDS.map((k) => `${k} ${missing.filter((x) => x.kind === k).length}`).join(', ');
      assert.fail(`${timedOut.message}: ${missing.length}/${N} not back (${byKind}); e.g. ${r.missing.join('; ')}`);
    }

    const health = await httpGet(node.port, '/healthz', { timeout: 5000 });
    assert.equal(health.status, 200, `GET /healthz after the avalanche: ${health.status} ${health.body}`);
    assert.doesNotMatch(node.log(), /panicked/, 'no panic in the new process');
    assert.doesNotMatch(oldLog, /panicked/, 'no panic in the old process');

    const subs = r.records;
    assert.equal(subs.length, N);
    // Every client saw its connection end (the restart, not a lucky survivor).
    const notDown = subs.filter((s) => s.downAt == null);
    assert.equal(notDown.length, 0, `clients that never saw a disconnect: ${notDown.slice(0, 5).map((s) => `${s.kind} ${s.i}`)}`);
    // No message of the old process on a new connection.
    assert.equal(subs.reduce((a, s) => a + s.stale, 0), 0, 'old-generation messages on a new connection');

    const rec = subs.map((s) => s.rec.freshAt - tAccept);
    const worst = Math.max(...rec);
    assert.ok(worst <= BOUND_MS, `slowest recovery ${worst.toFixed(0)} ms > ${BOUND_MS} ms`);

    const per = KINDS.map((k) => {
      const of = subs.filter((s) => s.kind === k);
      return `${k} (${of.length}): ${summary(of.map((s) => s.rec.freshAt - tAccept))}`;
    });
    const whys = {};
    for (const s of subs) whys[`${s.kind}:${s.closeWhy}`] = (whys[`${s.kind}:${s.closeWhy}`] ?? 0) + 1;
    const sum = (f) => subs.reduce((a, s) => a + f(s), 0);
    const withSince = subs.filter((s) => s.kind !== 'stomp').length;

    const lines = [
      `avalanche: ${N} clients in ${WORKERS} worker thread(s), ${TOPICS} topics, one publication per topic every ` +
        `${PUBLISH_MS} ms; initial connect of all ${N}: ${connectMs.toFixed(0)} ms`,
      `restart: SIGTERM -> old process exited ${(exit.at - tTerm).toFixed(0)} ms, ` +
        `exit -> new process accepting ${(tAccept - exit.at).toFixed(0)} ms, ` +
        `accepting -> publisher reopened ${(tPublisher - tAccept).toFixed(0)} ms`,
      `clients saw the disconnect (from SIGTERM): ${summary(subs.map((s) => s.downAt - tTerm))}; ` +
        `close reasons ${JSON.stringify(whys)}`,
      `RECOVERY (new process accepting -> reconnected + re-subscribed + fresh message), all ${N}: ${summary(rec)}; ` +
        `everyone back ${(tAll - tAccept).toFixed(0)} ms after accepting (seen by polling), ` +
        `${(tAll - tTerm).toFixed(0)} ms after SIGTERM; server CPU meanwhile ${serverCpu.toFixed(0)} ms`,
      `  by kind: ${per.join('; ')}`,
      `  of which reconnected ${summary(subs.map((s) => s.rec.openAt - tAccept))}; ` +
        `re-subscribed ${summary(subs.map((s) => s.rec.subAt - tAccept))}`,
      `re-subscriptions with since (${withSince} envelope/SockJS/Socket.IO clients): ` +
        `recovered:false ${sum((s) => s.notRecovered)}, recovered:true ${sum((s) => s.claimedRecovered)} ` +
        `(a since from the old process answered from the new topic's seqs); ` +
        `socket.io 'io server disconnect' ${sum((s) => s.serverDisconnects)}`,
      `client threads' event-loop delay p99 ${r.lagP99.toFixed(0)} ms, max ${r.lagMax.toFixed(0)} ms; ` +
        `load average ${load0} -> ${load()} (${os.cpus().length} cores); publications sent ${publisher.sent}`,
    ];
    for (const l of lines) t.diagnostic(l);
    if (process.env.AVALANCHE_VERBOSE) for (const l of lines) console.log(l);
  });
