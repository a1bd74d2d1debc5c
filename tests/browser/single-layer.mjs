#!/usr/bin/env node
// A stream with one layer (OBS or FFmpeg over WHIP: a single H.264 encoding)
// on the watch page: no quality picker, the stream's one resolution instead,
// and labels from what is decoded.
//
//   node tests/browser/single-layer.mjs --base URL --stream NAME --browser chromium|firefox \
//        [--screenshots DIR] [--timeout-ms MS]
//
// Prints exactly one JSON line on stdout:
//   {"ok":true,"browser":"chromium","frames_decoded":N,"picker":{"visible":false,"single":"640×360",...},
//    "labels":{"badge":"360p","current_layer":"f",...}}
// or {"ok":false,"step":"...","error":"..."} (exit 1).

import { Run, scriptArgs, openWatch, pollUntil, sampleVideo } from './harness.mjs';
import { pickerState, labels } from './harness.mjs';
import { launchChromium, launchFirefox } from './browsers.mjs';

const USAGE = 'usage: node single-layer.mjs --base URL --stream NAME --browser chromium|firefox [--expect-unsupported] [--screenshots DIR] [--timeout-ms MS]';
const SPEC = { base: 'string', stream: 'string', browser: 'string', screenshots: 'string', 'timeout-ms': 'number', 'expect-unsupported': 'bool' };
const args = scriptArgs({
  spec: SPEC,
  usage: USAGE,
  defaults: { timeoutMs: 60000, browser: 'chromium' },
  required: ['base', 'stream'],
  check: (a) => (['chromium', 'firefox'].includes(a.browser) ? null : 'bad --browser'),
});
const base = args.base.replace(/\/+$/, '');
const run = new Run(args).arm();

async function main() {
  run.step = 'launch';
  const browser = args.browser === 'firefox' ? await launchFirefox(run) : await launchChromium(run);
  const watch = await browser.newPage(`watch-${args.browser}`);
  if (args.expectUnsupported) {
    // The browser cannot take the stream's codec: a clear word, no endless retries, no picker.
    run.step = 'open watch';
    await watch.goto(`${base}/watch/${encodeURIComponent(args.stream)}`, run.remaining());
    run.step = 'the page says the video cannot play here';
    const st = await pollUntil(run, 'unsupported', () => watch.evaluate(() => ({ status: window.onair.status, error: window.onair.error, attempts: window.onair.attempts, title: document.querySelector('#overlay-title').textContent })), (x) => x.status === 'unsupported', Math.min(20000, run.remaining()));
    await new Promise((r) => setTimeout(r, 3000));
    const later = await watch.evaluate(() => window.onair.attempts);
    const picker = await pickerState(watch);
    await run.screenshots();
    await run.succeed({ ok: true, browser: args.browser, unsupported: st, attempts_after_3s: later, picker });
    return;
  }
  await openWatch(run, watch, { base, stream: args.stream });

  run.step = 'the server says the stream has one layer';
  const picker = await pollUntil(run, 'one layer, no picker', () => pickerState(watch), (p) => p.layers.length === 1 && !p.visible && !!p.single, Math.min(20000, run.remaining()));
  run.step = 'labels from what is decoded';
  const l = await pollUntil(run, 'badge and details', () => labels(watch), (x) => x.current_layer && x.video_height > 0 && x.badge === `${x.video_height}p`, Math.min(15000, run.remaining()));
  const sample = await sampleVideo(watch);
  run.step = 'screenshots';
  await run.screenshots();
  await run.succeed({ ok: true, browser: args.browser, frames_decoded: sample.framesDecoded, video_width: sample.videoWidth, video_height: sample.videoHeight, picker, labels: l });
}

main().catch((err) => run.fail(err));
