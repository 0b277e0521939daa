// SockJS peer server on sockjs-node (npm `sockjs` 0.3.x), the same app as
// `sockjs-switchboard` (src/bin/sockjs-switchboard.rs): one SockJS service at
// prefix /bench with the package's default options (heartbeat 25 s,
// disconnect delay 5 s, response_limit 128 KiB, websocket enabled):
//   every message      : echoed back to its session
//   "join"             : the session joins the broadcast set
//   "pub:..."          : the message is sent to every session of the set
//                        (the publisher is not in the set unless it joined)
// Usage: node peer-sockjs.mjs [--listen] HOST:PORT   (default 127.0.0.1:9013)
// Prints "peer-sockjs ready on ADDR" once listening.
import http from 'node:http';
import sockjs from 'sockjs';

const args = process.argv.slice(2).filter((a) => a !== '--listen');
const listen = args[0] ?? '127.0.0.1:9013';
const cut = listen.lastIndexOf(':');
const host = listen.slice(0, cut);
const port = Number(listen.slice(cut + 1));

const members = new Set();
const service = sockjs.createServer({ prefix: '/bench', log: () => {} });
service.on('connection', (conn) => {
  conn.on('data', (msg) => {
    conn.write(msg);
    if (msg === 'join') {
      members.add(conn);
    } else if (msg.startsWith('pub:')) {
      for (const m of members) m.write(msg);
    }
  });
  conn.on('close', () => members.delete(conn));
});

const server = http.createServer();
service.installHandlers(server);
server.listen(port, host, () => {
  const a = server.address();
  console.log(`peer-sockjs ready on ${a.address}:${a.port}`);
});
