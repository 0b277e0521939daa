// The chat page in a real browser: playwright-core driving the system Chromium
// (never a downloaded one). Two isolated contexts chat in one room.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { chromium } from 'playwright-core';
import { startServer, uniqueTopic } from './lib/harness.mjs';

const executablePath = process.env.CHROMIUM_PATH || '/usr/bin/chromium';
const skip = process.env.SWITCHBOARD_SKIP_BROWSER === '1' ? 'SWITCHBOARD_SKIP_BROWSER=1' : false;

let server;
let browser;
before(async () => {
  if (skip) return;
  if (!existsSync(executablePath)) {
    throw new Error(`Chromium not found at ${executablePath}: apt-get install -y chromium, or set CHROMIUM_PATH (or SWITCHBOARD_SKIP_BROWSER=1 to skip)`);
  }
  server = await startServer();
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

/** Run fn(pages...); on failure save a screenshot of each page to a temp dir. */
async function withScreenshots(t, pages, fn) {
  try {
    await fn();
  } catch (err) {
    const dir = mkdtempSync(join(tmpdir(), 'switchboard-browser-'));
    for (const [name, page] of Object.entries(pages)) {
      const file = join(dir, `${name}.png`);
      await page.screenshot({ path: file, fullPage: true }).catch(() => {});
      t.diagnostic(`screenshot: ${file}`);
    }
    err.message += `\n(screenshots in ${dir})`;
    throw err;
  }
}

async function openChat(name, room, protocol) {
  const context = await browser.newContext();
  const page = await context.newPage();
  const logs = [];
  page.on('console', (m) => logs.push(`[${name}] ${m.type()}: ${m.text()}`));
  page.on('pageerror', (e) => logs.push(`[${name}] pageerror: ${e.message}`));
  page.logs = logs;
  const proto = protocol ? `&protocol=${encodeURIComponent(protocol)}` : '';
  await page.goto(`${server.http}/?name=${encodeURIComponent(name)}&room=${encodeURIComponent(room)}${proto}`);
  await page.locator('#status[data-state="open"]').waitFor({ timeout: 10000 });
  return page;
}

async function say(page, text) {
  await page.locator('#message').fill(text);
  await page.locator('#send').click();
}

const message = (page, text) => page.locator('#messages li.message .text', { hasText: text });
const member = (page, name) => page.locator(`#members li[data-name="${name}"]`);

test('two browsers chat in one room and see each other', { skip, timeout: 60000 }, async (t) => {
  const room = uniqueTopic('browser-room');
  const alice = await openChat('alice-browser', room);
  const bob = await openChat('bob-browser', room);
  await withScreenshots(t, { alice, bob }, async () => {
    // presence
    await member(alice, 'bob-browser').waitFor({ timeout: 10000 });
    await member(bob, 'alice-browser').waitFor({ timeout: 10000 });
    await assertText(alice.locator('#member-count'), '2');
    await assertText(bob.locator('#member-count'), '2');
    assert.equal(await alice.locator('#current-room').textContent(), room);

    // messages both ways
    await say(alice, 'hello bob, from alice');
    await message(bob, 'hello bob, from alice').waitFor({ timeout: 10000 });
    await say(bob, 'hi alice 👋 — bob here');
    await message(alice, 'hi alice 👋 — bob here').waitFor({ timeout: 10000 });
    assert.equal(await bob.locator('#messages li.message[data-from="alice-browser"]').count(), 1);

    // text is rendered as text, never as markup
    const evil = '<img src=x onerror="window.__pwned=1"><b>bold?</b>';
    await say(alice, evil);
    await message(bob, 'bold?').waitFor({ timeout: 10000 });
    assert.equal(await bob.locator('#messages img, #messages b').count(), 0, 'no HTML injected');
    assert.equal(await bob.locator('#messages li.message .text').last().textContent(), evil);
    assert.equal(await bob.evaluate(() => window.__pwned), undefined);

    // reconnect: bob goes offline, alice talks, bob comes back and gets what he missed, once
    await bob.evaluate(() => {
      const t = window.Switchboard.app.transport;
      t.realUrl = t.url;
      t.url = 'ws://127.0.0.1:1'; // nothing listens there: reconnects fail until restored
      t.ws.close(4001, 'test: going offline');
    });
    await bob.locator('#status[data-state="reconnecting"]').waitFor({ timeout: 5000 });
    await member(alice, 'bob-browser').waitFor({ state: 'detached', timeout: 10000 });
    await say(alice, 'while you were away 1');
    await say(alice, 'while you were away 2');
    await message(alice, 'while you were away 2').waitFor({ timeout: 10000 });
    await bob.evaluate(() => {
      const t = window.Switchboard.app.transport;
      t.url = t.realUrl;
      t.reconnectNow();
    });
    await bob.locator('#status[data-state="open"]').waitFor({ timeout: 10000 });
    await message(bob, 'while you were away 2').waitFor({ timeout: 10000 });
    assert.equal(await message(bob, 'while you were away 1').count(), 1, 'missed message replayed exactly once');
    assert.equal(await message(bob, 'hello bob, from alice').count(), 1, 'no duplicate after replay');
    await member(alice, 'bob-browser').waitFor({ timeout: 10000 });
    await assertText(bob.locator('#member-count'), '2');

    // messages are in seq order on both pages
    for (const page of [alice, bob]) {
      const seqs = await page.locator('#messages li.message').evaluateAll((els) => els.map((e) => Number(e.dataset.seq)));
      assert.deepEqual(seqs, [...seqs].sort((a, b) => a - b));
      assert.equal(new Set(seqs).size, seqs.length);
    }
    await alice.close();
    await member(bob, 'alice-browser').waitFor({ state: 'detached', timeout: 10000 });
    await assertText(bob.locator('#member-count'), '1');
  }).catch((err) => {
    for (const l of [...alice.logs, ...bob.logs]) t.diagnostic(l);
    throw err;
  });
});

async function assertText(locator, expected, timeout = 10000) {
  const deadline = Date.now() + timeout;
  let last;
  while (Date.now() < deadline) {
    last = (await locator.textContent())?.trim();
    if (last === expected) return;
    await new Promise((r) => setTimeout(r, 50));
  }
  assert.equal(last, expected, `text of ${locator}`);
}

test('a Socket.IO page and a WebSocket page chat in one room', { skip, timeout: 60000 }, async (t) => {
  const room = uniqueTopic('mixed-room');
  const sio = await openChat('sio-browser', room, 'socketio');
  const ws = await openChat('ws-browser', room, 'websocket');
  await withScreenshots(t, { sio, ws }, async () => {
    assert.equal(await sio.locator('#protocol').inputValue(), 'socketio', 'the Socket.IO option is offered and chosen');
    await member(sio, 'ws-browser').waitFor({ timeout: 10000 });
    await member(ws, 'sio-browser').waitFor({ timeout: 10000 });
    await say(sio, 'hello from socket.io');
    await say(ws, 'hello from websocket');
    await message(ws, 'hello from socket.io').waitFor({ timeout: 10000 });
    await message(sio, 'hello from websocket').waitFor({ timeout: 10000 });
  });
});

test('a SockJS page and a WebSocket page chat in one room, with presence and catch-up', { skip, timeout: 60000 }, async (t) => {
  const room = uniqueTopic('sockjs-room');
  const sj = await openChat('sockjs-browser', room, 'sockjs');
  const ws = await openChat('ws-browser', room, 'websocket');
  await withScreenshots(t, { sj, ws }, async () => {
    assert.equal(await sj.locator('#protocol').inputValue(), 'sockjs', 'the SockJS option is offered and chosen');
    assert.match(await sj.locator('#status').textContent(), /^open – websocket$/, 'sockjs-client chose its websocket transport');
    // presence both ways
    await member(sj, 'ws-browser').waitFor({ timeout: 10000 });
    await member(ws, 'sockjs-browser').waitFor({ timeout: 10000 });
    await assertText(sj.locator('#member-count'), '2');
    // messages both ways, shown the same way with the sender's name
    await say(sj, 'hello from sockjs');
    await say(ws, 'hello from websocket');
    await message(ws, 'hello from sockjs').waitFor({ timeout: 10000 });
    await message(sj, 'hello from websocket').waitFor({ timeout: 10000 });
    assert.equal(await ws.locator('#messages li.message[data-from="sockjs-browser"] .text').textContent(), 'hello from sockjs');
    assert.equal(await sj.locator('#messages li.message[data-from="sockjs-browser"].mine').count(), 1);

    // the SockJS page drops off, misses two messages, and gets them back once (`since`)
    await sj.evaluate(() => {
      const tr = window.Switchboard.app.transport;
      tr.realUrl = tr.url;
      tr.url = 'http://127.0.0.1:1'; // nothing listens there: reconnects fail until restored
      tr.ws.close(4001, 'test: going offline');
    });
    await sj.locator('#status[data-state="reconnecting"]').waitFor({ timeout: 5000 });
    await member(ws, 'sockjs-browser').waitFor({ state: 'detached', timeout: 10000 });
    await say(ws, 'missed over sockjs 1');
    await say(ws, 'missed over sockjs 2');
    await message(ws, 'missed over sockjs 2').waitFor({ timeout: 10000 });
    await sj.evaluate(() => {
      const tr = window.Switchboard.app.transport;
      tr.url = tr.realUrl;
      tr.reconnectNow();
    });
    await sj.locator('#status[data-state="open"]').waitFor({ timeout: 10000 });
    await message(sj, 'missed over sockjs 2').waitFor({ timeout: 10000 });
    assert.equal(await message(sj, 'missed over sockjs 1').count(), 1, 'missed message replayed exactly once');
    assert.equal(await message(sj, 'hello from websocket').count(), 1, 'no duplicate after replay');
    await member(ws, 'sockjs-browser').waitFor({ timeout: 10000 });
  }).catch((err) => {
    for (const l of [...sj.logs, ...ws.logs]) t.diagnostic(l);
    throw err;
  });
});

test('a STOMP page and a STOMP-over-SockJS page chat with a WebSocket page', { skip, timeout: 60000 }, async (t) => {
  const room = uniqueTopic('stomp-room');
  const st = await openChat('stomp-browser', room, 'stomp');
  const sj = await openChat('stomp-sockjs-browser', room, 'stomp-sockjs');
  const ws = await openChat('ws-browser', room, 'websocket');
  await withScreenshots(t, { st, sj, ws }, async () => {
    const options = await ws.locator('#protocol option').evaluateAll((os) => os.map((o) => o.value));
    assert.deepEqual(options, ['websocket', 'socketio', 'sockjs', 'stomp', 'stomp-sockjs'], 'every protocol is offered');
    assert.equal(await st.locator('#protocol').inputValue(), 'stomp');
    assert.equal(await sj.locator('#protocol').inputValue(), 'stomp-sockjs');
    assert.match(await st.locator('#status').textContent(), /^open – STOMP 1\.2$/);
    assert.match(await sj.locator('#status').textContent(), /^open – STOMP 1\.2 over SockJS \(websocket\)$/);

    // no presence over STOMP, and the page says so
    for (const page of [st, sj]) {
      await assertText(page.locator('#members [data-testid="members-unavailable"]'), 'n/a over STOMP');
      await assertText(page.locator('#member-count'), 'n/a');
      assert.equal(await page.locator('#members li[data-name]').count(), 0);
    }

    await say(st, 'hello from plain stomp');
    await say(sj, 'greetings via stomp-over-sockjs');
    await say(ws, 'hello from websocket <b>x</b>');
    for (const page of [st, sj, ws]) {
      for (const text of ['hello from plain stomp', 'greetings via stomp-over-sockjs', 'hello from websocket <b>x</b>']) {
        await message(page, text).waitFor({ timeout: 10000 });
      }
    }
    // The WebSocket page shows the STOMP users' messages as its own kind: text
    // from the sender's name (the STOMP login is the nickname).
    assert.equal(await ws.locator('#messages li.message[data-from="stomp-browser"] .text').textContent(), 'hello from plain stomp');
    assert.equal(await ws.locator('#messages li.message[data-from="stomp-sockjs-browser"] .text').textContent(), 'greetings via stomp-over-sockjs');
    // Each STOMP page shows its own message as its own, and others' text as text, once.
    assert.equal(await st.locator('#messages li.message.mine .text').textContent(), 'hello from plain stomp');
    assert.equal(await sj.locator('#messages li.message.mine .text').textContent(), 'greetings via stomp-over-sockjs');
    assert.equal(await st.locator('#messages li.message .text', { hasText: 'hello from websocket' }).textContent(), 'hello from websocket <b>x</b>');
    assert.equal(await st.locator('#messages b').count(), 0, 'no HTML injected');
    for (const page of [st, sj]) assert.equal(await page.locator('#messages li.message').count(), 3);
    // A STOMP MESSAGE has no sender: the page says so rather than guess.
    assert.equal(await st.locator('#messages li.message:not(.mine) .from').first().textContent(), 'sender n/a over STOMP');

    // The connection drops: stompjs reconnects, the page re-subscribes, says
    // that nothing is replayed, and chats on.
    await st.evaluate(() => window.Switchboard.app.transport.client.forceDisconnect());
    await st.locator('#status[data-state="reconnecting"]').waitFor({ timeout: 5000 });
    await st.locator('#status[data-state="open"]').waitFor({ timeout: 10000 });
    await st.locator('#messages li.system', { hasText: 'not shown' }).waitFor({ timeout: 5000 });
    await say(ws, 'after the stomp reconnect');
    await message(st, 'after the stomp reconnect').waitFor({ timeout: 10000 });

    // switching the STOMP page's room re-subscribes it
    const room2 = uniqueTopic('stomp-room2');
    await st.locator('#room').fill(room2);
    await st.locator('#join').click();
    await assertText(st.locator('#current-room'), room2);
    await st.waitForFunction((r) => window.Switchboard.app.transport.topics.get(r) != null, room2);
    await say(st, 'in the second room');
    await message(st, 'in the second room').waitFor({ timeout: 10000 });
    await say(ws, 'not for the second room');
    await message(ws, 'not for the second room').waitFor({ timeout: 10000 });
    await sleepMs(300);
    assert.equal(await message(st, 'not for the second room').count(), 0);
  }).catch((err) => {
    for (const l of [...st.logs, ...sj.logs, ...ws.logs]) t.diagnostic(l);
    throw err;
  });
});

const sleepMs = (ms) => new Promise((r) => setTimeout(r, ms));

// Every sockjs-client transport a browser can use, the iframe-based ones
// included (their iframe loads the client library this server embeds),
// against /sockjs/echo: the characters SockJS escapes come back intact.
test('sockjs-client in Chromium: every browser transport echoes', { skip, timeout: 90000 }, async () => {
  const context = await browser.newContext();
  const page = await context.newPage();
  await page.goto(`${server.http}/assets/chat.css`); // any same-origin page
  await page.addScriptTag({ url: `${server.http}/assets/vendor/sockjs.min.js` });
  const transports = ['websocket', 'xhr-streaming', 'xhr-polling', 'eventsource',
    'iframe-eventsource', 'iframe-htmlfile', 'iframe-xhr-polling', 'jsonp-polling'];
  const text = 'h\u00e9llo \u2028 \ufff0 \u0000 </script> "quotes" \\ \ud83d\ude00';
  for (const transport of transports) {
    const result = await page.evaluate(([url, transport, text]) => new Promise((resolve) => {
      const sock = new SockJS(url, null, { transports: [transport] });
      const timer = setTimeout(() => resolve({ error: 'timeout' }), 15000);
      sock.onopen = () => sock.send(text);
      sock.onmessage = (e) => { clearTimeout(timer); resolve({ data: e.data, transport: sock.transport }); sock.close(); };
      sock.onclose = (e) => { clearTimeout(timer); resolve({ error: `closed ${e.code} ${e.reason}` }); };
    }), [`${server.http}/sockjs/echo`, transport, text]);
    assert.equal(result.error, undefined, `${transport}: ${result.error}`);
    assert.equal(result.transport, transport);
    assert.equal(result.data, text, transport);
  }
  await context.close();
});
