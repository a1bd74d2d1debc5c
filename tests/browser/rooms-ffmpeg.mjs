#!/usr/bin/env node
// FFmpeg WHIP co-hosts with a browser host, played by the watch page (issue 12):
//
//   ann:    the primary host, live from the studio in headless Chromium (fake
//           camera, VP8);
//   bob, cat: invited and accepted (API), then publish into ann's room with
//           their own stream keys from FFmpeg, as OBS does (H.264 constrained
//           baseline, yuv420p, Opus);
//   viewer: a Chromium watch page opens WHEP with slots and decodes all three
//           hosts, each in its tile: frames decoded per slot and the codec of
//           each slot from the connection's stats; a screenshot.
//
// Firefox is left out: its build on this machine has no H.264 decoder.
//
//   node tests/browser/rooms-ffmpeg.mjs --base URL --ffmpeg PATH [--screenshots DIR] [--timeout-ms MS]
//
// Prints one JSON line: {"ok":true, ...} or {"ok":false,"step","error"} (exit 1).

import { spawn } from 'node:child_process';
import { Run, scriptArgs, waitOn, shotTo, apiClient, loggedInContext, pollUntil } from './harness.mjs';
import { launchChromium } from './browsers.mjs';

const args = scriptArgs({
  spec: { base: 'string', ffmpeg: 'string', screenshots: 'string', 'timeout-ms': 'number' },
  usage: 'usage: node rooms-ffmpeg.mjs --base URL --ffmpeg PATH [--screenshots DIR] [--timeout-ms MS]',
  defaults: { timeoutMs: 180000 },
  required: ['base', 'ffmpeg'],
});
const base = args.base.replace(/\/+$/, '');
const run = new Run(args).arm();
const { call, register } = apiClient(base);
const tag = `${Date.now().toString(36).slice(-4)}${Math.floor(Math.random() * 900 + 100)}`;
const result = { ok: true };
const ffmpegs = [];

/** OBS-style WHIP publishing, as tests/common/ffmpeg.rs `obs` does (until killed). */
function obs(key) {
  const a = ['-hide_banner', '-loglevel', 'warning', '-re'];
  a.push('-f', 'lavfi', '-i', 'testsrc=size=640x360:rate=15', '-f', 'lavfi', '-i', 'sine=frequency=440:sample_rate=48000');
  a.push('-pix_fmt', 'yuv420p', '-c:v', 'libx264', '-profile:v', 'baseline', '-preset', 'ultrafast', '-tune', 'zerolatency', '-bf', '0', '-g', '30');
  a.push('-c:a', 'libopus', '-ar', '48000', '-ac', '2', '-authorization', key, '-f', 'whip', `${base}/whip`);
  const p = spawn(args.ffmpeg, a, { stdio: ['ignore', 'ignore', 'pipe'] });
  p.stderr.on('data', (d) => process.stderr.write(`[ffmpeg] ${d}`));
  ffmpegs.push(p);
  return p;
}
process.on('exit', () => ffmpegs.forEach((p) => p.kill('SIGKILL')));

/** The watch page's tiles, with each slot's frames decoded and codec from the WHEP connection's stats. */
const watchRoom = (page) =>
  page.evaluate(async () => {
    const s = window.onair.roomView.snapshot();
    const pc = window.onair.pc;
    const frames = {};
    const codecs = {};
    if (pc) {
      const tr = pc.getTransceivers();
      const stats = await pc.getStats();
      const codecOf = {};
      stats.forEach((r) => {
        if (r.type === 'codec') codecOf[r.id] = r.mimeType;
      });
      stats.forEach((r) => {
        if (r.type !== 'inbound-rtp' || r.kind !== 'video') return;
        const i = tr.findIndex((t) => t.mid === r.mid);
        if (i < 0) return;
        frames[i] = r.framesDecoded || 0;
        codecs[i] = codecOf[r.codecId] || null;
      });
    }
    for (const t of s.tiles) {
      t.framesBySlot = frames[Number(t.key)] || 0;
      t.codec = codecs[Number(t.key)] || null;
    }
    return s;
  });

async function main() {
  run.step = 'accounts';
  const users = {};
  const keys = {};
  for (const n of ['ann', 'bob', 'cat']) {
    users[n] = await register(`${n}_${tag}`, 'host', `${n[0].toUpperCase()}${n.slice(1)} ${tag.slice(0, 3)}`);
    keys[n] = await call('POST', '/api/me/stream-keys', users[n].access_token, { label: n === 'ann' ? 'studio' : 'OBS' });
  }
  const u = (n) => users[n].user.username;

  run.step = 'ann goes live from her studio';
  const chromium = await launchChromium(run);
  const ctx = await loggedInContext(chromium, users.ann, { viewport: { width: 1280, height: 800 } }, { [keys.ann.id]: keys.ann.key });
  const studio = await ctx.newPage('studio-ann');
  await studio.goto(`${base}/publish?key=${keys.ann.id}&camera=low`, run.remaining());
  await waitOn(run, studio, 'ann: Go live enabled', () => window.onair && window.onair.room && !document.querySelector('#go-live').disabled, null, 30000);
  await studio.click('#go-live', run.remaining());
  await waitOn(run, studio, 'ann: live', () => window.onair.state === 'live' && window.onair.room.stream != null, null, 40000);
  const sid = await studio.evaluate(() => window.onair.room.stream);
  result.stream = sid;
  // Hosts that are not studios cannot connect directly: the room goes through the SFU.
  await call('PATCH', `/api/streams/${sid}`, users.ann.access_token, { topology: 'sfu' });

  run.step = 'bob and cat join from FFmpeg (OBS-style H.264 over WHIP)';
  for (const n of ['bob', 'cat']) {
    await call('POST', `/api/streams/${sid}/invitations`, users.ann.access_token, { user: u(n) });
    await call('POST', `/api/streams/${sid}/invitations/accept`, users[n].access_token, {});
    obs(keys[n].key);
  }
  const connected = await pollUntil(run, 'the three hosts publish into the room', () => call('GET', `/api/streams/${sid}/hosts`, null), (hosts) => hosts.filter((x) => x.connected).length === 3, 40000);
  result.hosts = connected.map((x) => ({ user: x.user, role: x.role, slot: x.slot, connected: x.connected }));

  run.step = 'a Chromium watch page decodes the three hosts';
  const viewer = await chromium.newContext({ viewport: { width: 1280, height: 800 } });
  const watch = await viewer.newPage('watch');
  await watch.goto(`${base}/watch/${sid}`, run.remaining(), 'domcontentloaded');
  const all = ['ann', 'bob', 'cat'].map(u);
  // Each host in its own tile, its slot decoding frames (and still decoding a moment later).
  const decodes = (s) => all.every((x) => s.tiles.some((t) => t.host === x && t.videoWidth > 0 && t.framesBySlot > 10));
  const first = await pollUntil(run, 'the watch page decodes every host', () => watchRoom(watch), decodes, 60000);
  await watch.raw.waitForTimeout(2000);
  result.watch = await watchRoom(watch);
  result.watch_before = first.tiles.map((t) => ({ host: t.host, framesBySlot: t.framesBySlot }));
  await shotTo(args.screenshots, watch, 'watch-ffmpeg-cohosts');
  result.elapsed_ms = Date.now() - run.started;
  ffmpegs.forEach((p) => p.kill('SIGKILL'));
  await run.succeed(result);
}

main().catch((err) => run.fail(err));
