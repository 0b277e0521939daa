// STOMP at /stomp (docs/stomp.md) against the real npm `@stomp/stompjs` 7:
// over WebSocket (the `ws` package, since Node 20 has no global WebSocket) and
// over SockJS (`sockjs-client`), anonymous and with credentials, /topic and
// /queue, binary bodies, heart-beats, reconnects, and /topic shared with the
// /ws JSON envelope through the hub.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { Client as StompClient, Versions } from '@stomp/stompjs';
import SockJS from 'sockjs-client';
import {
  startServer, envelopeClient, closeAll, uniqueTopic, withTimeout, WebSocket, sleep, freePort,
} from './lib/harness.mjs';

const SUBPROTOCOLS = ['v12.stomp', 'v11.stomp', 'v10.stomp'];

let server;       // defaults: anonymous allowed
let authServer;   // a user table, anonymous refused
const stomps = [];
const wsClients = [];
before(async () => {
  // Heart-beats every second, so that the heart-beat test sees some flow.
  server = await startServer({ env: { SWITCHBOARD_STOMP__HEART_BEAT_MS: '1000' } });
  authServer = await startServer({
    env: {
      SWITCHBOARD_STOMP__USERS: '[{login = "guest", passcode = "guest"}]',
      SWITCHBOARD_STOMP__ALLOW_ANONYMOUS: 'false',
    },
  });
});
after(async () => {
  await Promise.all(stomps.map((c) => c.deactivate({ force: true }).catch(() => {})));
  await closeAll(wsClients);
  if (server) await server.stop();
  if (authServer) await authServer.stop();
});

/** Queues what a subscription receives; next(pred) awaits a matching one. */
class Inbox {
  constructor() { this.queue = []; this.waiters = []; }
  push(m) {
    const i = this.waiters.findIndex((w) => w.pred(m));
    if (i >= 0) this.waiters.splice(i, 1)[0].resolve(m);
    else this.queue.push(m);
  }
  next(pred = () => true, timeout = 5000, what = 'a STOMP MESSAGE') {
    const i = this.queue.findIndex(pred);
    if (i >= 0) return Promise.resolve(this.queue.splice(i, 1)[0]);
    let waiter;
    const p = new Promise((resolve) => { waiter = { pred, resolve }; this.waiters.push(waiter); });
    return withTimeout(p, timeout, what).catch((err) => {
      this.waiters = this.waiters.filter((w) => w !== waiter);
      throw err;
    });
  }
}

const overWs = (srv) => () => new WebSocket(`${srv.ws}/stomp`, SUBPROTOCOLS);
const overSockJs = (srv) => () => new SockJS(`${srv.http}/stomp`);

/**
 * A stompjs Client with `conf` (webSocketFactory defaults to WebSocket on
 * `server`); resolves { client, frame } at CONNECTED, rejects on an ERROR or a
 * close before it. The client keeps running (its reconnects included).
 */
function connect(conf = {}, srv = server, timeout = 8000) {
  const events = { connects: [], errors: [], closes: [] };
  const waiters = [];
  const wake = () => { for (const w of waiters.splice(0)) w(); };
  const client = new StompClient({
    webSocketFactory: overWs(srv),
    reconnectDelay: 0,
    debug: () => {},
    ...conf,
    onConnect: (frame) => { events.connects.push(frame); wake(); },
    onStompError: (frame) => { events.errors.push(frame); wake(); },
    onWebSocketClose: (ev) => { events.closes.push(ev); wake(); },
  });
  client.events = events;
  /** Resolves once pred(events) holds. */
  client.until = (pred, ms = 8000, what = 'a STOMP event') => withTimeout(new Promise((resolve) => {
    const check = () => (pred(events) ? resolve() : waiters.push(check));
    check();
  }), ms, what);
  stomps.push(client);
  client.activate();
  return client.until((e) => e.connects.length || e.errors.length || e.closes.length, timeout, 'CONNECTED').then(() => {
    if (events.connects.length) return { client, frame: events.connects[0] };
    const err = events.errors[0];
    const e = new Error(err ? `ERROR ${err.headers.message}` : `closed before CONNECTED (code ${events.closes[0].code})`);
    e.frame = err;
    throw e;
  });
}

/** Sends `send({ receipt })`, resolves at the server's RECEIPT. */
function withReceipt(client, send, what = 'a RECEIPT') {
  const receipt = `rcpt-${Math.random().toString(36).slice(2)}`;
  return withTimeout(new Promise((resolve) => {
    client.watchForReceipt(receipt, resolve);
    send({ receipt });
  }), 5000, what);
}

/** Subscribes with a receipt (so the server has it before anyone publishes); returns { sub, inbox }. */
async function subscribe(client, destination, headers = {}) {
  const inbox = new Inbox();
  let sub;
  await withReceipt(client, (h) => {
    sub = client.subscribe(destination, (m) => inbox.push(m), { ...headers, ...h });
  }, `RECEIPT for SUBSCRIBE ${destination}`);
  return { sub, inbox };
}

async function stop(client) {
  await client.deactivate();
}

test('anonymous CONNECT over WebSocket: STOMP 1.2 on the v12.stomp subprotocol', async () => {
  const { client, frame } = await connect();
  assert.equal(frame.command, 'CONNECTED');
  assert.equal(frame.headers.version, '1.2');
  assert.equal(client.webSocket.protocol, 'v12.stomp');
  assert.ok(frame.headers.session, 'CONNECTED carries a session');
  assert.equal(frame.headers['user-name'], undefined, 'no user-name for anonymous');
  await stop(client);
});

test('STOMP 1.1 and 1.0 clients are served on their subprotocols', async () => {
  for (const [sub, version] of [['v11.stomp', '1.1'], ['v10.stomp', '1.0']]) {
    const { client, frame } = await connect({
      stompVersions: new Versions([version]), // accept-version: just this one
      webSocketFactory: () => new WebSocket(`${server.ws}/stomp`, [sub]),
    });
    assert.equal(client.webSocket.protocol, sub);
    // A STOMP 1.0 CONNECTED may omit the version header.
    assert.equal(frame.headers.version ?? '1.0', version);
    const topic = uniqueTopic('stomp-v');
    const { inbox } = await subscribe(client, `/topic/${topic}`);
    client.publish({ destination: `/topic/${topic}`, body: `hello ${version}` });
    assert.equal((await inbox.next()).body, `hello ${version}`);
    await stop(client);
  }
});

test('CONNECT with login/passcode when the server has users; bad or missing credentials are ERRORs', async () => {
  const { client, frame } = await connect({ connectHeaders: { login: 'guest', passcode: 'guest' } }, authServer);
  assert.equal(frame.headers['user-name'], 'guest');
  await stop(client);

  await assert.rejects(
    connect({ connectHeaders: { login: 'guest', passcode: 'wrong' } }, authServer),
    (err) => {
      assert.equal(err.frame?.command, 'ERROR', 'onStompError saw an ERROR frame');
      assert.equal(err.frame.headers.message, 'bad credentials');
      return true;
    },
  );
  await assert.rejects(connect({}, authServer), (err) => {
    assert.equal(err.frame?.headers.message, 'login required');
    return true;
  });
  // Without [stomp] users, any login is accepted as a display name only:
  // it is not an identity (no user-name, no per-user permission applies).
  const named = await connect({ connectHeaders: { login: 'whoever', passcode: 'anything' } });
  assert.equal(named.frame.headers['user-name'], undefined);
  await stop(named.client);
});

test('/topic: every subscriber gets each SEND; text, JSON and JSON-string bodies', async () => {
  const topic = uniqueTopic('stomp-topic');
  const dest = `/topic/${topic}`;
  const { client: a } = await connect();
  const { client: b } = await connect();
  const ia = (await subscribe(a, dest)).inbox;
  const ib = (await subscribe(b, dest)).inbox;

  a.publish({ destination: dest, body: 'plain text ✓' });
  for (const inbox of [ia, ib]) {
    const m = await inbox.next();
    assert.equal(m.body, 'plain text ✓');
    assert.equal(m.headers.destination, dest);
    assert.match(m.headers['content-type'], /^text\/plain/);
    assert.ok(m.headers['message-id']);
  }
  b.publish({ destination: dest, body: JSON.stringify({ n: 1, s: 'x' }), headers: { 'content-type': 'application/json' } });
  for (const inbox of [ia, ib]) {
    const m = await inbox.next();
    assert.equal(m.headers['content-type'], 'application/json');
    assert.deepEqual(JSON.parse(m.body), { n: 1, s: 'x' });
  }
  // A JSON string is text on the hub, as for every JSON client.
  a.publish({ destination: dest, body: JSON.stringify('just text'), headers: { 'content-type': 'application/json' } });
  const m = await ib.next();
  assert.match(m.headers['content-type'], /^text\/plain/);
  assert.equal(m.body, 'just text');
  await Promise.all([stop(a), stop(b)]);
});

test('/queue: messages wait for a consumer, go to one consumer each, keep their headers; client-individual acks', async () => {
  const dest = `/queue/${uniqueTopic('stomp-queue')}`;
  const { client: producer } = await connect();
  await withReceipt(producer, (h) => producer.publish({
    destination: dest, body: 'waited', headers: { ...h, 'content-type': 'text/plain', 'x-app': 'yes' },
  }));
  const { client: c1 } = await connect();
  const { inbox: i1 } = await subscribe(c1, dest, { ack: 'client-individual' });
  const first = await i1.next();
  assert.equal(first.body, 'waited');
  assert.equal(first.headers['x-app'], 'yes');
  assert.equal(first.headers['content-type'], 'text/plain');
  first.ack();

  const { client: c2 } = await connect();
  const { inbox: i2 } = await subscribe(c2, dest);
  for (let i = 0; i < 4; i += 1) producer.publish({ destination: dest, body: `m${i}` });
  const got = [];
  const collect = async (inbox) => {
    for (;;) {
      const m = await inbox.next(() => true, 1500).catch(() => null);
      if (!m) return;
      got.push(m.body);
      if (m.ack && m.headers.ack) m.ack();
    }
  };
  await Promise.all([collect(i1), collect(i2)]);
  assert.deepEqual([...got].sort(), ['m0', 'm1', 'm2', 'm3'], 'each message exactly once');
  await Promise.all([stop(producer), stop(c1), stop(c2)]);
});

test('a binary body (binaryBody) crosses unchanged, to STOMP and to /ws', async () => {
  const topic = uniqueTopic('stomp-bin');
  const dest = `/topic/${topic}`;
  const ws = await envelopeClient(server, 'bin-watcher');
  wsClients.push(ws);
  await ws.request({ op: 'subscribe', topic });
  const { client: a } = await connect();
  const { client: b } = await connect();
  const { inbox } = await subscribe(b, dest);
  const bytes = new Uint8Array([0, 1, 2, 0xff, 0xfe, 0, 10, 13, 0x80]);
  a.publish({ destination: dest, binaryBody: bytes, headers: { 'content-type': 'application/octet-stream' } });
  const m = await inbox.next();
  assert.equal(m.headers['content-type'], 'application/octet-stream');
  assert.equal(m.headers['content-length'], String(bytes.length));
  assert.deepEqual([...m.binaryBody], [...bytes]);
  const env = await ws.nextJson((j) => j.type === 'message' && j.topic === topic);
  assert.equal(env.binary, true);
  assert.deepEqual([...Buffer.from(env.data, 'base64')], [...bytes]);
  await Promise.all([stop(a), stop(b)]);
});

test('heart-beats are negotiated and the connection stays up', async () => {
  let received = 0;
  const { client, frame } = await connect({
    heartbeatIncoming: 1000,
    heartbeatOutgoing: 1000,
    onHeartbeatReceived: () => { received += 1; },
  });
  const [sx, sy] = frame.headers['heart-beat'].split(',').map(Number);
  assert.ok(sx > 0 && sy > 0, `the server offers heart-beats both ways (${frame.headers['heart-beat']})`);
  // The spec's negotiation: each side at the slower of what one offers and the other wants.
  const toServer = Math.max(1000, sy);
  const fromServer = Math.max(sx, 1000);
  await sleep(3000);
  assert.equal(client.events.closes.length, 0, 'no close within 3 s');
  assert.ok(client.connected);
  assert.equal(fromServer, 1000, `the server offers 1 s (${frame.headers['heart-beat']})`);
  assert.ok(received >= 2, `server heart-beats received every ${fromServer} ms (${received} in 3 s)`);
  const topic = uniqueTopic('stomp-hb');
  const { inbox } = await subscribe(client, `/topic/${topic}`);
  client.publish({ destination: `/topic/${topic}`, body: `still here after 3 s (to server every ${toServer} ms)` });
  assert.match((await inbox.next()).body, /^still here/);
  await stop(client);
});

test('reconnects (reconnectDelay) after the server closes the connection', async () => {
  const { client } = await connect({ reconnectDelay: 200 });
  // An invalid destination is an ERROR, after which the server closes.
  client.publish({ destination: '/nowhere/at-all', body: 'x' });
  await client.until((e) => e.errors.length >= 1 && e.closes.length >= 1, 5000, 'ERROR and close');
  assert.equal(client.events.errors[0].headers.message, 'invalid destination');
  await client.until((e) => e.connects.length >= 2, 8000, 'the reconnect');
  assert.ok(client.connected);
  const topic = uniqueTopic('stomp-re');
  const { inbox } = await subscribe(client, `/topic/${topic}`);
  client.publish({ destination: `/topic/${topic}`, body: 'after reconnect' });
  assert.equal((await inbox.next()).body, 'after reconnect');
  await stop(client);
});

for (const [label, factory] of [['WebSocket', overWs], ['SockJS', overSockJs]]) {
  test(`a STOMP client over ${label} and a raw /ws client share a topic`, async () => {
    const topic = uniqueTopic('stomp-ws');
    const dest = `/topic/${topic}`;
    const ws = await envelopeClient(server, 'raw-ws');
    wsClients.push(ws);
    await ws.request({ op: 'subscribe', topic });
    const { client } = await connect({ webSocketFactory: factory(server), connectHeaders: { login: 'stomper' } });
    if (label === 'SockJS') assert.equal(typeof client.webSocket.transport, 'string', 'a SockJS socket underneath');
    const { inbox } = await subscribe(client, dest);

    // STOMP → /ws: JSON stays JSON, the sender is the STOMP login.
    client.publish({ destination: dest, body: JSON.stringify({ text: 'from stomp' }), headers: { 'content-type': 'application/json' } });
    const got = await ws.nextJson((j) => j.type === 'message' && j.topic === topic);
    assert.deepEqual(got.data, { text: 'from stomp' });
    assert.equal(got.from, 'stomper');
    assert.deepEqual(JSON.parse((await inbox.next()).body), { text: 'from stomp' }, 'the publisher gets its own message');

    // /ws → STOMP: a string is text, an object is JSON.
    await ws.request({ op: 'publish', topic, data: 'from ws ✓' });
    const t = await inbox.next();
    assert.equal(t.body, 'from ws ✓');
    assert.match(t.headers['content-type'], /^text\/plain/);
    await ws.request({ op: 'publish', topic, data: { a: [1, 2] } });
    const j = await inbox.next();
    assert.equal(j.headers['content-type'], 'application/json');
    assert.deepEqual(JSON.parse(j.body), { a: [1, 2] });
    await stop(client);
  });
}

test('the Web-STOMP layout ([stomp] web_stomp_listen): /ws and /stomp as RabbitMQ serves them', async () => {
  const port = await freePort();
  const rabbit = await startServer({ env: { SWITCHBOARD_STOMP__WEB_STOMP_LISTEN: `127.0.0.1:${port}` } });
  try {
    // The seeds' client code for RabbitMQ: ws://host:15674/ws, and SockJS at /stomp.
    const web = { ws: `ws://127.0.0.1:${port}`, http: `http://127.0.0.1:${port}` };
    const { client: a } = await connect({ webSocketFactory: () => new WebSocket(`${web.ws}/ws`, SUBPROTOCOLS) }, rabbit);
    const { client: b } = await connect({ webSocketFactory: () => new SockJS(`${web.http}/stomp`) }, rabbit);
    const topic = uniqueTopic('web-stomp');
    const { inbox } = await subscribe(b, `/topic/${topic}`);
    a.publish({ destination: `/topic/${topic}`, body: 'from /ws to /stomp' });
    assert.equal((await inbox.next()).body, 'from /ws to /stomp');
    await Promise.all([stop(a), stop(b)]);
  } finally {
    await rabbit.stop();
  }
});
