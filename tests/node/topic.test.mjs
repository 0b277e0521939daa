// /ws/topic/{name}: raw text/binary pub/sub between `ws` clients.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { startServer, Client, closeAll, uniqueTopic, sleep } from './lib/harness.mjs';

let server;
const clients = [];
before(async () => { server = await startServer(); });
after(async () => {
  await closeAll(clients);
  if (server) await server.stop();
});

async function topicClient(topic) {
  const c = await Client.open(`${server.ws}/ws/topic/${encodeURIComponent(topic)}`);
  clients.push(c);
  return c;
}

const isText = (s) => (m) => !m.isBinary && m.text === s;
const isBytes = (b) => (m) => m.isBinary && Buffer.compare(m.data, b) === 0;

test('two clients on one topic get each other\'s text and binary messages', async () => {
  const topic = uniqueTopic('raw');
  const a = await topicClient(topic);
  const b = await topicClient(topic);
  await sleep(50); // both subscriptions registered

  await a.send('hello from a ✓');
  await b.next(isText('hello from a ✓'), 5000, 'text from a at b');

  const bin = randomBytes(300);
  await b.send(bin, { binary: true });
  await a.next(isBytes(bin), 5000, 'binary from b at a');

  const big = randomBytes(70000);
  await a.send(big, { binary: true });
  await b.next(isBytes(big), 5000, '70000-byte binary from a at b');

  await b.send('');
  await a.next(isText(''), 5000, 'empty text from b at a');
});

test('different topics are isolated', async () => {
  const t1 = uniqueTopic('iso1');
  const t2 = uniqueTopic('iso2');
  const a1 = await topicClient(t1);
  const b1 = await topicClient(t1);
  const a2 = await topicClient(t2);
  const b2 = await topicClient(t2);
  await sleep(50);

  await a1.send('only for topic one');
  await a1.send(Buffer.from([1, 2, 3]), { binary: true });
  await b1.next(isText('only for topic one'), 5000, 'topic-one text at b1');
  await b1.next(isBytes(Buffer.from([1, 2, 3])), 5000, 'topic-one binary at b1');

  await a2.send('marker for topic two');
  await b2.next(isText('marker for topic two'), 5000, 'topic-two marker at b2');
  await sleep(100);

  for (const [name, c] of [['a2', a2], ['b2', b2]]) {
    const leaked = c.queue.filter((m) => m.isBinary || m.text === 'only for topic one');
    assert.deepEqual(leaked, [], `${name} (topic two) must not see topic-one messages`);
  }
  const leaked = b1.queue.filter((m) => !m.isBinary && m.text === 'marker for topic two');
  assert.deepEqual(leaked, [], 'b1 (topic one) must not see topic-two messages');
});

test('a slow consumer is closed with 1013 and does not slow the others', async () => {
  const topic = uniqueTopic('slow');
  const slow = await topicClient(topic);
  const fast = await topicClient(topic);
  const pub = await topicClient(topic);
  await sleep(50);
  slow.ws._socket.pause(); // stop reading: the server's queue for it fills up

  // 640 x 64 KiB = 40 MiB: far more than kernel socket buffers + the 4 MiB queue.
  // Paced so the fast subscriber never lags more than a few messages behind.
  const n = 640;
  const window = 8;
  const chunk = Buffer.alloc(64 * 1024, 7);
  let fastGot = 0;
  fast.ws.on('message', () => { fastGot += 1; });
  const deadline = Date.now() + 20000;
  for (let sent = 0; sent < n;) {
    while (sent < n && sent - fastGot < window) {
      pub.ws.send(chunk, { binary: true });
      sent += 1;
    }
    while (sent - fastGot >= window && Date.now() < deadline && !fast.closed) await sleep(1);
    if (Date.now() > deadline || fast.closed) break;
  }
  while (fastGot < n && Date.now() < deadline && !fast.closed) await sleep(10);
  assert.equal(fast.closed, null, `the fast subscriber stays connected (${JSON.stringify(fast.closed)})`);
  assert.equal(fastGot, n, 'the fast subscriber receives every message');

  slow.ws._socket.resume();
  const closed = await slow.waitClose(15000);
  assert.equal(closed.code, 1013, `slow consumer close code (got ${closed.code} ${closed.reason})`);
});
