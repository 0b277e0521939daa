// Peer server on Node's `ws` 8, written the way its README does.
//   any path   : echo (text stays text, binary stays binary)
//   /fanout    : subscriber; receives everything published
//   /publish   : every message received is sent to all /fanout clients
// Usage: node peer-ws.mjs [--listen HOST:PORT]   (default 127.0.0.1:9001)
// Prints "ready" once listening.
import { WebSocketServer } from 'ws';

const args = process.argv.slice(2);
const i = args.indexOf('--listen');
const listen = i >= 0 ? args[i + 1] : (args[0] ?? '127.0.0.1:9001');
const cut = listen.lastIndexOf(':');
const host = listen.slice(0, cut);
const port = Number(listen.slice(cut + 1));

// perMessageDeflate is off by default in ws 8; clientTracking on (the default).
const wss = new WebSocketServer({ host, port });
const subscribers = new Set();

wss.on('connection', (ws, req) => {
  const path = new URL(req.url, 'http://x').pathname;
  ws.on('error', () => {});
  if (path === '/fanout') {
    subscribers.add(ws);
    ws.on('close', () => subscribers.delete(ws));
  } else if (path === '/publish') {
    ws.on('message', (data, isBinary) => {
      for (const sub of subscribers) {
        if (sub.readyState === 1) sub.send(data, { binary: isBinary });
      }
    });
  } else {
    ws.on('message', (data, isBinary) => ws.send(data, { binary: isBinary }));
  }
});

wss.on('listening', () => {
  const a = wss.address();
  console.log(`peer-ws ready on ${a.address}:${a.port}`);
});
