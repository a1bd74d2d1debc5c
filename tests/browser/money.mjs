#!/usr/bin/env node
// Money in headless Chromium, through the pages like people would:
//
//   viewer: registers on /login, opens the wallet, picks the 1,000-coin
//           package, pays at the development checkout (whose Pay makes the
//           provider send OnAir a signed webhook) and is back on the wallet
//           when the coins arrive (pushed over the page's socket);
//           opens the ticketed stream, is asked for a ticket, buys it from
//           the player's overlay and plays the video;
//           sends a Rocket (a big gift) and Hearts twice (a combo);
//   host:   goes live from the studio with the stream key given, and on its
//           own watch page (logged in with the tokens given) sees the
//           Rocket fill the stage, the Hearts lane count ×10, and the
//           viewer at the top of its supporters strip.
//
//   node tests/browser/money.mjs --base URL --stream ID --key STREAM_KEY --host-login JSON \
//        [--screenshots DIR] [--timeout-ms 120000]
//
// Prints one JSON line: {"ok":true,"coins_after_top_up":1000,...} or
// {"ok":false,"step":"...","error":"..."} (exit 1).

import path from 'node:path';
import fs from 'node:fs';
import { Run, scriptArgs, sampleVideo, pollUntil, goLive } from './harness.mjs';
import { launchChromium } from './browsers.mjs';

const USAGE = 'usage: node money.mjs --base URL --stream ID --key STREAM_KEY --host-login JSON [--screenshots DIR] [--timeout-ms MS]';
const SPEC = { base: 'string', stream: 'string', key: 'string', 'host-login': 'string', screenshots: 'string', 'timeout-ms': 'number' };
const args = scriptArgs({ spec: SPEC, usage: USAGE, defaults: { timeoutMs: 120000 }, required: ['base', 'stream', 'key', 'hostLogin'] });
const base = args.base.replace(/\/+$/, '');
const run = new Run(args).arm();
const tag = `${Date.now().toString(36).slice(-4)}${Math.floor(Math.random() * 900 + 100)}`;

async function waitFor(page, what, fn, arg = null, ms = 20000) {
  try {
    await page.waitFor(fn, arg, Math.min(ms, run.remaining()));
  } catch (err) {
    throw new Error(`${what}: ${err.message.split('\n')[0]}`);
  }
}

/** Screenshots at the two sizes people use (desktop, phone). */
async function shots(page, name, sizes = [[1280, 800], [390, 844]]) {
  if (!args.screenshots) return;
  fs.mkdirSync(args.screenshots, { recursive: true });
  for (const [w, hgt] of sizes) {
    try {
      await page.raw.setViewportSize({ width: w, height: hgt });
      await page.screenshot(path.join(args.screenshots, `${name}-${w}x${hgt}.png`));
    } catch (err) {
      run.log(`[money] screenshot ${name} failed: ${err.message}`);
    }
  }
  await page.raw.setViewportSize({ width: 1280, height: 800 });
}

async function main() {
  run.step = 'launch';
  const chromium = await launchChromium(run);

  const hostCtx = await chromium.newContext();
  // The host goes on the air from the studio (the fake camera, real VP8).
  const studio = await hostCtx.newPage('studio');
  await goLive(run, studio, { base, key: args.key, stream: args.stream });
  run.step = 'host opens their stream';
  const host = await hostCtx.newPage('host');
  await host.goto(`${base}/login`, run.remaining());
  const login = JSON.parse(args.hostLogin);
  await host.evaluate((l) => {
    localStorage.setItem('onair.accessToken', l.access_token);
    localStorage.setItem('onair.refreshToken', l.refresh_token);
    localStorage.setItem('onair.user', JSON.stringify(l.user));
  }, login);
  await host.goto(`${base}/watch/${args.stream}`, run.remaining());
  await waitFor(host, 'the host plays their own stream', () => window.onair && window.onair.phase === 'live', null, 30000);

  run.step = 'viewer registers';
  const viewerCtx = await chromium.newContext();
  const viewer = await viewerCtx.newPage('viewer');
  await viewer.goto(`${base}/login?next=${encodeURIComponent('/wallet')}`, run.remaining());
  await waitFor(viewer, 'login page', () => window.onair && window.onair.page === 'login');
  await viewer.click('#tab-register', run.remaining());
  const username = `fan_${tag}`;
  await viewer.fill('#reg-username', username, run.remaining());
  await viewer.fill('#reg-display-name', `Fan ${tag}`, run.remaining());
  await viewer.fill('#reg-email', `${username}@example.test`, run.remaining());
  await viewer.fill('#reg-password', 'correct horse battery', run.remaining());
  await viewer.click('#register-submit', run.remaining());
  await waitFor(viewer, 'on the wallet page', () => window.location.pathname === '/wallet' && window.onairWallet && window.onairWallet.packages.length > 0);

  run.step = 'viewer buys coins at the development checkout';
  await waitFor(viewer, 'the wallet is empty', () => window.onairWallet.wallet && window.onairWallet.wallet.coins === 0);
  await shots(viewer, 'wallet-empty', [[1280, 800]]);
  await viewer.click('.package[data-package="coins_1000"]', run.remaining());
  await waitFor(viewer, 'the checkout opens', () => window.location.pathname.startsWith('/pay/dev/') && !document.querySelector('#pay').disabled);
  await shots(viewer, 'checkout');
  await viewer.click('#pay', run.remaining());
  await waitFor(viewer, 'paid', () => !document.querySelector('#back').hidden);
  await viewer.click('#back', run.remaining());
  await waitFor(viewer, 'the coins arrive on the wallet (over the socket)', () => window.onairWallet && window.onairWallet.wallet && window.onairWallet.wallet.coins === 1000, null, 30000);
  await waitFor(viewer, 'the payment is shown as done', () => /1,000 coins added/.test(document.querySelector('#payment-state').textContent));
  const coinsAfterTopUp = await viewer.evaluate(() => window.onairWallet.wallet.coins);
  await waitFor(viewer, 'the statement shows the top-up', () => window.onairWallet.statement.some((e) => e.kind === 'top_up' && e.amount === 1000));
  await shots(viewer, 'wallet-paid');

  run.step = 'viewer buys a ticket from the player';
  await viewer.goto(`${base}/watch/${args.stream}`, run.remaining());
  await waitFor(viewer, 'the player asks for a ticket with its price', () => {
    const b = document.querySelector('#overlay-action');
    return b && !b.hidden && /Buy a ticket · 300 coins/.test(b.textContent);
  });
  await shots(viewer, 'ticket-required', [[1280, 800]]);
  await viewer.click('#overlay-action', run.remaining());
  const frames = await pollUntil(run, 'the ticketed stream plays', () => sampleVideo(viewer), (s) => s.framesDecoded > 0 && s.videoWidth > 0, 30000);

  run.step = 'viewer sends gifts';
  await waitFor(viewer, 'the gift tray is ready', () => document.querySelector('.gift-opt[data-gift="rocket"]') && !document.querySelector('.send-gift').disabled);
  await viewer.click('.gift-opt[data-gift="rocket"]', run.remaining());
  await viewer.click('.send-gift', run.remaining());
  run.step = 'the host sees the Rocket fill the stage';
  await waitFor(host, 'a big Rocket on the host\'s stage', () => document.querySelector('.gift-big[data-gift="rocket"]'), null, 10000);
  await shots(host, 'host-big-gift', [[1280, 800]]);
  run.step = 'a Hearts combo';
  await viewer.click('.gift-opt[data-gift="heart"]', run.remaining());
  await viewer.click('.count-opt[data-n="5"]', run.remaining());
  await viewer.click('.send-gift', run.remaining());
  await waitFor(host, 'the Hearts lane', () => [...document.querySelectorAll('.gift-lane')].some((l) => l.textContent.includes('Heart')), null, 10000);
  await viewer.click('.send-gift', run.remaining());
  await waitFor(host, 'the lane counts the combo to ×10', () => [...document.querySelectorAll('.gift-lane')].some((l) => l.textContent.includes('Heart') && l.dataset.combo === '10'), null, 10000);
  await shots(host, 'host-combo');
  await waitFor(host, 'the viewer tops the supporters strip', (name) => {
    const first = document.querySelector('.supporter[data-rank="1"]');
    return first && first.textContent.includes(name) && first.textContent.includes('550');
  }, `Fan ${tag}`);
  const supporters = await host.evaluate(() => document.querySelector('.supporters').textContent);
  await waitFor(viewer, 'the viewer\'s balance follows', () => /150/.test(document.querySelector('.wallet-chip').textContent));
  await shots(viewer, 'viewer-watch');

  run.step = 'on a phone the gift tray opens as a sheet';
  await viewer.raw.setViewportSize({ width: 390, height: 844 });
  await waitFor(viewer, 'the gift button shows on a phone', () => {
    const b = document.querySelector('#gift-open');
    return b && !b.hidden && getComputedStyle(b).display !== 'none' && getComputedStyle(document.querySelector('#support')).display === 'none';
  });
  await viewer.click('#gift-open', run.remaining());
  await waitFor(viewer, 'the tray is a sheet at the bottom of the screen', () => {
    const t = document.querySelector('#support');
    const r = t.getBoundingClientRect();
    return getComputedStyle(t).display !== 'none' && Math.abs(r.bottom - window.innerHeight) < 2 && r.height > 150 && r.width === window.innerWidth;
  });
  const giftSheet = await viewer.evaluate(() => {
    const r = document.querySelector('#support').getBoundingClientRect();
    const send = document.querySelector('.send-gift').getBoundingClientRect();
    return { top: r.top, bottom: r.bottom, width: r.width, screen_h: window.innerHeight, send_visible: send.bottom <= window.innerHeight && send.top >= r.top };
  });
  if (args.screenshots) await viewer.screenshot(path.join(args.screenshots, 'viewer-gift-sheet-390x844.png'));
  await viewer.raw.keyboard.press('Escape');
  await waitFor(viewer, 'Escape closes the sheet', () => getComputedStyle(document.querySelector('#support')).display === 'none');
  await viewer.raw.setViewportSize({ width: 1280, height: 800 });
  const chatLine = await host.evaluate(() => [...document.querySelectorAll('#chat-list li')].map((l) => l.textContent).find((t) => /sent Rocket/.test(t)) || null);

  run.step = 'the host reads their earnings';
  await host.goto(`${base}/earnings`, run.remaining());
  await waitFor(host, 'the earnings page shows today', () => window.onairEarnings && window.onairEarnings.earnings && window.onairEarnings.earnings.total === 594 && window.onairEarnings.earnings.by_day.length === 30 && document.querySelectorAll('#chart .bar').length === 1);
  const earnings = await host.evaluate(() => ({ available: window.onairEarnings.earnings.available, kinds: window.onairEarnings.earnings.by_kind.map((k) => k.kind) }));
  await shots(host, 'earnings');
  run.step = 'the viewer reads their statement';
  await viewer.goto(`${base}/wallet`, run.remaining());
  await waitFor(viewer, 'the statement lists the ticket and the gifts', () => window.onairWallet && ['ticket', 'gift', 'top_up'].every((k) => window.onairWallet.statement.some((e) => e.kind === k)));
  await shots(viewer, 'wallet-statement', [[1280, 800]]);

  await run.succeed({
    ok: true,
    coins_after_top_up: coinsAfterTopUp,
    frames_decoded: frames.framesDecoded,
    big_gift_seen: true,
    combo_seen: 10,
    gift_sheet: giftSheet,
    supporters,
    chat_line: chatLine,
    earnings,
    viewer: username,
  });
}

main().catch((err) => run.fail(err));
