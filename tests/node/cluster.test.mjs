// Three Switchboard nodes sharing one redis-server ([redis], docs/cluster.md):
// clients of all four protocols — `ws` on /ws, socket.io-client, sockjs-client
// on /sockjs/chat, @stomp/stompjs on /stomp — spread across the nodes, every
// client sees every message of its topic in order per publisher; /api/nodes
// lists the nodes; Redis restarting (clients keep their connections, nodes
// reconnect and resubscribe, /metrics says so); a node killed with SIGKILL
// (its clients move to other nodes and catch up with `since` from the
// history Redis keeps).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, execFileSync } from 'node:child_process';
import { createHmac } from 'node:crypto';
import net from 'node:net';
import http from 'node:http';
import { io } from 'socket.io-client';
import SockJS from 'sockjs-client';
import { Client as StompClient } from '@stomp/stompjs';
import {
  startServer, freePort, Client, uniqueTopic, withTimeout, WebSocket, httpGet, sleep,
} from './lib/harness.mjs';

const API_KEY = 'cluster-test-api-key-0123456789';
const SECRET = 'cluster-test-secret-of-at-least-32-bytes';

const b64 = (x) => Buffer.from(JSON.stringify(x)).toString('base64url');
function token(sub) {
  const input = `${b64({ alg: 'HS256', typ: 'JWT' })}.${b64({ sub, exp: Math.floor(Date.now() / 1000) + 600 })}`;
  return `${input}.${createHmac('sha256', SECRET).update(input).digest('base64url')}`;
}

/** An API call on `node`; resolves { status, json }. */
function api(node, method, path, body) {
  return new Promise((resolve, reject) => {
    const req = http.request({
      host: '127.0.0.1', port: node.port, path, method, agent: false,
      headers: { authorization: `apikey ${API_KEY}`, 'content-type': 'application/json' },
    }, (res) => {
      let t = '';
      res.on('data', (c) => { t += c; });
      res.on('end', () => resolve({ status: res.statusCode, json: t ? JSON.parse(t) : undefined }));
    });
    req.on('error', reject);
    req.end(body === undefined ? undefined : JSON.stringify(body));
  });
}
const N = 150; // messages per publisher

let redisPort;
let redis;
const nodes = [];
const cleanups = [];

function redisBinary() {
  try {
    return execFileSync('sh', ['-c', 'command -v redis-server'], { encoding: 'utf8' }).trim();
  } catch {
    throw new Error('redis-server not found: apt-get install -y redis-server');
  }
}

/** Start redis-server on `redisPort`; resolves once it answers PING. */
async function startRedis() {
  const child = spawn(redisBinary(), ['--port', String(redisPort), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no'], {
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  const deadline = Date.now() + 10000;
  for (;;) {
    const ok = await new Promise((resolve) => {
      const s = net.connect(redisPort, '127.0.0.1');
      s.on('connect', () => s.write('PING\r\n'));
      s.on('data', (d) => { s.destroy(); resolve(d.toString().startsWith('+PONG')); });
      s.on('error', () => resolve(false));
    });
    if (ok) return child;
    if (Date.now() > deadline || child.exitCode !== null) throw new Error('redis-server did not start');
    await sleep(50);
  }
}

async function stopRedis() {
  if (!redis) return;
  const r = redis;
  redis = null;
  if (r.exitCode === null) {
    const gone = new Promise((resolve) => r.once('exit', resolve));
    r.kill('SIGKILL');
    await gone;
  }
}

/** A node of the cluster (Socket.IO connection state recovery on). */
function startNode() {
  return startServer({
    env: {
      SWITCHBOARD_REDIS__URL: `redis://127.0.0.1:${redisPort}`,
      SWITCHBOARD_REDIS__RECONNECT_MAX_MS: '500',
      SWITCHBOARD_AUTH__API_KEYS: `["${API_KEY}"]`,
      SWITCHBOARD_AUTH__JWT_HS256_SECRET: SECRET,
      SWITCHBOARD_STOMP__TCP_LISTEN: '',
      SWITCHBOARD_SOCKETIO__CONNECTION_STATE_RECOVERY: 'true',
    },
  });
}

before(async () => {
  redisPort = await freePort();
  redis = await startRedis();
  for (let i = 0; i < 3; i++) nodes.push(await startNode());
});
after(async () => {
  for (const c of cleanups.splice(0).reverse()) await Promise.resolve().then(c).catch(() => {});
  await Promise.all(nodes.map((n) => n.stop().catch(() => {})));
  await stopRedis();
});

/** A metric's value on a node (undefined when absent). */
async function metric(node, name) {
  const r = await httpGet(node.port, '/metrics');
  const line = r.body.split('\n').find((l) => l.startsWith(`${name} `));
  return line === undefined ? undefined : Number(line.split(' ')[1]);
}

async function until(pred, ms, what) {
  const deadline = Date.now() + ms;
  for (;;) {
    if (await pred()) return;
    if (Date.now() > deadline) throw new Error(`timed out after ${ms} ms waiting for ${what}`);
    await sleep(50);
  }
}

/** One Redis command over RESP; resolves the raw reply text. */
function redisCommand(...args) {
  return new Promise((resolve, reject) => {
    const s = net.connect(redisPort, '127.0.0.1');
    let reply = '';
    s.on('connect', () => s.write(`*${args.length}\r\n${args.map((a) => `$${Buffer.byteLength(a)}\r\n${a}\r\n`).join('')}`));
    s.on('data', (d) => { reply += d; if (reply.endsWith('\r\n')) { s.destroy(); resolve(reply); } });
    s.on('error', reject);
  });
}

/** `n` nodes subscribe to `topic`'s channel on Redis (so a publication reaches them). */
function subscribedBy(topic, n) {
  return until(async () => {
    const reply = await redisCommand('PUBSUB', 'NUMSUB', `switchboard:t:${topic}`).catch(() => '');
    const count = Number(reply.trim().split('\r\n').pop().replace(':', ''));
    return count === n;
  }, 10000, `${n} nodes subscribed to ${topic} on Redis`);
}

/** Collects `data` strings per receiver; `wait(n)` resolves when n arrived. */
class Received {
  constructor(name) { this.name = name; this.items = []; this.waiters = []; }
  push(x) {
    this.items.push(x);
    for (const w of this.waiters.filter((w) => this.items.length >= w.n)) w.resolve();
    this.waiters = this.waiters.filter((w) => this.items.length < w.n);
  }
  wait(n, ms = 15000) {
    if (this.items.length >= n) return Promise.resolve();
    return withTimeout(new Promise((resolve) => this.waiters.push({ n, resolve })), ms, `${n} messages at ${this.name} (got ${this.items.length})`);
  }
}

/** A `/ws` subscriber (the chat page's protocol); with `since`, it catches
 * up as the chat page does after a reconnect. `got.seqs` are the seqs seen. */
async function wsSubscriber(node, topic, name, since) {
  const c = await Client.open(`${node.ws}/ws?name=${name}`);
  cleanups.push(() => c.close());
  const got = new Received(`ws@${name}`);
  got.seqs = [];
  c.ws.on('message', (d) => {
    const m = JSON.parse(d.toString());
    if (m.type === 'message' && m.topic === topic) { got.seqs.push(m.seq); got.push(m.data); }
  });
  const reply = await c.request(since === undefined ? { op: 'subscribe', topic } : { op: 'subscribe', topic, since });
  assert.equal(reply.type, 'ok', JSON.stringify(reply));
  return { c, got, reply };
}

async function sioSubscriber(node, topic, name, since) {
  const socket = io(node.http, { auth: { name }, transports: ['websocket'], forceNew: true, reconnection: false });
  cleanups.push(() => socket.close());
  const got = new Received(`socket.io@${name}`);
  got.seqs = [];
  socket.on('message', (m) => { if (m.topic === topic) { got.seqs.push(m.seq); got.push(m.data); } });
  await withTimeout(new Promise((r) => socket.on('connect', r)), 5000, 'socket.io connect');
  const reply = await socket.timeout(5000).emitWithAck('subscribe', since === undefined ? topic : { topic, since });
  assert.equal(reply.ok, true);
  return { socket, got, reply };
}

async function sockjsSubscriber(node, topic, name) {
  const sock = new SockJS(`${node.http}/sockjs/chat?name=${name}`, null, { transports: ['xhr-streaming'] });
  cleanups.push(() => sock.close());
  const got = new Received(`sockjs@${name}`);
  const acked = new Promise((resolve) => {
    sock.onmessage = (e) => {
      const m = JSON.parse(e.data);
      if (m.type === 'ok' && m.op === 'subscribe') resolve();
      if (m.type === 'message' && m.topic === topic) got.push(m.data);
    };
  });
  await withTimeout(new Promise((r) => { sock.onopen = r; }), 5000, 'sockjs open');
  sock.send(JSON.stringify({ op: 'subscribe', topic, id: 1 }));
  await withTimeout(acked, 5000, 'sockjs subscribe');
  return { sock, got };
}

async function stompSubscriber(node, topic) {
  const got = new Received(`stomp@${node.port}`);
  const client = new StompClient({
    webSocketFactory: () => new WebSocket(`${node.ws}/stomp`, ['v12.stomp']),
    reconnectDelay: 0,
    debug: () => {},
  });
  cleanups.push(() => client.deactivate({ force: true }));
  await withTimeout(new Promise((resolve) => { client.onConnect = resolve; client.activate(); }), 5000, 'STOMP CONNECTED');
  await new Promise((resolve) => {
    // A JSON string publication reaches STOMP as its text (docs/stomp.md).
    client.subscribe(`/topic/${topic}`, (m) => got.push(m.body), { receipt: 'sub' });
    client.watchForReceipt('sub', resolve);
  });
  return { client, got };
}

/** Checks every publisher's messages arrived, each publisher's in order. */
function assertComplete(got, publishers) {
  for (const p of publishers) {
    const mine = got.items.filter((x) => typeof x === 'string' && x.startsWith(`${p}:`));
    assert.deepEqual(mine, Array.from({ length: N }, (_, i) => `${p}:${i}`), `${got.name} from ${p}`);
  }
}

test('clients of every protocol on three nodes see every message, in order per publisher', async () => {
  const topic = uniqueTopic('cluster');
  const subs = [
    await wsSubscriber(nodes[0], topic, 'ws0'),
    await stompSubscriber(nodes[0], topic),
    await sioSubscriber(nodes[1], topic, 'sio1'),
    await sockjsSubscriber(nodes[1], topic, 'sj1'),
    await wsSubscriber(nodes[2], topic, 'ws2'),
    await stompSubscriber(nodes[2], topic),
  ];
  await subscribedBy(topic, 3);
  // Publishers on node 0 (/ws), node 1 (Socket.IO) and node 2 (STOMP).
  const wsPub = await Client.open(`${nodes[0].ws}/ws?name=pubA`);
  cleanups.push(() => wsPub.close());
  const sioPub = io(nodes[1].http, { auth: { name: 'pubB' }, transports: ['websocket'], forceNew: true });
  cleanups.push(() => sioPub.close());
  await withTimeout(new Promise((r) => sioPub.on('connect', r)), 5000, 'connect');
  const stompPub = subs[5].client;
  await Promise.all([
    (async () => { for (let i = 0; i < N; i++) await wsPub.sendJson({ op: 'publish', topic, data: `A:${i}` }); })(),
    (async () => { for (let i = 0; i < N; i++) sioPub.emit('publish', { topic, data: `B:${i}` }); })(),
    (async () => { for (let i = 0; i < N; i++) stompPub.publish({ destination: `/topic/${topic}`, body: JSON.stringify(`C:${i}`), headers: { 'content-type': 'application/json' } }); })(),
  ]);
  for (const s of subs) {
    await s.got.wait(3 * N);
    assertComplete(s.got, ['A', 'B', 'C']);
  }
  await sleep(200);
  for (const s of subs) assert.equal(s.got.items.length, 3 * N, `${s.got.name}: no duplicates`);
});

test('/api/nodes lists every live node', async () => {
  await until(async () => {
    const r = await new Promise((resolve, reject) => {
      http.get({ host: '127.0.0.1', port: nodes[0].port, path: '/api/nodes', headers: { authorization: `apikey ${API_KEY}` } }, (res) => {
        let t = '';
        res.on('data', (c) => { t += c; });
        res.on('end', () => resolve(JSON.parse(t)));
      }).on('error', reject);
    });
    return r.nodes.length === 3 && r.nodes.every((n) => n.backplane.kind === 'redis' && n.backplane.connected);
  }, 10000, 'three connected nodes in /api/nodes');
});

test('Redis restarting: clients stay connected, nodes reconnect and resubscribe, and say so', async () => {
  const topic = uniqueTopic('restart');
  const a = await wsSubscriber(nodes[0], topic, 'ra');
  const b = await wsSubscriber(nodes[2], topic, 'rb');
  await subscribedBy(topic, 2);
  const before0 = await metric(nodes[0], 'switchboard_backplane_reconnects_total');
  await stopRedis();
  await until(async () => (await metric(nodes[0], 'switchboard_backplane_connected')) === 0, 10000, 'node 0 sees Redis gone');
  // Redis numbers publications (shared history): without it nothing is
  // delivered, not even locally; the publication waits in node 0's queue.
  await a.c.request({ op: 'publish', topic, data: 'during' });
  await sleep(300);
  assert.deepEqual(a.got.items, []);

  redis = await startRedis();
  await until(async () => {
    for (const n of nodes) if ((await metric(n, 'switchboard_backplane_connected')) !== 1) return false;
    return true;
  }, 15000, 'every node reconnected');
  assert.ok((await metric(nodes[0], 'switchboard_backplane_reconnects_total')) > before0);
  await subscribedBy(topic, 2);
  // What node 0 published meanwhile went out on reconnection: kept in the
  // topic's new shared history, so every node delivers it (a node that
  // subscribed again after it was published reads it from the history).
  await a.got.wait(1);
  await b.got.wait(1);
  await b.c.request({ op: 'publish', topic, data: 'after' });
  await a.got.wait(2);
  await b.got.wait(2);
  await sleep(200);
  for (const x of [a, b]) {
    assert.deepEqual(x.got.items, ['during', 'after']);
    assert.deepEqual(x.got.seqs, [1, 2], 'Redis restarted empty: numbering from 1 again');
  }
  // Nobody was disconnected.
  assert.equal(a.c.closed, null);
  assert.equal(b.c.closed, null);
});

test('the history is the cluster\'s: kept in Redis, read on any node', async () => {
  const topic = uniqueTopic('history');
  // Nobody subscribes anywhere: publications are still numbered and kept.
  for (const data of ['h1', 'h2', 'h3']) {
    const r = await api(nodes[0], 'POST', '/api/publish', { topic, data });
    assert.equal(r.status, 200, JSON.stringify(r.json));
  }
  await until(async () => (await api(nodes[1], 'GET', `/api/history?topic=${topic}`)).json.messages.length === 3, 5000, 'three publications in the history');
  const h = await api(nodes[1], 'GET', `/api/history?topic=${topic}&since=1`);
  assert.equal(h.status, 200);
  assert.equal(h.json.complete, true);
  assert.deepEqual(h.json.messages.map((m) => [m.seq, m.data]), [[2, 'h2'], [3, 'h3']]);
  // The `history` request of /ws and of Socket.IO on a node without
  // subscribers of the topic: the cluster's too.
  const asker = await Client.open(`${nodes[1].ws}/ws?name=asker`);
  cleanups.push(() => asker.close());
  const wsHistory = await asker.request({ op: 'history', topic, since: 1 });
  assert.equal(wsHistory.type, 'ok', JSON.stringify(wsHistory));
  assert.deepEqual(wsHistory.messages.map((m) => [m.seq, m.data]), [[2, 'h2'], [3, 'h3']]);
  const sio = io(nodes[2].http, { transports: ['websocket'], forceNew: true, reconnection: false });
  cleanups.push(() => sio.close());
  await withTimeout(new Promise((r) => sio.on('connect', r)), 5000, 'socket.io connect');
  const sioHistory = await sio.timeout(5000).emitWithAck('history', { topic });
  assert.equal(sioHistory.ok, true, JSON.stringify(sioHistory));
  assert.deepEqual(sioHistory.messages.map((m) => m.data), ['h1', 'h2', 'h3']);
  // A subscriber with `since` on another node replays the same numbers.
  const late = await wsSubscriber(nodes[2], topic, 'late', 0);
  assert.equal(late.reply.recovered, true);
  await late.got.wait(3);
  assert.deepEqual(late.got.seqs, [1, 2, 3]);
});

test('presence spans the nodes: counts, join and leave events, /api/presence anywhere', async () => {
  const topic = uniqueTopic('presence');
  const events = [];
  const alice = await Client.open(`${nodes[0].ws}/ws?name=alice`);
  cleanups.push(() => alice.close());
  alice.ws.on('message', (d) => {
    const m = JSON.parse(d.toString());
    if (m.type === 'presence' && m.topic === topic) events.push(`${m.event}:${m.name}:${m.count}`);
  });
  assert.equal((await alice.request({ op: 'subscribe', topic })).type, 'ok');
  const bob = await sioSubscriber(nodes[1], topic, 'bob');
  await until(async () => events.includes('join:bob:2'), 10000, 'alice told of bob joining on another node');
  const p = await alice.request({ op: 'presence', topic });
  assert.equal(p.presence.count, 2);
  assert.deepEqual([...p.presence.members].sort(), ['alice', 'bob']);
  // Node 2 has no subscriber of the topic: it reads the reports from Redis.
  const api2 = await api(nodes[2], 'GET', `/api/presence?topic=${topic}`);
  assert.equal(api2.status, 200);
  assert.equal(api2.json.presence.count, 2);
  assert.deepEqual([...api2.json.presence.members].sort(), ['alice', 'bob']);
  bob.socket.close();
  await until(async () => events.includes('leave:bob:1'), 10000, 'alice told of bob leaving');
});

test('Socket.IO rooms span the nodes: /api/socketio/emit on one node reaches sockets on all', async () => {
  const sockets = [];
  for (const node of nodes) {
    const s = io(node.http, { transports: ['websocket'], forceNew: true, reconnection: false });
    cleanups.push(() => s.close());
    await withTimeout(new Promise((r) => s.on('connect', r)), 5000, 'connect');
    sockets.push(s);
  }
  // Every socket is in the room of its own id: target the one on node 2 from node 0.
  const only = new Promise((r) => sockets[2].on('direct', r));
  const r = await api(nodes[0], 'POST', '/api/socketio/emit', { rooms: [sockets[2].id], event: 'direct', data: { to: 2 } });
  assert.equal(r.status, 200);
  assert.deepEqual(await withTimeout(only, 5000, 'direct emit across nodes'), { to: 2 });
  // No room: every socket of the namespace, on every node.
  const all = sockets.map((s) => new Promise((resolve) => s.on('everyone', resolve)));
  assert.equal((await api(nodes[1], 'POST', '/api/socketio/emit', { event: 'everyone', data: 'hi' })).status, 200);
  assert.deepEqual(await withTimeout(Promise.all(all), 5000, 'emit to every node'), ['hi', 'hi', 'hi']);
});

test('/api/disconnect on one node disconnects the user on every node', async () => {
  const t = token('u-everywhere');
  const onNode1 = await Client.open(`${nodes[1].ws}/ws?token=${t}`);
  const onNode2 = io(nodes[2].http, { auth: { token: t }, transports: ['websocket'], forceNew: true, reconnection: false });
  cleanups.push(() => onNode2.close());
  await withTimeout(new Promise((r) => onNode2.on('connect', r)), 5000, 'connect');
  const gone = new Promise((r) => onNode2.on('disconnect', r));
  const r = await api(nodes[0], 'POST', '/api/disconnect', { user: 'u-everywhere' });
  assert.deepEqual(r.json, { user: 'u-everywhere', disconnected: 0 }, 'none on node 0 itself');
  assert.deepEqual(await onNode1.waitClose(5000), { code: 4001, reason: 'disconnected by the server' });
  assert.equal(await withTimeout(gone, 5000, 'socket.io disconnect'), 'io server disconnect');
});

test('a node killed with SIGKILL: its clients move to other nodes and catch up on what they missed', async () => {
  const topic = uniqueTopic('failover');
  const victim = nodes[2];
  const movingWs = await wsSubscriber(victim, topic, 'mover-ws');
  const movingSio = await sioSubscriber(victim, topic, 'mover-sio');
  const stayer = await sioSubscriber(nodes[0], topic, 'stayer');
  await subscribedBy(topic, 2);
  const pub = await Client.open(`${nodes[1].ws}/ws?name=pub`);
  cleanups.push(() => pub.close());
  await pub.request({ op: 'publish', topic, data: 'm1' });
  await movingWs.got.wait(1);
  await movingSio.got.wait(1);
  const lastSeen = movingWs.got.seqs.at(-1);
  assert.equal(movingSio.got.seqs.at(-1), lastSeen, 'the same numbers on every node');

  victim.child.kill('SIGKILL');
  const closed = await movingWs.c.waitClose(5000);
  assert.equal(closed.code, 1006, 'abnormal closure: the node died');
  // Published while the clients are away.
  await pub.request({ op: 'publish', topic, data: 'missed-1' });
  await pub.request({ op: 'publish', topic, data: 'missed-2' });
  await stayer.got.wait(3);
  // The clients reconnect, each to a node of its list, and subscribe again
  // with `since` = the last seq they saw, as the chat page does: node 1 has
  // no subscriber of the topic (it reads the history from Redis first),
  // node 0 has one (it answers from its own copy).
  const movedWs = await wsSubscriber(nodes[1], topic, 'mover-ws', lastSeen);
  const movedSio = await sioSubscriber(nodes[0], topic, 'mover-sio', lastSeen);
  for (const moved of [movedWs, movedSio]) {
    assert.equal(moved.reply.recovered, true);
    await moved.got.wait(2);
    assert.deepEqual(moved.got.items, ['missed-1', 'missed-2']);
    assert.deepEqual(moved.got.seqs, [lastSeen + 1, lastSeen + 2]);
  }
  await subscribedBy(topic, 2);
  await pub.request({ op: 'publish', topic, data: 'm2' });
  for (const x of [movedWs, movedSio]) {
    await x.got.wait(3);
    assert.deepEqual(x.got.items, ['missed-1', 'missed-2', 'm2']);
  }
  await stayer.got.wait(4);
  assert.deepEqual(stayer.got.items, ['m1', 'missed-1', 'missed-2', 'm2']);
  // The survivors forget the dead node.
  nodes.splice(2, 1);
});

/** A TCP proxy on a free loopback port, as a load balancer in front of the
 * nodes: each new connection goes to port `proxy.target`, or is refused
 * while it is null. */
async function tcpProxy(target) {
  const conns = new Set();
  const proxy = { target };
  proxy.server = net.createServer((client) => {
    if (proxy.target == null) { client.destroy(); return; }
    const upstream = net.connect(proxy.target, '127.0.0.1');
    conns.add(client);
    conns.add(upstream);
    const end = () => {
      client.destroy();
      upstream.destroy();
      conns.delete(client);
      conns.delete(upstream);
    };
    for (const s of [client, upstream]) { s.on('error', end); s.on('close', end); }
    client.pipe(upstream);
    upstream.pipe(client);
  });
  await new Promise((r) => proxy.server.listen(0, '127.0.0.1', r));
  proxy.port = proxy.server.address().port;
  proxy.close = () => { for (const c of conns) c.destroy(); proxy.server.close(); };
  return proxy;
}

test('Socket.IO connection state recovery across nodes: a client of a node killed with SIGKILL is recovered on another', async () => {
  const victim = await startNode();
  cleanups.push(() => victim.stop());
  const lb = await tcpProxy(victim.port);
  cleanups.push(() => lb.close());
  const socket = io(`http://127.0.0.1:${lb.port}`, {
    auth: { name: 'recovering' }, transports: ['websocket'], forceNew: true,
    reconnectionDelay: 100, reconnectionDelayMax: 200, randomizationFactor: 0,
  });
  cleanups.push(() => socket.close());
  const notes = [];
  socket.on('note', (x) => notes.push(x));
  await withTimeout(new Promise((r) => socket.once('connect', r)), 5000, 'socket.io connect');
  assert.notEqual(socket.recovered, true, "a new session");
  const id = socket.id;
  const note = (data) => api(nodes[1], 'POST', '/api/socketio/emit', { rooms: [id], event: 'note', data });
  // Until the new node listens on Redis, a note may not reach it.
  await until(async () => {
    await note('hello');
    await sleep(100);
    return notes.includes('hello');
  }, 10000, 'a note from node 1 through the new node');
  const later = () => notes.filter((n) => n !== 'hello');

  victim.child.kill('SIGKILL');
  lb.target = null; // the balancer has no live backend for a moment
  await withTimeout(new Promise((r) => socket.once('disconnect', r)), 5000, 'disconnect');
  // Sent while the client is away: to its own room, and to everyone.
  assert.equal((await note('missed-1')).status, 200);
  const all = await api(nodes[1], 'POST', '/api/socketio/emit', { event: 'note', data: 'missed-2' });
  assert.equal(all.status, 200);
  lb.target = nodes[0].port;
  await withTimeout(new Promise((r) => socket.once('connect', r)), 10000, 'reconnect through the balancer');
  assert.equal(socket.recovered, true, 'recovered on another node');
  assert.equal(socket.id, id, 'the same socket id');
  await until(() => later().length >= 2, 5000, 'the missed notes');
  assert.deepEqual(later(), ['missed-1', 'missed-2']);
  // Live again on node 0, still in the room of its id.
  assert.equal((await note('live')).status, 200);
  await until(() => later().length >= 3, 5000, 'a live note');
  assert.deepEqual(later(), ['missed-1', 'missed-2', 'live']);
});
