#!/usr/bin/env node
// Studio filters in headless Chromium (issue 17), fake camera:
//
//   host:   goes live from the studio (1280x720, simulcast), then picks the
//           Warm colour look in the filter tray, then switches to Mono;
//   viewer: on the watch page, decodes the stream throughout; the mean
//           colour of its decoded frames is measured unfiltered, with Warm
//           and with Mono (the Rust side compares them with the LUTs);
//   both:   the WHIP session stays the same and the viewer keeps decoding
//           across the switches (one replaceTrack, at the first filter);
//   tray:   screenshots at 1280x800 and 390x844;
//   bench:  with --bench, render cost per frame and the published frame
//           rate (outbound "f" layer) per filter family.
//
// With --person FILE.y4m the camera plays that picture of a person and the
// background and face effects are tried instead (`personMain`):
//   the viewer's decoded frames, unfiltered, with background blur, through
//   the pipeline with nothing on, with the studio backdrop (bought with
//   coins from the development provider) and with lip makeup: the detail
//   (edge energy) outside and inside the model's person mask, the
//   background's distance from the backdrop image, the lips' colour;
//   the same WHIP session and the viewer decoding throughout; the tray with
//   blur on at 1280x800 and 390x844; with --bench, the families' costs.
//
//   node tests/browser/filters.mjs --base URL [--screenshots DIR] [--timeout-ms MS] [--bench] [--person FILE.y4m]
//
// Prints one JSON line: {"ok":true, ...} or {"ok":false,"step","error"} (exit 1).

import path from 'node:path';
import fs from 'node:fs';
import { Run, scriptArgs, sleep } from './harness.mjs';
import { launchChromium } from './browsers.mjs';

const args = scriptArgs({
  spec: { base: 'string', screenshots: 'string', 'timeout-ms': 'number', bench: 'bool', person: 'string' },
  usage: 'usage: node filters.mjs --base URL [--screenshots DIR] [--timeout-ms MS] [--bench] [--person FILE.y4m]',
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

/** Mean colour of the viewer's decoded frames: `n` frames ~120 ms apart, drawn at 160x90. */
function meanColour(page, n = 10) {
  return page.evaluate(async (n) => {
    const v = document.querySelector('#video') || document.querySelector('video');
    const c = document.createElement('canvas');
    c.width = 160;
    c.height = 90;
    const ctx = c.getContext('2d', { willReadFrequently: true });
    const sum = [0, 0, 0];
    for (let i = 0; i < n; i++) {
      ctx.drawImage(v, 0, 0, 160, 90);
      const d = ctx.getImageData(0, 0, 160, 90).data;
      for (let p = 0; p < d.length; p += 4) {
        sum[0] += d[p];
        sum[1] += d[p + 1];
        sum[2] += d[p + 2];
      }
      await new Promise((r) => setTimeout(r, 120));
    }
    return sum.map((s) => s / (n * 160 * 90));
  }, n);
}

const decoded = (page) =>
  page.evaluate(async () => {
    const pc = window.onair && window.onair.pc;
    if (!pc) return 0;
    let n = 0;
    (await pc.getStats()).forEach((s) => {
      if (s.type === 'inbound-rtp' && s.kind === 'video') n = Math.max(n, s.framesDecoded || 0);
    });
    return n;
  });

const studioState = (page) =>
  page.evaluate(() => ({ session: window.onair.session, state: window.onair.state, swaps: window.onair.trackSwaps || 0, filters: window.onair.filters.state(), gpu: window.onair.filters.pipeline.renderer.gpu || null }));

/** Picks a filter in the tray: its tab, then its tile. */
async function pick(studio, tab, id) {
  await studio.click(`.filter-tab[data-tab="${tab}"]`, run.remaining());
  await studio.click(`.filter-tile[data-id="${id}"]`, run.remaining());
  await waitFor(studio, `${id} in the stack`, (id) => window.onair.filters.state().stack.some((e) => e.id === id), id);
}

/** Waits until the viewer's mean colour settles (two readings close), returns it. */
async function settled(watch, what) {
  let last = await meanColour(watch, 6);
  for (let i = 0; i < 12; i++) {
    const now = await meanColour(watch, 6);
    if (now.every((x, k) => Math.abs(x - last[k]) < 2.5)) return now;
    last = now;
  }
  throw new Error(`${what}: the viewer's colour never settled (${last})`);
}

/** Outbound frame rate of each simulcast layer, over ~4 s. */
async function publishedFps(studio) {
  const read = () =>
    studio.evaluate(async () => {
      const frames = {};
      (await window.onair.pc.getStats()).forEach((s) => {
        if (s.type === 'outbound-rtp' && s.kind === 'video') frames[s.rid || 'f'] = s.framesEncoded || 0;
      });
      return { frames, t: performance.now() };
    });
  const a = await read();
  await sleep(4000);
  const b = await read();
  const out = {};
  for (const rid of Object.keys(b.frames)) out[rid] = Math.round((((b.frames[rid] - (a.frames[rid] || 0)) * 1000) / (b.t - a.t)) * 10) / 10;
  return out;
}

/** The studio, opened on /publish: waits for the tray, goes live. */
async function goLive(studio) {
  await waitFor(studio, 'the tray lists the catalogue', () => window.onair.filters && window.onair.filters.state().catalogue >= 30);
  await waitFor(studio, 'Go live enabled', () => !document.querySelector('#go-live').disabled);
  await studio.click('#go-live', run.remaining());
  await waitFor(studio, 'the studio is live', () => window.onair.state === 'live', null, 30000);
}

/**
 * A viewer's watch page of `host`, playing the middle layer (640x360):
 * under load the encoder pauses the top layer now and then, and a viewer
 * held on it would see a still picture.
 */
async function watchMiddleLayer(chromium, host) {
  const viewerCtx = await chromium.newContext({ viewport: { width: 1280, height: 800 } });
  const watch = await viewerCtx.newPage('watch');
  await watch.goto(`${base}/watch/${host.user.username}`, run.remaining());
  await waitFor(watch, 'the video plays', () => window.onair.phase === 'live' && window.onair.stats && window.onair.stats.framesDecoded > 0, null, 30000);
  await watch.evaluate(async () => {
    const resp = await fetch(`${window.onair.location}/layer`, { method: 'POST', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify({ max_layer: 'h' }) });
    if (!resp.ok) throw new Error(`layer: ${resp.status}`);
  });
  await waitFor(watch, 'the viewer decodes the middle layer', () => window.onair.currentLayer === 'h', null, 15000);
  await sleep(1500);
  return watch;
}

async function main() {
  run.step = 'accounts';
  const host = await call('POST', '/api/auth/register', null, { username: `fhost_${tag}`, email: `fhost_${tag}@example.test`, password: 'correct horse battery', role: 'host' });
  const key = await call('POST', '/api/me/stream-keys', host.access_token, { label: 'studio' });

  run.step = 'launch';
  const chromium = await launchChromium(run);

  run.step = 'the host goes live from the studio';
  const hostCtx = await loggedIn(chromium, host, { viewport: { width: 1280, height: 800 } }, { [key.id]: key.key });
  const studio = await hostCtx.newPage('studio');
  await studio.goto(`${base}/publish?key=${key.id}`, run.remaining());
  await goLive(studio);
  const live = await studioState(studio);
  result.session = live.session;

  run.step = 'the viewer decodes the stream unfiltered';
  const watch = await watchMiddleLayer(chromium, host);
  result.plain = await settled(watch, 'unfiltered');

  run.step = 'the host picks the Warm look';
  await pick(studio, 'color', 'look_warm');
  await waitFor(studio, 'the pipeline renders', () => window.onair.filters.state().frames > 15, null, 30000);
  await sleep(1500);
  result.warm = await settled(watch, 'warm');
  const afterWarm = await studioState(studio);
  result.warm_state = afterWarm;
  await shot(studio, 'studio-filters-desktop');

  run.step = 'the host takes the look off: the same frames, unfiltered, through the pipeline';
  await studio.click('.filter-clear', run.remaining());
  await waitFor(studio, 'the stack is empty', () => window.onair.filters.state().stack.length === 0);
  await sleep(1500);
  result.through = await settled(watch, 'through the pipeline');

  run.step = 'the host switches to Mono while live';
  const framesBefore = await decoded(watch);
  await pick(studio, 'color', 'look_mono');
  await sleep(1500);
  result.mono = await settled(watch, 'mono');
  const afterMono = await studioState(studio);
  result.mono_state = afterMono;
  result.frames_across_switch = [framesBefore, await decoded(watch)];
  result.viewer_phase = await watch.evaluate(() => window.onair.phase);

  run.step = 'the tray on a phone';
  // The same browser (its storage: the remembered stack), a phone-sized page.
  const phone = await hostCtx.newPage('studio-phone');
  await phone.raw.setViewportSize({ width: 390, height: 844 });
  await phone.goto(`${base}/publish`, run.remaining());
  await waitFor(phone, 'the phone tray lists the catalogue', () => window.onair.filters && window.onair.filters.state().catalogue >= 30);
  await waitFor(phone, 'the remembered stack is back', () => window.onair.filters.state().stack.some((e) => e.id === 'look_mono'), null, 15000);
  result.phone_remembered = (await phone.evaluate(() => window.onair.filters.state())).stack;
  await phone.evaluate(() => document.querySelector('#filter-tray').scrollIntoView());
  await sleep(500);
  await shot(phone, 'studio-filters-phone');
  const tray = await phone.evaluate(() => {
    const r = document.querySelector('#filter-tray').getBoundingClientRect();
    return { left: r.left, right: r.right, width: window.innerWidth, scroll: document.documentElement.scrollWidth };
  });
  result.phone_tray = tray;

  if (args.bench) {
    run.step = 'bench';
    const families = [
      ['none', []],
      ['beauty', [['beauty', 'beauty_soft_focus']]],
      ['colour look (LUT)', [['color', 'look_vintage']]],
      ['vignette + grain', [['color', 'fx_vignette'], ['color', 'fx_grain']]],
      ['green screen', [['background', 'bg_green_screen']]],
      ['overlays (sticker + caption)', [['overlay', 'overlay_heart'], ['overlay', 'overlay_caption']]],
      ['stack: beauty + look + vignette + sticker', [['beauty', 'beauty_natural'], ['color', 'look_warm'], ['color', 'fx_vignette'], ['overlay', 'overlay_star']]],
    ];
    result.bench = [];
    for (const [name, picks] of families) {
      await studio.evaluate(() => window.onair.filters.clear());
      for (const [tab, id] of picks) await pick(studio, tab, id);
      // Two fresh cost reports (each averages 3 frames waited for).
      const seen = (await studio.evaluate(() => window.onair.filters.state().cost_reports)) + 2;
      await waitFor(studio, `cost of ${name}`, (n) => window.onair.filters.state().cost_reports >= n, seen, 60000);
      const fps = await publishedFps(studio);
      const st = await studio.evaluate(() => ({ ...window.onair.filters.state(), size: [window.onair.filters.pipeline.canvas.width, window.onair.filters.pipeline.canvas.height] }));
      result.bench.push({ family: name, cost_ms: Math.round(st.cost_ms * 10) / 10, cheap: st.cheap, scale: st.scale, renderer: st.renderer, size: st.size, published_fps: fps });
    }
  }
}

/** Lumas of the viewer's decoded frames at 320x180: `n` frames ~150 ms apart. */
function viewerLumas(page, n = 4) {
  return page.evaluate(async (n) => {
    const v = document.querySelector('#video') || document.querySelector('video');
    const c = document.createElement('canvas');
    c.width = 320;
    c.height = 180;
    const ctx = c.getContext('2d', { willReadFrequently: true });
    const frames = [];
    for (let i = 0; i < n; i++) {
      ctx.drawImage(v, 0, 0, 320, 180);
      const d = ctx.getImageData(0, 0, 320, 180).data;
      const rgb = new Array(320 * 180 * 3);
      for (let p = 0, q = 0; p < d.length; p += 4, q += 3) {
        rgb[q] = d[p];
        rgb[q + 1] = d[p + 1];
        rgb[q + 2] = d[p + 2];
      }
      frames.push(rgb);
      await new Promise((r) => setTimeout(r, 150));
    }
    return frames;
  }, n);
}

/**
 * Detail in the frames: the mean absolute luma step to the right and down
 * neighbours, over the pixels `where(i)` picks (not the border).
 */
function edgeEnergy(frames, where) {
  const W = 320;
  const H = 180;
  let sum = 0;
  let n = 0;
  for (const f of frames) {
    const l = (i) => 0.299 * f[i * 3] + 0.587 * f[i * 3 + 1] + 0.114 * f[i * 3 + 2];
    for (let y = 1; y < H - 2; y++) {
      for (let x = 1; x < W - 2; x++) {
        const i = y * W + x;
        if (!where(i)) continue;
        sum += Math.abs(l(i + 1) - l(i)) + Math.abs(l(i + W) - l(i));
        n++;
      }
    }
  }
  return { energy: n ? sum / n : null, pixels: n / frames.length };
}

/** Mean colour of the frames over the pixels `where(i)` picks. */
function meanOver(frames, where) {
  const s = [0, 0, 0];
  let n = 0;
  for (const f of frames) {
    for (let i = 0; i < 320 * 180; i++) {
      if (!where(i)) continue;
      s[0] += f[i * 3];
      s[1] += f[i * 3 + 1];
      s[2] += f[i * 3 + 2];
      n++;
    }
  }
  return s.map((x) => (n ? x / n : null));
}

async function personMain() {
  run.step = 'accounts';
  const host = await call('POST', '/api/auth/register', null, { username: `phost_${tag}`, email: `phost_${tag}@example.test`, password: 'correct horse battery', role: 'host' });
  const key = await call('POST', '/api/me/stream-keys', host.access_token, { label: 'studio' });

  run.step = 'launch';
  const chromium = await launchChromium(run, { camera: args.person });

  run.step = 'the host goes live from the studio';
  const hostCtx = await loggedIn(chromium, host, { viewport: { width: 1280, height: 800 } }, { [key.id]: key.key });
  const studio = await hostCtx.newPage('studio');
  // The unlock asks "Unlock … for N coins?": yes.
  studio.raw.on('dialog', (d) => d.accept().catch(() => {}));
  await studio.goto(`${base}/publish?key=${key.id}`, run.remaining());
  await goLive(studio);
  result.session = (await studioState(studio)).session;

  run.step = 'the viewer decodes the stream unfiltered';
  const watch = await watchMiddleLayer(chromium, host);
  await settled(watch, 'unfiltered');
  const plain = await viewerLumas(watch);

  run.step = 'the host blurs the background';
  const framesBefore = await decoded(watch);
  await pick(studio, 'background', 'bg_blur_strong');
  await waitFor(studio, 'the segmentation model runs', () => window.onair.filters.state().segmentation.runs >= 5, null, 60000);
  await sleep(1500);
  await settled(watch, 'blur');
  const blurred = await viewerLumas(watch);
  const blurState = await studioState(studio);
  result.blur_state = blurState;
  // The model's mask of this (still) picture, at the measuring size.
  const mask = await studio.evaluate(() => window.onair.filters.pipeline.maskSample(320, 180));
  if (!mask) throw new Error('no person mask');
  await shot(studio, 'studio-filters-blur-desktop');
  await studio.evaluate(() => window.scrollTo(0, 0));
  await sleep(300);
  await shot(studio, 'studio-filters-blur-desktop-preview');

  run.step = 'the host takes the blur off: the same frames through the pipeline';
  await studio.click('.filter-clear', run.remaining());
  await waitFor(studio, 'the stack is empty', () => window.onair.filters.state().stack.length === 0);
  await sleep(1500);
  await settled(watch, 'through the pipeline');
  const through = await viewerLumas(watch);

  const background = (i) => mask[i] < 38; // under 15%: surely not the person
  const person = (i) => mask[i] > 217; // over 85%
  result.mask = { background: mask.filter((m) => m < 38).length / mask.length, person: mask.filter((m) => m > 217).length / mask.length };
  result.edges = {};
  for (const [name, frames] of [['plain', plain], ['blur', blurred], ['through', through]]) {
    result.edges[name] = { background: edgeEnergy(frames, background).energy, person: edgeEnergy(frames, person).energy };
  }

  run.step = 'the host buys coins and replaces the background with the studio backdrop';
  const resp = await fetch(`${base}/api/wallet/top-ups`, {
    method: 'POST',
    headers: { 'Content-Type': 'application/json', Authorization: `Bearer ${host.access_token}`, 'Idempotency-Key': `topup-${tag}` },
    body: JSON.stringify({ package: 'coins_100' }),
  });
  if (resp.status !== 201) throw new Error(`top-up: ${resp.status} ${await resp.text()}`);
  const topUp = await resp.json();
  await call('POST', `/pay/dev/${topUp.intent_id}/pay`, null);
  await waitFor(studio, 'the coins arrive', async () => {
    const resp = await fetch('/api/wallet', { headers: { Authorization: `Bearer ${localStorage.getItem('onair.accessToken')}` } });
    return resp.ok && (await resp.json()).coins >= 100;
  }, null, 20000);
  await pick(studio, 'background', 'bg_studio');
  await sleep(1500);
  await settled(watch, 'backdrop');
  const replaced = await viewerLumas(watch, 2);
  // The backdrop image at the measuring size (as the shader stretches it).
  const backdrop = await studio.evaluate(async () => {
    const f = window.onair.filters.filters.get('bg_studio');
    const blob = await window.onair.filters.fetchAsset(f.assets.find((a) => a.kind === 'backdrop').url);
    const bmp = await createImageBitmap(blob);
    const c = document.createElement('canvas');
    c.width = 320;
    c.height = 180;
    const ctx = c.getContext('2d', { willReadFrequently: true });
    ctx.drawImage(bmp, 0, 0, 320, 180);
    const d = ctx.getImageData(0, 0, 320, 180).data;
    const rgb = [];
    for (let p = 0; p < d.length; p += 4) rgb.push(d[p], d[p + 1], d[p + 2]);
    return rgb;
  });
  // Mean absolute difference from the backdrop over the background pixels.
  const distance = (frames) => {
    let s = 0;
    let n = 0;
    for (const f of frames) {
      for (let i = 0; i < 320 * 180; i++) {
        if (!background(i)) continue;
        for (let k = 0; k < 3; k++) s += Math.abs(f[i * 3 + k] - backdrop[i * 3 + k]);
        n += 3;
      }
    }
    return s / n;
  };
  result.backdrop = { through: distance(through), replaced: distance(replaced), person_edges: edgeEnergy(replaced, person).energy };

  run.step = 'the host adds lip makeup';
  await pick(studio, 'makeup', 'makeup_rose_lips');
  await waitFor(studio, 'the face is found', () => window.onair.filters.state().face.found && window.onair.filters.state().face.runs >= 5, null, 60000);
  // The lips' box from the landmarks (fractions of the frame), shrunk to its middle.
  const lips = await studio.evaluate(() => {
    const f = window.onair.filters.pipeline.face;
    const ids = [61, 291, 0, 17];
    const [l, r, t, b] = ids.map((i) => f.at(i));
    return { x0: l[0], x1: r[0], y0: t[1], y1: b[1] };
  });
  result.lips_box = lips;
  const inLips = (i) => {
    const x = (i % 320) / 320;
    const y = Math.floor(i / 320) / 180;
    const w = lips.x1 - lips.x0;
    const h = lips.y1 - lips.y0;
    return x > lips.x0 + w * 0.2 && x < lips.x1 - w * 0.2 && y > lips.y0 + h * 0.15 && y < lips.y1 - h * 0.15;
  };
  await sleep(1500);
  await settled(watch, 'lips');
  const made = await viewerLumas(watch, 2);
  result.lips = { before: meanOver(replaced, inLips), after: meanOver(made, inLips) };
  const last = await studioState(studio);
  result.last_state = last;
  result.frames_across = [framesBefore, await decoded(watch)];
  result.viewer_phase = await watch.evaluate(() => window.onair.phase);

  run.step = 'the tray with blur on, on a phone';
  await studio.evaluate(() => window.onair.filters.clear());
  await pick(studio, 'background', 'bg_blur_strong');
  const phone = await hostCtx.newPage('studio-phone');
  await phone.raw.setViewportSize({ width: 390, height: 844 });
  await phone.goto(`${base}/publish`, run.remaining());
  await waitFor(phone, 'the phone tray lists the catalogue', () => window.onair.filters && window.onair.filters.state().catalogue >= 30);
  await waitFor(phone, 'the remembered blur is back', () => window.onair.filters.state().stack.some((e) => e.id === 'bg_blur_strong'), null, 15000);
  await waitFor(phone, 'the phone runs the segmentation', () => window.onair.filters.state().segmentation.runs >= 3, null, 60000);
  await phone.evaluate(() => document.querySelector('.filter-tab[data-tab="background"]').click());
  await sleep(800);
  await phone.evaluate(() => window.scrollTo(0, 0));
  await shot(phone, 'studio-filters-blur-phone-preview');
  // The tray's top just under the page's sticky bar.
  await phone.evaluate(() => window.scrollBy(0, document.querySelector('#filter-tray').getBoundingClientRect().top - document.querySelector('header').getBoundingClientRect().height - 8));
  await sleep(500);
  await shot(phone, 'studio-filters-blur-phone');
  result.phone_tray = await phone.evaluate(() => {
    const r = document.querySelector('#filter-tray').getBoundingClientRect();
    return { left: r.left, right: r.right, width: window.innerWidth, scroll: document.documentElement.scrollWidth };
  });
  await phone.raw.close();

  if (args.bench) {
    run.step = 'bench';
    const families = [
      ['none', []],
      ['background blur', [['background', 'bg_blur_strong']]],
      ['background replacement', [['background', 'bg_studio']]],
      ['makeup (lips)', [['makeup', 'makeup_rose_lips']]],
      ['face sticker (cat ears)', [['ar', 'ar_cat_ears']]],
      ['stack: blur + makeup + sticker', [['background', 'bg_blur_light'], ['makeup', 'makeup_rose_lips'], ['ar', 'ar_sunglasses']]],
    ];
    result.bench = [];
    for (const [name, picks] of families) {
      await studio.evaluate(() => window.onair.filters.clear());
      for (const [tab, id] of picks) await pick(studio, tab, id);
      const seen = (await studio.evaluate(() => window.onair.filters.state().cost_reports)) + 2;
      await waitFor(studio, `cost of ${name}`, (n) => window.onair.filters.state().cost_reports >= n, seen, 60000);
      const fps = await publishedFps(studio);
      const st = await studio.evaluate(() => ({ ...window.onair.filters.state(), size: [window.onair.filters.pipeline.canvas.width, window.onair.filters.pipeline.canvas.height] }));
      result.bench.push({ family: name, cost_ms: st.cost_ms === null ? null : Math.round(st.cost_ms * 10) / 10, segment_ms: Math.round(st.segmentation.ms * 10) / 10, face_ms: Math.round(st.face.ms * 10) / 10, cheap: st.cheap, scale: st.scale, size: st.size, published_fps: fps });
    }
  }
}

(args.person ? personMain() : main())
  .then(() => run.succeed(result))
  .catch((err) => run.fail(err));
