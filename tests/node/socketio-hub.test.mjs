// Socket.IO clients (the real socket.io-client 4) on Switchboard's hub:
// built-in events subscribe/publish/unsubscribe/presence/history over every
// transport, and the same topic shared with raw WebSocket /ws clients.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { io } from 'socket.io-client';
import { startServer, WebSocket, uniqueTopic, withTimeout } from './lib/harness.mjs';

let server;
const open = [];
before(async () => { server = await startServer(); });
after(async () => {
  for (const s of open) s.close();
  if (server) await server.stop();
});

function connect(name, transports) {
  const s = io(server.http, { transports, auth: { name }, forceNew: true, reconnection: false });
  open.push(s);
  return withTimeout(new Promise((resolve, reject) => {
    if (s.connected) resolve(s);
    s.on('connect', () => resolve(s));
    s.on('connect_error', reject);
  }), 5000, `socket.io connect (${transports})`);
}

function nextEvent(s, event, pred = () => true) {
  return withTimeout(new Promise((resolve) => {
    const h = (m) => { if (pred(m)) { s.off(event, h); resolve(m); } };
    s.on(event, h);
  }), 5000, `event ${event}`);
}

for (const transports of [['polling'], ['websocket'], undefined]) {
  const label = transports ? transports.join('+') : 'default (polling, then upgrade)';

  test(`socket.io ${label}: subscribe, publish, presence, history`, { timeout: 20000 }, async () => {
    const topic = uniqueTopic('sio');
    const alice = await connect('alice', transports);
    const bob = await connect('bob', transports);
    const sub = await alice.emitWithAck('subscribe', topic);
    assert.equal(sub.ok, true);
    assert.deepEqual(sub.presence, { count: 1, members: ['alice'] });
    const joined = nextEvent(alice, 'presence', (p) => p.topic === topic);
    const sub2 = await bob.emitWithAck('subscribe', { topic });
    assert.equal(sub2.presence.count, 2);
    assert.deepEqual(await joined, { type: 'presence', topic, event: 'join', name: 'bob', count: 2 });

    const got = nextEvent(alice, 'message', (m) => m.topic === topic);
    const pub = await bob.emitWithAck('publish', { topic, data: { text: 'hi', n: 1 } });
    assert.deepEqual([pub.ok, pub.seq], [true, 1]);
    const m = await got;
    assert.equal(m.from, 'bob');
    assert.equal(m.seq, 1);
    assert.deepEqual(m.data, { text: 'hi', n: 1 });

    // Binary travels as a binary attachment.
    const gotBin = nextEvent(alice, 'message', (x) => x.topic === topic && x.seq === 2);
    await bob.emitWithAck('publish', { topic, data: Buffer.from([0, 1, 2, 255]) });
    const b = await gotBin;
    assert.ok(Buffer.isBuffer(b.data), 'binary data arrives as a Buffer');
    assert.deepEqual([...b.data], [0, 1, 2, 255]);

    const pres = await alice.emitWithAck('presence', topic);
    assert.deepEqual(pres.presence.members.sort(), ['alice', 'bob']);
    const hist = await alice.emitWithAck('history', { topic, since: 0 });
    assert.deepEqual(hist.messages.map((x) => x.seq), [1, 2]);

    const bad = await alice.emitWithAck('publish', { topic: '', data: 1 });
    assert.deepEqual([bad.ok, bad.code], [false, 'invalid_topic']);

    const left = nextEvent(alice, 'presence', (p) => p.topic === topic && p.event === 'leave');
    bob.close();
    assert.equal((await left).name, 'bob');
    const unsub = await alice.emitWithAck('unsubscribe', topic);
    assert.equal(unsub.was_subscribed, true);
    alice.close();
  });
}

test('socket.io and raw WebSocket clients share a topic', { timeout: 20000 }, async () => {
  const topic = uniqueTopic('mixed');
  const sio = await connect('sio-user', undefined);
  await sio.emitWithAck('subscribe', topic);

  const ws = new WebSocket(`${server.ws}/ws?name=ws-user`);
  open.push({ close: () => ws.terminate() });
  const wsMessages = [];
  await withTimeout(new Promise((resolve, reject) => {
    ws.on('error', reject);
    ws.on('open', () => ws.send(JSON.stringify({ op: 'subscribe', topic, id: 1 })));
    ws.on('message', (raw) => {
      const m = JSON.parse(raw.toString());
      if (m.type === 'ok' && m.op === 'subscribe') resolve();
      if (m.type === 'message') wsMessages.push(m);
    });
  }), 5000, 'ws subscribe');

  // WebSocket → Socket.IO
  const atSio = nextEvent(sio, 'message', (m) => m.topic === topic);
  ws.send(JSON.stringify({ op: 'publish', topic, data: 'from ws' }));
  const m1 = await atSio;
  assert.deepEqual([m1.from, m1.data], ['ws-user', 'from ws']);

  // Socket.IO → WebSocket
  await sio.emitWithAck('publish', { topic, data: 'from socket.io' });
  await withTimeout((async () => { while (wsMessages.length < 2) await new Promise((r) => setTimeout(r, 10)); })(), 5000, 'ws delivery');
  assert.deepEqual(wsMessages.map((m) => [m.from, m.data]), [['ws-user', 'from ws'], ['sio-user', 'from socket.io']]);

  // A raw /ws/topic client gets the Socket.IO text as is.
  const raw = new WebSocket(`${server.ws}/ws/topic/${encodeURIComponent(topic)}`);
  open.push({ close: () => raw.terminate() });
  await withTimeout(new Promise((r, j) => { raw.on('open', r); raw.on('error', j); }), 5000, 'raw open');
  const rawGot = withTimeout(new Promise((r) => raw.once('message', (d) => r(d.toString()))), 5000, 'raw message');
  await sio.emitWithAck('publish', { topic, data: 'plain text' });
  assert.equal(await rawGot, 'plain text');
});

test('auth {presence: false}: no presence events for that socket', { timeout: 20000 }, async () => {
  const topic = uniqueTopic('sio-quiet');
  const quiet = io(server.http, { transports: ['websocket'], auth: { name: 'board', presence: false }, forceNew: true, reconnection: false });
  open.push(quiet);
  await withTimeout(new Promise((r) => quiet.on('connect', r)), 5000, 'connect');
  const seen = [];
  quiet.on('presence', (p) => seen.push(p));
  await quiet.emitWithAck('subscribe', topic);
  const alice = await connect('alice-quiet', ['websocket']);
  await alice.emitWithAck('subscribe', topic);
  const bob = await connect('bob-quiet', ['websocket']);
  const joined = nextEvent(alice, 'presence', (p) => p.topic === topic && p.name === 'bob-quiet');
  await bob.emitWithAck('subscribe', topic);
  await joined;
  const got = nextEvent(quiet, 'message', (m) => m.topic === topic);
  await alice.emitWithAck('publish', { topic, data: 'hi' });
  await got;
  assert.deepEqual(seen, []);
});
