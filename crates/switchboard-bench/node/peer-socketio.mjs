// Socket.IO peer on Node's `socket.io` 4 (default options: pingInterval 25 s,
// pingTimeout 20 s, polling and websocket transports, in-memory adapter).
// The same app as `sio-switchboard` and `peer-socketioxide`:
//   echo (...args)            → acked with the same arguments
//   join (room)               → joins the room, acks true
//   broadcast (room, payload) → io.to(room).emit("msg", payload); acks true if asked
// Usage: node peer-socketio.mjs [--listen HOST:PORT]   (default 127.0.0.1:9011)
// Prints "ready" once listening.
import { createServer } from 'node:http';
import { Server } from 'socket.io';

const args = process.argv.slice(2);
const i = args.indexOf('--listen');
const listen = i >= 0 ? args[i + 1] : (args[0] ?? '127.0.0.1:9011');
const cut = listen.lastIndexOf(':');
const host = listen.slice(0, cut);
const port = Number(listen.slice(cut + 1));

const httpServer = createServer();
const io = new Server(httpServer);

io.on('connection', (socket) => {
  socket.on('echo', (...args) => {
    const ack = args.pop();
    if (typeof ack === 'function') ack(...args);
  });
  socket.on('join', (room, ack) => {
    socket.join(room);
    if (typeof ack === 'function') ack(true);
  });
  socket.on('broadcast', (room, payload, ack) => {
    io.to(room).emit('msg', payload);
    if (typeof ack === 'function') ack(true);
  });
});

httpServer.listen(port, host, () => {
  const a = httpServer.address();
  console.log(`peer-socketio ready on ${a.address}:${a.port}`);
});
