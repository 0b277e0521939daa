// `epoch` (docs/ws-envelope.md): a client's `since` belongs to one numbering of
// a topic. After a server restart the topic is numbered again from 1; a
// client that comes back with `since` and the epoch it saw is answered
// `recovered: false` with the new numbering's retained messages, instead of
// the messages after `since` of a numbering it never saw. Over the /ws
// envelope and over the Socket.IO hub events, as the chat page uses them.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { io } from 'socket.io-client';
import { startServer, Client, uniqueTopic, withTimeout } from './lib/harness.mjs';

const servers = [];
after(async () => { await Promise.all(servers.map((s) => s.stop().catch(() => {}))); });

async function open(server, name) {
  const c = await Client.open(`${server.ws}/ws?name=${name}`);
  const got = [];
  c.ws.on('message', (d) => {
    const m = JSON.parse(d.toString());
    if (m.type === 'message') got.push([m.seq, m.data]);
  });
  return { c, got };
}

test('a since from before a restart is not taken for the new numbering', async () => {
  const topic = uniqueTopic('epoch');
  const first = await startServer();
  servers.push(first);
  const a = await open(first, 'a');
  const before = await a.c.request({ op: 'subscribe', topic });
  assert.equal(typeof before.epoch, 'number');
  for (const data of ['old-1', 'old-2', 'old-3']) await a.c.request({ op: 'publish', topic, data });
  a.c.close();
  await first.stop();

  // The new process numbers the topic from 1 again and goes past 2.
  const second = await startServer();
  servers.push(second);
  const p = await open(second, 'p');
  for (const data of ['new-1', 'new-2', 'new-3', 'new-4']) await p.c.request({ op: 'publish', topic, data });

  // Back with since = 2 of the old numbering, and its epoch: not recovered.
  const b = await open(second, 'a');
  const reply = await b.c.request({ op: 'subscribe', topic, since: 2, epoch: before.epoch });
  assert.equal(reply.recovered, false);
  assert.ok(reply.epoch > before.epoch, `${reply.epoch} > ${before.epoch}`);
  assert.equal(reply.seq, 4);
  await withTimeout((async () => { while (b.got.length < 4) await new Promise((r) => setTimeout(r, 10)); })(), 5000, 'the retained messages');
  assert.deepEqual(b.got, [[1, 'new-1'], [2, 'new-2'], [3, 'new-3'], [4, 'new-4']]);

  // With the current epoch, `since` is this numbering's: recovered.
  const c = await open(second, 'c');
  const ok = await c.c.request({ op: 'subscribe', topic, since: 2, epoch: reply.epoch });
  assert.equal(ok.recovered, true);

  // The same over Socket.IO.
  const s = io(second.http, { transports: ['websocket'], forceNew: true, reconnection: false });
  try {
    await withTimeout(new Promise((r) => s.on('connect', r)), 5000, 'connect');
    const sio = await s.timeout(5000).emitWithAck('subscribe', { topic, since: 2, epoch: before.epoch });
    assert.equal(sio.ok, true);
    assert.equal(sio.recovered, false);
    assert.equal(sio.epoch, reply.epoch);
  } finally {
    s.close();
  }
  for (const x of [p, b, c]) x.c.close();
});
