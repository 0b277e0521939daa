// The SockJS services (/sockjs/echo, /sockjs/close, /sockjs/chat) against the
// real npm `sockjs-client` 1.6 with each transport it can use under Node, and
// the HTTP answers of the SockJS 0.3.3 protocol with plain requests.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import SockJS from 'sockjs-client';
import {
  startServer, Client, envelopeClient, closeAll, uniqueTopic, withTimeout,
} from './lib/harness.mjs';

let server;
const clients = [];
const socks = [];
before(async () => { server = await startServer(); });
after(async () => {
  for (const s of socks) s.close();
  await closeAll(clients);
  if (server) await server.stop();
});

// Every transport sockjs-client runs under Node (the others need a DOM).
const TRANSPORTS = ['websocket', 'xhr-streaming', 'xhr-polling', 'eventsource'];

/** A sockjs-client that queues what it receives, like the harness's ws Client. */
class Sock {
  constructor(sock) {
    this.sock = sock;
    this.queue = [];
    this.waiters = [];
    this.closed = null;
    this.closeWaiters = [];
    this.nextId = 1;
    sock.onmessage = (e) => this.push(e.data);
    sock.onclose = (e) => {
      this.closed = { code: e.code, reason: e.reason, wasClean: e.wasClean };
      for (const w of this.closeWaiters) w(this.closed);
      this.closeWaiters = [];
    };
  }

  static open(url, transport, timeout = 8000) {
    const sock = new SockJS(url, null, { transports: [transport] });
    const s = new Sock(sock);
    socks.push(sock);
    return withTimeout(new Promise((resolve, reject) => {
      sock.onopen = () => resolve(s);
      s.closeWaiters.push((c) => reject(new Error(`closed before open: ${JSON.stringify(c)}`)));
    }), timeout, `open ${url} over ${transport}`).then((opened) => {
      opened.closeWaiters = [];
      return opened;
    });
  }

  push(data) {
    const i = this.waiters.findIndex((w) => w.pred(data));
    if (i >= 0) this.waiters.splice(i, 1)[0].resolve(data);
    else this.queue.push(data);
  }

  next(pred = () => true, timeout = 5000, what = 'a message') {
    const i = this.queue.findIndex(pred);
    if (i >= 0) return Promise.resolve(this.queue.splice(i, 1)[0]);
    let waiter;
    const p = new Promise((resolve) => { waiter = { pred, resolve }; this.waiters.push(waiter); });
    return withTimeout(p, timeout, what).catch((err) => {
      this.waiters = this.waiters.filter((w) => w !== waiter);
      throw err;
    });
  }

  async nextJson(pred = () => true, timeout = 5000, what = 'a JSON message') {
    const parse = (d) => { try { return JSON.parse(d); } catch { return undefined; } };
    const data = await this.next((d) => { const j = parse(d); return j !== undefined && pred(j); }, timeout, what);
    return JSON.parse(data);
  }

  send(text) { this.sock.send(text); }

  /** An envelope request with a fresh id; resolves its reply. */
  async request(body, timeout = 5000) {
    const id = `s${this.nextId++}`;
    this.send(JSON.stringify({ ...body, id }));
    return this.nextJson((m) => m.id === id, timeout, `reply to ${JSON.stringify(body)}`);
  }

  waitClose(timeout = 5000) {
    if (this.closed) return Promise.resolve(this.closed);
    return withTimeout(new Promise((resolve) => this.closeWaiters.push(resolve)), timeout, 'close');
  }

  close() { this.sock.close(); }
}

/** One plain HTTP request; resolves { status, headers, body }. */
function request(method, path, { headers = {}, body } = {}) {
  return new Promise((resolve, reject) => {
    const req = http.request({ host: '127.0.0.1', port: server.port, method, path, headers, agent: false }, (res) => {
      const chunks = [];
      res.on('data', (c) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode, headers: res.headers, body: Buffer.concat(chunks).toString('utf8') }));
      res.on('error', reject);
    });
    req.setTimeout(5000, () => req.destroy(new Error(`${method} ${path} timed out`)));
    req.on('error', reject);
    req.end(body);
  });
}

const session = () => `s${Math.random().toString(36).slice(2, 10)}`;

// Strings sockjs escapes on the wire (\u2028, \ufff0, controls, surrogate
// pairs, characters browsers mangle) and plain unicode: each must come back
// exactly.
const SAMPLES = [
  'hello',
  'héllo wörld — 日本語 · emoji 🎉 · 𝄞',
  'controls \u0000\u0001\u0008\u000b\u001f\u007f end',
  'line\nseparators \u2028 \u2029 and \r\n',
  'specials \ufff0 \ufff9 \ufffe \uffff \ufeff \u200c \u200d \u0600 \u17b4',
  'quotes " \' \\ </script> <!-- -->',
  '',
];

for (const transport of TRANSPORTS) {
  test(`${transport}: opens and echoes unicode, controls and escaped characters`, async () => {
    const s = await Sock.open(`${server.http}/sockjs/echo`, transport);
    assert.equal(s.sock.transport, transport);
    for (const text of SAMPLES) {
      s.send(text);
      const got = await s.next(() => true, 5000, `echo of ${JSON.stringify(text)}`);
      assert.equal(got, text);
    }
    s.close();
    const closed = await s.waitClose();
    assert.equal(closed.code, 1000);
  });

  test(`${transport}: 100 messages come back in order`, async () => {
    const s = await Sock.open(`${server.http}/sockjs/echo`, transport);
    for (let i = 0; i < 100; i++) s.send(`m${i}`);
    for (let i = 0; i < 100; i++) {
      assert.equal(await s.next(() => true, 8000, `echo ${i}`), `m${i}`);
    }
    s.close();
  });

  test(`${transport}: a server-initiated close reaches the client with code and reason`, async () => {
    const s = new Sock(new SockJS(`${server.http}/sockjs/close`, null, { transports: [transport] }));
    socks.push(s.sock);
    const closed = await s.waitClose(8000);
    assert.deepEqual([closed.code, closed.reason], [3000, 'Go away!']);

    const bad = new Sock(new SockJS(`${server.http}/sockjs/chat?name=`, null, { transports: [transport] }));
    socks.push(bad.sock);
    const refused = await bad.waitClose(8000);
    assert.deepEqual([refused.code, refused.reason], [4000, 'name must be 1 to 64 printable characters']);
  });

  test(`${transport}: /sockjs/chat and a raw /ws client share a topic`, async () => {
    const topic = uniqueTopic('sockjs');
    const s = await Sock.open(`${server.http}/sockjs/chat?name=${encodeURIComponent(`sj-${transport}`)}`, transport);
    const w = await envelopeClient(server, 'raw');
    clients.push(w);

    const sub = await s.request({ op: 'subscribe', topic });
    assert.equal(sub.type, 'ok', JSON.stringify(sub));
    assert.equal((await w.request({ op: 'subscribe', topic })).type, 'ok');
    const joined = await s.nextJson((m) => m.type === 'presence' && m.name === 'raw');
    assert.equal(joined.event, 'join');

    const text = 'from ws \u2028 \ufff0 🎉';
    assert.equal((await w.request({ op: 'publish', topic, data: { text } })).type, 'ok');
    const got = await s.nextJson((m) => m.type === 'message' && m.topic === topic);
    assert.deepEqual([got.from, got.data], ['raw', { text }]);

    const pub = await s.request({ op: 'publish', topic, data: 'from sockjs \u0000' });
    assert.equal(pub.type, 'ok', JSON.stringify(pub));
    const seen = await w.nextJson((m) => m.type === 'message' && m.topic === topic && m.from === `sj-${transport}`);
    assert.equal(seen.data, 'from sockjs \u0000');
    const own = await s.nextJson((m) => m.type === 'message' && m.seq === pub.seq);
    assert.equal(own.data, 'from sockjs \u0000');

    const err = await s.request({ op: 'nope' });
    assert.deepEqual([err.type, err.code], ['error', 'unknown_op']);
    s.close();
    await w.nextJson((m) => m.type === 'presence' && m.event === 'leave' && m.name === `sj-${transport}`, 8000);
  });
}

test('/info: JSON fields, no-cache headers, CORS', async () => {
  const r = await request('GET', '/sockjs/echo/info');
  assert.equal(r.status, 200);
  assert.match(r.headers['content-type'], /^application\/json; ?charset=UTF-8$/);
  assert.equal(r.headers['cache-control'], 'no-store, no-cache, must-revalidate, max-age=0');
  assert.equal(r.headers['access-control-allow-origin'], '*');
  assert.equal(r.headers['access-control-allow-credentials'], 'true');
  const info = JSON.parse(r.body);
  assert.equal(info.websocket, true);
  assert.equal(info.cookie_needed, false);
  assert.deepEqual(info.origins, ['*:*']);
  assert.equal(typeof info.entropy, 'number');
  const again = JSON.parse((await request('GET', '/sockjs/echo/info')).body);
  assert.notEqual(again.entropy, info.entropy, 'entropy changes');

  const cors = await request('GET', '/sockjs/echo/info', { headers: { origin: 'https://example.test' } });
  assert.equal(cors.headers['access-control-allow-origin'], 'https://example.test');
  assert.equal(cors.headers['access-control-allow-credentials'], 'true');
});

test('OPTIONS preflight: 204 with methods, max-age and cache headers', async () => {
  for (const [path, methods] of [['/sockjs/echo/info', 'OPTIONS, GET'], [`/sockjs/echo/000/${session()}/xhr`, 'OPTIONS, POST']]) {
    const r = await request('OPTIONS', path, {
      headers: { origin: 'https://example.test', 'access-control-request-headers': 'a, b' },
    });
    assert.equal(r.status, 204, path);
    assert.equal(r.body, '');
    assert.equal(r.headers['access-control-allow-methods'], methods);
    assert.equal(r.headers['access-control-allow-origin'], 'https://example.test');
    assert.equal(r.headers['access-control-allow-credentials'], 'true');
    assert.equal(r.headers['access-control-allow-headers'], 'a, b');
    assert.equal(r.headers['access-control-max-age'], '31536000');
    assert.equal(r.headers['cache-control'], 'public, max-age=31536000');
    assert.ok(r.headers.expires, 'Expires header');
  }
});

test('iframe.html: 200 with ETag, then 304 for If-None-Match', async () => {
  const r = await request('GET', '/sockjs/echo/iframe.html');
  assert.equal(r.status, 200);
  assert.match(r.headers['content-type'], /^text\/html; ?charset=UTF-8$/);
  assert.match(r.body, /SockJS\.bootstrap_iframe\(\)/);
  // The client library is the copy the server embeds (clientLibraryUrl default).
  assert.match(r.body, /<script src="\/assets\/vendor\/sockjs\.min\.js"><\/script>/);
  const etag = r.headers.etag;
  assert.ok(etag, 'ETag header');
  const versioned = await request('GET', '/sockjs/echo/iframe-1.6.1.html');
  assert.equal(versioned.headers.etag, etag);
  const cached = await request('GET', '/sockjs/echo/iframe.html', { headers: { 'if-none-match': etag } });
  assert.equal(cached.status, 304);
  assert.equal(cached.body, '');
});

test('greeting and unknown URLs', async () => {
  for (const path of ['/sockjs/echo', '/sockjs/echo/']) {
    const r = await request('GET', path);
    assert.equal(r.status, 200, path);
    assert.equal(r.body, 'Welcome to SockJS!\n');
  }
  assert.equal((await request('GET', '/sockjs/echo/nope')).status, 404);
  assert.equal((await request('GET', '/sockjs/echo/a/b/xhr_nope')).status, 404);
  const m = await request('GET', `/sockjs/echo/000/${session()}/xhr`);
  assert.equal(m.status, 405);
  assert.equal(m.headers.allow, 'OPTIONS, POST');
});

test('xhr_send: unknown session 404, empty body and broken JSON 500', async () => {
  const unknown = await request('POST', `/sockjs/echo/000/${session()}/xhr_send`, { body: '["x"]' });
  assert.equal(unknown.status, 404);

  const id = session();
  const open = await request('POST', `/sockjs/echo/000/${id}/xhr`);
  assert.equal(open.body, 'o\n');
  const empty = await request('POST', `/sockjs/echo/000/${id}/xhr_send`, { body: '' });
  assert.deepEqual([empty.status, empty.body], [500, 'Payload expected.']);
  const broken = await request('POST', `/sockjs/echo/000/${id}/xhr_send`, { body: '["x' });
  assert.deepEqual([broken.status, broken.body], [500, 'Broken JSON encoding.']);
  const ok = await request('POST', `/sockjs/echo/000/${id}/xhr_send`, { body: '["a","\\u2028"]' });
  assert.equal(ok.status, 204);
  const poll = await request('POST', `/sockjs/echo/000/${id}/xhr`);
  assert.equal(poll.body, 'a["a","\\u2028"]\n');
});

test('a second xhr_streaming on one session gets c[2010,"Another connection still open"]', async () => {
  const id = session();
  const path = `/sockjs/echo/000/${id}/xhr_streaming`;
  let first;
  const opened = new Promise((resolve, reject) => {
    first = http.request({ host: '127.0.0.1', port: server.port, method: 'POST', path, agent: false }, (res) => {
      let text = '';
      res.on('data', (c) => {
        text += c.toString('utf8');
        if (text.endsWith('\no\n')) resolve(res);
      });
      res.on('error', () => {});
    });
    first.on('error', reject);
    first.end();
  });
  const res = await withTimeout(opened, 5000, 'first xhr_streaming to open');
  assert.equal(res.headers['content-type'], 'application/javascript; charset=UTF-8');
  const second = await request('POST', path);
  assert.equal(second.status, 200);
  assert.ok(second.body.startsWith('h'.repeat(2048) + '\n'), 'prelude');
  assert.ok(second.body.endsWith('c[2010,"Another connection still open"]\n'), second.body.slice(2049));
  first.destroy();
});

test('raw /websocket: messages as they are, the close frame as the WebSocket close', async () => {
  const c = await Client.open(`${server.ws}/sockjs/echo/websocket`);
  clients.push(c);
  for (const text of SAMPLES.filter((t) => t !== '')) {
    await c.send(text);
    const m = await c.next(() => true, 5000, `raw echo of ${JSON.stringify(text)}`);
    assert.equal(m.text, text);
  }
  await c.send('["not", "unwrapped"]');
  assert.equal((await c.next()).text, '["not", "unwrapped"]');

  const closing = await Client.open(`${server.ws}/sockjs/close/websocket`);
  clients.push(closing);
  const closed = await closing.waitClose();
  assert.deepEqual([closed.code, closed.reason], [3000, 'Go away!']);
});

test('websocket transport: broken framing closes with 3000 "Broken framing."', async () => {
  const c = await Client.open(`${server.ws}/sockjs/echo/000/${session()}/websocket`);
  clients.push(c);
  assert.equal((await c.next()).text, 'o');
  await c.send('["ok"]');
  assert.equal((await c.next()).text, 'a["ok"]');
  await c.send('["broken');
  const closed = await c.waitClose();
  assert.deepEqual([closed.code, closed.reason], [3000, 'Broken framing.']);
});

test('shutdown: open sessions get c[1001,"Server shutting down"] and the server exits', async () => {
  const own = await startServer();
  try {
    const url = `${own.http}/sockjs/echo`;
    const open = await Promise.all(['websocket', 'xhr-streaming', 'xhr-polling'].map((t) => Sock.open(url, t)));
    const started = Date.now();
    own.child.kill('SIGTERM');
    for (const s of open) {
      const closed = await s.waitClose(5000);
      assert.deepEqual([closed.code, closed.reason], [1001, 'Server shutting down'], s.sock.transport);
    }
    const exit = await own.waitExit(10000);
    assert.equal(exit.code, 0);
    assert.ok(Date.now() - started < 5000, `exited after ${Date.now() - started} ms`);
  } finally {
    await own.stop();
  }
});

/** `cb("...");\r\n` → the SockJS frame inside. */
function jsonpFrame(body, cb = 'cb') {
  assert.ok(body.startsWith(`${cb}(`) && body.endsWith(');\r\n'), JSON.stringify(body));
  return JSON.parse(body.slice(cb.length + 1, -4));
}

test('jsonp receiver and jsonp_send (form and text bodies)', async () => {
  const base = `/sockjs/echo/000/${session()}`;
  const missing = await request('GET', `${base}/jsonp`);
  assert.deepEqual([missing.status, missing.body], [500, '"callback" parameter required']);
  const bad = await request('GET', `${base}/jsonp?c=a%28b`);
  assert.deepEqual([bad.status, bad.body], [500, 'invalid "callback" parameter']);

  const open = await request('GET', `${base}/jsonp?c=cb`);
  assert.equal(open.status, 200);
  assert.match(open.headers['content-type'], /^application\/javascript; ?charset=UTF-8$/);
  assert.equal(open.headers['x-content-type-options'], 'nosniff');
  assert.equal(jsonpFrame(open.body), 'o');

  const text = 'x \u2028 </script> \ufff0';
  const form = await request('POST', `${base}/jsonp_send`, {
    headers: { 'content-type': 'application/x-www-form-urlencoded' },
    body: `d=${encodeURIComponent(JSON.stringify([text]))}`,
  });
  assert.deepEqual([form.status, form.body], [200, 'ok']);
  const plain = await request('POST', `${base}/jsonp_send`, {
    headers: { 'content-type': 'text/plain' },
    body: JSON.stringify(['y']),
  });
  assert.deepEqual([plain.status, plain.body], [200, 'ok']);
  const poll = await request('GET', `${base}/jsonp?c=cb`);
  const frame = jsonpFrame(poll.body);
  assert.equal(frame[0], 'a');
  assert.deepEqual(JSON.parse(frame.slice(1)), [text, 'y']);
  const empty = await request('POST', `${base}/jsonp_send`, {
    headers: { 'content-type': 'application/x-www-form-urlencoded' },
    body: 'd=',
  });
  assert.deepEqual([empty.status, empty.body], [500, 'Payload expected.']);
});

test('htmlfile receiver: the prelude calls parent.<callback>, frames are script tags', async () => {
  const path = `/sockjs/echo/000/${session()}/htmlfile?c=cb`;
  const result = await withTimeout(new Promise((resolve, reject) => {
    const req = http.request({ host: '127.0.0.1', port: server.port, method: 'GET', path, agent: false }, (res) => {
      let text = '';
      res.on('data', (c) => {
        text += c.toString('utf8');
        if (text.includes('<script>\np("o");\n</script>\r\n')) {
          req.destroy();
          resolve({ headers: res.headers, text });
        }
      });
      res.on('error', () => {});
    });
    req.on('error', reject);
    req.end();
  }), 5000, 'htmlfile open frame');
  assert.match(result.headers['content-type'], /^text\/html; ?charset=UTF-8$/);
  assert.match(result.text, /var c = parent\.cb;/);
  assert.ok(result.text.indexOf('<script>\np("o")') > 1024, 'the prelude is padded past 1 KiB');
});

test('[[sockjs.services]]: declared prefixes, behaviours and per-service options', async () => {
  const services = '[{prefix = "/echo", behaviour = "echo"}, '
    + '{prefix = "/disabled_websocket_echo", behaviour = "echo", websocket_enabled = false}, '
    + '{prefix = "/cookie_needed_echo", behaviour = "echo", session_cookie_needed = true}, '
    + '{prefix = "/rooms/chat", behaviour = "chat"}]';
  const own = await startServer({ env: { SWITCHBOARD_SOCKJS__SERVICES: services } });
  const get = (path, opts) => new Promise((resolve, reject) => {
    const req = http.request({ host: '127.0.0.1', port: own.port, path, agent: false, ...opts }, (res) => {
      const chunks = [];
      res.on('data', (c) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode, headers: res.headers, body: Buffer.concat(chunks).toString('utf8') }));
    });
    req.on('error', reject);
    req.end();
  });
  try {
    assert.equal((await get('/sockjs/echo/info')).status, 404, 'the defaults are replaced');
    assert.equal(JSON.parse((await get('/echo/info')).body).websocket, true);
    assert.equal(JSON.parse((await get('/disabled_websocket_echo/info')).body).websocket, false);
    assert.equal((await get(`/disabled_websocket_echo/000/${session()}/websocket`)).status, 404);
    assert.equal(JSON.parse((await get('/cookie_needed_echo/info')).body).cookie_needed, true);
    const xhr = await get(`/cookie_needed_echo/000/${session()}/xhr`, { method: 'POST' });
    assert.match(String(xhr.headers['set-cookie']), /JSESSIONID=dummy/);

    const s = await Sock.open(`${own.http}/echo`, 'websocket');
    s.send('declared');
    assert.equal(await s.next(), 'declared');
    s.close();
    const d = await Sock.open(`${own.http}/disabled_websocket_echo`, 'xhr-streaming');
    d.send('fallback');
    assert.equal(await d.next(), 'fallback');
    d.close();
    const c = await Sock.open(`${own.http}/rooms/chat?name=declared`, 'xhr-polling');
    const pong = await c.request({ op: 'ping' });
    assert.equal(pong.type, 'pong');
    c.close();
  } finally {
    await own.stop();
  }
});

/** POSTs an xhr_streaming receiver on `port`; resolves { chunks(), ended, res, req }. */
function stream(port, path) {
  return new Promise((resolve, reject) => {
    let text = '';
    let ended = false;
    const req = http.request({ host: '127.0.0.1', port, method: 'POST', path, agent: false }, (res) => {
      res.on('data', (c) => { text += c.toString('utf8'); });
      res.on('end', () => { ended = true; });
      res.on('error', () => {});
      resolve({ text: () => text, ended: () => ended, req });
    });
    req.on('error', reject);
    req.end();
  });
}

async function until(pred, ms, what) {
  const deadline = Date.now() + ms;
  while (!pred()) {
    if (Date.now() > deadline) throw new Error(`timed out after ${ms} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

test('heartbeats: an idle receiver gets h frames every heartbeat_time_ms', async () => {
  const fast = await startServer({ env: { SWITCHBOARD_SOCKJS__HEARTBEAT_TIME_MS: '200' } });
  try {
    const s = await stream(fast.port, `/sockjs/echo/000/${session()}/xhr_streaming`);
    await until(() => s.text().endsWith('\no\n'), 3000, 'the open frame');
    const t0 = Date.now();
    await until(() => (s.text().match(/\nh\n/g) || []).length >= 3, 3000, 'three heartbeats');
    assert.ok(Date.now() - t0 >= 400, 'heartbeats are spaced, not a burst');
    s.req.destroy();
  } finally {
    await fast.stop();
  }
});

test('a closed session answers every later receiver with its close frame', async () => {
  const id = session();
  const path = `/sockjs/close/000/${id}/xhr`;
  const first = await request('POST', path);
  assert.equal(first.body, 'o\n');
  for (let i = 0; i < 2; i++) {
    const again = await request('POST', path);
    assert.equal(again.status, 200);
    assert.equal(again.body, 'c[3000,"Go away!"]\n');
  }
});

test('the streaming byte limit ends the stream; the next receiver gets the rest, in order', async () => {
  const small = await startServer({ env: { SWITCHBOARD_SOCKJS__STREAM_BYTES_LIMIT: '4096' } });
  try {
    const id = session();
    const base = `/sockjs/echo/000/${id}`;
    const first = await stream(small.port, `${base}/xhr_streaming`);
    await until(() => first.text().endsWith('\no\n'), 3000, 'the open frame');
    // One xhr_send per message: each becomes its own a[...] frame.
    for (let i = 0; i < 40; i++) {
      const status = await new Promise((resolve, reject) => {
        const req = http.request({ host: '127.0.0.1', port: small.port, method: 'POST', path: `${base}/xhr_send`, agent: false },
          (res) => { res.resume(); res.on('end', () => resolve(res.statusCode)); });
        req.on('error', reject);
        req.end(JSON.stringify([`${i}:${'x'.repeat(128)}`]));
      });
      assert.equal(status, 204);
    }
    await until(() => first.ended(), 3000, 'the first stream to end at the limit');
    const got = (text) => [...text.matchAll(/"(\d+):x+"/g)].map((m) => Number(m[1]));
    const before = got(first.text());
    assert.ok(before.length > 0 && before.length < 40, `the first stream carried ${before.length} of 40`);
    const second = await stream(small.port, `${base}/xhr_streaming`);
    await until(() => got(second.text()).length + before.length >= 40, 3000, 'the rest');
    assert.deepEqual([...before, ...got(second.text())], Array.from({ length: 40 }, (_, i) => i));
    second.req.destroy();
  } finally {
    await small.stop();
  }
});
