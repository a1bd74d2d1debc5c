#!/usr/bin/env node
// What a new user trips over (issue 11), through the pages in headless
// Chromium, as people use them:
//
//   host:   registers, sets the channel's defaults, meets the date check,
//           schedules two streams (their countdowns are words), goes live
//           by API ("Starting", no clock yet), sets followers-only chat, and
//           publishes from the studio; the studio shows the chat with the
//           host's moderation in each message's menu, the viewer count, and
//           sends a frame of its preview as the thumbnail;
//   viewer: sees the live card with that thumbnail, watches, is refused in
//           followers-only chat, follows from the watch page and chats at
//           once; pastes 600 characters (kept, counted, refused as too_long);
//           sees the host's title edit; the channel page shows the follow;
//           the phone layout puts the chat over the full-screen video;
//   end:    no WHEP DELETE answered 404 when the stream ends.
//
//   node tests/browser/ux.mjs --base URL [--screenshots DIR] [--tour DIR] [--timeout-ms MS]
//
// `--tour DIR` writes the README's tour pictures (directory, watch, studio at
// 1280x800, PNG). Prints one JSON line on stdout: {"ok":true, ...per item...}
// or {"ok":false,"step":"...","error":"..."} (exit 1).

import path from 'node:path';
import fs from 'node:fs';
import { Run, scriptArgs, sampleVideo, pollUntil, sleep } from './harness.mjs';
import { launchChromium } from './browsers.mjs';

const args = scriptArgs({
  spec: { base: 'string', screenshots: 'string', tour: 'string', 'timeout-ms': 'number' },
  usage: 'usage: node ux.mjs --base URL [--screenshots DIR] [--tour DIR] [--timeout-ms MS]',
  defaults: { timeoutMs: 180000 },
  required: ['base'],
});
const base = args.base.replace(/\/+$/, '');
const run = new Run(args).arm();
const tag = `${Date.now().toString(36).slice(-4)}${Math.floor(Math.random() * 900 + 100)}`;
const PASSWORD = 'correct horse battery';
const result = { ok: true };

async function waitFor(page, what, fn, arg = null, ms = 20000) {
  try {
    await page.waitFor(fn, arg, Math.min(ms, run.remaining()));
  } catch (err) {
    throw new Error(`${what}: ${err.message.split('\n')[0]}`);
  }
}

const onair = (page, field) => page.evaluate((f) => JSON.parse(JSON.stringify(window.onair ? window.onair[f] ?? null : null)), field);
const text = (page, sel) => page.evaluate((s) => (document.querySelector(s) ? document.querySelector(s).textContent.trim() : null), sel);

async function shot(page, dir, name, { type = 'png', quality } = {}) {
  if (!dir) return;
  try {
    fs.mkdirSync(dir, { recursive: true });
    await page.raw.screenshot({ path: path.join(dir, `${name}.${type}`), type, quality, timeout: 8000 });
  } catch (err) {
    run.log(`[ux] screenshot ${name} failed: ${err.message}`);
  }
}

async function register(page, { username, role, next }) {
  await page.goto(`${base}/login?next=${encodeURIComponent(next)}`, run.remaining());
  await waitFor(page, 'login page ready', () => window.onair && window.onair.page === 'login');
  await page.click('#tab-register', run.remaining());
  if (role === 'host') await page.click('#role-host-option', run.remaining());
  await page.fill('#reg-username', username, run.remaining());
  await page.fill('#reg-display-name', role === 'host' ? `Chef ${tag}` : `Viewer ${tag}`, run.remaining());
  await page.fill('#reg-email', `${username}@example.test`, run.remaining());
  await page.fill('#reg-password', PASSWORD, run.remaining());
  await page.click('#register-submit', run.remaining());
  await waitFor(page, `registered, on ${next}`, (want) => window.location.pathname === want && window.onair && window.onair.page !== 'login', next);
}

/** A datetime-local value `minutes` from now, in the browser's time. */
const localIn = (page, minutes) =>
  page.evaluate((m) => {
    const d = new Date(Date.now() + m * 60000);
    const p = (n) => String(n).padStart(2, '0');
    return `${d.getFullYear()}-${p(d.getMonth() + 1)}-${p(d.getDate())}T${p(d.getHours())}:${p(d.getMinutes())}`;
  }, minutes);

async function schedule(dash, title, value) {
  await dash.fill('#new-title', title, run.remaining());
  await dash.click('label:has(#when-at)', run.remaining());
  await dash.fill('#new-at', value, run.remaining());
  await dash.click('#new-submit', run.remaining());
}

function overlap(a, b) {
  return a && b && a.left < b.right && b.left < a.right && a.top < b.bottom && b.top < a.bottom;
}

async function main() {
  run.step = 'launch';
  const chromium = await launchChromium(run);

  // ------------------------------------------------------------ host: channel defaults, dates, schedule
  run.step = 'host registers';
  const hostCtx = await chromium.newContext();
  const dash = await hostCtx.newPage('dashboard');
  const host = `chef_${tag}`;
  await register(dash, { username: host, role: 'host', next: '/dashboard' });
  await waitFor(dash, 'dashboard loaded', () => window.onair.loaded && window.onair.connected && window.onair.channel.defaults);

  run.step = 'channel defaults (item 4)';
  await dash.fill('#ch-bio', 'Cooking live every Friday.', run.remaining());
  await dash.fill('#def-title', `Cooking with Chef ${tag}`, run.remaining());
  await dash.fill('#def-category', 'Cooking', run.remaining());
  await dash.click('#def-record', run.remaining());
  await dash.click('#ch-save', run.remaining());
  await waitFor(dash, 'channel saved', () => document.querySelector('#ch-status').textContent === 'Saved');
  result.defaults = await dash.evaluate(() => window.onair.channel.defaults);

  run.step = 'a year-9999 start time is refused in words (item 9)';
  await schedule(dash, 'Far future', '9999-12-31T23:00');
  await waitFor(dash, 'the date field says why', () => !document.querySelector('.field-error[data-for="scheduled_at"]').hidden);
  result.date_error = await text(dash, '.field-error[data-for="scheduled_at"]');

  run.step = 'schedule two streams (item 9 countdowns)';
  await schedule(dash, 'In three hours', await localIn(dash, 180));
  await waitFor(dash, 'listed', () => window.onair.streams.some((s) => s.title === 'In three hours'));
  await schedule(dash, 'In two days', await localIn(dash, 49 * 60));
  await waitFor(dash, 'listed', () => window.onair.streams.some((s) => s.title === 'In two days'));

  run.step = 'make a key';
  await dash.fill('#key-label', 'Studio', run.remaining());
  await dash.click('#key-create', run.remaining());
  await waitFor(dash, 'key shown', () => window.onair.newKey && document.querySelector('#key-secret').value.startsWith('sk_'));
  const key = await onair(dash, 'newKey');

  run.step = 'go live by API: Starting, no clock (item 7)';
  await dash.fill('#new-title', `UX ${tag}`, run.remaining());
  await dash.click('label:has(#when-now)', run.remaining());
  await dash.click('#new-submit', run.remaining());
  await waitFor(dash, 'live, waiting for video', () => window.onair.liveId && window.onair.live.media_state === 'waiting');
  const streamId = await onair(dash, 'liveId');
  await sleep(1500);
  result.starting = {
    duration: await text(dash, '#fig-duration'),
    row: await text(dash, `.stream-row[data-stream-id="${streamId}"] .row-sub`),
    live_state: await text(dash, '#live-state-text'),
  };

  run.step = 'followers-only chat';
  await dash.select('#set-followers', '0', run.remaining());
  await dash.click('#set-save', run.remaining());
  await waitFor(dash, 'chat settings saved', () => document.querySelector('#set-status').textContent === 'Saved');

  // ------------------------------------------------------------ viewer: the directory while it starts
  run.step = 'viewer registers';
  const viewerCtx = await chromium.newContext();
  const viewer = await viewerCtx.newPage('viewer');
  await register(viewer, { username: `fan_${tag}`, role: 'viewer', next: '/' });
  await waitFor(viewer, 'directory ready', () => window.onair.page === 'directory' && window.onair.loaded);
  const card = `#live-grid .stream-card[data-stream-id="${streamId}"]`;
  await waitFor(viewer, 'the starting stream is listed', (sel) => !!document.querySelector(sel), card);
  result.directory_starting = await viewer.evaluate((sel) => {
    const c = document.querySelector(sel);
    return { badges: [...c.querySelectorAll('.thumb-badges .badge')].map((b) => b.textContent), sub: c.querySelector('.stream-sub').textContent };
  }, card);
  result.countdowns = await viewer.evaluate(() => Object.fromEntries([...document.querySelectorAll('#upcoming-grid .stream-card')].map((c) => [c.querySelector('.stream-title').textContent, c.querySelector('.countdown').textContent])));

  // ------------------------------------------------------------ host: the studio
  run.step = 'open the studio';
  const [popup] = await Promise.all([hostCtx.raw.waitForEvent('page', { timeout: run.remaining() }), dash.click('#open-studio', run.remaining())]);
  const studio = hostCtx.adopt('publish', popup);
  await popup.waitForLoadState('load', { timeout: run.remaining() });
  await waitFor(studio, 'the key picker lists the key', (id) => {
    const o = document.querySelector(`#key-select option[value="${id}"]`);
    return o && !o.disabled;
  }, String(key.id));
  await studio.select('#key-select', String(key.id), run.remaining());
  await waitFor(studio, 'Go live enabled', () => !document.querySelector('#go-live').disabled);
  await studio.click('#go-live', run.remaining());
  await waitFor(studio, 'the studio is live', () => window.onair.state === 'live', null, 30000);
  await waitFor(dash, 'the dashboard sees the video', () => window.onair.live.media_state === 'receiving');
  await waitFor(dash, 'the clock runs from the first video', () => /^\d\d:\d\d$/.test(document.querySelector('#fig-duration').textContent));
  result.live_clock = await text(dash, '#fig-duration');

  run.step = 'the studio sends a thumbnail (item 5)';
  await waitFor(studio, 'a snapshot uploaded', () => window.onair.snapshots >= 1, null, 20000);
  const thumbUrl = await onair(studio, 'thumbnailUrl');
  await waitFor(viewer, 'the live card shows it', ({ sel, url }) => {
    const img = document.querySelector(`${sel} .thumb img`);
    return img && img.getAttribute('src') === url && img.complete && img.naturalWidth > 0;
  }, { sel: card, url: thumbUrl });
  result.thumbnail = await viewer.evaluate((sel) => {
    const img = document.querySelector(`${sel} .thumb img`);
    return { src: img.getAttribute('src'), width: img.naturalWidth, height: img.naturalHeight, badges: [...document.querySelectorAll(`${sel} .thumb-badges .badge`)].map((b) => b.textContent.trim()) };
  }, card);
  result.thumbnail_cache = await viewer.evaluate(async (url) => {
    const r = await fetch(url);
    return { status: r.status, type: r.headers.get('content-type'), etag: r.headers.get('etag'), cache: r.headers.get('cache-control') };
  }, thumbUrl);

  // ------------------------------------------------------------ viewer: watch, follow, chat
  run.step = 'viewer watches';
  await viewer.click(`${card} .stream-title`, run.remaining());
  await waitFor(viewer, 'watch page ready', () => window.onair && window.onair.page === 'watch');
  await pollUntil(run, 'decoded frames', () => sampleVideo(viewer), (s) => s.framesDecoded > 0 && s.videoWidth > 0, run.remaining());
  const notFound = [];
  viewer.raw.on('response', (r) => {
    if (r.status() === 404) notFound.push(`${r.request().method()} ${r.url()}`);
  });

  run.step = 'followers-only refuses, Follow opens the chat (item 1)';
  await waitFor(viewer, 'the follow button', () => !document.querySelector('#follow').hidden && window.onair.chatSettings);
  await viewer.fill('#chat-input', `Hi ${tag}`, run.remaining());
  await viewer.click('#chat-send', run.remaining());
  await waitFor(viewer, 'refused: followers only', () => window.onair.chatRefusal === 'followers_only');
  result.refused = { code: await onair(viewer, 'chatRefusal'), hint: await text(viewer, '#chat-hint') };
  await viewer.click('#follow', run.remaining());
  await waitFor(viewer, 'following', () => window.onair.following === true && document.querySelector('#follow').textContent === 'Following');
  // The toast says so while the chat's hint is on screen: they must not overlap (item 9).
  await waitFor(viewer, 'a toast', () => !!document.querySelector('#toasts .toast.show'), null, 5000);
  result.toast_vs_hint = await viewer.evaluate(() => {
    const r = (el) => (el && !el.hidden ? el.getBoundingClientRect().toJSON() : null);
    return { toast: r(document.querySelector('#toasts .toast')), hint: r(document.querySelector('#chat-hint')), input: r(document.querySelector('#chat-input')) };
  });
  result.toast_vs_hint.overlaps = overlap(result.toast_vs_hint.toast, result.toast_vs_hint.hint) || overlap(result.toast_vs_hint.toast, result.toast_vs_hint.input);
  await viewer.click('#chat-send', run.remaining());
  await waitFor(viewer, 'the message is in the chat', (t) => window.onair.chat.some((m) => m.text === t), `Hi ${tag}`);
  result.chatted_after_follow = true;

  run.step = 'the studio has the chat and the viewer count (item 8)';
  await waitFor(studio, 'the studio shows the chat', (t) => !document.querySelector('#chat-panel').hidden && window.onair.chat.some((m) => m.text === t), `Hi ${tag}`);
  await waitFor(studio, 'the studio shows 1 watching', () => document.querySelector('#chat-viewers').textContent === '1');
  const msg = (await onair(studio, 'chat')).find((m) => m.text === `Hi ${tag}`);
  const row = `#chat-list .msg[data-id="${msg.id}"]`;
  result.studio_menu_hidden_before = await studio.evaluate((sel) => document.querySelector(`${sel} .msg-menu-box`).hidden, row);
  await studio.click(`${row} button[data-action="menu"]`, run.remaining());
  await studio.click(`${row} button[data-action="delete"]`, run.remaining());
  await waitFor(viewer, 'the viewer sees it removed', (id) => window.onair.chat.some((m) => m.id === id && m.deleted), msg.id);
  result.studio_deleted = true;
  result.studio_viewers = await text(studio, '#chat-viewers');

  run.step = 'a long paste is kept, counted and refused (item 9)';
  const long = 'x'.repeat(600);
  await viewer.fill('#chat-input', long, run.remaining());
  result.long_paste = { kept: (await viewer.evaluate(() => document.querySelector('#chat-input').value.length)), counter: await text(viewer, '#chat-counter') };
  await viewer.click('#chat-send', run.remaining());
  await waitFor(viewer, 'refused: too_long', () => window.onair.chatRefusal === 'too_long');
  result.long_paste.code = await onair(viewer, 'chatRefusal');
  result.long_paste.hint = await text(viewer, '#chat-hint');
  result.long_paste.still_there = await viewer.evaluate(() => document.querySelector('#chat-input').value.length);
  await viewer.fill('#chat-input', '', run.remaining());

  run.step = 'the host edits the live title (item 4)';
  await dash.click('#live-edit summary', run.remaining());
  await dash.fill('#live-edit-title', `Pasta night ${tag}`, run.remaining());
  await dash.click('#live-edit-save', run.remaining());
  await waitFor(viewer, 'the viewer sees the new title', (t) => document.querySelector('#channel-name').textContent === t, `Pasta night ${tag}`);
  result.title_edit_seen = true;

  // ------------------------------------------------------------ pictures
  run.step = 'screenshots';
  if (args.tour) {
    for (const p of [viewer, studio]) await p.raw.setViewportSize({ width: 1280, height: 800 });
    await sleep(800);
    await shot(studio, args.tour, 'studio', { type: 'png' });
    await shot(viewer, args.tour, 'watch', { type: 'png' });
  }
  await run.screenshots();

  run.step = 'the phone layout (item 10)';
  await viewer.raw.setViewportSize({ width: 390, height: 844 });
  await sleep(800);
  result.phone = await viewer.evaluate(() => {
    const r = (s) => document.querySelector(s).getBoundingClientRect().toJSON();
    const shown = (s) => getComputedStyle(document.querySelector(s)).display !== 'none';
    return { stage: r('#stage'), chat: r('#chat-list'), input: r('#chat-input'), like: r('#like'), follow: r('#follow'), topbar: shown('.topbar'), video_fit: getComputedStyle(document.querySelector('#video')).objectFit, w: innerWidth, h: innerHeight };
  });
  await shot(viewer, args.screenshots, 'watch-phone');
  await viewer.raw.setViewportSize({ width: 1366, height: 900 });
  if (args.screenshots) {
    // The host's pages on a phone too (looked at, not measured).
    for (const [name, page] of [['dashboard', dash], ['studio', studio]]) {
      await page.raw.setViewportSize({ width: 390, height: 844 });
      await sleep(400);
      await shot(page, args.screenshots, `${name}-phone`);
      await page.raw.setViewportSize({ width: 1280, height: 800 });
      await sleep(200);
      await shot(page, args.screenshots, `${name}-1280`);
    }
  }

  run.step = 'the channel page (item 1)';
  const chan = await viewerCtx.newPage('channel');
  await chan.goto(`${base}/c/${host}`, run.remaining());
  await waitFor(chan, 'channel loaded', () => window.onair && window.onair.page === 'channel' && window.onair.loaded);
  result.channel = {
    name: await text(chan, '#channel-name'),
    bio: await text(chan, '#channel-bio'),
    followers: await text(chan, '#followers'),
    follow: await text(chan, '#follow'),
    live: await onair(chan, 'live'),
    upcoming: (await onair(chan, 'upcoming')).length,
  };
  await sleep(500); // the cards' entrance animation
  await shot(chan, args.screenshots, 'channel');
  await chan.raw.setViewportSize({ width: 390, height: 844 });
  await sleep(400);
  await shot(chan, args.screenshots, 'channel-phone');
  await chan.raw.setViewportSize({ width: 1366, height: 900 });
  await chan.click('#follow', run.remaining());
  await waitFor(chan, 'unfollowed', () => window.onair.following === false && document.querySelector('#followers').textContent === '0');
  result.channel.after_unfollow = { followers: await text(chan, '#followers'), follow: await text(chan, '#follow') };
  await chan.raw.close();
  delete run.pages.channel;

  if (args.tour) {
    run.step = 'tour: the directory';
    const dir = await viewerCtx.newPage('directory');
    await dir.raw.setViewportSize({ width: 1280, height: 800 });
    await dir.goto(`${base}/`, run.remaining());
    await waitFor(dir, 'directory with the live card', (sel) => window.onair.loaded && !!document.querySelector(`${sel} .thumb img`), card);
    await sleep(500);
    await shot(dir, args.tour, 'directory', { type: 'png' });
    await dir.raw.close();
    delete run.pages.directory;
  }

  run.step = 'the host ends it: no 404 for the viewer (item 9)';
  await dash.click('#end-save', run.remaining());
  await dash.click('#end-save', run.remaining());
  await waitFor(viewer, 'the viewer sees the end', () => window.onair.phase === 'ended');
  await sleep(1500);
  result.not_found_after_end = notFound;
  await run.succeed(result);
}

main().catch((err) => run.fail(err));
