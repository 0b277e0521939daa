// The Socket.IO stack against the real npm `socket.io-client` 4 (and its
// `engine.io-client`), served by the Rust port of the protocol test-suite
// server (crates/switchboard-socketio/examples/socketio_protocol_server.rs):
// pingInterval 300 ms, pingTimeout 200 ms, maxPayload 1e6, connectTimeout 1 s.
//
//   cargo build --release -p switchboard-socketio --example socketio_protocol_server
//   SOCKETIO_PROTOCOL_SERVER_BIN=$PWD/../../target/release/examples/socketio_protocol_server \
//     node --test socketio.test.mjs
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import { io } from 'socket.io-client';
import { Socket as EngineSocket } from 'engine.io-client';
import { protocolServerSkip, startProtocolServer, nextEvent, until, withTimeout } from './lib/socketio.mjs';

const skip = protocolServerSkip();
if (skip) console.log(`# skipping socketio.test.mjs: ${skip}`);

let server;
const open = new Set();

before(async () => { if (!skip) server = await startProtocolServer(); });
after(async () => {
  for (const s of open) {
    try { s.disconnect(); s.io.engine?.close(); } catch { /* already closed */ }
  }
  if (server) await server.stop();
});

const VARIANTS = [
  { name: 'polling', transports: ['polling'] },
  { name: 'websocket', transports: ['websocket'] },
  { name: 'default (polling + upgrade)', transports: undefined },
];

/** A new client (own Manager, no reconnection), tracked for cleanup. */
function client(variant, nsp = '/', opts = {}) {
  const socket = io(`${server.url}${nsp}`, {
    forceNew: true,
    reconnection: false,
    timeout: 3000,
    ...(variant.transports ? { transports: variant.transports } : {}),
    ...opts,
  });
  open.add(socket);
  return socket;
}

/** Connects and returns [socket, the `auth` event's payload]. */
async function connectWithAuth(variant, nsp = '/', opts = {}) {
  const socket = client(variant, nsp, opts);
  const auth = nextEvent(socket, 'auth');
  const err = nextEvent(socket, 'connect_error').then(([e]) => { throw e; });
  err.catch(() => {});
  await Promise.race([nextEvent(socket, 'connect'), err]);
  assert.equal(socket.connected, true);
  assert.match(socket.id, /^[\w-]{20}$/);
  const [payload] = await auth;
  return [socket, payload];
}

const escape = (s) => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');

/** The reason the server printed for the disconnection of `id` from `nsp`. */
async function serverDisconnect(nsp, id, ms = 3000) {
  const line = await server.waitLine(new RegExp(`^disconnect ${escape(nsp)} ${escape(id)} `), ms);
  return line.split(' ').slice(3).join(' ');
}

/** GET a polling request for an Engine.IO sid; resolves { status, body }. */
function pollSid(path, sid) {
  return new Promise((resolve, reject) => {
    const req = http.get({ host: '127.0.0.1', port: server.port, path: `${path}?EIO=4&transport=polling&sid=${sid}`, agent: false, timeout: 2000 }, (res) => {
      const chunks = [];
      res.on('data', (c) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode, body: Buffer.concat(chunks).toString('utf8') }));
    });
    req.on('timeout', () => req.destroy(new Error('poll timed out')));
    req.on('error', reject);
  });
}

const bin = (...bytes) => Buffer.from(bytes);

for (const variant of VARIANTS) {
  describe(`socket.io-client over ${variant.name}`, { skip, timeout: 20000 }, () => {
    test('connect without auth: `auth` is {}', async () => {
      const [socket, auth] = await connectWithAuth(variant);
      assert.deepEqual(auth, {});
      socket.disconnect();
    });

    test('connect with an auth payload: `auth` echoes it', async () => {
      const payload = { token: 'abc', n: 42, nested: { list: [1, 'two', null] }, u: 'héllo 🎉' };
      const [socket, auth] = await connectWithAuth(variant, '/', { auth: payload });
      assert.deepEqual(auth, payload);
      socket.disconnect();
    });

    test('message → message-back with the same arguments, binary kept', async () => {
      const [socket] = await connectWithAuth(variant);
      const args = [
        1, '2', { 3: '4', five: [6, { seven: true }] }, null,
        bin(1, 2, 3),
        { nested: bin(4, 5), list: [bin(6), 'x', { deeper: bin() }] },
        'ünïcödé 日本語 🎉',
      ];
      const back = nextEvent(socket, 'message-back');
      socket.emit('message', ...args);
      const got = await back;
      assert.deepEqual(got, args);
      assert.ok(Buffer.isBuffer(got[4]), 'a top-level Buffer comes back as a Buffer');
      assert.ok(Buffer.isBuffer(got[5].nested), 'a nested Buffer comes back as a Buffer');

      // No argument, and one argument.
      const none = nextEvent(socket, 'message-back');
      socket.emit('message');
      assert.deepEqual(await none, []);
      const one = nextEvent(socket, 'message-back');
      socket.emit('message', 'solo');
      assert.deepEqual(await one, ['solo']);
      socket.disconnect();
    });

    test('100 messages come back in order', async () => {
      const [socket] = await connectWithAuth(variant);
      const got = [];
      socket.on('message-back', (i) => got.push(i));
      for (let i = 0; i < 100; i++) socket.emit('message', i);
      await until(() => got.length === 100, 5000, '100 message-back');
      assert.deepEqual(got, Array.from({ length: 100 }, (_, i) => i));
      socket.disconnect();
    });

    test('message-with-ack: emitWithAck and a callback get the same arguments', async () => {
      const [socket] = await connectWithAuth(variant);
      assert.equal(await withTimeout(socket.emitWithAck('message-with-ack', 'hello'), 3000, 'ack'), 'hello');
      const obj = { a: [1, 2], b: bin(9, 8, 7) };
      assert.deepEqual(await withTimeout(socket.emitWithAck('message-with-ack', obj, 'ignored'), 3000, 'binary ack'), obj);
      const all = await withTimeout(new Promise((resolve) => {
        socket.emit('message-with-ack', 1, '2', bin(3), { four: bin(4) }, (...a) => resolve(a));
      }), 3000, 'callback ack');
      assert.deepEqual(all, [1, '2', bin(3), { four: bin(4) }]);
      // With a timeout: no error as the server answers.
      const v = await withTimeout(socket.timeout(2000).emitWithAck('message-with-ack', 'x'), 3000, 'ack with timeout');
      assert.equal(v, 'x');
      socket.disconnect();
    });

    test('/custom namespace: auth, alone and multiplexed with /', async () => {
      const [custom, auth] = await connectWithAuth(variant, '/custom', { auth: { ns: 'custom' } });
      assert.deepEqual(auth, { ns: 'custom' });
      // A second namespace over the same Manager (one Engine.IO session).
      const main = custom.io.socket('/', { auth: { ns: 'main' } });
      const mainAuth = nextEvent(main, 'auth');
      main.connect();
      assert.deepEqual((await mainAuth)[0], { ns: 'main' });
      assert.equal(main.io.engine, custom.io.engine);
      const back = nextEvent(main, 'message-back');
      main.emit('message', 'on main');
      assert.deepEqual(await back, ['on main']);
      // /custom has no `message` handler: nothing comes back there.
      const customId = custom.id;
      custom.disconnect();
      assert.equal(await serverDisconnect('/custom', customId), 'client namespace disconnect');
      const back2 = nextEvent(main, 'message-back');
      main.emit('message', 'still here');
      assert.deepEqual(await back2, ['still here']);
      main.disconnect();
    });

    test('unknown namespace → connect_error "Invalid namespace"', async () => {
      const socket = client(variant, '/random');
      const [err] = await nextEvent(socket, 'connect_error');
      assert.equal(err.message, 'Invalid namespace');
      assert.equal(socket.connected, false);
      socket.io.engine?.close();
    });

    test('disconnect(): reason "io client disconnect", the server drops the session', async () => {
      const [socket] = await connectWithAuth(variant);
      const sid = socket.io.engine.id;
      assert.ok(sid);
      const id = socket.id;
      await server.waitLine(new RegExp(`^connect / ${escape(id)}$`));
      const reason = nextEvent(socket, 'disconnect');
      socket.disconnect();
      assert.deepEqual((await reason)[0], 'io client disconnect');
      assert.equal(await serverDisconnect('/', id), 'client namespace disconnect');
      // The Engine.IO session is gone on the server. (Not polled at once: a
      // GET overlapping the client's own pending GET would itself close
      // the session, with an empty 400, as in Node.)
      await new Promise((r) => setTimeout(r, 200));
      const res = await pollSid('/socket.io/', sid);
      assert.equal(res.status, 400, JSON.stringify(res));
      assert.deepEqual(JSON.parse(res.body), { code: 1, message: 'Session ID unknown' });
    });

    test('heartbeat keeps the connection alive across several ping intervals', async () => {
      const [socket] = await connectWithAuth(variant);
      let pings = 0;
      socket.io.on('ping', () => { pings += 1; });
      let disconnected = null;
      socket.on('disconnect', (r) => { disconnected = r; });
      await new Promise((r) => setTimeout(r, 1500));
      assert.equal(disconnected, null, `disconnected: ${disconnected}`);
      assert.deepEqual(server.lines(new RegExp(`^disconnect / ${escape(socket.id)} `)), []);
      assert.ok(pings >= 3, `pings seen: ${pings}`);
      const back = nextEvent(socket, 'message-back');
      socket.emit('message', 'alive');
      assert.deepEqual(await back, ['alive']);
      socket.disconnect();
    });

    test('a 600 kB Buffer and a 300 kB string round trip (under maxPayload even as base64)', async () => {
      const [socket] = await connectWithAuth(variant);
      const big = Buffer.alloc(600_000);
      for (let i = 0; i < big.length; i++) big[i] = (i * 7 + 3) & 0xff;
      const text = 'é'.repeat(150_000);
      const back = nextEvent(socket, 'message-back', 5000);
      socket.emit('message', { big }, text);
      const [obj, str] = await back;
      assert.ok(Buffer.isBuffer(obj.big));
      assert.equal(Buffer.compare(obj.big, big), 0);
      assert.equal(str, text);
      socket.disconnect();
    });

    test('/ and /custom connected at once share one session', async () => {
      const main = client(variant, '/', { auth: { n: 1 } });
      const custom = main.io.socket('/custom', { auth: { n: 2 } });
      const authMain = nextEvent(main, 'auth');
      const authCustom = nextEvent(custom, 'auth');
      custom.connect();
      assert.deepEqual((await authMain)[0], { n: 1 });
      assert.deepEqual((await authCustom)[0], { n: 2 });
      assert.notEqual(main.id, custom.id);
      const back = nextEvent(main, 'message-back');
      main.emit('message', bin(7));
      assert.deepEqual(await back, [bin(7)]);
      custom.disconnect();
      main.disconnect();
    });

    test('options: forceBase64, addTrailingSlash: false, query', async () => {
      const [socket, auth] = await connectWithAuth(variant, '/', {
        forceBase64: true, addTrailingSlash: false, query: { foo: 'bar' }, auth: { a: 1 },
      });
      assert.deepEqual(auth, { a: 1 });
      const back = nextEvent(socket, 'message-back');
      socket.emit('message', bin(1, 2, 250), { n: bin(3) });
      assert.deepEqual(await back, [bin(1, 2, 250), { n: bin(3) }]);
      socket.disconnect();
    });

    test('retries: every emit waits for its ack', async () => {
      const [socket] = await connectWithAuth(variant, '/', { retries: 2, ackTimeout: 2000 });
      const acked = await withTimeout(new Promise((resolve, reject) => {
        socket.emit('message-with-ack', 'r', bin(9), (err, ...rest) => (err ? reject(err) : resolve(rest)));
      }), 3000, 'ack with retries');
      assert.deepEqual(acked, ['r', bin(9)]);
      socket.disconnect();
    });

    test('20 concurrent clients, 20 messages each, each gets its own back in order', async () => {
      const sockets = await Promise.all(Array.from({ length: 20 }, (_, k) => connectWithAuth(variant, '/', { auth: { k } })));
      await Promise.all(sockets.map(async ([socket, auth], k) => {
        assert.deepEqual(auth, { k });
        const got = [];
        socket.on('message-back', (kk, i) => got.push([kk, i]));
        for (let i = 0; i < 20; i++) socket.emit('message', k, i);
        await until(() => got.length === 20, 5000, `client ${k}`);
        assert.deepEqual(got, Array.from({ length: 20 }, (_, i) => [k, i]));
      }));
      for (const [socket] of sockets) socket.disconnect();
    });

    test('a payload over maxPayload (1e6) disconnects the client', async () => {
      const [socket] = await connectWithAuth(variant);
      if (!variant.transports) await until(() => socket.io.engine.transport.name === 'websocket', 3000, 'the upgrade');
      const id = socket.id;
      const reason = nextEvent(socket, 'disconnect', 5000);
      socket.emit('message', 'x'.repeat(1_000_001));
      const [r] = await reason;
      // Polling: the POST gets 413, the client gives up ("transport error")
      // and says goodbye with a `1`. WebSocket: the server fails the
      // connection with 1009 ("transport error" there, "transport close" here).
      const expected = variant.transports?.[0] === 'polling'
        ? ['transport error', 'transport close'] : ['transport close', 'transport error'];
      assert.equal(r, expected[0]);
      assert.equal(await serverDisconnect('/', id), expected[1]);
    });

    if (!variant.transports) {
      test('the default transport upgrades to websocket', async () => {
        const socket = client(variant);
        // The Manager opened its Engine.IO socket synchronously, on polling.
        assert.equal(socket.io.engine.transport.name, 'polling');
        const upgraded = nextEvent(socket.io.engine, 'upgrade');
        await nextEvent(socket, 'auth');
        assert.equal((await upgraded)[0].name, 'websocket');
        await until(() => socket.io.engine.transport.name === 'websocket', 3000, 'the upgrade');
        // Traffic goes on over the new transport.
        const back = nextEvent(socket, 'message-back');
        socket.emit('message', 'after upgrade', bin(1, 2));
        assert.deepEqual(await back, ['after upgrade', bin(1, 2)]);
        assert.equal(await withTimeout(socket.emitWithAck('message-with-ack', 'ack after upgrade'), 3000, 'ack'), 'ack after upgrade');
        socket.disconnect();
      });

      test('messages sent during the upgrade are neither lost nor reordered', async () => {
        const socket = client(variant);
        const got = [];
        socket.on('message-back', (i) => got.push(i));
        socket.on('connect', () => {
          for (let i = 0; i < 200; i++) socket.emit('message', i);
        });
        await until(() => got.length === 200, 5000, '200 message-back');
        assert.deepEqual(got, Array.from({ length: 200 }, (_, i) => i));
        await until(() => socket.io.engine.transport.name === 'websocket', 3000, 'the upgrade');
        socket.disconnect();
      });
    }

    test('raw Engine.IO (engine.io-client) at /engine.io/: text and binary echo', async () => {
      const opts = { path: '/engine.io/', ...(variant.transports ? { transports: variant.transports } : {}) };
      const eio = new EngineSocket(server.url, opts);
      try {
        await nextEvent(eio, 'open');
        const received = [];
        eio.on('message', (m) => received.push(m));
        eio.send('hello');
        eio.send(bin(1, 2, 3, 255));
        eio.send('ünïcödé 🎉');
        eio.send(''); // engine.io-parser decodes the bare "4" back as `undefined`
        await until(() => received.length === 4, 3000, '4 echoes');
        assert.equal(received[0], 'hello');
        assert.ok(Buffer.isBuffer(received[1]) || received[1] instanceof ArrayBuffer, typeof received[1]);
        assert.deepEqual(Buffer.from(received[1]), bin(1, 2, 3, 255));
        assert.equal(received[2], 'ünïcödé 🎉');
        assert.equal(received[3] ?? '', '');
        if (!variant.transports) {
          await until(() => eio.transport.name === 'websocket', 3000, 'the upgrade');
          eio.send('after upgrade');
          await until(() => received.length === 5, 3000, 'echo after upgrade');
          assert.equal(received[4], 'after upgrade');
        }
      } finally {
        eio.close();
      }
    });
  });
}
