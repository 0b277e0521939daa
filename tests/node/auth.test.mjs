// Connection tokens (JWT, docs/auth.md) for every protocol with its real
// client — `ws`, socket.io-client, sockjs-client, @stomp/stompjs — plus the
// HTTP API (API key, publish/presence/history/emit/disconnect, OpenAPI) and
// Prometheus /metrics. Tokens are minted here with node:crypto (HS256) and
// once with `switchboard token`, so both sides of the format are checked.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createHmac } from 'node:crypto';
import { spawnSync } from 'node:child_process';
import http from 'node:http';
import { io } from 'socket.io-client';
import SockJS from 'sockjs-client';
import { Client as StompClient } from '@stomp/stompjs';
import {
  startServer, serverBinary, Client, uniqueTopic, withTimeout, WebSocket, httpGet,
} from './lib/harness.mjs';

const SECRET = 'test-secret-of-at-least-32-bytes-0123456789';
const API_KEY = 'test-api-key-0123456789abcdef';

const b64 = (x) => Buffer.from(typeof x === 'string' ? x : JSON.stringify(x)).toString('base64url');
function mint(claims, secret = SECRET, header = { alg: 'HS256', typ: 'JWT' }) {
  const input = `${b64(header)}.${b64(claims)}`;
  return `${input}.${createHmac('sha256', secret).update(input).digest('base64url')}`;
}
const now = () => Math.floor(Date.now() / 1000);
const valid = (sub, extra = {}) => mint({ sub, exp: now() + 600, ...extra });

let server; // tokens required, API keys set
let demo;   // the defaults: anonymous, no API key
const cleanups = [];
before(async () => {
  server = await startServer({
    env: {
      SWITCHBOARD_AUTH__ANONYMOUS: 'false',
      SWITCHBOARD_AUTH__JWT_HS256_SECRET: SECRET,
      SWITCHBOARD_AUTH__API_KEYS: `["${API_KEY}"]`,
      SWITCHBOARD_STOMP__TCP_LISTEN: '',
    },
  });
  demo = await startServer({ env: { SWITCHBOARD_STOMP__TCP_LISTEN: '' } });
});
after(async () => {
  for (const c of cleanups.splice(0).reverse()) await Promise.resolve().then(c).catch(() => {});
  if (server) await server.stop();
  if (demo) await demo.stop();
});

/** The HTTP status and body a WebSocket upgrade was refused with. */
function refusedUpgrade(url, headers = {}) {
  return withTimeout(new Promise((resolve, reject) => {
    const ws = new WebSocket(url, { headers });
    ws.on('open', () => { ws.terminate(); reject(new Error(`${url} opened`)); });
    ws.on('error', () => {});
    ws.on('unexpected-response', (req, res) => {
      let body = '';
      res.on('data', (c) => { body += c; });
      res.on('end', () => resolve({ status: res.statusCode, body: body.trim(), auth: res.headers['www-authenticate'] }));
    });
  }), 5000, `refusal of ${url}`);
}

async function wsClient(token, { header = false } = {}) {
  const url = header ? `${server.ws}/ws` : `${server.ws}/ws?token=${encodeURIComponent(token)}`;
  const c = await Client.open(url, header ? { headers: { Authorization: `Bearer ${token}` } } : {});
  cleanups.push(() => c.close());
  return c;
}

/** POST JSON to the API; resolves { status, json }. */
function api(srv, method, path, body, key = API_KEY) {
  return new Promise((resolve, reject) => {
    const data = body === undefined ? undefined : JSON.stringify(body);
    const headers = { 'content-type': 'application/json' };
    if (key) headers.authorization = `apikey ${key}`;
    const req = http.request({ host: '127.0.0.1', port: srv.port, path, method, headers, agent: false }, (res) => {
      let text = '';
      res.on('data', (c) => { text += c; });
      res.on('end', () => {
        let json;
        try { json = JSON.parse(text); } catch { json = undefined; }
        resolve({ status: res.statusCode, json, text, headers: res.headers });
      });
    });
    req.on('error', reject);
    if (data) req.write(data);
    req.end();
  });
}

function sioConnect(srv, auth) {
  const socket = io(srv.http, { auth, transports: ['websocket'], reconnection: false, forceNew: true });
  cleanups.push(() => socket.close());
  return socket;
}

function sockjs(path) {
  const sock = new SockJS(`${server.http}${path}`, null, { transports: ['websocket'] });
  cleanups.push(() => sock.close());
  const events = { messages: [], close: null };
  const opened = new Promise((resolve) => { sock.onopen = resolve; });
  const closed = new Promise((resolve) => {
    sock.onclose = (e) => { events.close = { code: e.code, reason: e.reason }; resolve(events.close); };
  });
  sock.onmessage = (e) => events.messages.push(JSON.parse(e.data));
  return { sock, events, opened, closed };
}

function stomp(connectHeaders) {
  return new Promise((resolve) => {
    const client = new StompClient({
      webSocketFactory: () => new WebSocket(`${server.ws}/stomp`, ['v12.stomp']),
      connectHeaders,
      reconnectDelay: 0,
      debug: () => {},
      onConnect: (frame) => resolve({ client, frame }),
      onStompError: (frame) => resolve({ client, error: frame }),
    });
    cleanups.push(() => client.deactivate({ force: true }));
    client.activate();
  });
}

test('WebSocket: no, expired, forged or misused tokens get 401 with the reason', async () => {
  const cases = [
    [`${server.ws}/ws`, 'token required'],
    [`${server.ws}/ws?token=${mint({ sub: 'a', exp: now() - 3600 })}`, 'token expired'],
    [`${server.ws}/ws?token=${mint({ sub: 'a', exp: now() + 600 }, 'another-secret-of-at-least-32-bytes-xx')}`, 'invalid token signature'],
    [`${server.ws}/ws?token=${mint({ sub: 'a', exp: now() + 600 }, '', { alg: 'none' })}`, 'token algorithm not accepted'],
    [`${server.ws}/ws?token=not.a.token`, 'malformed token'],
    [`${server.ws}/ws/topic/x`, 'token required'],
  ];
  for (const [url, reason] of cases) {
    const r = await refusedUpgrade(url);
    assert.deepEqual([r.status, r.body, r.auth], [401, reason, 'Bearer'], url);
  }
});

test('a token carries the name, and its topic claims limit what the connection may do', async () => {
  const topic = uniqueTopic('chat');
  const token = valid('u-alice', { name: 'Alice', subscribe: ['chat-*'], publish: ['chat-*'] });
  const alice = await wsClient(token);
  const viaHeader = await wsClient(valid('u-bob', { name: 'Bob' }), { header: true });
  assert.equal((await alice.request({ op: 'subscribe', topic })).type, 'ok');
  assert.equal((await viaHeader.request({ op: 'subscribe', topic })).type, 'ok');
  const refused = await alice.request({ op: 'subscribe', topic: 'elsewhere' });
  assert.deepEqual([refused.type, refused.code], ['error', 'forbidden']);
  assert.equal((await alice.request({ op: 'publish', topic: 'elsewhere', data: 1 })).code, 'forbidden');
  await alice.request({ op: 'publish', topic, data: 'hi' });
  const m = await viaHeader.nextJson((j) => j.type === 'message');
  assert.deepEqual([m.from, m.data], ['Alice', 'hi']);
});

test('`switchboard token` mints a token the server accepts', async () => {
  const out = spawnSync(serverBinary(), ['token', '--sub', 'cli-user', '--name', 'From CLI', '--ttl', '60'], {
    env: { ...process.env, SWITCHBOARD_AUTH__JWT_HS256_SECRET: SECRET, SWITCHBOARD_BIN: '' },
    encoding: 'utf8',
  });
  assert.equal(out.status, 0, out.stderr);
  const c = await wsClient(out.stdout.trim());
  const topic = uniqueTopic('cli');
  await c.request({ op: 'subscribe', topic });
  await c.request({ op: 'publish', topic, data: 'x' });
  assert.equal((await c.nextJson((j) => j.type === 'message')).from, 'From CLI');
});

test('Socket.IO: a refused token is a connect_error with the reason; a valid one connects', async () => {
  const expired = sioConnect(server, { token: mint({ sub: 'a', exp: now() - 3600 }) });
  const err = await withTimeout(new Promise((r) => expired.on('connect_error', r)), 5000, 'connect_error');
  assert.equal(err.message, 'token expired');
  const none = sioConnect(server, {});
  assert.equal((await withTimeout(new Promise((r) => none.on('connect_error', r)), 5000, 'connect_error')).message, 'token required');

  const ok = sioConnect(server, { token: valid('u-carol', { name: 'Carol', subscribe: ['room-*'] }) });
  await withTimeout(new Promise((r) => ok.on('connect', r)), 5000, 'connect');
  const denied = await ok.timeout(3000).emitWithAck('subscribe', 'private');
  assert.deepEqual([denied.ok, denied.code], [false, 'forbidden']);
  const allowed = await ok.timeout(3000).emitWithAck('subscribe', uniqueTopic('room'));
  assert.equal(allowed.ok, true);

  // The token in an Authorization header, on polling then the upgrade: the
  // one request header `switchboard serve` keeps for a connection.
  const token = valid('u-dora', { name: 'Dora', subscribe: ['room-*'] });
  const viaHeader = io(server.http, {
    extraHeaders: { Authorization: `Bearer ${token}` }, reconnection: false, forceNew: true,
  });
  cleanups.push(() => viaHeader.close());
  await withTimeout(new Promise((r) => viaHeader.on('connect', r)), 5000, 'connect with the header');
  const joined = await viaHeader.timeout(3000).emitWithAck('subscribe', uniqueTopic('room'));
  assert.equal(joined.ok, true);
  assert.deepEqual(joined.presence.members, ['Dora']);
  assert.equal((await viaHeader.timeout(3000).emitWithAck('subscribe', 'private')).code, 'forbidden');
});

test('SockJS: a refused token closes the session with 4401 and the reason', async () => {
  const bad = sockjs(`/sockjs/chat?token=${mint({ sub: 'a', exp: now() - 3600 })}`);
  assert.deepEqual(await withTimeout(bad.closed, 5000, 'close'), { code: 4401, reason: 'token expired' });
  const good = sockjs(`/sockjs/chat?token=${valid('u-dave', { name: 'Dave' })}`);
  await withTimeout(good.opened, 5000, 'open');
  const topic = uniqueTopic('sj');
  good.sock.send(JSON.stringify({ op: 'subscribe', topic, id: 1 }));
  good.sock.send(JSON.stringify({ op: 'publish', topic, data: 'via sockjs', id: 2 }));
  await withTimeout((async () => {
    while (!good.events.messages.some((m) => m.type === 'message')) await new Promise((r) => setTimeout(r, 20));
  })(), 5000, 'message');
  assert.equal(good.events.messages.find((m) => m.type === 'message').from, 'Dave');
});

test('STOMP: a token in passcode or in a token header; refusals are ERROR frames', async () => {
  const expired = await stomp({ passcode: mint({ sub: 'a', exp: now() - 3600 }) });
  assert.equal(expired.error?.headers.message, 'token expired');
  const none = await stomp({});
  assert.equal(none.error?.headers.message, 'token required');
  const a = await stomp({ login: 'ignored', passcode: valid('u-erin', { name: 'Erin' }) });
  assert.equal(a.frame?.headers['user-name'], 'Erin');
  const b = await stomp({ token: valid('u-frank', { name: 'Frank', publish: [] }) });
  assert.equal(b.frame?.headers['user-name'], 'Frank');
  // Frank's token allows publishing nowhere.
  const errored = new Promise((r) => { b.client.onStompError = r; });
  b.client.publish({ destination: '/topic/anything', body: 'x' });
  assert.match((await withTimeout(errored, 5000, 'ERROR')).headers.message, /not allowed/);
});

test('HTTP API: keys, publish reaching every protocol, presence, history, OpenAPI', async () => {
  assert.equal((await api(server, 'POST', '/api/publish', { topic: 't', data: 1 }, null)).status, 401);
  const wrong = await api(server, 'POST', '/api/publish', { topic: 't', data: 1 }, 'wrong-key-0123456789abc');
  assert.deepEqual([wrong.status, wrong.json.error.code, wrong.headers['www-authenticate']], [401, 'unauthorized', 'apikey']);
  const disabled = await api(demo, 'POST', '/api/publish', { topic: 't', data: 1 });
  assert.deepEqual([disabled.status, disabled.json.error.code], [403, 'api_disabled']);

  const topic = uniqueTopic('api');
  const ws = await wsClient(valid('u-gina', { name: 'Gina' }));
  await ws.request({ op: 'subscribe', topic });
  const sio = sioConnect(server, { token: valid('u-hank', { name: 'Hank' }) });
  await withTimeout(new Promise((r) => sio.on('connect', r)), 5000, 'connect');
  const sioGot = new Promise((r) => sio.on('message', r));
  await sio.timeout(3000).emitWithAck('subscribe', topic);
  const st = await stomp({ passcode: valid('u-ivy') });
  const stGot = new Promise((r) => st.client.subscribe(`/topic/${topic}`, r));
  await new Promise((r) => setTimeout(r, 200)); // the SUBSCRIBE travels

  const pub = await api(server, 'POST', '/api/publish', { topic, data: { n: 1 }, from: 'backend' });
  assert.deepEqual([pub.status, pub.json.topic, pub.json.seq], [200, topic, 1]);
  const m = await ws.nextJson((j) => j.type === 'message');
  assert.deepEqual([m.from, m.data], ['backend', { n: 1 }]);
  assert.deepEqual((await withTimeout(sioGot, 5000, 'socket.io message')).data, { n: 1 });
  assert.equal((await withTimeout(stGot, 5000, 'STOMP MESSAGE')).body, '{"n":1}');

  const presence = await api(server, 'GET', `/api/presence?topic=${topic}`);
  assert.equal(presence.json.presence.count, 3);
  assert.deepEqual([...presence.json.presence.members].sort(), ['Gina', 'Hank', 'u-ivy']);
  const history = await api(server, 'GET', `/api/history?topic=${topic}&since=0`);
  assert.deepEqual(history.json.messages.map((x) => [x.seq, x.from, x.data]), [[1, 'backend', { n: 1 }]]);
  assert.equal((await api(server, 'POST', '/api/publish', { topic: '', data: 1 })).json.error.code, 'invalid_topic');
  assert.equal((await api(server, 'POST', '/api/publish', { data: 1 })).json.error.code, 'bad_request');

  const emitted = new Promise((r) => sio.on('announcement', r));
  const emit = await api(server, 'POST', '/api/socketio/emit', { event: 'announcement', data: { text: 'hello' } });
  assert.equal(emit.status, 200);
  assert.deepEqual(await withTimeout(emitted, 5000, 'announcement'), { text: 'hello' });
  assert.equal((await api(server, 'POST', '/api/socketio/emit', { event: 'connect' })).status, 400);

  const doc = await httpGet(server.port, '/api/openapi.json');
  assert.equal(doc.status, 200);
  const spec = JSON.parse(doc.body);
  assert.equal(spec.openapi, '3.1.0');
  for (const p of ['/api/publish', '/api/presence', '/api/history', '/api/socketio/emit', '/api/disconnect']) {
    assert.ok(spec.paths[p], p);
  }
});

test('HTTP API: disconnect a user closes each of its connections, whatever the protocol', async () => {
  const token = valid('u-zed', { name: 'Zed' });
  const ws = await wsClient(token);
  const sio = sioConnect(server, { token });
  await withTimeout(new Promise((r) => sio.on('connect', r)), 5000, 'connect');
  const sj = sockjs(`/sockjs/chat?token=${token}`);
  await withTimeout(sj.opened, 5000, 'sockjs open');
  const st = await stomp({ passcode: token });
  assert.ok(st.frame);
  const other = await wsClient(valid('u-yan'));

  const sioGone = new Promise((r) => sio.on('disconnect', r));
  const stErr = new Promise((r) => { st.client.onStompError = r; });
  const r = await api(server, 'POST', '/api/disconnect', { user: 'u-zed' });
  assert.deepEqual(r.json, { user: 'u-zed', disconnected: 4 });
  assert.deepEqual(await ws.waitClose(), { code: 4001, reason: 'disconnected by the server' });
  assert.equal(await withTimeout(sioGone, 5000, 'socket.io disconnect'), 'io server disconnect');
  assert.deepEqual(await withTimeout(sj.closed, 5000, 'sockjs close'), { code: 4001, reason: 'Disconnected by the server' });
  assert.equal((await withTimeout(stErr, 5000, 'STOMP ERROR')).headers.message, 'disconnected by the server');
  // Someone else stays.
  assert.equal((await other.request({ op: 'ping' })).type, 'pong');
});

test('/metrics: Prometheus text with connections by protocol, messages, fan-out histogram', async () => {
  const c = await wsClient(valid('u-metrics'));
  const topic = uniqueTopic('m');
  await c.request({ op: 'subscribe', topic });
  await c.request({ op: 'publish', topic, data: 1 });
  const r = await httpGet(server.port, '/metrics');
  assert.equal(r.status, 200);
  assert.match(r.headers['content-type'], /^text\/plain; version=0.0.4/);
  const value = (name) => {
    const line = r.body.split('\n').find((l) => l.startsWith(`${name} `));
    assert.ok(line, `${name} in /metrics`);
    return Number(line.split(' ')[1]);
  };
  assert.ok(value('switchboard_connections{protocol="websocket"}') >= 1);
  assert.ok(value('switchboard_messages_in_total{protocol="websocket"}') >= 1);
  assert.ok(value('switchboard_messages_out_total') >= 1);
  assert.ok(value('switchboard_fanout_seconds_count') >= 1);
  assert.equal(value('switchboard_fanout_seconds_bucket{le="+Inf"}'), value('switchboard_fanout_seconds_count'));
  assert.ok(value('process_resident_memory_bytes') > 1e6);
  // The allocator's own figures (the binary names the one it runs on).
  assert.ok(value('switchboard_heap_bytes{state="in_use"}') > 1e4);
  assert.ok(value('switchboard_heap_bytes{state="free"}') >= 0);
  assert.ok(value('switchboard_heap_bytes{state="metadata"}') >= 0);
  // Every sample line is `name{labels} number`.
  for (const line of r.body.split('\n').filter((l) => l && !l.startsWith('#'))) {
    assert.match(line, /^[a-z_]+(\{[a-z_]+="[^"]*"\})? [0-9.e+-]+$/, line);
  }
});
