// Closing handshakes: client-initiated close, and server shutdown on SIGTERM.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { startServer, Client, envelopeClient, closeAll } from './lib/harness.mjs';

test('client close 1000 + reason is answered with 1000 on every endpoint', async (t) => {
  const server = await startServer();
  t.after(() => server.stop());
  for (const path of ['/ws/echo', '/ws?name=closer', '/ws/topic/closing']) {
    const c = await Client.open(`${server.ws}${path}`);
    c.ws.close(1000, 'normal goodbye');
    const closed = await c.waitClose(5000);
    assert.equal(closed.code, 1000, `${path}: close code`);
  }
});

test('SIGTERM closes connected clients with 1001 and the server exits', async (t) => {
  const server = await startServer();
  const clients = [];
  t.after(async () => {
    await closeAll(clients);
    await server.stop();
  });
  clients.push(await Client.open(`${server.ws}/ws/echo`));
  const env = await envelopeClient(server, 'leaver');
  clients.push(env);
  const sub = await env.request({ op: 'subscribe', topic: 'shutdown-room' });
  assert.equal(sub.type, 'ok');
  clients.push(await Client.open(`${server.ws}/ws/topic/shutdown-room`));

  server.child.kill('SIGTERM');
  const closes = await Promise.all(clients.map((c) => c.waitClose(10000)));
  closes.forEach((cl, i) => assert.equal(cl.code, 1001, `client #${i} close code (reason ${JSON.stringify(cl.reason)})`));

  const exit = await server.waitExit(10000);
  t.diagnostic(`server exit after SIGTERM: ${JSON.stringify(exit)}`);
  assert.ok(exit.code === 0 || exit.signal === 'SIGTERM', `server exit: ${JSON.stringify(exit)}`);
});
