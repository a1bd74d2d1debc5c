#!/usr/bin/env node
// Publishes the fake camera from /publish in headless Chromium with a stream
// key until the studio is live, then stops (tests that need a real browser's
// WebRTC stack on the server side, e.g. its DTLS handshake).
//
//   node tests/browser/publish.mjs --base URL --key KEY [--timeout-ms MS]
//
// Prints one JSON line: {"ok":true,"stream":"ID","simulcast":true} or {"ok":false,...}.

import { Run, scriptArgs, goLive } from './harness.mjs';
import { launchChromium } from './browsers.mjs';

const args = scriptArgs({
  spec: { base: 'string', key: 'string', 'timeout-ms': 'number' },
  usage: 'usage: node publish.mjs --base URL --key KEY [--timeout-ms MS]',
  defaults: { timeoutMs: 60000 },
  required: ['base', 'key'],
});
const run = new Run(args).arm();

async function main() {
  run.step = 'launch';
  const chromium = await launchChromium(run);
  const pub = await chromium.newPage('publish');
  const st = await goLive(run, pub, { base: args.base.replace(/\/+$/, ''), key: args.key, stream: null });
  await run.succeed({ ok: true, stream: st.stream, simulcast: st.simulcast });
}

main().catch((err) => run.fail(err));
