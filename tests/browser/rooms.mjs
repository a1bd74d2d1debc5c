#!/usr/bin/env node
// Co-host rooms through the pages (issue 12), in headless Chromium and Firefox:
//
//   ann:     the primary host, live from the studio (fake camera, VP8); invites
//            bob from the studio's invite box;
//   bob:     accepts in his studio and goes live into ann's room; cat and dee
//            are invited and accept through the API, and go live too;
//   mesh:    four studios, topology `auto`: every pair connects directly,
//            read from each page's RTCPeerConnection stats (connected,
//            frames decoded), and each tile shows its host through it;
//   sfu:     eve joins as the fifth: every studio switches to the SFU (its
//            host WHEP receives the four others);
//   viewer:  a Chromium watch page opens WHEP with slots and decodes all five;
//   layout:  ann picks spotlight on cat, then grid, in her studio; the watch
//            page follows; ann mutes bob's microphone: his tile shows it;
//   firefox: a Firefox watch page decodes all five;
//   ask:     fay, a host not in the room, asks to join from its watch page;
//            ann's studio lists the request and approves it; fay's page
//            says so and offers to go live;
//   shots:   studio and watch page at 1280x800 and 390x844.
//
//   node tests/browser/rooms.mjs --base URL [--screenshots DIR] [--timeout-ms MS] [--no-firefox] [--quick]
//
// --quick: ann and bob only (a mesh of two, no switch to the SFU), then the
// watch pages (Chromium desktop and phone, Firefox), layout and mute.
//
// Prints one JSON line: {"ok":true, ...} or {"ok":false,"step","error"} (exit 1).

import { Run, scriptArgs, waitOn, shotTo, apiClient, loggedInContext, pollUntil, watchRoomSnapshot } from './harness.mjs';
import { launchChromium, launchFirefox } from './browsers.mjs';

const args = scriptArgs({
  spec: { base: 'string', screenshots: 'string', 'timeout-ms': 'number', 'no-firefox': 'bool', quick: 'bool' },
  usage: 'usage: node rooms.mjs --base URL [--screenshots DIR] [--timeout-ms MS] [--no-firefox] [--quick: two hosts, no SFU switch]',
  defaults: { timeoutMs: 300000 },
  required: ['base'],
});
const base = args.base.replace(/\/+$/, '');
const run = new Run(args).arm();
const { call, register } = apiClient(base);
const tag = `${Date.now().toString(36).slice(-4)}${Math.floor(Math.random() * 900 + 100)}`;
const result = { ok: true };
const wait = (page, what, fn, arg = null, ms = 30000) => waitOn(run, page, what, fn, arg, ms);
const shot = (page, name) => shotTo(args.screenshots, page, name);

const studioRoom = (page) => page.evaluate(() => window.onair.room.snapshot());
/** The watch page's room, each slot's decoded frames from getStats (see harness.mjs). */
const watchRoom = watchRoomSnapshot;

/** Every other host is shown in the studio through `via` (mesh|sfu), with frames. */
function studioSees(others, via) {
  return (snap) =>
    others.every((x) => snap.via[x] === via) &&
    (via !== 'mesh' || others.every((x) => snap.pairs[x] && snap.pairs[x].state === 'connected' && snap.pairs[x].framesReceived > 0)) &&
    (via !== 'sfu' || (snap.whep && snap.whep.state === 'connected' && snap.whep.framesBySlot.filter((f) => f > 0).length >= others.length));
}

/** Polls a page's room snapshot (studio or watch) until `pred` holds. */
function waitRoom(page, what, kind, pred, ms = 40000) {
  return pollUntil(run, what, () => (kind === 'studio' ? studioRoom(page) : watchRoom(page)), pred, ms);
}

/** The watch page decodes every one of `hosts` in its own tile. */
function watchDecodes(hosts) {
  return (s) => hosts.every((x) => s.tiles.some((t) => t.host === x && t.videoWidth > 0 && t.framesDecoded > 0));
}

async function main() {
  run.step = 'accounts';
  const names = ['ann', 'bob', 'cat', 'dee', 'eve'];
  const users = {};
  const keys = {};
  for (const n of [...names, 'fay']) {
    users[n] = await register(`${n}_${tag}`, 'host', `${n[0].toUpperCase()}${n.slice(1)} ${tag.slice(0, 3)}`);
    keys[n] = await call('POST', '/api/me/stream-keys', users[n].access_token, { label: 'studio' });
  }
  const u = (n) => users[n].user.username;

  run.step = 'launch';
  const chromium = await launchChromium(run);
  const studios = {};
  const openStudio = async (n, viewport = { width: 1280, height: 800 }) => {
    const ctx = await loggedInContext(chromium, users[n], { viewport }, { [keys[n].id]: keys[n].key });
    const page = await ctx.newPage(`studio-${n}`);
    // A small camera (the studio's low-bandwidth setting): five studios
    // encode and decode on one machine.
    await page.goto(`${base}/publish?key=${keys[n].id}&camera=low`, run.remaining());
    await wait(page, `${n}: the room panel`, () => window.onair && window.onair.room && !document.querySelector('#room-panel').hidden);
    studios[n] = page;
    return page;
  };
  const goLive = async (n) => {
    const page = studios[n];
    await wait(page, `${n}: Go live enabled`, () => !document.querySelector('#go-live').disabled);
    await page.click('#go-live', run.remaining());
    await wait(page, `${n}: live`, () => window.onair.state === 'live' && window.onair.room.stream != null, null, 40000);
  };

  run.step = 'ann goes live and invites bob from her studio';
  await openStudio('ann');
  await openStudio('bob');
  await goLive('ann');
  const sid = await studios.ann.evaluate(() => window.onair.room.stream);
  result.stream = sid;
  await wait(studios.ann, 'ann: her studio may invite', () => !document.querySelector('#room-panel .room-invite').hidden);
  await studios.ann.fill('#room-panel .room-invite input', u('bob'), run.remaining());
  await studios.ann.click('#room-panel .room-invite button[type=submit]', run.remaining());

  run.step = 'bob accepts in his studio and goes live into the room';
  await wait(studios.bob, 'bob: the invitation shows', () => !document.querySelector('#room-panel .room-invitation').hidden);
  result.invitation_text = await studios.bob.evaluate(() => document.querySelector('#room-panel .room-invitation p').textContent);
  await studios.bob.click('#room-panel .room-accept', run.remaining());
  await wait(studios.bob, 'bob: the invitation answered', () => document.querySelector('#room-panel .room-invitation').hidden);
  await goLive('bob');
  result.bob_stream = await studios.bob.evaluate(() => window.onair.room.stream);

  run.step = 'cat and dee join';
  const four = args.quick ? ['ann', 'bob'] : ['ann', 'bob', 'cat', 'dee'];
  for (const n of four.slice(2)) {
    await call('POST', `/api/streams/${sid}/invitations`, users.ann.access_token, { user: u(n) });
    await call('POST', `/api/streams/${sid}/invitations/accept`, users[n].access_token, {});
    await openStudio(n);
    await goLive(n);
  }

  run.step = 'four hosts: a mesh, every pair connected and receiving frames';
  for (const n of four) {
    const others = four.filter((x) => x !== n).map(u);
    await waitRoom(studios[n], `${n}: a mesh with the three others`, 'studio', (s) => s.topology === 'mesh' && !s.whep && studioSees(others, 'mesh')(s), 120000);
  }
  result.mesh = {};
  for (const n of four) {
    const s = await studioRoom(studios[n]);
    result.mesh[n] = { topology: s.topology, whep: s.whep, pairs: s.pairs, signalErrors: s.signalErrors };
  }
  await shot(studios.ann, 'studio-desktop-mesh');

  if (!args.quick) {
  run.step = 'eve, the fifth host: everyone through the SFU';
  await call('POST', `/api/streams/${sid}/invitations`, users.ann.access_token, { user: u('eve') });
  await call('POST', `/api/streams/${sid}/invitations/accept`, users.eve.access_token, {});
  await openStudio('eve');
  await goLive('eve');
  for (const n of names) {
    const others = names.filter((x) => x !== n).map(u);
    await waitRoom(studios[n], `${n}: sfu, the four others through its host WHEP`, 'studio', (s) => s.topology === 'sfu' && Object.keys(s.pairs).length === 0 && studioSees(others, 'sfu')(s), 120000);
  }
  result.sfu = {};
  for (const n of names) {
    const s = await studioRoom(studios[n]);
    result.sfu[n] = { topology: s.topology, via: s.via, whep: s.whep, pairs: Object.keys(s.pairs).length };
  }
  }
  const all = args.quick ? four : names;
  run.step = 'a Chromium watch page decodes every host';
  const viewerCtx = await chromium.newContext({ viewport: { width: 1280, height: 800 } });
  const watch = await viewerCtx.newPage('watch-desktop');
  await watch.goto(`${base}/watch/${sid}`, run.remaining(), 'domcontentloaded');
  run.step = 'a Chromium watch page decodes every host (opened)';
  await waitRoom(watch, 'the watch page decodes every host', 'watch', watchDecodes(all.map(u)), 90000);
  result.watch_five = await watchRoom(watch);

  run.step = 'layout: spotlight on cat, from ann’s studio';
  await studios.ann.select('#room-panel .room-layout select:nth-of-type(1)', 'spotlight', run.remaining());
  const star = args.quick ? 'bob' : 'cat';
  await studios.ann.select('#room-panel .room-layout select:nth-of-type(2)', u(star), run.remaining());
  await waitRoom(watch, 'the watch page shows cat alone', 'watch', (s) => s.layout.kind === 'spotlight' && s.layout.focus === u(star) && s.tiles.filter((t) => t.box.w > 0).length === 1 && s.tiles.some((t) => t.role === 'focus' && t.host === u(star) && t.box.w > 0));
  result.watch_spotlight = await watchRoom(watch);
  await shot(watch, 'watch-desktop-spotlight');

  run.step = 'layout: back to grid; ann mutes bob';
  await studios.ann.select('#room-panel .room-layout select:nth-of-type(1)', 'grid', run.remaining());
  await waitRoom(watch, 'the watch page shows a grid of five', 'watch', (s) => s.layout.kind === 'grid' && s.tiles.filter((t) => t.box.w > 0).length === all.length);
  await studios.ann.click(`#room-panel .room-host[data-user="${u('bob')}"] .room-mute-audio`, run.remaining());
  await waitRoom(watch, 'bob’s tile is marked muted', 'watch', (s) => s.tiles.some((t) => t.host === u('bob') && t.mutedBadge));
  result.watch_muted = await watchRoom(watch);
  await shot(watch, 'watch-desktop-grid');
  await shot(studios.ann, 'studio-desktop');
  // One watch page at a time from here (the machine has two cores).
  await watch.raw.close();

  run.step = 'phone: open the watch page';
  const phoneCtx = await chromium.newContext({ viewport: { width: 390, height: 844 }, isMobile: true, hasTouch: true, deviceScaleFactor: 2 });
  const phone = await phoneCtx.newPage('watch-phone');
  await phone.goto(`${base}/watch/${sid}`, run.remaining(), 'domcontentloaded');
  run.step = 'phone: the watch page decodes every host';
  await waitRoom(phone, 'the phone decodes every host', 'watch', watchDecodes(all.map(u)), 60000);
  result.phone = await watchRoom(phone);
  run.step = 'phone: screenshots';
  await shot(phone, 'watch-phone-grid');
  await studios.ann.raw.setViewportSize({ width: 390, height: 844 });
  await shot(studios.ann, 'studio-phone');
  await studios.ann.raw.setViewportSize({ width: 1280, height: 800 });
  run.step = 'phone: close';
  await phone.raw.close();

  if (!args.noFirefox) {
    run.step = 'a Firefox watch page decodes the five';
    const firefox = await launchFirefox(run);
    const fx = await firefox.newPage('watch-firefox');
    await fx.goto(`${base}/watch/${sid}`, run.remaining(), 'domcontentloaded');
    await waitRoom(fx, 'Firefox decodes every host', 'watch', watchDecodes(all.map(u)), 60000);
    result.firefox = await watchRoom(fx);
    await shot(fx, 'watch-firefox');
  }
  run.step = 'fay asks to join from the watch page; ann approves in her studio';
  const fayCtx = await loggedInContext(chromium, users.fay, { viewport: { width: 1280, height: 800 } });
  const fay = await fayCtx.newPage('watch-fay');
  await fay.goto(`${base}/watch/${sid}`, run.remaining(), 'domcontentloaded');
  await wait(fay, 'fay: Ask to join shows', () => {
    const b = document.querySelector('.room-ask');
    return b && !b.hidden && !b.disabled;
  });
  result.ask_before = await fay.evaluate(() => document.querySelector('.room-ask').textContent);
  await fay.click('.room-ask', run.remaining());
  await wait(fay, 'fay: the request is pending', () => document.querySelector('.room-ask').dataset.state === 'pending');
  result.ask_pending = await fay.evaluate(() => ({ text: document.querySelector('.room-ask').textContent, disabled: document.querySelector('.room-ask').disabled }));
  await shot(fay, 'watch-ask-pending');
  await fay.raw.setViewportSize({ width: 390, height: 844 });
  await shot(fay, 'watch-ask-pending-phone');
  const fayName = u('fay');
  await wait(studios.ann, 'ann: fay’s request shows', (who) => Boolean(document.querySelector(`#room-panel .room-request[data-user="${who}"]`)), fayName);
  await studios.ann.click(`#room-panel .room-request[data-user="${fayName}"] .btn-primary`, run.remaining());
  await wait(fay, 'fay: approved, go live', () => {
    const go = document.querySelector('.room-ask-go');
    return go && !go.hidden && document.querySelector('.room-ask').hidden;
  });
  result.ask_after = await fay.evaluate(() => ({ state: document.querySelector('.room-ask').dataset.state, go: document.querySelector('.room-ask-go').textContent }));
  result.ask_hosts = (await call('GET', `/api/streams/${sid}/hosts`, null)).map((x) => x.user);
  await fay.raw.close();

  result.hosts = all.map(u);
  result.elapsed_ms = Date.now() - run.started;
  await run.succeed(result);
}

main().catch((err) => run.fail(err));
