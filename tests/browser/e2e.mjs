#!/usr/bin/env node
// End-to-end check of OnAir's pages in a real (headless) Chromium:
// publish with the fake camera, watch it, and switch simulcast layers.
//
//   node tests/browser/e2e.mjs --base http://127.0.0.1:8080 --key KEY --stream NAME \
//        [--screenshots DIR] [--timeout-ms 60000] [--check-end]
//
// Prints exactly one JSON line on stdout:
//   {"ok":true,"frames_decoded":N,"width_auto":W1,"width_low":W2,"width_high":W3,"publisher_state":"live"}
// or {"ok":false,"step":"...","error":"..."} (exit 1) with page console logs on stderr.

import { chromium } from 'playwright-core';
import fs from 'node:fs';
import path from 'node:path';

const USAGE =
  'usage: node e2e.mjs --base URL --key KEY --stream NAME [--screenshots DIR] [--timeout-ms MS] [--check-end]';

const CHROMIUM_ARGS = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
  '--use-fake-device-for-media-stream',
  '--use-fake-ui-for-media-stream',
  '--allow-loopback-in-peer-connection',
];

const AUTO_RAMP_MS = 15000; // how long auto may take to reach the top layer
const SETTLE_MS = 3000; // after a switch, how long to wait for the width to settle
const POLL_MS = 250;

function parseArgs(argv) {
  const out = { timeoutMs: 60000, checkEnd: false };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    const [flag, inline] = a.includes('=') ? [a.slice(0, a.indexOf('=')), a.slice(a.indexOf('=') + 1)] : [a, null];
    const value = () => (inline != null ? inline : argv[++i]);
    switch (flag) {
      case '--base':
        out.base = value();
        break;
      case '--key':
        out.key = value();
        break;
      case '--stream':
        out.stream = value();
        break;
      case '--screenshots':
        out.screenshots = value();
        break;
      case '--timeout-ms':
        out.timeoutMs = Number(value());
        break;
      case '--check-end':
        out.checkEnd = true;
        break;
      case '-h':
      case '--help':
        out.help = true;
        break;
      default:
        throw new Error(`unknown argument ${a}`);
    }
  }
  return out;
}

// ------------------------------------------------------------------ state

let args;
try {
  args = parseArgs(process.argv.slice(2));
} catch (err) {
  process.stderr.write(`${err.message}\n${USAGE}\n`);
  process.stdout.write(`${JSON.stringify({ ok: false, step: 'args', error: err.message })}\n`);
  process.exit(2);
}
if (args.help) {
  process.stdout.write(`${USAGE}\n`);
  process.exit(0);
}
const missing = ['base', 'key', 'stream'].filter((k) => !args[k]);
if (missing.length || !Number.isFinite(args.timeoutMs) || args.timeoutMs <= 0) {
  const error = missing.length ? `missing --${missing.join(', --')}` : 'bad --timeout-ms';
  process.stderr.write(`${error}\n${USAGE}\n`);
  process.stdout.write(`${JSON.stringify({ ok: false, step: 'args', error })}\n`);
  process.exit(2);
}
const base = args.base.replace(/\/+$/, '');
const started = Date.now();
const deadline = started + args.timeoutMs;
const logs = [];
const pages = {}; // name -> Page
let browser = null;
let step = 'init';
let finished = false;

const remaining = () => Math.max(1, deadline - Date.now());
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const elapsed = () => `${((Date.now() - started) / 1000).toFixed(1)}s`;

function log(line) {
  logs.push(`${elapsed()} ${line}`);
  if (logs.length > 2000) logs.splice(0, logs.length - 2000);
}

function note(msg) {
  // Progress on stderr keeps stdout to the single JSON result line.
  if (process.env.E2E_VERBOSE) process.stderr.write(`[e2e ${elapsed()}] ${msg}\n`);
  log(`[e2e] ${msg}`);
}

function hookPage(page, name) {
  pages[name] = page;
  page.on('console', (m) => log(`[${name}] console.${m.type()}: ${m.text()}`));
  page.on('pageerror', (e) => log(`[${name}] pageerror: ${e && e.stack ? e.stack : e}`));
  page.on('requestfailed', (r) => {
    log(`[${name}] requestfailed: ${r.method()} ${r.url()} ${r.failure() ? r.failure().errorText : ''}`);
  });
  page.on('response', (r) => {
    const u = r.url();
    if (/\/(whip|whep|api)\b/.test(u) || r.status() >= 400) {
      log(`[${name}] ${r.request().method()} ${u} -> ${r.status()}`);
    }
  });
  page.on('crash', () => log(`[${name}] page crashed`));
}

// ------------------------------------------------------------------ finish

async function closeBrowser() {
  if (!browser) return;
  const b = browser;
  browser = null;
  await Promise.race([b.close().catch(() => {}), sleep(5000)]);
}

async function dumpState() {
  for (const [name, page] of Object.entries(pages)) {
    try {
      const st = await Promise.race([
        page.evaluate(() => {
          const o = window.onair || {};
          const safe = {};
          for (const [k, v] of Object.entries(o)) {
            if (typeof v === 'function' || k === 'pc' || k === 'media') continue;
            safe[k] = v;
          }
          if (o.pc) {
            safe.pc = {
              connectionState: o.pc.connectionState,
              iceConnectionState: o.pc.iceConnectionState,
              signalingState: o.pc.signalingState,
            };
          }
          return safe;
        }),
        sleep(2000).then(() => 'timeout'),
      ]);
      log(`[${name}] window.onair = ${JSON.stringify(st)}`);
    } catch (err) {
      log(`[${name}] window.onair unavailable: ${err.message}`);
    }
  }
}

async function screenshots(suffix = '') {
  if (!args.screenshots) return;
  try {
    fs.mkdirSync(args.screenshots, { recursive: true });
  } catch (err) {
    log(`[e2e] cannot create ${args.screenshots}: ${err.message}`);
    return;
  }
  for (const [name, page] of Object.entries(pages)) {
    const file = path.join(args.screenshots, `${name}${suffix}.png`);
    try {
      await page.screenshot({ path: file, timeout: 5000 });
      note(`screenshot ${file}`);
    } catch (err) {
      log(`[e2e] screenshot ${file} failed: ${err.message}`);
    }
  }
}

/** Best effort: DELETE the WHEP and WHIP sessions so the server is left clean. */
async function cleanup() {
  const run = async (name, fn) => {
    const page = pages[name];
    if (!page || page.isClosed()) return;
    await Promise.race([page.evaluate(fn).catch(() => {}), sleep(Math.min(2000, remaining()))]);
  };
  await run('watch', () => window.onair && typeof window.onair.stop === 'function' && window.onair.stop());
  await run('publish', () => window.onair && typeof window.onair.end === 'function' && window.onair.end());
}

async function fail(err) {
  if (finished) return;
  finished = true;
  exitCode = 1;
  const error = err && err.message ? err.message.split('\n')[0] : String(err);
  process.stdout.write(`${JSON.stringify({ ok: false, step, error })}\n`);
  await Promise.race([
    (async () => {
      await dumpState();
      await screenshots('-failure');
      await cleanup();
    })(),
    sleep(Math.max(1500, Math.min(8000, remaining()))),
  ]);
  process.stderr.write(`e2e failed at step "${step}": ${err && err.stack ? err.stack : err}\n`);
  process.stderr.write('--- page logs ---\n');
  process.stderr.write(`${logs.join('\n')}\n`);
  await closeBrowser();
  process.exit(1);
}

let exitCode = 1;
// Soft deadline: report a timeout (or, if the result is already out, just exit).
const guard = setTimeout(() => {
  if (finished) process.exit(exitCode);
  fail(new Error(`timed out after ${args.timeoutMs} ms`));
}, args.timeoutMs);
// Hard deadline: diagnostics and browser shutdown get at most 2.5 s more.
// (playwright kills the browser it launched when the process exits.)
setTimeout(() => process.exit(exitCode), args.timeoutMs + 2500).unref();

process.on('unhandledRejection', (err) => fail(err));

// ------------------------------------------------------------------ helpers

/** Samples the watch page's decoded video: getStats inbound-rtp + <video> size. */
function sampleVideo(page) {
  return page.evaluate(async () => {
    const o = window.onair || {};
    const v = document.querySelector('#video') || document.querySelector('video');
    const out = {
      state: o.state || null,
      phase: o.phase || null,
      framesDecoded: 0,
      frameWidth: 0,
      frameHeight: 0,
      videoWidth: v ? v.videoWidth : 0,
      videoHeight: v ? v.videoHeight : 0,
      layer: (o.viewer && o.viewer.layer) || (o.layer && o.layer.current_layer) || null,
    };
    if (o.pc) {
      try {
        const report = await o.pc.getStats();
        report.forEach((s) => {
          if (s.type !== 'inbound-rtp' || (s.kind || s.mediaType) !== 'video') return;
          if ((s.framesDecoded || 0) >= out.framesDecoded) {
            out.framesDecoded = s.framesDecoded || 0;
            out.frameWidth = s.frameWidth || 0;
            out.frameHeight = s.frameHeight || 0;
          }
        });
      } catch {
        /* pc closed */
      }
    }
    out.width = out.frameWidth || out.videoWidth;
    return out;
  });
}

/** Polls `sample` until `pred` holds; throws with the last sample after `ms`. */
async function pollUntil(what, sample, pred, ms) {
  const until = Math.min(deadline, Date.now() + ms);
  let last = null;
  for (;;) {
    last = await sample();
    if (pred(last)) return last;
    if (Date.now() >= until) {
      throw new Error(`${what}: condition not met in ${ms} ms; last sample ${JSON.stringify(last)}`);
    }
    await sleep(POLL_MS);
  }
}

/** After a change, waits (briefly) for the decoded width to stop moving. */
async function settle(page, ok) {
  const until = Math.min(deadline - 1000, Date.now() + SETTLE_MS);
  let prev = null;
  let same = 0;
  let s = await sampleVideo(page);
  while (Date.now() < until) {
    if (prev && s.width === prev.width && ok(s)) {
      same += 1;
      if (same >= 3) break;
    } else {
      same = 0;
    }
    prev = s;
    await sleep(POLL_MS);
    s = await sampleVideo(page);
  }
  return ok(s) ? s : prev && ok(prev) ? prev : s;
}

// ------------------------------------------------------------------ test

async function main() {
  step = 'launch';
  browser = await chromium.launch({
    executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
    headless: true,
    args: CHROMIUM_ARGS,
    timeout: Math.min(30000, remaining()),
  });
  note(`browser ${browser.version()}`);
  const contextOptions = {
    viewport: { width: 1366, height: 900 },
    permissions: ['camera', 'microphone'],
  };

  // ---- publisher
  step = 'open publish';
  const pubCtx = await browser.newContext(contextOptions);
  const pub = await pubCtx.newPage();
  hookPage(pub, 'publish');
  await pub.goto(`${base}/publish`, { timeout: remaining(), waitUntil: 'load' });
  await pub.waitForFunction(() => window.onair && window.onair.page === 'publish', null, { timeout: remaining() });

  step = 'fill key';
  await pub.fill('#stream-key', args.key, { timeout: remaining() });

  step = 'go live';
  await pub.click('#go-live', { timeout: remaining() });
  note('clicked go live');

  step = 'wait publisher live';
  await pub.waitForFunction(
    () => window.onair && (window.onair.state === 'live' || window.onair.state === 'error'),
    null,
    { timeout: remaining(), polling: POLL_MS },
  );
  const pubState = await pub.evaluate(() => ({
    state: window.onair.state,
    error: window.onair.error,
    stream: window.onair.stream,
  }));
  if (pubState.state !== 'live') {
    const e = pubState.error || {};
    throw new Error(`publisher ended in state ${pubState.state}: ${e.message || 'unknown error'}${e.status ? ` (HTTP ${e.status})` : ''}`);
  }
  if (pubState.stream && pubState.stream !== args.stream) {
    log(`[e2e] warning: key belongs to stream "${pubState.stream}", watching "${args.stream}"`);
  }
  note(`publisher live on ${pubState.stream}`);

  // ---- viewer
  step = 'open watch';
  const watchCtx = await browser.newContext(contextOptions);
  const watch = await watchCtx.newPage();
  hookPage(watch, 'watch');
  await watch.goto(`${base}/watch/${encodeURIComponent(args.stream)}`, { timeout: remaining(), waitUntil: 'load' });

  step = 'wait decoded frames';
  const first = await pollUntil(
    'decoded frames',
    () => sampleVideo(watch),
    (s) => s.framesDecoded > 0 && s.videoWidth > 0,
    remaining(),
  );
  note(`first frames: ${JSON.stringify(first)}`);

  // Width of the top simulcast layer as the publisher encodes it.
  const topWidth = await pub.evaluate(() => {
    const st = window.onair && window.onair.stats;
    if (!st) return 0;
    const layers = Object.values(st.layers || {});
    const f = st.layers && st.layers.f;
    if (f && f.width) return f.width;
    return Math.max(0, ...layers.map((l) => l.width || 0), (st.capture && st.capture.width) || 0);
  });
  note(`publisher top layer width ${topWidth}`);

  step = 'auto layer';
  let best = first;
  let auto = first;
  try {
    auto = await pollUntil(
      'auto reaches top layer',
      async () => {
        const s = await sampleVideo(watch);
        if (s.width > best.width) best = s;
        return s;
      },
      (s) => topWidth > 0 && s.width >= topWidth,
      Math.min(AUTO_RAMP_MS, remaining() - 5000),
    );
  } catch (err) {
    note(`auto did not reach ${topWidth} (${err.message}); using widest seen`);
    auto = best;
  }
  auto = await settle(watch, (s) => s.width >= auto.width);
  const widthAuto = auto.width;
  note(`width_auto ${widthAuto}`);

  step = 'select low';
  await watch.selectOption('#layer', 'q', { timeout: remaining() });
  const low = await pollUntil(
    'width drops after selecting Low',
    () => sampleVideo(watch),
    (s) => s.width > 0 && s.width < widthAuto,
    remaining(),
  );
  const lowSettled = await settle(watch, (s) => s.width > 0 && s.width < widthAuto);
  const widthLow = Math.min(low.width, lowSettled.width);
  note(`width_low ${widthLow}`);

  step = 'select high';
  await watch.selectOption('#layer', 'f', { timeout: remaining() });
  const high = await pollUntil(
    'width rises after selecting High',
    () => sampleVideo(watch),
    (s) => s.width > widthLow,
    remaining(),
  );
  const highSettled = await settle(watch, (s) => s.width > widthLow);
  const widthHigh = Math.max(high.width, highSettled.width);
  note(`width_high ${widthHigh}`);

  step = 'final state';
  const finalSample = await sampleVideo(watch);
  const publisherState = await pub.evaluate(() => window.onair.state);
  if (publisherState !== 'live') throw new Error(`publisher left the live state: ${publisherState}`);

  const result = {
    ok: true,
    frames_decoded: finalSample.framesDecoded,
    width_auto: widthAuto,
    width_low: widthLow,
    width_high: widthHigh,
    publisher_state: publisherState,
  };

  step = 'screenshots';
  await screenshots();

  if (args.checkEnd) {
    step = 'end stream';
    await pub.click('#end', { timeout: remaining() });
    await watch.waitForFunction(() => window.onair && window.onair.state === 'ended', null, {
      timeout: remaining(),
      polling: POLL_MS,
    });
    const pubAfter = await pub.evaluate(() => window.onair.state);
    result.watch_ended = true;
    result.publisher_state_after_end = pubAfter;
    if (args.screenshots) await screenshots('-ended');
  }

  step = 'close';
  finished = true;
  exitCode = 0;
  process.stdout.write(`${JSON.stringify(result)}\n`);
  await cleanup();
  if (process.env.E2E_VERBOSE) process.stderr.write(`${logs.join('\n')}\n`);
  await closeBrowser();
  process.exit(0);
}

main().catch((err) => fail(err));
