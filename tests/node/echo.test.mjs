// /ws/echo against the real npm `ws` client.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { startServer, Client, closeAll, withTimeout } from './lib/harness.mjs';

let server;
const clients = [];
before(async () => { server = await startServer(); });
after(async () => {
  await closeAll(clients);
  if (server) await server.stop();
});

async function echoClient() {
  const c = await Client.open(`${server.ws}/ws/echo`);
  clients.push(c);
  return c;
}

test('text echo: ASCII, multi-byte UTF-8 and empty', async () => {
  const c = await echoClient();
  const samples = [
    'hello, switchboard',
    'héllo wörld — ünïcödé · 日本語のテキスト · emoji 🎉🚀 · 𝄞 (4-byte)',
    '',
  ];
  for (const s of samples) {
    await c.send(s);
    const m = await c.next(() => true, 5000, `echo of ${JSON.stringify(s)}`);
    assert.equal(m.isBinary, false, 'text must stay text');
    assert.equal(m.text, s);
  }
});

test('binary echo: 0, 125, 126, 65535, 65536 and 1 MiB bytes', async () => {
  const c = await echoClient();
  for (const size of [0, 125, 126, 65535, 65536, 1024 * 1024]) {
    const payload = randomBytes(size);
    await c.send(payload, { binary: true });
    const m = await c.next(() => true, 10000, `echo of ${size} bytes`);
    assert.equal(m.isBinary, true, `binary must stay binary (${size} bytes)`);
    assert.equal(m.data.length, size, `length of ${size}-byte echo`);
    assert.ok(Buffer.compare(m.data, payload) === 0, `content of ${size}-byte echo`);
  }
});

test('1000 pipelined messages come back in order', async () => {
  const c = await echoClient();
  const n = 1000;
  for (let i = 0; i < n; i++) c.ws.send(`msg-${i}-${'x'.repeat(i % 50)}`);
  const got = await c.take(n, () => true, 15000, 'pipelined echoes');
  got.forEach((m, i) => assert.equal(m.text, `msg-${i}-${'x'.repeat(i % 50)}`, `message #${i}`));
});

test('ping gets a pong with the same payload', async () => {
  const c = await echoClient();
  const pong = withTimeout(new Promise((resolve) => c.ws.once('pong', resolve)), 5000, 'pong');
  c.ws.ping(Buffer.from('are you there?'));
  const data = await pong;
  assert.equal(data.toString('utf8'), 'are you there?');
  // and the connection still echoes afterwards
  await c.send('after ping');
  assert.equal((await c.next()).text, 'after ping');
});

test('client close 1000 with a reason is answered with 1000', async () => {
  const c = await echoClient();
  c.ws.close(1000, 'done here');
  const closed = await c.waitClose(5000);
  assert.equal(closed.code, 1000);
});

test('16 connections pipelining 64 B to 32 KiB messages each get their own bytes back', async () => {
  // Output over 4 KiB moves into buffers the server keeps per thread and
  // hands from one connection's output to the next: a buffer reused too
  // early, or output lost in the move, would show here. Small and large
  // messages mix so that outputs grow past 4 KiB with frames already in them.
  const conns = await Promise.all(Array.from({ length: 16 }, () => echoClient()));
  const perConn = 60;
  const sent = conns.map(() => []);
  conns.forEach((c, ci) => {
    for (let i = 0; i < perConn; i++) {
      const size = 64 + ((ci * 7919 + i * 104729) % (32 * 1024));
      const payload = randomBytes(size);
      sent[ci].push(payload);
      c.ws.send(payload, { binary: true });
    }
  });
  await Promise.all(conns.map(async (c, ci) => {
    const got = await c.take(perConn, () => true, 20000, `echoes of connection ${ci}`);
    got.forEach((m, i) => {
      assert.equal(m.isBinary, true);
      assert.ok(Buffer.compare(m.data, sent[ci][i]) === 0,
        `connection ${ci}, message #${i} (${sent[ci][i].length} bytes) came back altered`);
    });
  }));
});
