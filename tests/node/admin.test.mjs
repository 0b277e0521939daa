// The admin page (/admin) in headless Chromium: it reads /api/nodes with the
// API key, lists the node with its connections by protocol, and draws the
// throughput of messages published meanwhile; a wrong key is shown as such.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import http from 'node:http';
import { chromium } from 'playwright-core';
import { startServer, Client, uniqueTopic, sleep } from './lib/harness.mjs';

const executablePath = process.env.CHROMIUM_PATH || '/usr/bin/chromium';
const skip = process.env.SWITCHBOARD_SKIP_BROWSER === '1' ? 'SWITCHBOARD_SKIP_BROWSER=1' : false;
const API_KEY = 'admin-test-api-key-0123456789';

let server;
let browser;
before(async () => {
  if (skip) return;
  if (!existsSync(executablePath)) {
    throw new Error(`Chromium not found at ${executablePath}: apt-get install -y chromium, or set CHROMIUM_PATH`);
  }
  server = await startServer({ env: { SWITCHBOARD_AUTH__API_KEYS: `["${API_KEY}"]`, SWITCHBOARD_STOMP__TCP_LISTEN: '' } });
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

function publish(topic, data) {
  return new Promise((resolve, reject) => {
    const req = http.request({
      host: '127.0.0.1', port: server.port, path: '/api/publish', method: 'POST', agent: false,
      headers: { authorization: `apikey ${API_KEY}`, 'content-type': 'application/json' },
    }, (res) => { res.resume(); res.on('end', () => resolve(res.statusCode)); });
    req.on('error', reject);
    req.end(JSON.stringify({ topic, data }));
  });
}

test('the admin page shows the node, its connections and the live throughput', { skip }, async () => {
  const topic = uniqueTopic('admin');
  const subs = [];
  for (let i = 0; i < 3; i++) {
    const c = await Client.open(`${server.ws}/ws?name=s${i}`);
    await c.request({ op: 'subscribe', topic });
    subs.push(c);
  }
  const page = await (await browser.newContext()).newPage();
  const errors = [];
  page.on('pageerror', (e) => errors.push(e.message));
  await page.goto(`${server.http}/admin?key=${API_KEY}`);
  await page.locator('#status[data-state="ok"]').waitFor({ timeout: 10000 });
  await page.locator('#nodes tbody tr').first().waitFor();
  assert.equal(await page.locator('#nodes tbody tr').count(), 1);
  assert.match(await page.locator('#nodes tbody tr td').nth(2).textContent(), /websocket 3/);
  assert.equal(await page.locator('#total-nodes').textContent(), '1');
  assert.match(await page.locator('#topics tbody').textContent(), new RegExp(topic));

  // Publish for a few seconds: 3 subscribers, so about 3× the rate goes out.
  const until = Date.now() + 3500;
  let sent = 0;
  while (Date.now() < until) {
    await Promise.all(Array.from({ length: 20 }, () => publish(topic, sent++)));
    await sleep(20);
  }
  await page.waitForFunction(() => Number(document.getElementById('rate-out').dataset.last) > 0, null, { timeout: 5000 });
  const rate = Number(await page.locator('#rate-out').getAttribute('data-last'));
  assert.ok(rate > 10, `messages out/s shown: ${rate}`);
  // The chart has been drawn: some pixels of the line colour are not blank.
  const drawn = await page.evaluate(() => {
    const c = document.getElementById('chart');
    const data = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
    let painted = 0;
    for (let i = 3; i < data.length; i += 4) if (data[i] > 0) painted++;
    return painted;
  });
  assert.ok(drawn > 500, `painted pixels: ${drawn}`);
  assert.deepEqual(errors, []);
  for (const c of subs) await c.close();
});

test('a wrong key is reported on the page', { skip }, async () => {
  const page = await (await browser.newContext()).newPage();
  await page.goto(`${server.http}/admin?key=wrong-key-0123456789abc`);
  await page.locator('#status[data-state="error"]').waitFor({ timeout: 10000 });
  assert.equal(await page.locator('#status').textContent(), 'invalid API key');
  assert.equal(await page.locator('#nodes tbody tr').count(), 0);
});
