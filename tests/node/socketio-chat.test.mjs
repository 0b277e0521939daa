// The seeds' Socket.IO chat in Rust (crates/switchboard-socketio/examples/chat.rs:
// `chat message` to everyone, `new user` to the others, rooms, connection state
// recovery on) against the real npm `socket.io-client` 4: 50 clients in rooms,
// recovery after a dropped transport, reconnection after a server restart.
//
//   cargo build --release -p switchboard-socketio --example chat
//   SOCKETIO_CHAT_BIN=$PWD/../../target/release/examples/chat node --test socketio-chat.test.mjs
import { describe, test, after } from 'node:test';
import assert from 'node:assert/strict';
import { io } from 'socket.io-client';
import { binSkip, startProtocolServer, nextEvent, until } from './lib/socketio.mjs';

const skip = binSkip('SOCKETIO_CHAT_BIN',
  'cargo build --release -p switchboard-socketio --example chat, then point it at target/release/examples/chat');
if (skip) console.log(`# skipping socketio-chat.test.mjs: ${skip}`);

const TRANSPORTS = [['websocket'], ['polling'], undefined];
const open = new Set();
const servers = new Set();

after(async () => {
  for (const s of open) {
    try { s.disconnect(); } catch { /* already closed */ }
  }
  for (const s of servers) await s.stop();
});

async function start(port) {
  const server = await startProtocolServer({ bin: process.env.SOCKETIO_CHAT_BIN, port });
  servers.add(server);
  return server;
}

function client(server, transports, opts = {}) {
  const socket = io(server.url, {
    forceNew: true,
    reconnection: false,
    timeout: 3000,
    ...(transports ? { transports } : {}),
    ...opts,
  });
  open.add(socket);
  return socket;
}

async function connected(socket) {
  if (!socket.connected) await nextEvent(socket, 'connect', 5000);
  return socket;
}

/** Records every `event` each socket receives (first argument only). */
function record(sockets, event) {
  const got = sockets.map(() => []);
  sockets.forEach((s, i) => s.on(event, (...args) => got[i].push(args[0])));
  return got;
}

const settle = (ms = 200) => new Promise((r) => setTimeout(r, ms));

describe('Socket.IO chat example', { skip, timeout: 60000 }, () => {
  test('50 clients: io.emit, broadcast to the others, rooms', async () => {
    const server = await start();
    const clients = [];
    for (let i = 0; i < 50; i++) clients.push(client(server, TRANSPORTS[i % 3]));
    await Promise.all(clients.map(connected));

    // Five rooms of ten; `join` answers with the socket's rooms.
    const rooms = await Promise.all(clients.map((c, i) => c.timeout(3000).emitWithAck('join', `r${i % 5}`)));
    rooms.forEach((r, i) => assert.deepEqual(r, [clients[i].id, `r${i % 5}`].sort()));

    // `chat message`: io.emit, every client (sender included) once.
    const chat = record(clients, 'chat message');
    clients[7].emit('chat message', 'hello all');
    await until(() => chat.every((g) => g.length >= 1), 5000, 'everyone to get the chat message');
    await settle();
    chat.forEach((g) => assert.deepEqual(g, ['hello all']));

    // `room message`: socket.to(room), the other nine members only.
    const roomMsgs = record(clients, 'room message');
    clients[0].emit('room message', 'r0', { text: 'psst' });
    const members = clients.map((_, i) => i).filter((i) => i % 5 === 0 && i !== 0);
    await until(() => members.every((i) => roomMsgs[i].length === 1), 5000, 'the room to get the message');
    await settle();
    roomMsgs.forEach((g, i) => assert.equal(g.length, members.includes(i) ? 1 : 0, `client ${i}`));
    assert.equal(roomMsgs[5][0], 'r0');

    // After `leave`, a member no longer gets the room's messages.
    await clients[5].timeout(3000).emitWithAck('leave', 'r0');
    const after = record(clients, 'room message');
    clients[0].emit('room message', 'r0', 'again');
    await until(() => after[10].length === 1, 5000, 'a remaining member to get it');
    await settle();
    assert.equal(after[5].length, 0);

    // A newcomer is announced to the 50 others, not to itself.
    const news = record(clients, 'new user');
    const late = client(server, ['websocket']);
    const lateNews = record([late], 'new user');
    await connected(late);
    await until(() => news.every((g) => g.length === 1), 5000, 'everyone to hear of the newcomer');
    news.forEach((g) => assert.equal(g[0], late.id));
    await settle();
    assert.equal(lateNews[0].length, 0);
  });

  for (const transports of [['websocket'], ['polling']]) {
    test(`connection state recovery after a dropped transport (${transports[0]})`, async () => {
      const server = await start();
      const a = await connected(client(server, transports));
      const b = await connected(client(server, ['websocket']));
      await a.timeout(3000).emitWithAck('join', 'blue');
      const id = a.id;
      // An event gives `a` an offset to come back with.
      const first = nextEvent(a, 'chat message');
      b.emit('chat message', 'before');
      await first;

      // The transport drops (not a client disconnect): recoverable.
      const gone = nextEvent(a, 'disconnect');
      a.io.engine.close();
      await gone;
      await server.waitLine(new RegExp(`^disconnect ${id} `), 3000);
      // Missed while away: one to everyone, one to the room.
      await b.timeout(3000).emitWithAck('join', 'blue');
      b.emit('chat message', 'missed 1');
      b.emit('room message', 'blue', 'missed 2');
      await b.timeout(3000).emitWithAck('join', 'sync'); // the server handled both

      const missed = [];
      a.on('chat message', (m) => missed.push(m));
      a.on('room message', (room, m) => missed.push(`${room}:${m}`));
      a.connect();
      await nextEvent(a, 'connect', 5000);
      assert.equal(a.recovered, true);
      assert.equal(a.id, id);
      await until(() => missed.length >= 2, 3000, 'the missed events');
      assert.deepEqual(missed, ['missed 1', 'blue:missed 2']);
      // Still in its room.
      b.emit('room message', 'blue', 'live');
      await until(() => missed.length === 3, 3000, 'a live room message');
      assert.equal(missed[2], 'blue:live');
    });
  }

  test('permessage-deflate on the WebSocket transport: negotiated, big messages intact', async () => {
    const server = await start();
    const a = await connected(client(server, ['websocket']));
    assert.match(a.io.engine.transport.ws.extensions, /permessage-deflate/);
    const big = 'switchboard '.repeat(5000) + '✓ end';
    const back = nextEvent(a, 'chat message');
    a.emit('chat message', { big, n: 1 });
    const [msg] = await back;
    assert.deepEqual(msg, { big, n: 1 });
  });

  test('no recovery after socket.disconnect(): a new id', async () => {
    const server = await start();
    const a = await connected(client(server, ['websocket']));
    const id = a.id;
    const first = nextEvent(a, 'chat message');
    a.emit('chat message', 'x');
    await first;
    a.disconnect();
    await server.waitLine(new RegExp(`^disconnect ${id} client namespace disconnect`), 3000);
    a.connect();
    await nextEvent(a, 'connect', 5000);
    assert.equal(a.recovered, false);
    assert.notEqual(a.id, id);
  });

  test('the client reconnects by itself after the server restarts', async () => {
    const server = await start();
    const port = server.port;
    const a = client(server, undefined, { reconnection: true, reconnectionDelay: 100, reconnectionDelayMax: 300 });
    await connected(a);
    const firstId = a.id;
    const down = nextEvent(a, 'disconnect', 5000);
    await server.stop();
    servers.delete(server);
    const [reason] = await down;
    assert.match(reason, /^transport (close|error)$/);
    const again = nextEvent(a, 'connect', 15000);
    const restarted = await start(port);
    await again;
    assert.notEqual(a.id, firstId);
    assert.equal(a.recovered, false); // the sessions went with the old process
    const echo = nextEvent(a, 'chat message');
    a.emit('chat message', 'back');
    assert.equal((await echo)[0], 'back');
    await restarted.waitLine(new RegExp(`^connect ${a.id} `), 3000);
  });
});
