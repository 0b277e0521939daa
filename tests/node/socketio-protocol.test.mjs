// The Engine.IO v4 / Socket.IO v5 wire protocol, raw (fetch + the npm `ws`
// client), against the Rust port of the protocol test-suite server
// (crates/switchboard-socketio/examples/socketio_protocol_server.rs). Modelled
// on the official test suites (socket.io repo, docs/*-protocol/*-test-suite):
// exact packets, status codes and closes.
//
//   SOCKETIO_PROTOCOL_SERVER_BIN=$PWD/../../target/release/examples/socketio_protocol_server \
//     node --test socketio-protocol.test.mjs
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { Client, sleep } from './lib/harness.mjs';
import { protocolServerSkip, startProtocolServer, withTimeout } from './lib/socketio.mjs';

const skip = protocolServerSkip();
if (skip) console.log(`# skipping socketio-protocol.test.mjs: ${skip}`);

const PING_INTERVAL = 300;
const PING_TIMEOUT = 200;

let server;
const clients = [];
before(async () => { if (!skip) server = await startProtocolServer(); });
after(async () => {
  for (const c of clients) c.terminate();
  if (server) await server.stop();
});

const eioUrl = (query) => `${server.url}/socket.io/?${query}`;

function get(query) {
  return fetch(eioUrl(query), { signal: AbortSignal.timeout(3000) });
}

function post(query, body, method = 'POST') {
  return fetch(eioUrl(query), { method, body, signal: AbortSignal.timeout(3000) });
}

/** A raw WebSocket to /socket.io/ with `query`; resolves once open. */
async function ws(query) {
  const c = await Client.open(`ws://127.0.0.1:${server.port}/socket.io/?${query}`);
  clients.push(c);
  return c;
}

/** A WebSocket that must be refused (bad HTTP status) or closed at once. */
async function wsRefused(query) {
  try {
    const c = await ws(query);
    await c.waitClose(3000);
  } catch (e) {
    assert.match(e.message, /unexpected HTTP 400/);
  }
}

/** Next text (or binary) message, skipping pings when asked. */
async function nextText(c, { skipPings = true } = {}) {
  const m = await c.next((m) => !(skipPings && !m.isBinary && m.text === '2'), 3000, 'a message');
  return m.isBinary ? m.data : m.text;
}

async function pollingSid() {
  const res = await get('EIO=4&transport=polling');
  const text = await res.text();
  return JSON.parse(text.slice(1)).sid;
}

/** A WebSocket session connected to `/` (handshake, CONNECT, `auth` read). */
async function connected() {
  const c = await ws('EIO=4&transport=websocket');
  await nextText(c); // Engine.IO open
  await c.send('40');
  assert.match(await nextText(c), /^40\{"sid":"[\w-]{20}"\}$/);
  assert.equal(await nextText(c), '42["auth",{}]');
  return c;
}

function openPacketCheck(text, upgrades) {
  assert.equal(text[0], '0');
  const open = JSON.parse(text.slice(1));
  assert.deepEqual(Object.keys(open).sort(), ['maxPayload', 'pingInterval', 'pingTimeout', 'sid', 'upgrades']);
  assert.match(open.sid, /^[\w-]{20}$/);
  assert.deepEqual(open.upgrades, upgrades);
  assert.equal(open.pingInterval, PING_INTERVAL);
  assert.equal(open.pingTimeout, PING_TIMEOUT);
  assert.equal(open.maxPayload, 1_000_000);
  return open;
}

describe('Engine.IO v4 protocol', { skip, timeout: 20000 }, () => {
  test('polling handshake: the open packet', async () => {
    const res = await get('EIO=4&transport=polling');
    assert.equal(res.status, 200);
    assert.equal(res.headers.get('access-control-allow-origin'), '*');
    openPacketCheck(await res.text(), ['websocket']);
  });

  test('polling handshake: bad EIO, bad transport, bad method → 400', async () => {
    for (const q of ['transport=polling', 'EIO=abc&transport=polling', 'EIO=3&transport=polling', 'EIO=4', 'EIO=4&transport=abc']) {
      const res = await get(q);
      assert.equal(res.status, 400, q);
      await res.arrayBuffer();
    }
    for (const method of ['POST', 'PUT']) {
      const res = await post('EIO=4&transport=polling', '', method);
      assert.equal(res.status, 400, method);
      await res.arrayBuffer();
    }
  });

  test('WebSocket handshake: the open packet, no upgrades', async () => {
    const c = await ws('EIO=4&transport=websocket');
    openPacketCheck(await nextText(c), []);
    await c.close();
  });

  test('WebSocket handshake: bad EIO or transport is refused', async () => {
    await wsRefused('transport=websocket');
    await wsRefused('EIO=abc&transport=websocket');
    await wsRefused('EIO=4');
    await wsRefused('EIO=4&transport=abc');
  });

  test('polling heartbeat: ping, pong, three times', async () => {
    const sid = await pollingSid();
    for (let i = 0; i < 3; i++) {
      const res = await get(`EIO=4&transport=polling&sid=${sid}`);
      assert.equal(res.status, 200);
      assert.equal(await res.text(), '2');
      const pong = await post(`EIO=4&transport=polling&sid=${sid}`, '3');
      assert.equal(pong.status, 200);
      assert.equal(await pong.text(), 'ok');
    }
  });

  test('polling: the session closes upon ping timeout', async () => {
    const sid = await pollingSid();
    await sleep(PING_INTERVAL + PING_TIMEOUT + 100);
    const res = await get(`EIO=4&transport=polling&sid=${sid}`);
    assert.equal(res.status, 400);
    assert.deepEqual(await res.json(), { code: 1, message: 'Session ID unknown' });
  });

  test('WebSocket heartbeat: ping, pong, three times', async () => {
    const c = await ws('EIO=4&transport=websocket');
    await nextText(c);
    for (let i = 0; i < 3; i++) {
      assert.equal(await nextText(c, { skipPings: false }), '2');
      await c.send('3');
    }
    assert.equal(c.closed, null);
    await c.close();
  });

  test('WebSocket: the session closes upon ping timeout', async () => {
    const c = await ws('EIO=4&transport=websocket');
    await c.waitClose(2000);
  });

  test('polling close: the pending GET gets a noop, then the sid is unknown', async () => {
    const sid = await pollingSid();
    const [poll, close] = await Promise.all([
      get(`EIO=4&transport=polling&sid=${sid}`),
      sleep(20).then(() => post(`EIO=4&transport=polling&sid=${sid}`, '1')),
    ]);
    assert.equal(poll.status, 200);
    assert.equal(await poll.text(), '6');
    assert.equal(close.status, 200);
    await close.arrayBuffer();
    const again = await get(`EIO=4&transport=polling&sid=${sid}`);
    assert.equal(again.status, 400);
    await again.arrayBuffer();
  });

  test('WebSocket close: the server closes the connection', async () => {
    const c = await ws('EIO=4&transport=websocket');
    await nextText(c);
    await c.send('1');
    await c.waitClose(2000);
  });

  test('upgrade: probe, upgrade, then polling and a second WebSocket are refused', async () => {
    const sid = await pollingSid();
    const c = await ws(`EIO=4&transport=websocket&sid=${sid}`);
    await c.send('2probe');
    assert.equal(await nextText(c), '3probe');
    await c.send('5');
    await sleep(50);
    const res = await get(`EIO=4&transport=polling&sid=${sid}`);
    assert.equal(res.status, 400);
    await res.arrayBuffer();
    await wsRefused(`EIO=4&transport=websocket&sid=${sid}`);
    // The upgraded connection still works: a Socket.IO CONNECT.
    await c.send('40');
    assert.match(await nextText(c), /^40\{"sid":"[\w-]{20}"\}$/);
    assert.equal(await nextText(c), '42["auth",{}]');
    await c.close();
  });

  test('upgrade: the pending polling GET is answered with a noop', async () => {
    const sid = await pollingSid();
    const poll = get(`EIO=4&transport=polling&sid=${sid}`);
    await sleep(20);
    const c = await ws(`EIO=4&transport=websocket&sid=${sid}`);
    await c.send('2probe');
    assert.equal(await nextText(c), '3probe');
    const res = await withTimeout(poll, 2000, 'the pending GET');
    assert.equal(res.status, 200);
    assert.equal(await res.text(), '6');
    await c.send('5');
    await c.close();
  });
});

describe('Socket.IO v5 protocol', { skip, timeout: 20000 }, () => {
  test('CONNECT to / without and with a payload', async () => {
    for (const [connect, auth] of [['40', '{}'], ['40{"token":"123"}', '{"token":"123"}']]) {
      const c = await ws('EIO=4&transport=websocket');
      await nextText(c);
      await c.send(connect);
      const ack = await nextText(c);
      assert.match(ack, /^40\{"sid":"[\w-]{20}"\}$/);
      assert.equal(await nextText(c), `42["auth",${auth}]`);
      await c.close();
    }
  });

  test('CONNECT to /custom without and with a payload', async () => {
    for (const [connect, auth] of [['40/custom,', '{}'], ['40/custom,{"token":"abc"}', '{"token":"abc"}']]) {
      const c = await ws('EIO=4&transport=websocket');
      await nextText(c);
      await c.send(connect);
      assert.match(await nextText(c), /^40\/custom,\{"sid":"[\w-]{20}"\}$/);
      assert.equal(await nextText(c), `42/custom,["auth",${auth}]`);
      await c.close();
    }
  });

  test('CONNECT over polling', async () => {
    const sid = await pollingSid();
    const q = `EIO=4&transport=polling&sid=${sid}`;
    assert.equal(await (await post(q, '40{"a":1}\x1e40/custom,')).text(), 'ok');
    let body = '';
    while (body.split('\x1e').filter((p) => p !== '2').length < 4) {
      body += `${body ? '\x1e' : ''}${await (await get(q)).text()}`;
    }
    const packets = body.split('\x1e').filter((p) => p !== '2');
    assert.match(packets[0], /^40\{"sid":"[\w-]{20}"\}$/);
    assert.equal(packets[1], '42["auth",{"a":1}]');
    assert.match(packets[2], /^40\/custom,\{"sid":"[\w-]{20}"\}$/);
    assert.equal(packets[3], '42/custom,["auth",{}]');
    await (await post(q, '1')).arrayBuffer();
  });

  test('CONNECT to an unknown namespace → CONNECT_ERROR', async () => {
    const c = await ws('EIO=4&transport=websocket');
    await nextText(c);
    await c.send('40/random');
    assert.equal(await nextText(c), '44/random,{"message":"Invalid namespace"}');
    await c.close();
  });

  test('an invalid first packet closes the connection', async () => {
    const c = await ws('EIO=4&transport=websocket');
    await nextText(c);
    await c.send('4abc');
    await c.waitClose(2000);
  });

  test('no CONNECT within connectTimeout (1 s) closes the connection', async () => {
    const c = await ws('EIO=4&transport=websocket');
    await nextText(c);
    const t0 = Date.now();
    // Answer pings so that only the connect timeout can close it.
    c.ws.on('message', (d) => { if (d.toString() === '2') c.ws.send('3'); });
    await c.waitClose(3000);
    const took = Date.now() - t0;
    assert.ok(took > 800 && took < 2000, `closed after ${took} ms`);
  });

  test('DISCONNECT from /: the session stays (a ping follows)', async () => {
    const c = await connected();
    await c.send('41');
    assert.equal(await nextText(c, { skipPings: false }), '2');
    await c.close();
  });

  test('CONNECT then DISCONNECT /custom; / still answers', async () => {
    const c = await connected();
    await c.send('40/custom');
    assert.match(await nextText(c), /^40\/custom,/);
    assert.equal(await nextText(c), '42/custom,["auth",{}]');
    await c.send('41/custom');
    await c.send('42["message","message to main namespace"]');
    assert.equal(await nextText(c), '42["message-back","message to main namespace"]');
    await c.close();
  });

  test('EVENT: plain text comes back as message-back', async () => {
    const c = await connected();
    await c.send('42["message",1,"2",{"3":[true]}]');
    assert.equal(await nextText(c), '42["message-back",1,"2",{"3":[true]}]');
    await c.close();
  });

  test('BINARY_EVENT: placeholders and attachments come back', async () => {
    const c = await connected();
    await c.send('452-["message",{"_placeholder":true,"num":0},{"_placeholder":true,"num":1}]');
    await c.send(Uint8Array.from([1, 2, 3]), { binary: true });
    await c.send(Uint8Array.from([4, 5, 6]), { binary: true });
    assert.equal(await nextText(c), '452-["message-back",{"_placeholder":true,"num":0},{"_placeholder":true,"num":1}]');
    assert.deepEqual(await nextText(c), Buffer.from([1, 2, 3]));
    assert.deepEqual(await nextText(c), Buffer.from([4, 5, 6]));
    await c.close();
  });

  test('EVENT with an ack id → ACK', async () => {
    const c = await connected();
    await c.send('42456["message-with-ack",1,"2",{"3":[false]}]');
    assert.equal(await nextText(c), '43456[1,"2",{"3":[false]}]');
    await c.close();
  });

  test('BINARY_EVENT with an ack id → BINARY_ACK', async () => {
    const c = await connected();
    await c.send('452-789["message-with-ack",{"_placeholder":true,"num":0},{"_placeholder":true,"num":1}]');
    await c.send(Uint8Array.from([1, 2, 3]), { binary: true });
    await c.send(Uint8Array.from([4, 5, 6]), { binary: true });
    assert.equal(await nextText(c), '462-789[{"_placeholder":true,"num":0},{"_placeholder":true,"num":1}]');
    assert.deepEqual(await nextText(c), Buffer.from([1, 2, 3]));
    assert.deepEqual(await nextText(c), Buffer.from([4, 5, 6]));
    await c.close();
  });

  test('BINARY_EVENT over polling: base64 attachments', async () => {
    const sid = await pollingSid();
    const q = `EIO=4&transport=polling&sid=${sid}`;
    await (await post(q, '40')).arrayBuffer();
    let got = [];
    const take = async (n) => {
      while (got.length < n) got.push(...(await (await get(q)).text()).split('\x1e').filter((p) => p !== '2'));
    };
    await take(2);
    got = [];
    await (await post(q, '451-["message",{"_placeholder":true,"num":0}]\x1ebAQID')).arrayBuffer();
    await take(2);
    assert.deepEqual(got, ['451-["message-back",{"_placeholder":true,"num":0}]', 'bAQID']);
    await (await post(q, '1')).arrayBuffer();
  });

  test('a packet for a namespace not joined closes the connection (as Node)', async () => {
    const c = await connected();
    await c.send('42/custom,["message","x"]');
    await c.waitClose(2000);
  });

  test('a second CONNECT to a joined namespace closes the connection (as Node)', async () => {
    const c = await connected();
    await c.send('40');
    await c.waitClose(2000);
  });

  test('an event nobody handles is ignored; an ack id on it gets no answer', async () => {
    const c = await connected();
    await c.send('42["nobody-listens",1]');
    await c.send('4212["nobody-listens",2]');
    await c.send('42["message","after"]');
    assert.equal(await nextText(c), '42["message-back","after"]');
    await c.close();
  });

  for (const bad of ['4abc', '42{}', '42abc["message-with-ack",1,"2",{"3":[false]}]']) {
    test(`an invalid packet closes the connection: ${bad}`, async () => {
      const c = await connected();
      await c.send(bad);
      await c.waitClose(2000);
    });
  }
});
