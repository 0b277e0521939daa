// The chat page and its assets, and /healthz, served by the server.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startServer, httpGet } from './lib/harness.mjs';

let server;
before(async () => { server = await startServer(); });
after(async () => { if (server) await server.stop(); });

test('GET /healthz → 200 ok', async () => {
  const r = await httpGet(server.port, '/healthz');
  assert.equal(r.status, 200);
  assert.equal(r.body.trim(), 'ok');
});

test('GET / serves the chat page', async () => {
  const r = await httpGet(server.port, '/');
  assert.equal(r.status, 200);
  assert.match(r.headers['content-type'] || '', /^text\/html/);
  for (const id of ['nick', 'room', 'join', 'message', 'send', 'messages', 'members', 'member-count', 'status', 'protocol']) {
    assert.ok(r.body.includes(`id="${id}"`), `page has #${id}`);
  }
  assert.ok(r.body.includes('/assets/chat.js'));
  assert.ok(r.body.includes('/assets/chat.css'));
});

test('GET /assets/chat.js and /assets/chat.css with proper content types', async () => {
  const js = await httpGet(server.port, '/assets/chat.js');
  assert.equal(js.status, 200);
  assert.match(js.headers['content-type'] || '', /^(text|application)\/javascript/);
  assert.ok(js.body.includes('registerTransport'));
  const css = await httpGet(server.port, '/assets/chat.css');
  assert.equal(css.status, 200);
  assert.match(css.headers['content-type'] || '', /^text\/css/);
});

test('GET /socket.io/socket.io.js serves the socket.io-client bundle (as Node does)', async () => {
  for (const path of ['/socket.io/socket.io.js', '/socket.io/socket.io.min.js', '/assets/vendor/socket.io.min.js']) {
    const r = await httpGet(server.port, path);
    assert.equal(r.status, 200, path);
    assert.match(r.headers['content-type'] || '', /javascript/);
    assert.match(r.body, /Socket\.IO v4\.\d+\.\d+/, path);
  }
});

test('an unknown path → 404', async () => {
  const r = await httpGet(server.port, '/no/such/thing');
  assert.equal(r.status, 404);
});
