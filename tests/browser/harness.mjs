// Shared machinery of the browser end-to-end scripts (e2e.mjs drives Chromium
// through playwright-core, e2e-firefox.mjs drives Firefox through
// puppeteer-core): argument parsing, the single-JSON-line result protocol,
// deadlines, page logs, screenshots, and the publish/watch/layer steps, which
// talk to pages only through the small adapter below so that both drivers run
// the very same checks.

import fs from 'node:fs';
import path from 'node:path';

const AUTO_RAMP_MS = 15000; // how long auto may take to reach the top layer
const SETTLE_MS = 3000; // after a switch, how long to wait for the width to settle
export const POLL_MS = 250;

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

// ------------------------------------------------------------------ arguments

/**
 * Parses `--flag value` / `--flag=value` arguments. `spec` maps a flag name
 * (without dashes) to 'string' | 'number' | 'bool'; the key in the result is
 * the camelCased flag name.
 */
export function parseArgs(argv, spec) {
  const out = {};
  const camel = (s) => s.replace(/-([a-z])/g, (_, c) => c.toUpperCase());
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (a === '-h' || a === '--help') {
      out.help = true;
      continue;
    }
    const [flag, inline] = a.includes('=') ? [a.slice(0, a.indexOf('=')), a.slice(a.indexOf('=') + 1)] : [a, null];
    const name = flag.replace(/^--/, '');
    const kind = flag.startsWith('--') ? spec[name] : undefined;
    if (!kind) throw new Error(`unknown argument ${a}`);
    if (kind === 'bool') {
      out[camel(name)] = true;
      continue;
    }
    const v = inline != null ? inline : argv[++i];
    if (v === undefined) throw new Error(`missing value for ${flag}`);
    out[camel(name)] = kind === 'number' ? Number(v) : v;
  }
  return out;
}

/**
 * A script's arguments (see `parseArgs`), over `defaults`; or the script
 * ends here. `--help` prints `usage`. A bad argument, a missing `required`
 * flag, a bad `--timeout-ms` or the message `check(args)` returns is printed
 * with the usage on stderr, and as the one-line JSON failure on stdout
 * (step `args`), exit code 2.
 */
export function scriptArgs({ spec, usage, defaults = {}, required = [], check = () => null }) {
  const refuse = (error) => {
    process.stderr.write(`${error}\n${usage}\n`);
    process.stdout.write(`${JSON.stringify({ ok: false, step: 'args', error })}\n`);
    process.exit(2);
  };
  let args;
  try {
    args = { ...defaults, ...parseArgs(process.argv.slice(2), spec) };
  } catch (err) {
    refuse(err.message);
  }
  if (args.help) {
    process.stdout.write(`${usage}\n`);
    process.exit(0);
  }
  const missing = required.filter((k) => !args[k]);
  if (missing.length) refuse(`missing --${missing.join(', --')}`);
  if (!Number.isFinite(args.timeoutMs) || args.timeoutMs <= 0) refuse('bad --timeout-ms');
  const bad = check(args);
  if (bad) refuse(bad);
  return args;
}

// ------------------------------------------------------------------ page adapters

/** Wraps a playwright-core Page. */
export function playwrightPage(page) {
  return {
    raw: page,
    // `until` 'domcontentloaded' (our pages' modules have run by then) for
    // pages full of live video: twice on a loaded machine a live room's watch
    // page ran its scripts (it opened WHEP) yet its load event had not come
    // 280 s later. The caller then waits for the page's own state.
    goto: (url, timeout, until = 'load') => page.goto(url, { timeout, waitUntil: until }),
    evaluate: (fn, arg) => page.evaluate(fn, arg),
    waitFor: (fn, arg, timeout) => page.waitForFunction(fn, arg, { timeout, polling: POLL_MS }),
    fill: (sel, value, timeout) => page.fill(sel, value, { timeout }),
    click: (sel, timeout) => page.click(sel, { timeout }),
    select: (sel, value, timeout) => page.selectOption(sel, value, { timeout }),
    screenshot: (file) => page.screenshot({ path: file, timeout: 5000 }),
    isClosed: () => page.isClosed(),
  };
}

/** Wraps a puppeteer-core Page (CDP or WebDriver BiDi). */
export function puppeteerPage(page) {
  return {
    raw: page,
    goto: (url, timeout, until = 'load') => page.goto(url, { timeout, waitUntil: until }),
    evaluate: (fn, arg) => page.evaluate(fn, arg),
    waitFor: (fn, arg, timeout) => page.waitForFunction(fn, { timeout, polling: POLL_MS }, arg),
    fill: (sel, value, timeout) => page.locator(sel).setTimeout(timeout).fill(value),
    // Not a locator click: its "stable box" check waits on animation frames,
    // which a busy headless Firefox can stop delivering to a page that is
    // not in front (seen: End never clicked while the page was live).
    click: async (sel, timeout) => {
      const el = await page.waitForSelector(sel, { visible: true, timeout });
      await el.click();
      await el.dispose();
    },
    select: async (sel, value, timeout) => {
      await page.waitForSelector(sel, { timeout });
      const picked = await page.select(sel, value);
      if (!picked.includes(value)) throw new Error(`${sel} has no option ${value}`);
    },
    screenshot: (file) => page.screenshot({ path: file }),
    isClosed: () => page.isClosed(),
  };
}

// ------------------------------------------------------------------ a run

/**
 * One script run: deadline, logs, pages, and the exit protocol. stdout gets
 * exactly one JSON line (`succeed(result)` or `{"ok":false,step,error}` from
 * `fail`); progress and page logs go to stderr.
 */
export class Run {
  constructor({ timeoutMs, screenshots }) {
    this.started = Date.now();
    this.deadline = this.started + timeoutMs;
    this.timeoutMs = timeoutMs;
    this.screenshotDir = screenshots || null;
    this.logs = [];
    this.cspViolations = []; // the server's Content-Security-Policy refused something a page does
    this.pages = {}; // name -> adapter
    this.browsers = []; // objects with close()
    this.step = 'init';
    this.finished = false;
    this.exitCode = 1;
  }

  /** Arms the soft and hard deadlines and the unhandled-rejection trap. */
  arm() {
    // Soft deadline: report a timeout (or, if the result is already out, just exit).
    setTimeout(() => {
      if (this.finished) process.exit(this.exitCode);
      this.fail(new Error(`timed out after ${this.timeoutMs} ms`));
    }, this.timeoutMs);
    // Hard deadline: diagnostics and browser shutdown get at most 2.5 s more.
    setTimeout(() => process.exit(this.exitCode), this.timeoutMs + 2500).unref();
    process.on('unhandledRejection', (err) => this.fail(err));
    return this;
  }

  remaining() {
    return Math.max(1, this.deadline - Date.now());
  }

  elapsed() {
    return `${((Date.now() - this.started) / 1000).toFixed(1)}s`;
  }

  log(line) {
    this.logs.push(`${this.elapsed()} ${line}`);
    if (this.logs.length > 2000) this.logs.splice(0, this.logs.length - 2000);
  }

  note(msg) {
    // Progress on stderr keeps stdout to the single JSON result line.
    if (process.env.E2E_VERBOSE) process.stderr.write(`[e2e ${this.elapsed()}] ${msg}\n`);
    this.log(`[e2e] ${msg}`);
  }

  /** Registers a browser to close at the end (in reverse order). */
  addBrowser(browser) {
    this.browsers.push(browser);
    return browser;
  }

  /** Registers a page under `name` and records its console, errors and API traffic. */
  addPage(name, adapter) {
    this.pages[name] = adapter;
    const page = adapter.raw;
    page.on('console', (m) => {
      this.log(`[${name}] console.${m.type()}: ${m.text()}`);
      if (/Content.Security.Policy/i.test(m.text())) this.cspViolations.push(`[${name}] ${m.text()}`);
    });
    page.on('pageerror', (e) => this.log(`[${name}] pageerror: ${e && e.stack ? e.stack : e}`));
    page.on('requestfailed', (r) => {
      const f = r.failure();
      this.log(`[${name}] requestfailed: ${r.method()} ${r.url()} ${f ? f.errorText : ''}`);
    });
    page.on('response', (r) => {
      const u = r.url();
      if (/\/(whip|whep|api)\b/.test(u) || r.status() >= 400) {
        this.log(`[${name}] ${r.request().method()} ${u} -> ${r.status()}`);
      }
    });
    page.on('crash', () => this.log(`[${name}] page crashed`));
    return adapter;
  }

  async closeBrowsers() {
    const list = this.browsers.splice(0).reverse();
    for (const b of list) {
      await Promise.race([b.close().catch(() => {}), sleep(5000)]);
    }
  }

  async dumpState() {
    for (const [name, page] of Object.entries(this.pages)) {
      try {
        const st = await Promise.race([page.evaluate(snapshotOnair), sleep(2000).then(() => 'timeout')]);
        this.log(`[${name}] window.onair = ${JSON.stringify(st)}`);
      } catch (err) {
        this.log(`[${name}] window.onair unavailable: ${err.message}`);
      }
    }
  }

  async screenshots(suffix = '') {
    if (!this.screenshotDir) return;
    try {
      fs.mkdirSync(this.screenshotDir, { recursive: true });
    } catch (err) {
      this.log(`[e2e] cannot create ${this.screenshotDir}: ${err.message}`);
      return;
    }
    for (const [name, page] of Object.entries(this.pages)) {
      const file = path.join(this.screenshotDir, `${name}${suffix}.png`);
      try {
        await Promise.race([page.screenshot(file), sleep(8000).then(() => Promise.reject(new Error('timeout')))]);
        this.note(`screenshot ${file}`);
      } catch (err) {
        this.log(`[e2e] screenshot ${file} failed: ${err.message}`);
      }
    }
  }

  /** Best effort: DELETE the WHEP and WHIP sessions so the server is left clean. */
  async cleanup() {
    const names = Object.keys(this.pages);
    // Viewers first, then publishers.
    names.sort((a, b) => Number(a.startsWith('publish')) - Number(b.startsWith('publish')));
    for (const name of names) {
      const page = this.pages[name];
      if (!page || page.isClosed()) continue;
      await Promise.race([
        page
          .evaluate(() => {
            const o = window.onair;
            if (!o) return;
            if (o.page === 'watch' && typeof o.stop === 'function') return o.stop();
            if (o.page === 'publish' && typeof o.end === 'function') return o.end();
          })
          .catch(() => {}),
        sleep(Math.min(2000, this.remaining())),
      ]);
    }
  }

  async fail(err) {
    if (this.finished) return;
    this.finished = true;
    this.exitCode = 1;
    const error = err && err.message ? err.message.split('\n')[0] : String(err);
    process.stdout.write(`${JSON.stringify({ ok: false, step: this.step, error })}\n`);
    await Promise.race([
      (async () => {
        await this.dumpState();
        await this.screenshots('-failure');
        await this.cleanup();
      })(),
      sleep(Math.max(1500, Math.min(8000, this.remaining()))),
    ]);
    process.stderr.write(`e2e failed at step "${this.step}": ${err && err.stack ? err.stack : err}\n`);
    process.stderr.write('--- page logs ---\n');
    process.stderr.write(`${this.logs.join('\n')}\n`);
    await this.closeBrowsers();
    process.exit(1);
  }

  async succeed(result) {
    if (this.cspViolations.length) {
      return this.fail(new Error(`the pages broke the Content-Security-Policy: ${this.cspViolations.slice(0, 3).join(' | ')}`));
    }
    this.step = 'close';
    this.finished = true;
    this.exitCode = 0;
    process.stdout.write(`${JSON.stringify(result)}\n`);
    await this.cleanup();
    if (process.env.E2E_VERBOSE) process.stderr.write(`${this.logs.join('\n')}\n`);
    await this.closeBrowsers();
    process.exit(0);
  }
}

/** Serializable view of a page's window.onair (runs in the page). */
function snapshotOnair() {
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
}

// ------------------------------------------------------------------ measurements

/** Samples the watch page's decoded video: getStats inbound-rtp + <video> size. */
export function sampleVideo(page) {
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
      layer: o.currentLayer || null,
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
export async function pollUntil(run, what, sample, pred, ms) {
  const until = Math.min(run.deadline, Date.now() + ms);
  let last = null;
  for (;;) {
    // A sample is a page.evaluate: bounded too, so a page that stops
    // answering fails this step by name instead of the whole run's budget.
    let timer;
    const hung = new Promise((_, reject) => {
      timer = setTimeout(() => reject(new Error(`${what}: the page did not answer (last sample ${JSON.stringify(last)})`)), Math.max(until - Date.now(), 0) + 5000);
    });
    try {
      last = await Promise.race([sample(), hung]);
    } finally {
      clearTimeout(timer);
    }
    if (pred(last)) return last;
    if (Date.now() >= until) {
      throw new Error(`${what}: condition not met in ${ms} ms; last sample ${JSON.stringify(last)}`);
    }
    await sleep(POLL_MS);
  }
}

/** After a change, waits (briefly) for the decoded width to stop moving. */
async function settle(run, page, ok) {
  const until = Math.min(run.deadline - 1000, Date.now() + SETTLE_MS);
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

// ------------------------------------------------------------------ steps

/** Opens /publish on `pub`, enters the key, clicks Go live and waits for `live`. */
export async function goLive(run, pub, { base, key, stream }) {
  run.step = 'open publish';
  await pub.goto(`${base}/publish`, run.remaining());
  await pub.waitFor(() => window.onair && window.onair.page === 'publish', null, run.remaining());

  run.step = 'fill key';
  await pub.fill('#stream-key', key, run.remaining());

  run.step = 'go live';
  // Go live is enabled once the camera is open and a key is entered.
  await pub.waitFor(() => !document.querySelector('#go-live').disabled, null, run.remaining());
  await pub.click('#go-live', run.remaining());
  run.note('clicked go live');

  run.step = 'wait publisher live';
  await pub.waitFor(
    () => window.onair && (window.onair.state === 'live' || window.onair.state === 'error'),
    null,
    run.remaining(),
  );
  const pubState = await pub.evaluate(() => ({
    state: window.onair.state,
    error: window.onair.error,
    stream: window.onair.stream,
    simulcast: window.onair.simulcast,
  }));
  if (pubState.state !== 'live') {
    const e = pubState.error || {};
    throw new Error(
      `publisher ended in state ${pubState.state}: ${e.message || 'unknown error'}${e.status ? ` (HTTP ${e.status})` : ''}`,
    );
  }
  if (pubState.stream && pubState.stream !== stream) {
    run.log(`[e2e] warning: key belongs to stream "${pubState.stream}", watching "${stream}"`);
  }
  run.note(`publisher live on ${pubState.stream} (simulcast ${pubState.simulcast})`);
  return pubState;
}

/** The publisher's encoded layers as its page reports them: {q,h,f} -> {width,height,...}. */
export function publisherLayers(pub) {
  return pub.evaluate(() => {
    const st = window.onair && window.onair.stats;
    return {
      layers: (st && st.layers) || {},
      capture: (st && st.capture) || {},
    };
  });
}

/** Width of the top layer the publisher sends (0 when unknown). */
export async function publisherTopWidth(pub) {
  const { layers, capture } = await publisherLayers(pub);
  if (layers.f && layers.f.width) return layers.f.width;
  return Math.max(0, ...Object.values(layers).map((l) => l.width || 0), capture.width || 0);
}

/** Opens /watch/{stream} on `watch` and waits for decoded frames. */
export async function openWatch(run, watch, { base, stream }) {
  run.step = 'open watch';
  await watch.goto(`${base}/watch/${encodeURIComponent(stream)}`, run.remaining());

  run.step = 'wait decoded frames';
  const first = await pollUntil(
    run,
    'decoded frames',
    () => sampleVideo(watch),
    (s) => s.framesDecoded > 0 && s.videoWidth > 0,
    run.remaining(),
  );
  run.note(`first frames: ${JSON.stringify(first)}`);
  return first;
}

/**
 * Lets auto ramp up, then caps the viewer to the lowest layer (`q`) with the
 * page's picker and back to the highest (`f`), measuring the decoded width
 * after each. `topWidth` is the publisher's top layer width (0 if unknown).
 */
export async function switchLayers(run, watch, { first, topWidth }) {
  run.step = 'auto layer';
  let best = first;
  let auto = first;
  try {
    auto = await pollUntil(
      run,
      'auto reaches top layer',
      async () => {
        const s = await sampleVideo(watch);
        if (s.width > best.width) best = s;
        return s;
      },
      (s) => topWidth > 0 && s.width >= topWidth,
      Math.min(AUTO_RAMP_MS, run.remaining() - 5000),
    );
  } catch (err) {
    run.note(`auto did not reach ${topWidth} (${err.message}); using widest seen`);
    auto = best;
  }
  auto = await settle(run, watch, (s) => s.width >= auto.width);
  const widthAuto = auto.width;
  run.note(`width_auto ${widthAuto}`);

  run.step = 'the picker offers the stream\'s layers';
  const picker = await pollUntil(run, 'the picker lists High, Medium and Low with their sizes', () => pickerState(watch), (p) => p.visible && p.options.length === 4, Math.min(20000, run.remaining()));
  run.note(`picker: ${JSON.stringify(picker)}`);

  // Each switch must be visible in the decoded width. Auto normally sits
  // above Low, so Low comes first; on a congested machine auto can sit at
  // Low already, and then High goes first (a rise), then Low (a drop).
  const lowest = Math.min(...picker.layers.map((l) => l.width).filter((w) => w > 0));
  // One switch: pick `layer`, wait until the decoded width passes `from`
  // (`moved` says which way), note it, and check the labels follow.
  const select = async ({ layer, name, layers, moved, pick }, from) => {
    run.step = `select ${name.toLowerCase()}`;
    const before = (await labels(watch)).history.length;
    await watch.select('#layer', layer, run.remaining());
    const first = await pollUntil(run, `width ${moved.word} after selecting ${name}`, () => sampleVideo(watch), (s) => moved.test(s.width, from), run.remaining());
    const settled = await settle(run, watch, (s) => moved.test(s.width, from));
    const width = pick(first.width, settled.width);
    run.note(`width_${name.toLowerCase()} ${width}`);
    return { width, labels: await labelsMatch(run, watch, layers, name, before) };
  };
  const LOW = { layer: 'q', name: 'Low', layers: ['q'], moved: { word: 'drops', test: (w, from) => w > 0 && w < from }, pick: Math.min };
  const HIGH = { layer: 'f', name: 'High', layers: ['f', 'h'], moved: { word: 'rises', test: (w, from) => w > from }, pick: Math.max };
  const selectLow = (above) => select(LOW, above);
  const selectHigh = (below) => select(HIGH, below);
  let low;
  let high;
  if (widthAuto > lowest) {
    low = await selectLow(widthAuto);
    high = await selectHigh(low.width);
  } else {
    run.note('auto sits at Low: High first, then Low');
    high = await selectHigh(widthAuto);
    low = await selectLow(high.width);
  }
  const widthLow = low.width;
  const widthHigh = high.width;
  const labelsLow = low.labels;
  const labelsHigh = high.labels;
  return { widthAuto, widthLow, widthHigh, picker, labels: { low: labelsLow, high: labelsHigh } };
}

/** The quality picker as shown: visible or not, and its options' values and words. */
export function pickerState(page) {
  return page.evaluate(() => {
    const sel = document.querySelector('#layer');
    const single = document.querySelector('#layer-single');
    return {
      visible: !!sel && !sel.hidden && sel.offsetParent !== null,
      options: sel ? [...sel.options].map((o) => ({ value: o.value, text: o.textContent })) : [],
      single: single && !single.hidden ? single.textContent : null,
      layers: (window.onair && window.onair.layers) || [],
    };
  });
}

/** What the page says is playing, and what the video decodes. */
export function labels(page) {
  return page.evaluate(() => {
    const v = document.querySelector('#video');
    const text = (sel) => (document.querySelector(sel) ? document.querySelector(sel).textContent : null);
    return {
      current_layer: window.onair.currentLayer,
      badge: text('#badge-layer'),
      badge_hidden: document.querySelector('#badge-layer').hidden,
      stat_layer: text('#stat-layer'),
      video_height: v ? v.videoHeight : 0,
      layer_events: window.onair.layerEvents,
      history: window.onair.layerHistory || [],
    };
  });
}

const LAYER_NAME = { f: 'High', h: 'Medium', q: 'Low' };

/**
 * After a switch to `layer`: the server's event said it was received (a
 * busy machine's viewer may move on since: a cap is a ceiling), and the
 * labels say what is decoded now: the badge its height, Playback details
 * the name of the layer the server says it gets.
 */
async function labelsMatch(run, watch, layers, name, since) {
  // `layers`: what the server may switch to. Low is exactly `q`; High is a
  // cap, so on a congested link the allocator may stop at Medium: any layer
  // above Low counts, and the labels must then name what arrives.
  run.step = `labels follow the switch to ${name}`;
  const seen = (x) => layers.find((l) => x.history.slice(since).includes(l));
  const l = await pollUntil(
    run,
    `the server said ${name}, and the labels say what is decoded`,
    () => labels(watch),
    (x) =>
      !!seen(x) &&
      !x.badge_hidden &&
      x.badge === `${x.video_height}p` &&
      !!x.current_layer &&
      x.stat_layer.startsWith(LAYER_NAME[x.current_layer]),
    Math.min(10000, run.remaining()),
  );
  return { ...l, seen: seen(l) };
}

/** Clicks End on the publisher and waits for the viewer to show the end. */
export async function endAndWatchEnd(run, pub, watch) {
  run.step = 'end stream';
  await pub.click('#end', run.remaining());
  await watch.waitFor(() => window.onair && window.onair.state === 'ended', null, run.remaining());
  return pub.evaluate(() => window.onair.state);
}

// ------------------------------------------------------------------ shared steps of the page scripts

/** Waits until `fn(arg)` holds in `page` (at most `ms`), naming `what` when it does not. */
export async function waitOn(run, page, what, fn, arg = null, ms = 20000) {
  try {
    await page.waitFor(fn, arg, Math.min(ms, run.remaining()));
  } catch (err) {
    throw new Error(`${what}: ${err.message.split('\n')[0]}`);
  }
}

/** A screenshot of `page` as `dir/name.png` (nothing without a directory). */
export async function shotTo(dir, page, name) {
  if (!dir) return null;
  fs.mkdirSync(dir, { recursive: true });
  const file = path.join(dir, `${name}.png`);
  // A page full of video on a busy machine can take a while to paint: more
  // than the adapter's 5 s (playwright pages take a timeout; puppeteer's not).
  const take = typeof page.raw.context === 'function' ? page.raw.screenshot({ path: file, timeout: 30000 }) : page.screenshot(file);
  await Promise.race([take, sleep(35000).then(() => Promise.reject(new Error(`screenshot ${name} timed out`)))]);
  return file;
}

/** The JSON API of the server at `base`: `call(method, path, token, body)` and `register(username, role, display)`. */
export function apiClient(base) {
  const call = async (method, p, token, body) => {
    const resp = await fetch(`${base}${p}`, {
      method,
      headers: { 'Content-Type': 'application/json', ...(token ? { Authorization: `Bearer ${token}` } : {}) },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    const text = await resp.text();
    if (!resp.ok) throw new Error(`${method} ${p}: ${resp.status} ${text}`);
    return text ? JSON.parse(text) : null;
  };
  const register = (username, role, display) =>
    call('POST', '/api/auth/register', null, { username, display_name: display, email: `${username}@example.test`, password: 'correct horse battery', role });
  return { call, register };
}

/**
 * A Chromium context (see browsers.mjs) logged in as `pair` (tokens in
 * localStorage, as the login page leaves them), with stream `keys`
 * ({id: secret}) saved as the dashboard leaves them.
 */
export async function loggedInContext(chromium, pair, options = {}, keys = null) {
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

/**
 * A watch page's room view (room-view.js): slots and tiles, each tile's
 * decoded frames taken from the WHEP connection's stats by its slot
 * (Firefox counts no frames of a WebRTC stream in getVideoPlaybackQuality).
 */
export function watchRoomSnapshot(page) {
  return page.evaluate(async () => {
    const s = window.onair.roomView.snapshot();
    const pc = window.onair.pc;
    s.framesBySlot = {};
    if (pc) {
      const tr = pc.getTransceivers();
      const stats = await pc.getStats();
      stats.forEach((r) => {
        if (r.type !== 'inbound-rtp' || r.kind !== 'video') return;
        let i = tr.findIndex((t) => t.receiver.track && t.receiver.track.id === r.trackIdentifier);
        if (i < 0 && r.mid != null) i = tr.findIndex((t) => t.mid === r.mid);
        if (i >= 0) s.framesBySlot[i] = r.framesDecoded || 0;
      });
    }
    for (const t of s.tiles) t.framesDecoded = Math.max(t.framesDecoded || 0, s.framesBySlot[Number(t.key)] || 0);
    return s;
  });
}
