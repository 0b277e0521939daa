// Idle Socket.IO memory with the real client's default transports
// (issue 7, goal 3): N socket.io-client 4 sockets connect to `/` over
// HTTP long-polling and upgrade to WebSocket (what a browser does by
// default; `switchboard-bench idle --proto sio` connects over WebSocket
// directly), stay idle, and the server's RSS growth per socket is printed
// as one JSON line. Uses the packages of tests/node (npm ci there first).
//
//   ulimit -n 20000
//   taskset -c 0 target/release/switchboard serve --listen 127.0.0.1:PORT &
//   taskset -c 1 node scripts/bench-sio-client-idle.mjs http://127.0.0.1:PORT PID 3000
//
// Each socket is a full socket.io-client in the load generator's process:
// a few thousand keep its own time and memory reasonable.
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';

const require = createRequire(new URL('../tests/node/package.json', import.meta.url));
const { io } = require('socket.io-client');

const [url, pid, count] = process.argv.slice(2);
const n = Number(count ?? 3000);
if (!url || !pid) {
  console.error('usage: node scripts/bench-sio-client-idle.mjs URL SERVER_PID [N]');
  process.exit(2);
}
const rss = () =>
  Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))[1]) * 1024;
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

await sleep(500);
const before = rss();
const sockets = [];
let upgraded = 0;
// 100 handshakes at a time; a socket counts once it is on WebSocket.
for (let i = 0; i < n; i += 100) {
  const batch = [];
  for (let j = i; j < Math.min(n, i + 100); j++) {
    const s = io(url, { reconnection: false, forceNew: true });
    sockets.push(s);
    batch.push(
      new Promise((resolve, reject) => {
        s.on('connect_error', reject);
        s.on('connect', () => {
          const done = () => {
            upgraded++;
            resolve();
          };
          if (s.io.engine.transport.name === 'websocket') done();
          else s.io.engine.once('upgrade', done);
        });
      }),
    );
  }
  await Promise.all(batch);
}
await sleep(3000);
const after = rss();
console.log(
  JSON.stringify({ sockets: n, upgraded, rss_before: before, rss_after: after, bytes_per_socket: Math.round((after - before) / n) }),
);
for (const s of sockets) s.close();
process.exit(0);
