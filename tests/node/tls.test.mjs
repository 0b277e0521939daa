// TLS ([tls] with the test certificate in tests/data/tls): the real npm `ws`
// client over wss:// and socket.io-client 4 over https:// (websocket,
// polling, and polling then upgrade), trusting the certificate with `ca`.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import https from 'node:https';
import { io } from 'socket.io-client';
import { startServer, httpGet, Client, WebSocket, uniqueTopic, withTimeout } from './lib/harness.mjs';

let server;
const sockets = [];
const clients = [];
before(async () => { server = await startServer({ tls: true }); });
after(async () => {
  for (const s of sockets) s.close();
  for (const c of clients) c.terminate();
  if (server) await server.stop();
});

async function open(path, options = {}) {
  const c = await Client.open(`${server.ws}${path}`, { ca: server.ca, ...options });
  clients.push(c);
  return c;
}

test('https: /healthz, the chat page, and the certificate is checked', async () => {
  assert.match(server.http, /^https:\/\//);
  const health = await httpGet(server.port, '/healthz', { ca: server.ca });
  assert.equal(health.status, 200);
  assert.equal(health.body.trim(), 'ok');
  const page = await httpGet(server.port, '/', { ca: server.ca });
  assert.equal(page.status, 200);
  assert.match(page.headers['content-type'], /text\/html/);
  // By name too: the certificate is for localhost and 127.0.0.1.
  const byName = await new Promise((resolve, reject) => {
    https.get(`https://localhost:${server.port}/healthz`, { ca: server.ca, agent: false }, (res) => {
      res.resume();
      res.on('end', () => resolve(res.statusCode));
    }).on('error', reject);
  });
  assert.equal(byName, 200);
  // Without the test certificate the default trust store refuses it.
  await assert.rejects(
    new Promise((resolve, reject) => {
      https.get(`https://127.0.0.1:${server.port}/healthz`, { agent: false }, resolve).on('error', reject);
    }),
    (err) => /self[- ]signed|unable to verify|DEPTH_ZERO/i.test(`${err.code} ${err.message}`),
  );
});

test('plain http to the TLS port gets a 400 and the server keeps serving', async () => {
  const wsc = await open('/ws/echo');
  await wsc.send('before');
  assert.equal((await wsc.next()).text, 'before');
  const plain = await httpGet(server.port, '/healthz');
  assert.equal(plain.status, 400);
  assert.match(plain.body, /HTTPS/);
  await wsc.send('after');
  assert.equal((await wsc.next()).text, 'after');
});

test('ws over wss://: echo, and no connection without the certificate', async () => {
  const c = await open('/ws/echo');
  await c.send('hello over wss');
  assert.equal((await c.next()).text, 'hello over wss');
  await c.send(Buffer.from([0, 1, 2, 255]));
  const bin = await c.next();
  assert.equal(bin.isBinary, true);
  assert.deepEqual([...bin.data], [0, 1, 2, 255]);
  const big = 'x'.repeat(300_000);
  await c.send(big);
  assert.equal((await c.next()).text.length, big.length);
  assert.equal((await c.close(1000, 'bye')).code, 1000);

  const ws = new WebSocket(`${server.ws}/ws/echo`);
  const err = await withTimeout(new Promise((resolve) => ws.once('error', resolve)), 5000, 'tls error');
  assert.match(`${err.code} ${err.message}`, /self[- ]signed|unable to verify|DEPTH_ZERO/i);
});

test('wss:// /ws envelope clients share the hub', async () => {
  const topic = uniqueTopic('tls');
  const a = await open('/ws?name=alice');
  const b = await open('/ws?name=bob');
  assert.equal((await a.request({ op: 'subscribe', topic })).type, 'ok');
  assert.equal((await b.request({ op: 'publish', topic, data: { n: 1 } })).type, 'ok');
  const m = await a.nextJson((x) => x.type === 'message' && x.topic === topic);
  assert.deepEqual([m.from, m.data], ['bob', { n: 1 }]);
});

function connect(name, transports, opts = {}) {
  const s = io(server.http, {
    transports, auth: { name }, forceNew: true, reconnection: false, timeout: 5000, ...opts,
  });
  sockets.push(s);
  return withTimeout(new Promise((resolve, reject) => {
    if (s.connected) resolve(s);
    s.on('connect', () => resolve(s));
    s.on('connect_error', reject);
  }), 8000, `socket.io connect over https (${transports})`);
}

function nextEvent(s, event, pred = () => true) {
  return withTimeout(new Promise((resolve) => {
    const h = (m) => { if (pred(m)) { s.off(event, h); resolve(m); } };
    s.on(event, h);
  }), 5000, `event ${event}`);
}

for (const transports of [['websocket'], ['polling'], undefined]) {
  const label = transports ? transports.join('+') : 'default (polling, then upgrade)';

  test(`socket.io over https, ${label}: publish reaches socket.io and wss:// subscribers`, { timeout: 20000 }, async () => {
    const topic = uniqueTopic('tls-sio');
    const alice = await connect('alice', transports, { ca: server.ca });
    const bob = await connect('bob', transports, { ca: server.ca, rejectUnauthorized: true });
    const raw = await open('/ws?name=carol');
    assert.equal((await raw.request({ op: 'subscribe', topic })).type, 'ok');
    assert.equal((await alice.emitWithAck('subscribe', topic)).ok, true);

    const got = nextEvent(alice, 'message', (m) => m.topic === topic);
    const pub = await bob.emitWithAck('publish', { topic, data: { text: 'hi over tls' } });
    assert.equal(pub.ok, true);
    const m = await got;
    assert.deepEqual([m.from, m.data], ['bob', { text: 'hi over tls' }]);
    const r = await raw.nextJson((x) => x.type === 'message' && x.topic === topic);
    assert.deepEqual([r.from, r.data], ['bob', { text: 'hi over tls' }]);

    if (!transports) {
      // Let the upgrade finish, then check it went to WebSocket over TLS.
      await withTimeout((async () => {
        while (alice.io.engine.transport.name !== 'websocket') await new Promise((res) => setTimeout(res, 20));
      })(), 5000, 'upgrade to websocket');
    } else {
      assert.equal(alice.io.engine.transport.name, transports[0]);
    }
    alice.close();
    bob.close();
  });
}

test('socket.io over https without the certificate does not connect', async () => {
  await assert.rejects(connect('mallory', ['websocket']));
  await assert.rejects(connect('mallory', ['polling']));
});
