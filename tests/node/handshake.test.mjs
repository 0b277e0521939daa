// The HTTP side of the WebSocket handshake, over raw sockets (no ws client).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import { createHash } from 'node:crypto';
import { startServer, withTimeout } from './lib/harness.mjs';

let server;
before(async () => { server = await startServer(); });
after(async () => { if (server) await server.stop(); });

function parseResponse(buf) {
  const text = buf.toString('latin1');
  const headEnd = text.indexOf('\r\n\r\n');
  if (headEnd < 0) return null;
  const [statusLine, ...headerLines] = text.slice(0, headEnd).split('\r\n');
  const headers = {};
  for (const l of headerLines) {
    const i = l.indexOf(':');
    const k = l.slice(0, i).trim().toLowerCase();
    const v = l.slice(i + 1).trim();
    headers[k] = headers[k] ? `${headers[k]}, ${v}` : v;
  }
  const status = Number(statusLine.split(' ')[1]);
  let body = buf.subarray(headEnd + 4);
  let complete = status === 101 || status === 204 || status === 304;
  if (!complete && headers['content-length'] != null) {
    const len = Number(headers['content-length']);
    complete = body.length >= len;
    body = body.subarray(0, len);
  } else if (!complete && /chunked/i.test(headers['transfer-encoding'] || '')) {
    const parts = [];
    let rest = body;
    for (;;) {
      const nl = rest.indexOf('\r\n');
      if (nl < 0) break;
      const size = parseInt(rest.subarray(0, nl).toString('latin1'), 16);
      if (size === 0) { complete = true; break; }
      if (rest.length < nl + 2 + size) break;
      parts.push(rest.subarray(nl + 2, nl + 2 + size));
      rest = rest.subarray(nl + 2 + size + 2);
    }
    body = Buffer.concat(parts);
  }
  if (status === 101) body = Buffer.alloc(0);
  return { status, statusLine, headers, body: body.toString('utf8'), complete };
}

/** Send a raw HTTP/1.1 request; resolve with the parsed response. */
function rawRequest(lines, { body = '' } = {}) {
  return withTimeout(new Promise((resolve, reject) => {
    const sock = net.connect(server.port, '127.0.0.1');
    let buf = Buffer.alloc(0);
    let settled = false;
    let idle;
    const settle = (force) => {
      if (settled) return;
      const r = parseResponse(buf);
      if (!r) {
        if (force) { settled = true; reject(new Error(`no HTTP response head, got ${JSON.stringify(buf.toString('latin1'))}`)); }
        return;
      }
      if (!r.complete && !force) return;
      settled = true;
      clearTimeout(idle);
      sock.destroy();
      resolve(r);
    };
    sock.on('data', (d) => {
      buf = Buffer.concat([buf, d]);
      clearTimeout(idle);
      idle = setTimeout(() => settle(true), 300); // close-delimited body
      settle(false);
    });
    sock.on('end', () => settle(true));
    sock.on('error', (err) => { if (!settled) { settled = true; reject(err); } });
    sock.write(`${lines.join('\r\n')}\r\n\r\n${body}`);
  }), 5000, `response to ${lines[0]}`);
}

const host = () => `Host: 127.0.0.1:${server.port}`;
const KEY = 'dGhlIHNhbXBsZSBub25jZQ==';

test('a valid upgrade gets 101 with the RFC 6455 accept key', async () => {
  const r = await rawRequest([
    'GET /ws/echo HTTP/1.1', host(), 'Upgrade: websocket', 'Connection: Upgrade',
    `Sec-WebSocket-Key: ${KEY}`, 'Sec-WebSocket-Version: 13',
  ]);
  assert.equal(r.status, 101, r.statusLine);
  assert.equal(r.headers['upgrade']?.toLowerCase(), 'websocket');
  assert.match(r.headers['connection'] || '', /upgrade/i);
  const expected = createHash('sha1').update(`${KEY}258EAFA5-E914-47DA-95CA-C5AB0DC85B11`).digest('base64');
  assert.equal(expected, 's3pPLMBiTxaQ9kYGzzhZRbK+xOo=');
  assert.equal(r.headers['sec-websocket-accept'], expected);
});

for (const path of ['/ws', '/ws/echo', '/ws/topic/handshake']) {
  test(`${path}: missing Sec-WebSocket-Key → 400 with a one-line reason`, async () => {
    const r = await rawRequest([
      `GET ${path} HTTP/1.1`, host(), 'Upgrade: websocket', 'Connection: Upgrade', 'Sec-WebSocket-Version: 13',
    ]);
    assert.equal(r.status, 400, r.statusLine);
    const reason = r.body.trim();
    assert.ok(reason.length > 0, 'the body gives a reason');
    assert.ok(!reason.includes('\n'), `the reason is one line: ${JSON.stringify(r.body)}`);
    assert.match(reason, /key/i, `the reason mentions the key: ${JSON.stringify(reason)}`);
  });
}

test('missing Upgrade header → 400 with a reason', async () => {
  const r = await rawRequest([
    'GET /ws/echo HTTP/1.1', host(), 'Connection: Upgrade', `Sec-WebSocket-Key: ${KEY}`, 'Sec-WebSocket-Version: 13',
  ]);
  assert.equal(r.status, 400, r.statusLine);
  assert.ok(r.body.trim().length > 0, 'the body gives a reason');
});

test('wrong Sec-WebSocket-Version → 426 with Sec-WebSocket-Version: 13', async () => {
  for (const version of ['8', '14']) {
    const r = await rawRequest([
      'GET /ws/echo HTTP/1.1', host(), 'Upgrade: websocket', 'Connection: Upgrade',
      `Sec-WebSocket-Key: ${KEY}`, `Sec-WebSocket-Version: ${version}`,
    ]);
    assert.equal(r.status, 426, `version ${version}: ${r.statusLine}`);
    assert.equal(r.headers['sec-websocket-version'], '13', `version ${version}: header`);
  }
});

test('POST to a WebSocket endpoint → 405', async () => {
  for (const path of ['/ws', '/ws/echo']) {
    const r = await rawRequest([
      `POST ${path} HTTP/1.1`, host(), 'Upgrade: websocket', 'Connection: Upgrade',
      `Sec-WebSocket-Key: ${KEY}`, 'Sec-WebSocket-Version: 13', 'Content-Length: 0',
    ]);
    assert.equal(r.status, 405, `${path}: ${r.statusLine}`);
  }
});
