// The chat page on a server that requires connection tokens (docs/auth.md):
// `/?token=...` carries the page's JWT into every protocol it offers —
// WebSocket and SockJS (`?token=`), Socket.IO (`auth.token`), STOMP over
// WebSocket and over SockJS (`passcode`) — in headless Chromium; without a
// token the page says why it cannot connect.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { createHmac } from 'node:crypto';
import { chromium } from 'playwright-core';
import { startServer, Client, uniqueTopic } from './lib/harness.mjs';

const executablePath = process.env.CHROMIUM_PATH || '/usr/bin/chromium';
const skip = process.env.SWITCHBOARD_SKIP_BROWSER === '1' ? 'SWITCHBOARD_SKIP_BROWSER=1' : false;
const SECRET = 'browser-test-secret-of-at-least-32-bytes';

const b64 = (x) => Buffer.from(JSON.stringify(x)).toString('base64url');
function token(sub, name) {
  const input = `${b64({ alg: 'HS256', typ: 'JWT' })}.${b64({ sub, name, exp: Math.floor(Date.now() / 1000) + 600 })}`;
  return `${input}.${createHmac('sha256', SECRET).update(input).digest('base64url')}`;
}

let server;
let browser;
before(async () => {
  if (skip) return;
  if (!existsSync(executablePath)) throw new Error(`Chromium not found at ${executablePath}`);
  server = await startServer({
    env: {
      SWITCHBOARD_AUTH__ANONYMOUS: 'false',
      SWITCHBOARD_AUTH__JWT_HS256_SECRET: SECRET,
      SWITCHBOARD_STOMP__TCP_LISTEN: '',
    },
  });
  browser = await chromium.launch({
    executablePath,
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
      '--disable-background-networking', '--disable-component-update', '--disable-sync'],
    timeout: 30000,
  });
});
after(async () => {
  if (browser) await browser.close().catch(() => {});
  if (server) await server.stop();
});

for (const protocol of ['websocket', 'socketio', 'sockjs', 'stomp', 'stomp-sockjs']) {
  test(`the chat page over ${protocol} connects with ?token= and speaks as the token's user`, { skip, timeout: 30000 }, async () => {
    const room = uniqueTopic(`auth-${protocol}`);
    const listener = await Client.open(`${server.ws}/ws?token=${token('u-listener', 'Listener')}`);
    await listener.request({ op: 'subscribe', topic: room });
    const page = await (await browser.newContext()).newPage();
    const q = new URLSearchParams({ name: 'ignored', room, protocol, token: token('u-alice', 'Alice') });
    await page.goto(`${server.http}/?${q}`);
    await page.locator('#status[data-state="open"]').waitFor({ timeout: 10000 });
    await page.locator('#message').fill(`hello over ${protocol}`);
    await page.locator('#send').click();
    const m = await listener.nextJson((j) => j.type === 'message' && j.topic === room, 10000);
    assert.equal(m.from, 'Alice', 'the name comes from the token, not from ?name=');
    assert.match(JSON.stringify(m.data), new RegExp(`hello over ${protocol}`));
    await page.close();
    await listener.close();
  });
}

test('without a token the page cannot connect and shows the reason', { skip, timeout: 30000 }, async () => {
  const page = await (await browser.newContext()).newPage();
  await page.goto(`${server.http}/?name=x&room=r&protocol=socketio`);
  await page.locator('#status', { hasText: 'token required' }).waitFor({ timeout: 10000 });
  assert.notEqual(await page.locator('#status').getAttribute('data-state'), 'open');
});
