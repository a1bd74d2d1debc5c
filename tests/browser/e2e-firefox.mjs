#!/usr/bin/env node
// End-to-end check of OnAir's pages with a Firefox viewer (Debian's
// firefox-esr, driven by puppeteer-core over WebDriver BiDi):
//
//   --publisher firefox   Firefox publishes its fake camera from /publish
//                         (3-layer simulcast, as the page does) and another
//                         Firefox context watches /watch/{stream}, caps the
//                         layer to Low and back to High.
//   --publisher chromium  Chromium (playwright-core) publishes, Firefox watches
//                         and switches layers the same way.
//
//   node tests/browser/e2e-firefox.mjs --base URL --key KEY --stream NAME \
//        [--publisher firefox|chromium] [--screenshots DIR] [--timeout-ms MS] [--check-end]
//
// Prints exactly one JSON line on stdout:
//   {"ok":true,"publisher":"firefox","viewer":"firefox","frames_decoded":N,
//    "width_auto":W1,"width_low":W2,"width_high":W3,"top_width":T,
//    "publisher_layers":{"q":{"width":..,"height":..},...},"simulcast":true,...}
// or {"ok":false,"step":"...","error":"..."} (exit 1) with page logs on stderr.

import {
  Run,
  scriptArgs,
  goLive,
  openWatch,
  publisherLayers,
  publisherTopWidth,
  switchLayers,
  endAndWatchEnd,
  sampleVideo,
  pollUntil,
} from './harness.mjs';
import { launchChromium, launchFirefox } from './browsers.mjs';

const USAGE =
  'usage: node e2e-firefox.mjs --base URL --key KEY --stream NAME [--publisher firefox|chromium] [--screenshots DIR] [--timeout-ms MS] [--check-end]';
const SPEC = {
  base: 'string',
  key: 'string',
  stream: 'string',
  publisher: 'string',
  screenshots: 'string',
  'timeout-ms': 'number',
  'check-end': 'bool',
};

const args = scriptArgs({
  spec: SPEC,
  usage: USAGE,
  defaults: { timeoutMs: 90000, checkEnd: false, publisher: 'firefox' },
  required: ['base', 'key', 'stream'],
  check: (a) => (['firefox', 'chromium'].includes(a.publisher) ? null : 'bad --publisher'),
});
const base = args.base.replace(/\/+$/, '');
const run = new Run(args).arm();

async function main() {
  run.step = 'launch';
  const firefox = await launchFirefox(run);
  const pubBrowser = args.publisher === 'chromium' ? await launchChromium(run) : firefox;

  // ---- publisher
  const pub = await pubBrowser.newPage('publish');
  const pubState = await goLive(run, pub, { base, key: args.key, stream: args.stream });

  // ---- viewer (Firefox)
  const watch = await firefox.newPage('watch');
  const first = await openWatch(run, watch, { base, stream: args.stream });

  // Wait until the publisher's page reports every layer it sends with a size,
  // so that the low layer's width can be compared with the top one. Firefox
  // turns a layer on only once its send-side estimate affords it: on an idle
  // machine all three start at once, but with the CPU contended it starts
  // with q (and h) and its estimate took ~27 s to reach f here.
  run.step = 'publisher layers';
  const { layers } = await pollUntil(
    run,
    'publisher reports its layers',
    () => publisherLayers(pub),
    (p) => Object.values(p.layers).length > 0 && Object.values(p.layers).every((l) => l.width > 0),
    Math.min(45000, run.remaining()),
  );
  const topWidth = await publisherTopWidth(pub);
  run.note(`publisher layers ${JSON.stringify(layers)}; top width ${topWidth}`);

  const { widthAuto, widthLow, widthHigh, picker, labels } = await switchLayers(run, watch, { first, topWidth });

  run.step = 'final state';
  const finalSample = await sampleVideo(watch);
  const pubFinal = await pub.evaluate(() => ({
    state: window.onair.state,
    codec: window.onair.codec,
    capture: window.onair.stats && window.onair.stats.capture,
    receiving: window.onair.health && window.onair.health.publisher ? window.onair.health.publisher.tracks : null,
  }));
  if (pubFinal.state !== 'live') throw new Error(`publisher left the live state: ${pubFinal.state}`);
  const viewer = await watch.evaluate(() => ({
    user_agent: navigator.userAgent,
    layer: window.onair.viewer && window.onair.viewer.layer,
  }));

  const sizes = Object.fromEntries(
    Object.entries(layers).map(([rid, l]) => [rid, { width: l.width, height: l.height }]),
  );
  const result = {
    ok: true,
    publisher: pubBrowser.name,
    publisher_version: pubBrowser.version,
    viewer: 'firefox',
    viewer_version: firefox.version,
    viewer_user_agent: viewer.user_agent,
    simulcast: pubState.simulcast,
    codec: pubFinal.codec,
    capture: pubFinal.capture,
    publisher_layers: sizes,
    server_receiving_rids: (pubFinal.receiving || []).filter((t) => t && t.kind === 'video').map((t) => t.rid || null),
    top_width: topWidth,
    frames_decoded: finalSample.framesDecoded,
    width_auto: widthAuto,
    width_low: widthLow,
    width_high: widthHigh,
    picker,
    labels,
    publisher_state: pubFinal.state,
  };

  run.step = 'screenshots';
  await run.screenshots();


  if (args.checkEnd) {
    result.publisher_state_after_end = await endAndWatchEnd(run, pub, watch);
    result.watch_ended = true;
    await run.screenshots('-ended');
  }
  // The watch page on a phone (issue 11 item 10): full-screen video, chat
  // over it. Last: resizing a page can keep a busy headless Firefox from
  // serving the other page's clicks for a while.
  run.step = 'phone layout';
  await watch.raw.setViewport({ width: 390, height: 844 });
  await new Promise((r) => setTimeout(r, 800));
  result.phone = await watch.evaluate(() => {
    const r = (s) => document.querySelector(s).getBoundingClientRect().toJSON();
    return { stage: r('#stage'), chat: r('#chat-list'), like: r('#like'), w: innerWidth, h: innerHeight, fit: getComputedStyle(document.querySelector('#video')).objectFit };
  });
  if (run.screenshotDir) await watch.screenshot(`${run.screenshotDir}/watch-phone.png`).catch(() => {});
  await watch.raw.setViewport({ width: 1366, height: 900 });
  await run.succeed(result);
}

main().catch((err) => run.fail(err));
