#!/usr/bin/env node
// Polls and Q&A through the pages (issue 18), in headless Chromium:
//
//   host:    publishes from the studio (fake camera), opens a poll of three
//            options there, marks a question "answering now", hides one,
//            closes the poll;
//   viewer:  on a desktop (1280x800) watch page votes, changes the vote,
//            asks a question in the Q&A tab, cannot upvote it;
//   phone:   a second viewer on a phone (390x844) votes, opens Q&A from its
//            button over the video, upvotes, is refused a banned word;
//   both:    see the counts move, the question answered now over the video,
//            the hidden one gone, the final results.
//
//   node tests/browser/interact.mjs --base URL [--screenshots DIR] [--timeout-ms MS]
//
// Prints one JSON line: {"ok":true, ...} or {"ok":false,"step","error"} (exit 1).

import path from 'node:path';
import fs from 'node:fs';
import { Run, scriptArgs } from './harness.mjs';
import { launchChromium } from './browsers.mjs';

const args = scriptArgs({
  spec: { base: 'string', screenshots: 'string', 'timeout-ms': 'number' },
  usage: 'usage: node interact.mjs --base URL [--screenshots DIR] [--timeout-ms MS]',
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

async function call(method, p, token, body) {
  const resp = await fetch(`${base}${p}`, {
    method,
    headers: { 'Content-Type': 'application/json', ...(token ? { Authorization: `Bearer ${token}` } : {}) },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await resp.text();
  if (!resp.ok) throw new Error(`${method} ${p}: ${resp.status} ${text}`);
  return text ? JSON.parse(text) : null;
}

const register = (username, role, display) =>
  call('POST', '/api/auth/register', null, { username, display_name: display, email: `${username}@example.test`, password: 'correct horse battery', role });

/** A browser context logged in as `pair` (tokens in localStorage, as the login page leaves them). */
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
  run.step = 'accounts';
  const host = await register(`host_${tag}`, 'host', `Chef ${tag}`);
  const viewer = await register(`vic_${tag}`, 'viewer', 'Vic');
  const phone = await register(`pia_${tag}`, 'viewer', 'Pia');
  const key = await call('POST', '/api/me/stream-keys', host.access_token, { label: 'studio' });
  await call('PATCH', `/api/channels/${host.user.username}/chat-settings`, host.access_token, { banned_words: ['spoiler'] });

  run.step = 'launch';
  const chromium = await launchChromium(run);

  run.step = 'the host goes live from the studio';
  const hostCtx = await loggedIn(chromium, host, { viewport: { width: 1280, height: 800 } }, { [key.id]: key.key });
  const studio = await hostCtx.newPage('studio');
  await studio.goto(`${base}/publish?key=${key.id}`, run.remaining());
  await waitFor(studio, 'Go live enabled', () => !document.querySelector('#go-live').disabled);
  await studio.click('#go-live', run.remaining());
  await waitFor(studio, 'the studio is live', () => window.onair.state === 'live', null, 30000);
  await waitFor(studio, 'the studio shows the poll and Q&A tools', () => !document.querySelector('#host-tools').hidden);

  run.step = 'the host opens a poll in the studio';
  await studio.fill('#host-tools-question', 'What do we cook next?', run.remaining());
  await studio.fill('#host-tools .ht-option-row:nth-child(1) input', 'Carbonara', run.remaining());
  await studio.fill('#host-tools .ht-option-row:nth-child(2) input', 'Risotto', run.remaining());
  await studio.click('#host-tools .ht-add', run.remaining());
  await studio.fill('#host-tools .ht-option-row:nth-child(3) input', 'Tiramisu', run.remaining());
  await studio.click('#host-tools .ht-open', run.remaining());
  await waitFor(studio, 'the poll is open', () => (window.onair.hostPolls || []).some((p) => p.state === 'open'));

  run.step = 'viewers open the watch page';
  const viewerCtx = await loggedIn(chromium, viewer, { viewport: { width: 1280, height: 800 } });
  const watch = await viewerCtx.newPage('watch-desktop');
  await watch.goto(`${base}/watch/${host.user.username}`, run.remaining());
  const phoneCtx = await loggedIn(chromium, phone, { viewport: { width: 390, height: 844 }, isMobile: true, hasTouch: true, deviceScaleFactor: 2 });
  const mobile = await phoneCtx.newPage('watch-phone');
  await mobile.goto(`${base}/watch/${host.user.username}`, run.remaining());
  for (const p of [watch, mobile]) {
    await waitFor(p, 'the poll card shows the open poll', () => window.onair.poll && window.onair.poll.state === 'open' && !document.querySelector('#poll-card').hidden);
  }
  await waitFor(watch, 'the video plays', () => window.onair.phase === 'live' && window.onair.stats && window.onair.stats.framesDecoded > 0, null, 30000);

  run.step = 'votes';
  result.options_before_vote = await watch.evaluate(() => [...document.querySelectorAll('#poll-card .poll-option')].map((b) => b.textContent));
  await watch.click('#poll-card .poll-option[data-index="1"]', run.remaining());
  await waitFor(watch, 'the desktop vote counted', () => JSON.stringify(window.onair.poll.votes) === '[0,1,0]' && window.onair.poll.my_vote === 1);
  await watch.click('#poll-card .poll-option[data-index="2"]', run.remaining());
  await waitFor(watch, 'the changed vote moved', () => JSON.stringify(window.onair.poll.votes) === '[0,0,1]' && window.onair.poll.my_vote === 2);
  await mobile.click('#poll-card .poll-option[data-index="2"]', run.remaining());
  await waitFor(mobile, 'the phone vote counted', () => JSON.stringify(window.onair.poll.votes) === '[0,0,2]');
  await waitFor(watch, 'the desktop sees the phone vote', () => JSON.stringify(window.onair.poll.votes) === '[0,0,2]');
  await waitFor(studio, 'the studio sees both votes', () => JSON.stringify(window.onair.hostPolls.find((p) => p.state === 'open').votes) === '[0,0,2]');
  result.votes_seen = await onair(watch, 'poll');
  result.desktop_pct = await watch.evaluate(() => [...document.querySelectorAll('#poll-card .poll-pct')].map((e) => e.textContent));

  run.step = 'questions';
  await watch.click('#tab-qa', run.remaining());
  await watch.fill('#qa-input', 'How long does the carbonara take?', run.remaining());
  await watch.click('#qa-send', run.remaining());
  await waitFor(watch, 'the question is listed', () => (window.onair.questions || []).some((q) => q.text === 'How long does the carbonara take?'));
  result.own_upvote_disabled = await watch.evaluate(() => document.querySelector('#qa-list .qa-item .qa-up').disabled);
  await mobile.click('#qa-toggle', run.remaining());
  await waitFor(mobile, 'the phone lists the question', () => (window.onair.questions || []).length === 1 && window.onair.tab === 'qa');
  await mobile.click('#qa-list .qa-item .qa-up', run.remaining());
  await waitFor(watch, 'the desktop sees the upvote', () => window.onair.questions[0].upvotes === 1);
  await mobile.fill('#qa-input', 'Any spoiler for dessert?', run.remaining());
  await mobile.click('#qa-send', run.remaining());
  await waitFor(mobile, 'a banned word is refused', () => window.onair.qaRefusal === 'banned_word' && !document.querySelector('#qa-hint').hidden);
  result.phone_refusal = await mobile.evaluate(() => document.querySelector('#qa-hint').textContent);
  await mobile.fill('#qa-input', 'Can I use pancetta?', run.remaining());
  await mobile.click('#qa-send', run.remaining());
  await waitFor(watch, 'the desktop sees the second question', () => window.onair.questions.length === 2);

  run.step = 'the host answers one and hides another';
  await waitFor(studio, 'the studio lists both questions', () => document.querySelectorAll('#host-tools .qa-item').length === 2);
  const qid = (await onair(watch, 'questions')).find((q) => q.text.startsWith('How long')).id;
  const hid = (await onair(watch, 'questions')).find((q) => q.text.startsWith('Can I')).id;
  await studio.click(`#host-tools .qa-item[data-id="${qid}"] button[data-action="answering"]`, run.remaining());
  for (const p of [watch, mobile]) {
    await waitFor(p, 'answering now over the video', (id) => window.onair.answering === id && !document.querySelector('#answering').hidden, qid);
  }
  result.answering_text = await watch.evaluate(() => document.querySelector('#answering-text').textContent);
  await studio.click(`#host-tools .qa-item[data-id="${hid}"] button[data-action="hidden"]`, run.remaining());
  for (const p of [watch, mobile]) {
    await waitFor(p, 'the hidden question is gone', (id) => !window.onair.questions.some((q) => q.id === id) && !document.querySelector(`#qa-list .qa-item[data-id="${id}"]`), hid);
  }
  // The viewers' event can arrive before the studio's own PATCH answer: wait for the studio too.
  await waitFor(studio, 'the studio marks the question hidden', (id) => document.querySelector(`#host-tools .qa-item[data-id="${id}"]`)?.dataset.state === 'hidden', hid);
  result.studio_hidden_state = await studio.evaluate((id) => document.querySelector(`#host-tools .qa-item[data-id="${id}"]`).dataset.state, hid);

  run.step = 'screenshots while the poll is open';
  // Clicks scrolled the page: the pictures show it from the top, as it opens.
  await watch.evaluate(() => window.scrollTo(0, 0));
  await shot(watch, 'watch-desktop-qa');
  await watch.click('#tab-chat', run.remaining());
  await watch.evaluate(() => window.scrollTo(0, 0));
  await shot(watch, 'watch-desktop-poll');
  await shot(mobile, 'watch-phone-qa');
  await mobile.click('#qa-toggle', run.remaining());
  await shot(mobile, 'watch-phone-poll');
  await shot(studio, 'studio-tools');
  result.phone_layout = await mobile.evaluate(() => {
    const r = (s) => {
      const b = document.querySelector(s).getBoundingClientRect();
      return { left: b.left, top: b.top, right: b.right, bottom: b.bottom };
    };
    return { w: window.innerWidth, h: window.innerHeight, poll: r('#poll-card'), toggle: r('#qa-toggle'), like: r('#like'), answering: r('#answering'), chat: r('#chat-panel') };
  });

  run.step = 'the host closes the poll';
  await studio.click('#host-tools .ht-close', run.remaining());
  for (const p of [watch, mobile]) {
    await waitFor(p, 'final results shown', () => window.onair.poll.state === 'closed' && document.querySelector('#poll-card .poll-final') !== null);
  }
  result.final = await onair(watch, 'poll');
  result.clickable_after_close = await watch.evaluate(() => document.querySelectorAll('#poll-card button.poll-option').length);
  await shot(mobile, 'watch-phone-closed');
  await waitFor(studio, 'the studio offers a new poll', () => !document.querySelector('#host-tools .ht-poll-form').hidden);
  await run.succeed(result);
}

main().catch((err) => run.fail(err));
