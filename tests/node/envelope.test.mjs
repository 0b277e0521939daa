// The /ws JSON envelope (docs/ws-envelope.md) against the real npm `ws` client.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import {
  startServer, Client, envelopeClient, closeAll, uniqueTopic, sleep,
} from './lib/harness.mjs';

let server;
const clients = [];
before(async () => { server = await startServer(); });
after(async () => {
  await closeAll(clients);
  if (server) await server.stop();
});

async function client(name) {
  const c = await envelopeClient(server, name);
  clients.push(c);
  return c;
}

async function subscribe(c, topic, extra = {}) {
  const r = await c.request({ op: 'subscribe', topic, ...extra });
  assert.equal(r.type, 'ok', `subscribe ${topic}: ${JSON.stringify(r)}`);
  return r;
}

const isMessage = (topic, pred = () => true) => (m) => m.type === 'message' && m.topic === topic && pred(m);

/** The connection is still usable: a ping with a fresh id gets its pong. */
async function assertStillOpen(c, after) {
  assert.equal(c.ws.readyState, 1, `connection must stay open after ${after}`);
  const id = `alive-${Math.random()}`;
  const r = await c.request({ op: 'ping', id });
  assert.deepEqual({ type: r.type, id: r.id }, { type: 'pong', id }, `ping after ${after}`);
}

test('ping → pong echoes the id (any JSON value)', async () => {
  const c = await client('pinger');
  for (const id of [1, 'abc', { nested: [1, 2] }, 0]) {
    await c.sendJson({ op: 'ping', id });
    const r = await c.nextJson((m) => m.type === 'pong', 3000, `pong for ${JSON.stringify(id)}`);
    assert.deepEqual(r.id, id);
  }
});

test('subscribe / publish / unsubscribe with id correlation', async () => {
  const topic = uniqueTopic('room');
  const alice = await client('alice');
  const bob = await client('bob');

  const s1 = await alice.request({ op: 'subscribe', topic, id: 101 });
  assert.equal(s1.type, 'ok');
  assert.equal(s1.op, 'subscribe');
  assert.equal(s1.id, 101);
  assert.equal(s1.topic, topic);
  assert.equal(typeof s1.seq, 'number', 'subscribe reply carries the topic seq');
  assert.equal(s1.presence?.count, 1);
  assert.deepEqual(s1.presence?.members, ['alice']);

  const s2 = await subscribe(bob, topic);
  assert.equal(s2.presence?.count, 2);
  assert.deepEqual([...s2.presence.members].sort(), ['alice', 'bob']);

  const data = { text: 'hi bob', n: 1, list: [1, 'two', null], nested: { ok: true } };
  const p = await alice.request({ op: 'publish', topic, data, id: 'pub-1' });
  assert.equal(p.type, 'ok');
  assert.equal(p.op, 'publish');
  assert.equal(p.id, 'pub-1');
  assert.equal(p.topic, topic);
  assert.equal(typeof p.seq, 'number');
  assert.ok(p.seq > s1.seq, 'publish seq is after the subscribe-time seq');

  for (const [who, c] of [['bob', bob], ['alice (own message)', alice]]) {
    const m = await c.nextJson(isMessage(topic), 3000, `message at ${who}`);
    assert.equal(m.seq, p.seq, `${who}: seq`);
    assert.equal(m.from, 'alice', `${who}: from`);
    assert.deepEqual(m.data, data, `${who}: data`);
    assert.equal(typeof m.ts, 'number', `${who}: ts`);
    assert.ok(Math.abs(m.ts - Date.now()) < 60000, `${who}: ts is epoch milliseconds`);
  }

  // Every kind of JSON value travels as is.
  const values = ['a string', 42, 3.5, true, false, [1, [2]], { a: { b: 'c' } }];
  let last = p.seq;
  for (const v of values) {
    const r = await bob.request({ op: 'publish', topic, data: v });
    assert.equal(r.type, 'ok', JSON.stringify(r));
    assert.ok(r.seq > last, 'seq strictly increasing');
    last = r.seq;
    const m = await alice.nextJson(isMessage(topic, (x) => x.seq === r.seq), 3000, `value ${JSON.stringify(v)}`);
    assert.deepEqual(m.data, v);
    assert.equal(m.from, 'bob');
  }

  const u = await alice.request({ op: 'unsubscribe', topic, id: 7 });
  assert.deepEqual({ type: u.type, op: u.op, id: u.id, topic: u.topic }, { type: 'ok', op: 'unsubscribe', id: 7, topic });

  alice.queue.length = 0;
  const after = await bob.request({ op: 'publish', topic, data: 'after unsubscribe' });
  await bob.nextJson(isMessage(topic, (m) => m.seq === after.seq), 3000, 'bob gets his own message');
  await alice.request({ op: 'ping' }); // round trip through alice's connection
  await sleep(100);
  assert.deepEqual(alice.queuedJson((m) => m.type === 'message'), [], 'no messages after unsubscribe');
});

test('?presence=false: no presence events for that connection, the others still get them', async () => {
  const topic = uniqueTopic('quiet');
  const quiet = await Client.open(`${server.ws}/ws?name=dashboard&presence=false`);
  clients.push(quiet);
  const sq = await subscribe(quiet, topic);
  // It is a member like any other (counted, named).
  assert.deepEqual(sq.presence.members, ['dashboard']);
  const alice = await client('alice-q');
  await subscribe(alice, topic);
  const bob = await client('bob-q');
  await subscribe(bob, topic);
  await alice.nextJson((m) => m.type === 'presence' && m.event === 'join' && m.name === 'bob-q', 3000, 'join of bob-q at alice');
  await bob.close(1000);
  await alice.nextJson((m) => m.type === 'presence' && m.event === 'leave' && m.name === 'bob-q', 3000, 'leave of bob-q at alice');
  // Messages still arrive; presence events never did.
  await alice.request({ op: 'publish', topic, data: 'hello' });
  await quiet.nextJson(isMessage(topic), 3000, 'the message at the quiet connection');
  const events = quiet.queue.filter((m) => m.json && m.json.type === 'presence');
  assert.deepEqual(events, []);
  const pr = await quiet.request({ op: 'presence', topic });
  assert.equal(pr.presence.count, 2, 'the presence op still answers');
});

test('presence op and join/leave events carry the ?name= names', async () => {
  const topic = uniqueTopic('presence');
  const alice = await client('alice-p');
  await subscribe(alice, topic);

  const bob = await client('bob-p');
  const sb = await subscribe(bob, topic);
  assert.deepEqual([...sb.presence.members].sort(), ['alice-p', 'bob-p']);
  const join = await alice.nextJson((m) => m.type === 'presence' && m.event === 'join' && m.name === 'bob-p', 3000, 'join of bob-p');
  assert.equal(join.topic, topic);
  assert.equal(join.count, 2);

  const pr = await alice.request({ op: 'presence', topic, id: 'who' });
  assert.equal(pr.type, 'ok');
  assert.equal(pr.op, 'presence');
  assert.equal(pr.id, 'who');
  assert.equal(pr.topic, topic);
  assert.equal(pr.presence.count, 2);
  assert.deepEqual([...pr.presence.members].sort(), ['alice-p', 'bob-p']);

  // leave by unsubscribe
  await bob.request({ op: 'unsubscribe', topic });
  const leave = await alice.nextJson((m) => m.type === 'presence' && m.event === 'leave' && m.name === 'bob-p', 3000, 'leave of bob-p');
  assert.equal(leave.count, 1);

  // leave by disconnect
  const carol = await client('carol-p');
  await subscribe(carol, topic);
  const j2 = await alice.nextJson((m) => m.type === 'presence' && m.event === 'join' && m.name === 'carol-p', 3000, 'join of carol-p');
  assert.equal(j2.count, 2);
  await carol.close(1000);
  const l2 = await alice.nextJson((m) => m.type === 'presence' && m.event === 'leave' && m.name === 'carol-p', 3000, 'leave of carol-p on disconnect');
  assert.equal(l2.count, 1);

  // and an abrupt TCP drop also counts as leaving
  const dave = await client('dave-p');
  await subscribe(dave, topic);
  await alice.nextJson((m) => m.type === 'presence' && m.event === 'join' && m.name === 'dave-p', 3000, 'join of dave-p');
  dave.terminate();
  const l3 = await alice.nextJson((m) => m.type === 'presence' && m.event === 'leave' && m.name === 'dave-p', 5000, 'leave of dave-p on TCP drop');
  assert.equal(l3.count, 1);

  const final = await alice.request({ op: 'presence', topic });
  assert.equal(final.presence.count, 1);
  assert.deepEqual(final.presence.members, ['alice-p']);
});

test('a client without ?name= gets an anon-<id> name', async () => {
  const topic = uniqueTopic('anon');
  const c = await client(undefined);
  const r = await subscribe(c, topic);
  assert.equal(r.presence.count, 1);
  assert.match(r.presence.members[0], /^anon-/);
  const p = await c.request({ op: 'publish', topic, data: 'x' });
  const m = await c.nextJson(isMessage(topic, (x) => x.seq === p.seq));
  assert.equal(m.from, r.presence.members[0]);
});

test('history returns the retained messages after since', async () => {
  const topic = uniqueTopic('hist');
  const c = await client('historian');
  const seqs = [];
  for (const text of ['one', 'two', 'three']) {
    const r = await c.request({ op: 'publish', topic, data: { text } });
    assert.equal(r.type, 'ok');
    seqs.push(r.seq);
  }
  const all = await c.request({ op: 'history', topic, id: 'h1' });
  assert.equal(all.type, 'ok');
  assert.equal(all.op, 'history');
  assert.equal(all.id, 'h1');
  assert.equal(all.topic, topic);
  assert.equal(all.complete, true);
  assert.deepEqual(all.messages.map((m) => m.seq), seqs);
  assert.deepEqual(all.messages.map((m) => m.data.text), ['one', 'two', 'three']);
  assert.ok(all.messages.every((m) => m.from === 'historian' && typeof m.ts === 'number'));

  const tail = await c.request({ op: 'history', topic, since: seqs[0] });
  assert.deepEqual(tail.messages.map((m) => m.data.text), ['two', 'three']);

  const none = await c.request({ op: 'history', topic, since: seqs[2] });
  assert.deepEqual(none.messages, []);

  const empty = await c.request({ op: 'history', topic: uniqueTopic('never-used') });
  assert.equal(empty.type, 'ok');
  assert.deepEqual(empty.messages, []);
});

test('errors: every code, and the connection stays open', async () => {
  const c = await client('erroneous');
  const expectError = async (send, code, what, id) => {
    await send();
    const e = await c.nextJson((m) => m.type === 'error', 3000, `error for ${what}`);
    assert.equal(e.code, code, `${what}: ${JSON.stringify(e)}`);
    assert.equal(typeof e.message, 'string', `${what}: error has a message`);
    if (id !== undefined) assert.deepEqual(e.id, id, `${what}: error echoes the id`);
    await assertStillOpen(c, what);
  };

  await expectError(() => c.send('this is not json'), 'bad_json', 'invalid JSON');
  await expectError(() => c.send('{"op":"ping",'), 'bad_json', 'truncated JSON');
  await expectError(() => c.send('[1,2,3]'), 'bad_json', 'a JSON array');
  await expectError(() => c.send('42'), 'bad_json', 'a JSON number');
  await expectError(() => c.send('"ping"'), 'bad_json', 'a JSON string');
  await expectError(() => c.send('null'), 'bad_json', 'JSON null');
  await expectError(() => c.sendJson({ op: 'frobnicate', id: 11 }), 'unknown_op', 'an unknown op', 11);
  await expectError(() => c.sendJson({ op: 'subscribe', id: 12 }), 'bad_request', 'subscribe without topic', 12);
  await expectError(() => c.sendJson({ op: 'publish', data: 1, id: 13 }), 'bad_request', 'publish without topic', 13);
  await expectError(() => c.sendJson({ op: 'subscribe', topic: 5, id: 14 }), 'bad_request', 'a numeric topic', 14);
  await expectError(() => c.sendJson({ op: 'subscribe', topic: '', id: 15 }), 'invalid_topic', 'an empty topic', 15);
  await expectError(() => c.sendJson({ op: 'subscribe', topic: 'x'.repeat(257), id: 16 }), 'invalid_topic', 'a 257-byte topic', 16);
  await expectError(() => c.sendJson({ op: 'publish', topic: 'bad\u0001topic', data: 1, id: 17 }), 'invalid_topic', 'a topic with a control character', 17);
  await expectError(() => c.sendJson({ op: 'subscribe', topic: 'line\nbreak', id: 18 }), 'invalid_topic', 'a topic with a newline', 18);
  await expectError(() => c.send(Buffer.from([0xde, 0xad, 0xbe, 0xef]), { binary: true }), 'binary_unsupported', 'a binary frame');

  // 256 bytes is still fine (multi-byte: 128 x 2-byte "é" = 256 bytes)
  const ok = await c.request({ op: 'subscribe', topic: 'é'.repeat(128) });
  assert.equal(ok.type, 'ok', `a 256-byte topic is valid: ${JSON.stringify(ok)}`);
});

test('since: after a reconnect exactly the missed messages are replayed, in order', async () => {
  const topic = uniqueTopic('since');
  const pub = await client('publisher');
  let reader = await client('reader');
  await subscribe(reader, topic);

  const seen = [];
  for (const text of ['m1', 'm2']) {
    const r = await pub.request({ op: 'publish', topic, data: text });
    const m = await reader.nextJson(isMessage(topic, (x) => x.seq === r.seq), 3000, text);
    seen.push(m);
  }
  const lastSeen = seen.at(-1).seq;
  await reader.close(1000);

  const missed = [];
  for (const text of ['m3', 'm4', 'm5']) {
    const r = await pub.request({ op: 'publish', topic, data: text });
    assert.equal(r.type, 'ok');
    missed.push(r.seq);
  }

  reader = await client('reader');
  const s = await reader.request({ op: 'subscribe', topic, since: lastSeen });
  assert.equal(s.type, 'ok');
  assert.equal(s.recovered, true, 'all missed messages are still in history');
  const live = await pub.request({ op: 'publish', topic, data: 'm6' });

  const got = await reader.take(4, (m) => m.json?.type === 'message' && m.json.topic === topic, 5000, 'replayed + live messages');
  assert.deepEqual(got.map((m) => m.json.data), ['m3', 'm4', 'm5', 'm6']);
  assert.deepEqual(got.map((m) => m.json.seq), [...missed, live.seq]);
  assert.ok(got.every((m) => m.json.from === 'publisher'));

  await reader.request({ op: 'ping' });
  await sleep(100);
  assert.deepEqual(reader.queuedJson((m) => m.type === 'message'), [], 'no duplicates');
});

test('/ws/topic text/binary reaches a /ws subscriber; /ws JSON reaches a /ws/topic client as text', async () => {
  const topic = uniqueTopic('cross');
  const env = await client('enveloper');
  await subscribe(env, topic);
  const raw = await Client.open(`${server.ws}/ws/topic/${encodeURIComponent(topic)}`);
  clients.push(raw);
  await sleep(50);

  await raw.send('plain text from a raw client');
  const m = await env.nextJson(isMessage(topic), 3000, 'raw text at /ws');
  assert.equal(m.data, 'plain text from a raw client', 'raw text arrives as a string data');
  assert.ok(!m.binary);
  assert.equal(typeof m.seq, 'number');

  const bytes = Buffer.from([0, 1, 2, 250, 255]);
  await raw.send(bytes, { binary: true });
  const b = await env.nextJson(isMessage(topic), 3000, 'raw binary at /ws');
  assert.equal(b.binary, true);
  assert.equal(Buffer.compare(Buffer.from(b.data, 'base64'), bytes), 0, 'binary data is base64');

  const data = { text: 'from the envelope', n: [1, 2] };
  await env.request({ op: 'publish', topic, data });
  const t = await raw.next((x) => !x.isBinary && x.json?.text === 'from the envelope', 3000, 'envelope JSON at /ws/topic');
  assert.deepEqual(JSON.parse(t.text), data, 'JSON publication arrives as its text');
});
