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

import {
  Run,
  scriptArgs,
  goLive,
  openWatch,
  publisherTopWidth,
  switchLayers,
  endAndWatchEnd,
  sampleVideo,
} from './harness.mjs';
import { launchChromium } from './browsers.mjs';

const USAGE =
  'usage: node e2e.mjs --base URL --key KEY --stream NAME [--screenshots DIR] [--timeout-ms MS] [--check-end]';
const SPEC = { base: 'string', key: 'string', stream: 'string', screenshots: 'string', 'timeout-ms': 'number', 'check-end': 'bool' };

const args = scriptArgs({ spec: SPEC, usage: USAGE, defaults: { timeoutMs: 60000, checkEnd: false }, required: ['base', 'key', 'stream'] });
const base = args.base.replace(/\/+$/, '');
const run = new Run(args).arm();

async function main() {
  run.step = 'launch';
  const chromium = await launchChromium(run);

  // ---- publisher
  const pub = await chromium.newPage('publish');
  await goLive(run, pub, { base, key: args.key, stream: args.stream });

  // ---- viewer
  const watch = await chromium.newPage('watch');
  const first = await openWatch(run, watch, { base, stream: args.stream });

  // Width of the top simulcast layer as the publisher encodes it.
  const topWidth = await publisherTopWidth(pub);
  run.note(`publisher top layer width ${topWidth}`);
  const { widthAuto, widthLow, widthHigh, picker, labels } = await switchLayers(run, watch, { first, topWidth });

  run.step = 'final state';
  const finalSample = await sampleVideo(watch);
  const publisherState = await pub.evaluate(() => window.onair.state);
  if (publisherState !== 'live') throw new Error(`publisher left the live state: ${publisherState}`);

  const result = {
    ok: true,
    frames_decoded: finalSample.framesDecoded,
    width_auto: widthAuto,
    width_low: widthLow,
    width_high: widthHigh,
    picker,
    labels,
    publisher_state: publisherState,
  };

  run.step = 'screenshots';
  await run.screenshots();

  if (args.checkEnd) {
    result.publisher_state_after_end = await endAndWatchEnd(run, pub, watch);
    result.watch_ended = true;
    await run.screenshots('-ended');
  }
  await run.succeed(result);
}

main().catch((err) => run.fail(err));
