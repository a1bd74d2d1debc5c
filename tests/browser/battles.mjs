#!/usr/bin/env node
// PK battles through the pages (issue 15), in headless Chromium:
//
//   studios: ann and bob go live from their studios (fake cameras, VP8);
//            ann challenges bob from her studio's Challenge form, bob
//            accepts the invitation in his; each studio then shows the
//            opponent (its host WHEP session decodes frames);
//   watch:   an anonymous watch page of each stream opens its split screen
//            (WHEP with two slots): its own host left, the opponent right,
//            both tiles decoding (getStats);
//   gifts:   a test viewer (its token given) sends gifts over HTTP to both
//            streams, one at a time; both watch pages' score bars follow;
//   end:     the script writes `end` into --control; the test moves the
//            server's clock to the battle's end; both watch pages show the
//            winner banner and the opponent leaves them;
//   shots:   a studio and a watch page at 1280x800 and 390x844, mid-battle
//            and at the end.
//
//   node tests/browser/battles.mjs --base URL --fan-token TOKEN --control DIR [--screenshots DIR] [--timeout-ms MS]
//
// Prints one JSON line: {"ok":true, ...} or {"ok":false,"step","error"} (exit 1).

import fs from 'node:fs';
import path from 'node:path';
import { randomUUID } from 'node:crypto';
import { Run, scriptArgs, waitOn, shotTo, apiClient, loggedInContext, pollUntil, watchRoomSnapshot } from './harness.mjs';
import { launchChromium } from './browsers.mjs';

const args = scriptArgs({
  spec: { base: 'string', 'fan-token': 'string', control: 'string', screenshots: 'string', 'timeout-ms': 'number' },
  usage: 'usage: node battles.mjs --base URL --fan-token TOKEN --control DIR [--screenshots DIR] [--timeout-ms MS]',
  defaults: { timeoutMs: 240000 },
  required: ['base', 'fanToken', 'control'],
});
const base = args.base.replace(/\/+$/, '');
const run = new Run(args).arm();
const { call, register } = apiClient(base);
const tag = `${Date.now().toString(36).slice(-4)}${Math.floor(Math.random() * 900 + 100)}`;
const result = { ok: true, users: {}, studio: {}, gifts: { watch_ann: { own: 0, other: 0 }, watch_bob: { own: 0, other: 0 } } };
const wait = (page, what, fn, arg = null, ms = 30000) => waitOn(run, page, what, fn, arg, ms);
const SIZES = [[1280, 800], [390, 844]];

/** Screenshots of `page` at both sizes (back to desktop after). */
async function shots(page, name) {
  for (const [w, h] of SIZES) {
    await page.raw.setViewportSize({ width: w, height: h });
    await shotTo(args.screenshots, page, `${name}-${w}x${h}`);
  }
  await page.raw.setViewportSize({ width: 1280, height: 800 });
}

/** The battle as a page shows it, with the opponent view's frames (studio). */
const battleOf = (page) => page.evaluate(() => window.onair.battle.snapshot());
/** The two numbers of the score bar: this page's own host's, then the opponent's. */
const scoresOf = (page) => page.evaluate(() => [...document.querySelectorAll('.battle-overlay .battle-score')].map((e) => Number(e.textContent)));
/** Whether the score bar and the clock are on the video, inside the stage's box. */
const barOnStage = (page) =>
  page.evaluate(() => {
    const stage = document.querySelector('#stage').getBoundingClientRect();
    const bar = document.querySelector('.battle-overlay .battle-bar');
    const r = bar && bar.getBoundingClientRect();
    return Boolean(r && r.width > 0 && r.top >= stage.top && r.bottom <= stage.bottom && r.left >= stage.left && r.right <= stage.right);
  });

async function gift(stream, giftId) {
  const resp = await fetch(`${base}/api/streams/${stream}/gifts`, {
    method: 'POST',
    headers: { 'Content-Type': 'application/json', Authorization: `Bearer ${args.fanToken}`, 'Idempotency-Key': randomUUID() },
    body: JSON.stringify({ gift: giftId, count: 1 }),
  });
  const body = await resp.json();
  if (resp.status !== 201) throw new Error(`gift ${giftId} to ${stream}: ${resp.status} ${JSON.stringify(body)}`);
  return body.coins;
}

async function main() {
  run.step = 'accounts';
  const users = {};
  const keys = {};
  for (const n of ['ann', 'bob']) {
    users[n] = await register(`${n}_${tag}`, 'host', `${n[0].toUpperCase()}${n.slice(1)} ${tag.slice(0, 3)}`);
    keys[n] = await call('POST', '/api/me/stream-keys', users[n].access_token, { label: 'studio' });
    result.users[n] = users[n].user.username;
  }

  run.step = 'launch';
  const chromium = await launchChromium(run);
  const studios = {};
  for (const n of ['ann', 'bob']) {
    run.step = `${n} goes live from the studio`;
    const ctx = await loggedInContext(chromium, users[n], { viewport: { width: 1280, height: 800 } }, { [keys[n].id]: keys[n].key });
    const page = await ctx.newPage(`studio-${n}`);
    await page.goto(`${base}/publish?key=${keys[n].id}`, run.remaining());
    await wait(page, `${n}: the studio with its Challenge form`, () => window.onair && window.onair.battle && document.querySelector('.battle-challenge'));
    await wait(page, `${n}: Go live enabled`, () => !document.querySelector('#go-live').disabled);
    await page.click('#go-live', run.remaining());
    await wait(page, `${n}: live`, () => window.onair.state === 'live' && window.onair.chatStream != null, null, 40000);
    studios[n] = page;
  }
  const stream = {};
  for (const n of ['ann', 'bob']) stream[n] = await studios[n].evaluate(() => window.onair.chatStream);

  run.step = 'ann challenges bob from her studio';
  await studios.ann.fill('.battle-challenge input[name=opponent]', users.bob.user.username, run.remaining());
  // Five minutes: the test's clock, not the wall clock, ends it (when the pages have been seen mid-battle).
  await studios.ann.select('.battle-challenge select[name=duration_s]', '300', run.remaining());
  await studios.ann.click('.battle-challenge button[type=submit]', run.remaining());
  run.step = 'bob accepts the invitation in his studio';
  await wait(studios.bob, 'bob: the invitation shows', () => document.querySelector('.battle-invite .btn-live'));
  result.invitation_text = await studios.bob.evaluate(() => document.querySelector('.battle-invite p').textContent);
  await studios.bob.click('.battle-invite .btn-live', run.remaining());
  for (const n of ['ann', 'bob']) {
    const b = await pollUntil(run, `${n}: the battle on and the opponent decoding`, () => battleOf(studios[n]), (s) => s.battle && ['countdown', 'active'].includes(s.battle.state) && s.opponent && s.opponent.frames > 0, 40000);
    result.battle = b.battle.id;
    // The host hears the opponent: their audio arrives on the studio's opponent view.
    result.heard = result.heard || {};
    result.heard[n] = await pollUntil(run, `${n}: the opponent's audio arrives`, () => studios[n].evaluate(() => window.onair.battle.opponentAudio()), (a) => a && a.packets > 50, 20000);
    // Headless Chromium plays it muted without a gesture on this page: the
    // studio offers one, and after it the opponent plays with sound.
    if (result.heard[n].muted) {
      await studios[n].click('.battle-unmute', run.remaining());
      result.heard[n] = await pollUntil(run, `${n}: the opponent with sound`, () => studios[n].evaluate(() => window.onair.battle.opponentAudio()), (a) => a && !a.muted, 10000);
    }
  }

  run.step = 'a watch page of each stream shows both hosts';
  const watches = {};
  for (const n of ['ann', 'bob']) {
    const ctx = await chromium.newContext({ viewport: { width: 1280, height: 800 } });
    const page = await ctx.newPage(`watch-${n}`);
    await page.goto(`${base}/watch/${stream[n]}`, run.remaining(), 'domcontentloaded');
    const both = [users.ann.user.username, users.bob.user.username];
    await pollUntil(run, `${n}'s watch page decodes both hosts`, () => watchRoomSnapshot(page), (s) => s.sessionSlots >= 2 && both.every((u) => s.tiles.some((t) => t.host === u && t.framesDecoded > 0)), 40000);
    await wait(page, `${n}'s watch page: the battle is active`, () => window.onair.battle.snapshot().battle && window.onair.battle.snapshot().battle.state === 'active', null, 20000);
    watches[n] = page;
  }

  run.step = 'gifts land and both score bars follow';
  // Own/other as each page shows them: ann's page has ann left; bob's has bob left.
  const sends = [['ann', 'star'], ['bob', 'fireworks'], ['ann', 'star'], ['bob', 'star']];
  for (const [to, giftId] of sends) {
    const coins = await gift(stream[to], giftId);
    result.gifts.watch_ann[to === 'ann' ? 'own' : 'other'] += coins;
    result.gifts.watch_bob[to === 'bob' ? 'own' : 'other'] += coins;
    for (const n of ['ann', 'bob']) {
      const want = [result.gifts[`watch_${n}`].own, result.gifts[`watch_${n}`].other];
      await pollUntil(run, `${n}'s watch page shows ${want.join(' to ')}`, () => scoresOf(watches[n]), (s) => s[0] === want[0] && s[1] === want[1], 15000);
    }
  }
  for (const n of ['ann', 'bob']) {
    const snap = await watchRoomSnapshot(watches[n]);
    result[`watch_${n}`] = { session_slots: snap.sessionSlots, tiles: snap.tiles.map((t) => ({ host: t.host, name: t.name, box: t.box, framesDecoded: t.framesDecoded })), scores_seen: await scoresOf(watches[n]), bar_on_stage: await barOnStage(watches[n]) };
    result.studio[n] = (await battleOf(studios[n])).opponent;
  }
  run.step = 'screenshots mid-battle';
  await shots(studios.ann, 'studio-ann-mid');
  await shots(watches.bob, 'watch-bob-mid');

  run.step = 'the end: the winner banner, the opponent gone';
  fs.mkdirSync(args.control, { recursive: true });
  fs.writeFileSync(path.join(args.control, 'end'), 'end');
  for (const n of ['ann', 'bob']) {
    await wait(watches[n], `${n}'s watch page: the winner banner`, () => /wins/.test((document.querySelector('.battle-overlay .battle-banner') || {}).textContent || ''), null, 20000);
    result[`watch_${n}`].banner = await watches[n].evaluate(() => document.querySelector('.battle-overlay .battle-banner').textContent);
    const own = users[n].user.username;
    const after = await pollUntil(run, `${n}'s watch page: only its own host left`, () => watchRoomSnapshot(watches[n]), (s) => s.tiles.length === 1 && s.tiles[0].host === own, 20000);
    result[`watch_${n}`].tiles_after = after.tiles.map((t) => t.host);
  }
  await wait(studios.ann, 'ann: the opponent view closed', () => !window.onair.battle.snapshot().opponent.stream, null, 20000);
  run.step = 'screenshots at the end';
  await shots(studios.ann, 'studio-ann-end');
  await shots(watches.bob, 'watch-bob-end');
  await run.succeed(result);
}

main().catch((err) => run.fail(err));
