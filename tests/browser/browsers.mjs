// Launching the browsers the end-to-end scripts drive, each with a fake camera
// and microphone and WebRTC allowed on loopback. Every `newPage(name)` opens a
// fresh, isolated browser context (own storage), registered with the Run.

import { playwrightPage, puppeteerPage } from './harness.mjs';

export const VIEWPORT = { width: 1366, height: 900 };

export const CHROMIUM_ARGS = [
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

/**
 * Headless Chromium (`$CHROMIUM`, default /usr/bin/chromium) through
 * playwright-core; `camera`: a .y4m file the fake camera plays (looped)
 * instead of its generated test pattern.
 */
export async function launchChromium(run, { camera = null } = {}) {
  const { chromium } = await import('playwright-core');
  const browser = run.addBrowser(
    await chromium.launch({
      executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
      headless: true,
      args: camera ? [...CHROMIUM_ARGS, `--use-file-for-fake-video-capture=${camera}`] : CHROMIUM_ARGS,
      timeout: Math.min(30000, run.remaining()),
    }),
  );
  run.note(`chromium ${browser.version()}`);
  return {
    name: 'chromium',
    version: browser.version(),
    async newPage(name) {
      const ctx = await browser.newContext({ viewport: VIEWPORT, permissions: ['camera', 'microphone'] });
      return run.addPage(name, playwrightPage(await ctx.newPage()));
    },
    /**
     * A fresh context (one user: its pages share storage and login) whose
     * `newPage(name)` opens registered pages in it, and `adopt(name, page)`
     * registers a page the context opened itself (a link with target=_blank).
     */
    async newContext(options = {}) {
      const ctx = await browser.newContext({ viewport: VIEWPORT, permissions: ['camera', 'microphone'], ...options });
      return {
        raw: ctx,
        newPage: async (name) => run.addPage(name, playwrightPage(await ctx.newPage())),
        adopt: (name, page) => run.addPage(name, playwrightPage(page)),
      };
    },
  };
}

/**
 * Firefox preferences for unattended WebRTC tests:
 * - fake camera/microphone (a generated test pattern and tone) and no
 *   permission prompt;
 * - ICE on the loopback interface only: the server under test listens on
 *   127.0.0.1 and Firefox ignores loopback addresses for ICE by default;
 * - no throttling of timers in background tabs (the publisher's tab is in
 *   the background while the viewer's is shown).
 */
export const FIREFOX_PREFS = {
  'media.navigator.streams.fake': true,
  'media.navigator.permission.disabled': true,
  'media.peerconnection.ice.loopback': true,
  'media.peerconnection.ice.force_interface': 'lo',
  'media.peerconnection.ice.obfuscate_host_addresses': false,
  'dom.min_background_timeout_value': 4,
  'dom.timeout.enable_budget_timer_throttling': false,
  'media.autoplay.default': 0,
};

/** Headless Firefox (`$FIREFOX`, default /usr/bin/firefox-esr) through puppeteer-core over WebDriver BiDi. */
export async function launchFirefox(run) {
  const { default: puppeteer } = await import('puppeteer-core');
  const browser = run.addBrowser(
    await puppeteer.launch({
      browser: 'firefox',
      executablePath: process.env.FIREFOX || '/usr/bin/firefox-esr',
      headless: true,
      timeout: Math.min(30000, run.remaining()),
      protocolTimeout: 30000,
      defaultViewport: VIEWPORT,
      extraPrefsFirefox: FIREFOX_PREFS,
    }),
  );
  const version = await browser.version();
  run.note(`firefox ${version}`);
  return {
    name: 'firefox',
    version,
    async newPage(name) {
      const ctx = await browser.createBrowserContext();
      const page = await ctx.newPage();
      await page.setViewport(VIEWPORT);
      return run.addPage(name, puppeteerPage(page));
    },
  };
}
