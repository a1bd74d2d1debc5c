#!/usr/bin/env node
// Live shopping through the pages (issue 16), in headless Chromium:
//
//   seller:  goes live from the studio (fake camera), adds a product to the
//            stream from the shop console, pins it, sets a live price,
//            starts a flash sale of one unit (10 s countdown);
//   viewer:  on a desktop watch page (1280x800) sees the pinned card, the
//            banner counting down, buys in two taps with coins when it opens;
//   phone:   a second viewer (390x844) sees the same card and countdown, and
//            "Sold out" the moment the unit is gone;
//   seller:  sees the order in the console's figures.
//
//   node tests/browser/shop.mjs --base URL [--screenshots DIR] [--timeout-ms MS]
//
// Prints one JSON line: {"ok":true, ...} or {"ok":false,"step","error"} (exit 1).

import path from 'node:path';
import fs from 'node:fs';
import { Run, scriptArgs } from './harness.mjs';
import { launchChromium } from './browsers.mjs';

const args = scriptArgs({
  spec: { base: 'string', screenshots: 'string', 'timeout-ms': 'number' },
  usage: 'usage: node shop.mjs --base URL [--screenshots DIR] [--timeout-ms MS]',
  defaults: { timeoutMs: 150000 },
  required: ['base'],
});
const base = args.base.replace(/\/+$/, '');
const run = new Run(args).arm();
const tag = `${Date.now().toString(36).slice(-4)}${Math.floor(Math.random() * 900 + 100)}`;
const result = { ok: true };

async function waitFor(page, what, fn, arg = null, ms = 20000) {
  try {
    await page.waitFor(fn, arg, Math.min(ms, run.remaining()));
  } catch (err) {
    throw new Error(`${what}: ${err.message.split('\n')[0]}`);
  }
}
const onair = (page, field) => page.evaluate((f) => JSON.parse(JSON.stringify(window.onair ? window.onair[f] ?? null : null)), field);

async function shot(page, name) {
  if (!args.screenshots) return;
  fs.mkdirSync(args.screenshots, { recursive: true });
  await page.raw.screenshot({ path: path.join(args.screenshots, `${name}.png`), timeout: 8000 });
}

async function call(method, p, token, body, headers = {}) {
  const resp = await fetch(`${base}${p}`, {
    method,
    headers: { 'Content-Type': 'application/json', ...(token ? { Authorization: `Bearer ${token}` } : {}), ...headers },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await resp.text();
  if (!resp.ok) throw new Error(`${method} ${p}: ${resp.status} ${text}`);
  return text ? JSON.parse(text) : null;
}

const register = (username, role, display) =>
  call('POST', '/api/auth/register', null, { username, display_name: display, email: `${username}@example.test`, password: 'correct horse battery', role });

/** Coins bought at the development provider's checkout (its webhook credits them). */
async function buyCoins(pair) {
  const t = await call('POST', '/api/wallet/top-ups', pair.access_token, { package: 'coins_1000' }, { 'Idempotency-Key': `coins-${pair.user.id}-${tag}` });
  await call('POST', `/pay/dev/${t.intent_id}/pay`, null);
  const end = Date.now() + 15000;
  while (Date.now() < end) {
    const w = await call('GET', '/api/wallet', pair.access_token);
    if (w.coins >= 1000) return w;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error('the coins never arrived');
}

async function loggedIn(chromium, pair, options = {}, keys = null) {
  const ctx = await chromium.newContext(options);
  await ctx.raw.addInitScript(
    ({ pair, keys }) => {
      if (localStorage.getItem('onair.refreshToken')) return;
      localStorage.setItem('onair.accessToken', pair.access_token);
      localStorage.setItem('onair.refreshToken', pair.refresh_token);
      localStorage.setItem('onair.user', JSON.stringify(pair.user));
      if (keys) localStorage.setItem(`onair.streamKeys.${pair.user.id}`, JSON.stringify(keys));
    },
    { pair, keys },
  );
  return ctx;
}

async function main() {
  run.step = 'accounts, a product, coins';
  const host = await register(`seller_${tag}`, 'host', `Maker ${tag}`);
  const viewer = await register(`vic_${tag}`, 'viewer', 'Vic');
  const phone = await register(`pia_${tag}`, 'viewer', 'Pia');
  const key = await call('POST', '/api/me/stream-keys', host.access_token, { label: 'studio' });
  const product = await call('POST', '/api/products', host.access_token, { title: 'Linen scarf', description: 'Hand woven', price: 900, stock: 1 });
  await buyCoins(viewer);

  run.step = 'launch';
  const chromium = await launchChromium(run);

  run.step = 'the seller goes live from the studio';
  const hostCtx = await loggedIn(chromium, host, { viewport: { width: 1280, height: 800 } }, { [key.id]: key.key });
  const studio = await hostCtx.newPage('studio');
  await studio.goto(`${base}/publish?key=${key.id}`, run.remaining());
  await waitFor(studio, 'Go live enabled', () => !document.querySelector('#go-live').disabled);
  await studio.click('#go-live', run.remaining());
  await waitFor(studio, 'the studio is live', () => window.onair.state === 'live', null, 30000);
  await waitFor(studio, 'the shop console shows the product', (id) => !document.querySelector('#shop-console').hidden && !!document.querySelector(`#shop-console .sc-product[data-product="${id}"]`), product.id);

  run.step = 'the seller adds, pins and prices the product';
  const row = `#shop-console .sc-product[data-product="${product.id}"]`;
  await studio.click(`${row} .sc-add`, run.remaining());
  await waitFor(studio, 'on the shelf', (id) => (window.onair.seller?.shelf || []).includes(id), product.id);
  await studio.click(`${row} .sc-pin`, run.remaining());
  await waitFor(studio, 'pinned', (id) => (window.onair.seller?.pinned || []).includes(id), product.id);
  await studio.fill(`${row} .sc-live-price`, '800', run.remaining());
  await studio.click(`${row} .sc-inline button`, run.remaining());

  run.step = 'viewers open the watch page';
  const viewerCtx = await loggedIn(chromium, viewer, { viewport: { width: 1280, height: 800 } });
  const watch = await viewerCtx.newPage('watch-desktop');
  await watch.goto(`${base}/watch/${host.user.username}`, run.remaining());
  const phoneCtx = await loggedIn(chromium, phone, { viewport: { width: 390, height: 844 }, isMobile: true, hasTouch: true, deviceScaleFactor: 2 });
  const mobile = await phoneCtx.newPage('watch-phone');
  await mobile.goto(`${base}/watch/${host.user.username}`, run.remaining());
  for (const p of [watch, mobile]) {
    await waitFor(p, 'the pinned card at the live price', (id) => window.onair.shop && window.onair.shop.pinned === id && window.onair.shop.shelf.some((i) => i.id === id && i.price === 800) && !document.querySelector('.shop-pin').hidden, product.id);
  }
  result.pin_text = await watch.evaluate(() => document.querySelector('.shop-pin').textContent);

  run.step = 'the seller starts a flash sale of one';
  await studio.fill(`${row} .sc-qty`, '1', run.remaining());
  await studio.fill(`${row} .sc-sale-price`, '500', run.remaining());
  await studio.fill(`${row} .sc-countdown`, '10', run.remaining());
  await studio.fill(`${row} .sc-duration`, '120', run.remaining());
  await studio.click(`${row} .sc-start`, run.remaining());
  for (const p of [watch, mobile]) {
    await waitFor(p, 'the banner counts down', () => window.onair.shop?.banner?.state === 'countdown' && !document.querySelector('.flash-banner').hidden);
  }
  result.countdown = await onair(watch, 'shop');
  await watch.evaluate(() => window.scrollTo(0, 0));
  await shot(watch, 'watch-desktop-countdown');
  await shot(mobile, 'watch-phone-countdown');
  await shot(studio, 'studio-console');
  result.countdown_buy_disabled = await watch.evaluate(() => document.querySelector('.flash-buy').disabled);

  run.step = 'the sale opens; the desktop viewer buys in two taps';
  await waitFor(watch, 'the sale is open', () => window.onair.shop?.banner?.state === 'active' && !document.querySelector('.flash-buy').disabled, null, 20000);
  result.active_label = await watch.evaluate(() => document.querySelector('.flash-banner').textContent);
  await watch.click('.flash-buy', run.remaining());
  await waitFor(watch, 'the buy sheet', () => !document.querySelector('.buy-sheet').hidden);
  await watch.fill('.buy-sheet .ship-address', '1 Market Street', run.remaining());
  await watch.fill('.buy-sheet .ship-city', 'Lisbon', run.remaining());
  await watch.fill('.buy-sheet .ship-country', 'PT', run.remaining());
  await shot(watch, 'watch-desktop-sheet');
  result.pay_label = await watch.evaluate(() => document.querySelector('.buy-pay').textContent.trim());
  await watch.click('.buy-pay', run.remaining());
  await waitFor(watch, 'the order is paid', () => window.onair.lastOrder && window.onair.lastOrder.status === 'paid');
  result.order = await onair(watch, 'lastOrder');

  run.step = 'sold out, everywhere at once';
  for (const p of [watch, mobile]) {
    await waitFor(p, 'sold out shown', () => window.onair.shop?.banner?.state === 'sold_out' && document.querySelector('.flash-left').textContent === 'Sold out', null, 5000);
  }
  result.phone_banner = await mobile.evaluate(() => ({ text: document.querySelector('.flash-banner').textContent, buy_hidden: document.querySelector('.flash-buy').hidden, pin_disabled: document.querySelector('.shop-pin-buy').disabled }));
  await waitFor(studio, 'the console counts the order', () => window.onair.sellerFigures && window.onair.sellerFigures.orders === 1, null, 5000);
  result.seller_figures = await onair(studio, 'sellerFigures');
  await watch.click('.buy-sheet .btn-block', run.remaining());
  await watch.evaluate(() => window.scrollTo(0, 0));
  await shot(watch, 'watch-desktop-sold-out');
  await shot(mobile, 'watch-phone-sold-out');
  await shot(studio, 'studio-console-sold');
  result.phone_layout = await mobile.evaluate(() => {
    const r = (s) => {
      const b = document.querySelector(s).getBoundingClientRect();
      return { left: b.left, top: b.top, right: b.right, bottom: b.bottom };
    };
    return { w: window.innerWidth, h: window.innerHeight, pin: r('.shop-pin'), banner: r('.flash-banner'), chat: r('#chat-list') };
  });
  await run.succeed(result);
}

main().catch((err) => run.fail(err));
