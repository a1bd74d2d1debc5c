#!/usr/bin/env node
// End-to-end story of OnAir's platform pages in headless Chromium, driven
// through the UI like people would (clicks and typing, no API calls):
//
//   host:   registers on /login (as a host), schedules a stream ~10 minutes
//           ahead on /dashboard, makes a stream key, presses Go live, opens
//           the studio from the dashboard, picks that key and publishes the
//           fake camera over WHIP;
//   viewer: (another browser context) registers as a viewer, finds the
//           stream under "Live now" on /, opens it, sees video decode and a
//           real viewer count of 1 (the host's pages do not count), chats;
//   host:   sees the message on the dashboard and deletes it; the viewer
//           sees it go; the viewer likes the stream and both pages show 1;
//           then the host ends it and the viewer sees the end, the host the
//           final figures.
//
//   node tests/browser/platform.mjs --base http://127.0.0.1:8080 \
//        [--screenshots DIR] [--timeout-ms 120000]
//
// Prints exactly one JSON line on stdout:
//   {"ok":true,"viewer_count":1,"frames_decoded":N,"chat_seen_by_host":true,
//    "chat_deleted_seen":true,"likes":1,...}
// or {"ok":false,"step":"...","error":"..."} (exit 1) with page logs on stderr.

import path from 'node:path';
import fs from 'node:fs';
import { Run, scriptArgs, sampleVideo, pollUntil, sleep } from './harness.mjs';
import { launchChromium } from './browsers.mjs';

const USAGE = 'usage: node platform.mjs --base URL [--screenshots DIR] [--timeout-ms MS]';
const SPEC = { base: 'string', screenshots: 'string', 'timeout-ms': 'number' };

const args = scriptArgs({ spec: SPEC, usage: USAGE, defaults: { timeoutMs: 120000 }, required: ['base'] });
const base = args.base.replace(/\/+$/, '');
const run = new Run(args).arm();

const tag = `${Date.now().toString(36).slice(-4)}${Math.floor(Math.random() * 900 + 100)}`;
const PASSWORD = 'correct horse battery';

/** Waits for `fn(arg)` in the page; the error says what was awaited. */
async function waitFor(page, what, fn, arg = null, ms = 20000) {
  try {
    await page.waitFor(fn, arg, Math.min(ms, run.remaining()));
  } catch (err) {
    throw new Error(`${what}: ${err.message.split('\n')[0]}`);
  }
}

/** The page's window.onair field (a JSON copy). */
const onair = (page, field) => page.evaluate((f) => JSON.parse(JSON.stringify(window.onair ? window.onair[f] ?? null : null)), field);

/** A screenshot of one page under a name of our own (best effort). */
async function shot(page, name) {
  if (!args.screenshots) return;
  try {
    fs.mkdirSync(args.screenshots, { recursive: true });
    await page.screenshot(path.join(args.screenshots, `${name}.png`));
  } catch (err) {
    run.log(`[platform] screenshot ${name} failed: ${err.message}`);
  }
}

/** Opens a page; a 4xx/5xx answer (e.g. a server without the page's route) fails the step at once. */
async function open(page, pathAndQuery) {
  const where = pathAndQuery.split('?')[0];
  let resp;
  try {
    resp = await page.goto(`${base}${pathAndQuery}`, run.remaining());
  } catch (err) {
    // Chromium refuses an empty error page outright.
    if (/ERR_HTTP_RESPONSE_CODE_FAILURE/.test(err.message)) throw new Error(`GET ${where} answered an HTTP error (does the server route this page?)`);
    throw err;
  }
  if (resp && resp.status() >= 400) throw new Error(`GET ${where} answered HTTP ${resp.status()} (does the server route this page?)`);
}

/** Registers on /login through the form; lands on `next`. */
async function register(page, { username, role, next }) {
  await open(page, `/login?next=${encodeURIComponent(next)}`);
  await waitFor(page, 'login page ready', () => window.onair && window.onair.page === 'login');
  await page.click('#tab-register', run.remaining());
  if (role === 'host') await page.click('#role-host-option', run.remaining());
  await page.fill('#reg-username', username, run.remaining());
  await page.fill('#reg-display-name', `${role === 'host' ? 'Host' : 'Viewer'} ${tag}`, run.remaining());
  await page.fill('#reg-email', `${username}@example.test`, run.remaining());
  await page.fill('#reg-password', PASSWORD, run.remaining());
  await page.click('#register-submit', run.remaining());
  await waitFor(
    page,
    `registered and sent on to ${next}`,
    (want) => window.location.pathname === want && window.onair && window.onair.page !== 'login',
    next,
  );
}

/** In the studio: picks the host's key `keyId` and clicks Go live; waits until live (or an error). */
async function studioGoesLive(studio, keyId) {
  run.step = 'pick the key in the studio';
  await waitFor(studio, 'the key picker lists the key', (id) => {
    const o = document.querySelector(`#key-select option[value="${id}"]`);
    return !document.querySelector('#key-picker').hidden && o && !o.disabled;
  }, String(keyId));
  await studio.select('#key-select', String(keyId), run.remaining());
  run.step = 'publish';
  await waitFor(studio, 'Go live enabled (camera open, key set)', () => !document.querySelector('#go-live').disabled);
  await studio.click('#go-live', run.remaining());
  await waitFor(studio, 'the studio is live', () => window.onair.state === 'live' || window.onair.state === 'error', null, 30000);
}

async function main() {
  run.step = 'launch';
  const chromium = await launchChromium(run);

  // ------------------------------------------------------------ host: account and dashboard
  run.step = 'host registers';
  const hostCtx = await chromium.newContext();
  const dash = await hostCtx.newPage('dashboard');
  const hostName = `host_${tag}`;
  await register(dash, { username: hostName, role: 'host', next: '/dashboard' });
  await waitFor(dash, 'dashboard loaded', () => window.onair.page === 'dashboard' && window.onair.loaded && window.onair.connected);

  run.step = 'schedule a stream';
  const title = `Platform test ${tag}`;
  await dash.fill('#new-title', title, run.remaining());
  await dash.click('label:has(#when-at)', run.remaining());
  // Ten minutes from now, in the browser's own time (a datetime-local field).
  const at = await dash.evaluate(() => {
    const d = new Date(Date.now() + 10 * 60 * 1000);
    const p = (n) => String(n).padStart(2, '0');
    return `${d.getFullYear()}-${p(d.getMonth() + 1)}-${p(d.getDate())}T${p(d.getHours())}:${p(d.getMinutes())}`;
  });
  await dash.fill('#new-at', at, run.remaining());
  await dash.click('#new-submit', run.remaining());
  await waitFor(dash, 'the scheduled stream is listed', (t) => window.onair.streams.some((s) => s.title === t && s.state === 'scheduled'), title);
  const scheduled = (await onair(dash, 'streams')).find((s) => s.title === title);
  const streamId = scheduled.id;
  const startsIn = (new Date(scheduled.scheduled_at).getTime() - Date.now()) / 60000;
  if (!(startsIn > 8 && startsIn < 11)) throw new Error(`scheduled ${startsIn.toFixed(1)} min ahead, not ~10: ${scheduled.scheduled_at}`);
  run.note(`scheduled stream ${streamId} at ${scheduled.scheduled_at}`);

  run.step = 'make a stream key';
  await dash.fill('#key-label', 'Browser test', run.remaining());
  await dash.click('#key-create', run.remaining());
  await waitFor(dash, 'the new key is shown once', () => {
    const box = document.querySelector('#key-secret-box');
    return box && !box.hidden && document.querySelector('#key-secret').value.startsWith('sk_') && window.onair.newKey;
  });
  const key = await onair(dash, 'newKey');
  run.note(`made key ${key.id} (${key.prefix}…)`);

  run.step = 'go live from the dashboard';
  await dash.click(`.stream-row[data-stream-id="${streamId}"] button[data-action="start"]`, run.remaining());
  await waitFor(dash, 'the stream is live, waiting for video', (id) => window.onair.liveId === id && window.onair.live.media_state === 'waiting', streamId);

  // ------------------------------------------------------------ host: the studio publishes
  run.step = 'open the studio';
  const [popup] = await Promise.all([hostCtx.raw.waitForEvent('page', { timeout: run.remaining() }), dash.click('#open-studio', run.remaining())]);
  const studio = hostCtx.adopt('publish', popup);
  await popup.waitForLoadState('load', { timeout: run.remaining() });
  await waitFor(studio, 'studio ready', () => window.onair && window.onair.page === 'publish');

  await studioGoesLive(studio, key.id);
  const pub = await studio.evaluate(() => ({ state: window.onair.state, stream: window.onair.stream, error: window.onair.error }));
  if (pub.state !== 'live') throw new Error(`studio ended in ${pub.state}: ${pub.error && pub.error.message}`);
  if (pub.stream !== String(streamId)) throw new Error(`the publish went live on stream ${pub.stream}, not the started ${streamId}`);
  await waitFor(dash, 'the dashboard sees the video arrive', () => window.onair.live.media_state === 'receiving');

  // ------------------------------------------------------------ viewer: finds it and watches
  run.step = 'viewer registers';
  const viewerCtx = await chromium.newContext();
  const viewer = await viewerCtx.newPage('viewer');
  await register(viewer, { username: `viewer_${tag}`, role: 'viewer', next: '/' });

  run.step = 'directory shows the stream live';
  await waitFor(viewer, 'directory ready', () => window.onair.page === 'directory' && window.onair.loaded);
  const card = `#live-grid .stream-card[data-stream-id="${streamId}"]`;
  await waitFor(viewer, 'the stream is under Live now', (sel) => !!document.querySelector(sel), card);
  await shot(viewer, 'directory');

  run.step = 'open the watch page';
  await viewer.click(`${card} .stream-title`, run.remaining());
  await waitFor(viewer, 'watch page ready', () => window.onair && window.onair.page === 'watch');

  run.step = 'video decodes';
  const frames = await pollUntil(run, 'decoded frames', () => sampleVideo(viewer), (s) => s.framesDecoded > 0 && s.videoWidth > 0, run.remaining());
  run.note(`viewer decodes: ${JSON.stringify(frames)}`);

  run.step = 'real viewer count';
  // From the server's viewer_count event: the page and its WebRTC session are one viewer; the host's pages none.
  await waitFor(viewer, 'viewer count 1 from viewer_count', () => window.onair.viewerCountSource === 'viewer_count' && window.onair.viewerCount === 1, null, 15000);
  await sleep(1500);
  const watchState = await viewer.evaluate(() => ({ n: window.onair.viewerCount, src: window.onair.viewerCountSource, shown: document.querySelector('#viewer-count').textContent }));
  if (watchState.n !== 1 || watchState.shown !== '1') throw new Error(`viewer count moved off 1: ${JSON.stringify(watchState)}`);
  await waitFor(dash, 'the dashboard shows 1 watching', () => window.onair.live.viewers === 1 && document.querySelector('#fig-viewers').textContent === '1');
  await waitFor(studio, 'the studio (health socket) shows 1 viewer', () => window.onair.viewerCount === 1 && window.onair.healthConnected);

  run.step = 'viewer chats';
  const text = `Hello from the viewer ${tag}`;
  await viewer.fill('#chat-input', text, run.remaining());
  await viewer.click('#chat-send', run.remaining());
  await waitFor(viewer, 'the message shows in the viewer’s chat', (t) => window.onair.chat.some((m) => m.text === t), text);

  run.step = 'host sees the chat';
  await waitFor(
    dash,
    'the message shows in the dashboard chat',
    (t) => [...document.querySelectorAll('#chat-list .msg[data-id]')].some((el) => el.textContent.includes(t)),
    text,
  );
  const msg = (await onair(dash, 'chat')).find((m) => m.text === text);
  await waitFor(dash, 'chat count 1 on the dashboard', () => document.querySelector('#fig-chat').textContent === '1');

  run.step = 'host deletes the message';
  await dash.click(`#chat-list .msg[data-id="${msg.id}"] button[data-action="delete"]`, run.remaining());
  await waitFor(
    viewer,
    'the message disappears from the viewer’s chat',
    ({ t, id }) =>
      window.onair.chat.some((m) => m.id === id && m.deleted) &&
      ![...document.querySelectorAll('#chat-list .msg')].some((el) => el.textContent.includes(t)),
    { t: text, id: msg.id },
  );
  await waitFor(dash, 'the dashboard marks it deleted', (id) => window.onair.chat.some((m) => m.id === id && m.deleted), msg.id);

  run.step = 'viewer likes';
  await viewer.click('#like', run.remaining());
  await waitFor(viewer, 'the like count rises on the watch page', () => window.onair.likes === 1 && window.onair.likesSource === 'likes' && document.querySelector('#like-count').textContent === '1');
  await waitFor(dash, 'the like count rises on the dashboard', () => window.onair.live.likes === 1 && document.querySelector('#fig-likes').textContent === '1');

  // ------------------------------------------------------------ the studio reloads mid-stream
  // Its video drops (the page's pagehide ends its WHIP session) and the host
  // goes live again within the reconnect grace: the watch page shows
  // "Reconnecting" and then plays on, on the connection it already had.
  run.step = 'studio reloads';
  const beforeDrop = await viewer.evaluate(() => ({ session: window.onair.session, joins: window.onair.whepJoins }));
  await viewer.evaluate(() => {
    window.__sawReconnecting = false;
    window.__reconnectWatch = setInterval(() => { if (window.onair.status === 'reconnecting') window.__sawReconnecting = true; }, 50);
  });
  await popup.reload({ waitUntil: 'load', timeout: run.remaining() });
  await waitFor(studio, 'studio ready again', () => window.onair && window.onair.page === 'publish');
  await waitFor(viewer, 'the viewer sees the host reconnecting', () => window.__sawReconnecting === true, null, 15000);
  await viewer.evaluate(() => clearInterval(window.__reconnectWatch));
  await studioGoesLive(studio, key.id);
  if ((await onair(studio, 'state')) !== 'live') throw new Error('the studio did not go live again');
  await waitFor(dash, 'the dashboard sees the video again', () => window.onair.live.media_state === 'receiving');
  run.step = 'the viewer plays on';
  const framesBefore = (await sampleVideo(viewer)).framesDecoded;
  await waitFor(viewer, 'the watch page is live again', () => window.onair.phase === 'live' && window.onair.status === 'live');
  const resumed = await pollUntil(run, 'frames decode again', () => sampleVideo(viewer), (v) => v.framesDecoded > framesBefore + 30, 20000);
  const afterDrop = await viewer.evaluate(() => ({ session: window.onair.session, joins: window.onair.whepJoins, overlay: !document.querySelector('#overlay') || document.querySelector('#overlay').hidden }));
  run.note(`viewer through the reconnect: ${JSON.stringify({ beforeDrop, afterDrop, framesBefore, framesAfter: resumed.framesDecoded })}`);

  // ------------------------------------------------------------ the studio's connection drops
  // The server loses the studio's session (as when the host's network
  // drops): the studio notices, publishes again by itself, and the viewer
  // plays on, still on its one connection.
  run.step = 'studio connection drops';
  const drop = await studio.evaluate(() => ({ location: window.onair.location, key: document.querySelector('#stream-key').value, started: window.onair.startedAt }));
  const del = await fetch(drop.location, { method: 'DELETE', headers: { Authorization: `Bearer ${drop.key}` } });
  if (del.status !== 200) throw new Error(`DELETE of the studio's session: ${del.status}`);
  await waitFor(studio, 'the studio is back on air by itself', () => window.onair.reconnects === 1 && window.onair.state === 'live', null, 30000);
  await waitFor(dash, 'the dashboard sees the video again', () => window.onair.live.media_state === 'receiving');
  const framesBeforeDrop = (await sampleVideo(viewer)).framesDecoded;
  const afterBlip = await pollUntil(run, 'frames decode after the drop', () => sampleVideo(viewer), (v) => v.framesDecoded > framesBeforeDrop + 30, 20000);
  const blip = await viewer.evaluate(() => ({ session: window.onair.session, joins: window.onair.whepJoins, phase: window.onair.phase }));
  const studioAfter = await studio.evaluate(() => ({ location: window.onair.location, started: window.onair.startedAt, clock: document.querySelector('#status-time') && document.querySelector('#status-time').textContent }));
  run.note(`through the studio's drop: ${JSON.stringify({ drop: { ...drop, key: undefined }, studioAfter, blip, framesBeforeDrop, framesAfter: afterBlip.framesDecoded })}`);

  run.step = 'final state';
  const final = await sampleVideo(viewer);
  const result = {
    ok: true,
    stream_id: streamId,
    viewer_count: await onair(viewer, 'viewerCount'),
    viewer_count_source: await onair(viewer, 'viewerCountSource'),
    dashboard_viewer_count: (await onair(dash, 'live')).viewers,
    studio_viewer_count: await onair(studio, 'viewerCount'),
    frames_decoded: final.framesDecoded,
    chat_seen_by_host: true,
    chat_deleted_seen: true,
    likes: await onair(viewer, 'likes'),
    dashboard_likes: (await onair(dash, 'live')).likes,
    reconnect: {
      saw_reconnecting: true,
      session_before: beforeDrop.session,
      session_after: afterDrop.session,
      whep_joins_before: beforeDrop.joins,
      whep_joins_after: afterDrop.joins,
      overlay_hidden: afterDrop.overlay,
      frames_before: framesBefore,
      frames_after: resumed.framesDecoded,
    },
    studio_drop: {
      studio_reconnects: await onair(studio, 'reconnects'),
      new_session: studioAfter.location !== drop.location,
      started_at_kept: studioAfter.started === drop.started,
      viewer_session: blip.session,
      viewer_whep_joins: blip.joins,
      viewer_phase: blip.phase,
      frames_before: framesBeforeDrop,
      frames_after: afterBlip.framesDecoded,
    },
  };

  run.step = 'screenshots';
  await run.screenshots();
  if (args.screenshots) {
    for (const [name, page] of [['viewer', viewer], ['dashboard', dash]]) {
      await page.raw.setViewportSize({ width: 390, height: 844 });
      await sleep(300);
      await shot(page, `${name}-phone`);
      await page.raw.setViewportSize({ width: 1366, height: 900 });
    }
  }

  run.step = 'host ends the stream';
  await dash.click('#end-save', run.remaining());
  await dash.click('#end-save', run.remaining()); // confirm
  await waitFor(viewer, 'the viewer sees the end', () => window.onair.phase === 'ended' && window.onair.status === 'ended');
  await waitFor(dash, 'the dashboard shows the final figures', (id) => window.onair.summaryStreamId === id && !document.querySelector('#summary-panel').hidden, streamId);
  const summary = await onair(dash, 'summary');
  result.ended_seen_by_viewer = true;
  result.summary = summary;
  await run.screenshots('-ended');
  await run.succeed(result);
}

main().catch((err) => run.fail(err));
