#!/usr/bin/env node
// The admin console (`/admin`, issue 18) in headless Chromium:
//
//   admin:     (made by the Rust test, logged in here) opens /admin at
//              1280x800, reads the overview figures, approves a host waiting
//              for approval (the server runs with --host-approval), searches
//              a user and disables then enables them, ends a live stream with
//              a reason, resolves its report, takes its replay down, adds and
//              deletes a webhook, and reads the audit log of those actions;
//              the same page on a phone (390x844);
//   viewer:    opening /admin sees "Admins only";
//   anonymous: opening /admin is sent to the login page.
//
//   node tests/browser/admin.mjs --base URL --admin-login JSON [--screenshots DIR] [--timeout-ms MS]
//
// Prints one JSON line: {"ok":true, ...} or {"ok":false,"step","error"} (exit 1).

import path from 'node:path';
import fs from 'node:fs';
import { Run, scriptArgs } from './harness.mjs';
import { launchChromium } from './browsers.mjs';

const args = scriptArgs({
  spec: { base: 'string', 'admin-login': 'string', screenshots: 'string', 'timeout-ms': 'number' },
  usage: 'usage: node admin.mjs --base URL --admin-login JSON [--screenshots DIR] [--timeout-ms MS]',
  defaults: { timeoutMs: 120000 },
  required: ['base', 'adminLogin'],
});
const base = args.base.replace(/\/+$/, '');
const run = new Run(args).arm();
const tag = `${Date.now().toString(36).slice(-4)}${Math.floor(Math.random() * 900 + 100)}`;
const result = { ok: true, csp_violations: [] };

async function waitFor(page, what, fn, arg = null, ms = 20000) {
  try {
    await page.waitFor(fn, arg, Math.min(ms, run.remaining()));
  } catch (err) {
    throw new Error(`${what}: ${err.message.split('\n')[0]}`);
  }
}
const admin = (page, field) => page.evaluate((f) => JSON.parse(JSON.stringify(window.onairAdmin ? window.onairAdmin[f] ?? null : null)), field);

async function shot(page, name, fullPage = false) {
  if (!args.screenshots) return;
  fs.mkdirSync(args.screenshots, { recursive: true });
  await page.raw.screenshot({ path: path.join(args.screenshots, `${name}.png`), timeout: 8000, fullPage });
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

const register = (username, role, display) =>
  call('POST', '/api/auth/register', null, { username, display_name: display, email: `${username}@example.test`, password: 'correct horse battery', role });

/** A browser context logged in as `pair` (or anonymous), watching for CSP refusals. */
async function context(chromium, pair, options = {}) {
  const ctx = await chromium.newContext(options);
  if (pair) {
    await ctx.raw.addInitScript((pair) => {
      if (localStorage.getItem('onair.refreshToken')) return;
      localStorage.setItem('onair.accessToken', pair.access_token);
      localStorage.setItem('onair.refreshToken', pair.refresh_token);
      localStorage.setItem('onair.user', JSON.stringify(pair.user));
    }, pair);
  }
  return ctx;
}

async function open(ctx, name, url) {
  const page = await ctx.newPage(name);
  page.raw.on('console', (m) => {
    if (/Content Security Policy/i.test(m.text())) result.csp_violations.push(`${name}: ${m.text()}`);
  });
  await page.goto(url, run.remaining());
  return page;
}

/** Fills the reason dialog and confirms it. */
async function confirmReason(page, text) {
  await waitFor(page, 'the reason dialog opens', () => document.querySelector('#reason-dialog').open);
  await page.fill('#reason-input', text, run.remaining());
  await page.click('#reason-ok', run.remaining());
  await waitFor(page, 'the reason dialog closes', () => !document.querySelector('#reason-dialog').open);
}

async function main() {
  const root = JSON.parse(args.adminLogin);
  run.step = 'accounts';
  // The server requires approval of new hosts (--host-approval): the host waits for the admin.
  const host = await register(`host_${tag}`, 'host', `Night Owl ${tag}`);
  const viewer = await register(`vic_${tag}`, 'viewer', 'Vic');
  const target = await register(`zed_${tag}`, 'viewer', 'Zed Target');

  run.step = 'launch';
  const chromium = await launchChromium(run);

  run.step = 'the admin opens the console';
  const adminCtx = await context(chromium, root, { viewport: { width: 1280, height: 800 } });
  const page = await open(adminCtx, 'admin-desktop', `${base}/admin`);
  const figures = async () => {
    await waitFor(page, 'the console is ready', () => window.onairAdmin && window.onairAdmin.ready && !document.querySelector('#console').hidden);
    const apiNow = await call('GET', '/api/admin/overview', root.access_token);
    const shown = await page.evaluate(() => {
      const t = (id) => document.getElementById(id).textContent;
      return { live_streams: t('ov-live'), viewers_now: t('ov-viewers'), peak_today: t('ov-peak'), new_users_today: t('ov-new'), revenue_today: t('ov-revenue'), open_reports: t('ov-reports'), pending_hosts: t('ov-pending') };
    });
    const keys = Object.keys(shown);
    return { api: Object.fromEntries(keys.map((k) => [k, apiNow[k]])), page: shown };
  };
  result.overview_before = await figures();

  run.step = 'approve the waiting host';
  await page.select('#user-status', 'pending', run.remaining());
  await waitFor(page, 'the waiting host is listed', (u) => window.onairAdmin.users.length === 1 && window.onairAdmin.users[0].username === u && !!document.querySelector(`#user-rows tr[data-user="${u}"] button[data-action="approve"]`), host.user.username);
  await page.click(`#user-rows tr[data-user="${host.user.username}"] button[data-action="approve"]`, run.remaining());
  await confirmReason(page, 'Welcome aboard');
  await waitFor(page, 'nobody waits any more', () => window.onairAdmin.users.length === 0 && document.getElementById('ov-pending').textContent === '0');
  result.approval_api = await call('GET', '/api/me/host-approval', host.access_token);
  await page.select('#user-status', '', run.remaining());

  run.step = 'the host goes live and a viewer reports the stream';
  const stream = await call('POST', '/api/streams', host.access_token, { title: `Late show ${tag}` });
  await call('POST', `/api/streams/${stream.id}/start`, host.access_token, {});
  const report = await call('POST', `/api/streams/${stream.id}/reports`, viewer.access_token, { reason: 'Flashing lights without a warning' });
  await page.goto(`${base}/admin`, run.remaining());
  result.overview = await figures();
  result.health = await page.evaluate(() => ({ sessions: document.getElementById('hl-sessions').textContent, workers: document.getElementById('hl-workers').textContent, charts: document.querySelectorAll('#charts svg').length }));
  result.admin_link = await page.evaluate(() => !!document.querySelector('#account a[href="/admin"][aria-current="page"]'));
  result.live_listed = (await admin(page, 'live')).some((s) => s.id === stream.id);
  result.report_listed = (await admin(page, 'reports')).some((r) => r.id === report.id);
  await waitFor(page, 'the notices are gone', () => !document.querySelector('.toast'), null, 15000);
  await shot(page, 'admin-desktop');
  // A fresh server has one sample at most (one a minute): the drawing of a
  // day's line is checked with the page's own function on made-up samples,
  // never shown.
  result.chart_drawing = await page.evaluate(async () => {
    const { lineChart } = await import('/static/admin.js');
    const t0 = Date.parse('2026-01-01T00:00:00Z');
    const samples = [3, 7, 5, 0, 9].map((v, i) => ({ at: new Date(t0 + i * 60000).toISOString(), viewers: v }));
    const card = lineChart('Viewers', samples, (x) => x.viewers, String, 4);
    const d = card.querySelector('path.line').getAttribute('d');
    const pts = d.split(/[ML]/).filter(Boolean).map((p) => p.trim().split(' ').map(Number));
    return { points: pts, headline: card.querySelector('b').textContent, one_sample_line: !!lineChart('Viewers', samples.slice(0, 1), (x) => x.viewers, String).querySelector('path.line') };
  });
  run.step = 'search a user, disable and enable them';
  await page.fill('#user-q', target.user.username, run.remaining());
  await waitFor(page, 'the search finds one user', (u) => window.onairAdmin.users.length === 1 && window.onairAdmin.users[0].username === u && document.querySelectorAll('#user-rows tr').length === 1, target.user.username);
  result.search_total = await page.evaluate(() => document.getElementById('users-total').textContent);
  await page.click(`#user-rows tr[data-user="${target.user.username}"] button[data-action="disable"]`, run.remaining());
  await waitFor(page, 'the user shows disabled', (u) => window.onairAdmin.users[0].disabled === true && document.querySelector(`#user-rows tr[data-user="${u}"] .admin-status`).textContent === 'Disabled', target.user.username);
  result.disabled_api = (await call('GET', `/api/admin/users/${target.user.username}`, root.access_token)).user.disabled;
  result.disabled_login = (await fetch(`${base}/api/auth/login`, { method: 'POST', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify({ username: target.user.username, password: 'correct horse battery' }) })).status;
  await page.click(`#user-rows tr[data-user="${target.user.username}"] button[data-action="enable"]`, run.remaining());
  await waitFor(page, 'the user shows active again', () => window.onairAdmin.users[0].disabled === false && document.querySelector('#user-rows tr .admin-status').textContent === 'Active');
  result.enabled_api = (await call('GET', `/api/admin/users/${target.user.username}`, root.access_token)).user.disabled;

  run.step = 'end the live stream with a reason';
  await page.click(`#live-rows tr[data-stream="${stream.id}"] button[data-action="end"]`, run.remaining());
  await confirmReason(page, 'Flashing lights, reported by viewers');
  await waitFor(page, 'the stream left the live list', (id) => !window.onairAdmin.live.some((s) => s.id === id) && !document.querySelector(`#live-rows tr[data-stream="${id}"]`), stream.id);
  const ended = await call('GET', `/api/streams/${stream.id}`, root.access_token);
  result.ended_state = ended.state;

  run.step = 'resolve the report';
  await page.click(`#report-rows tr[data-report="${report.id}"] button[data-action="resolve"]`, run.remaining());
  await confirmReason(page, 'Stream ended');
  await waitFor(page, 'the report left the open queue', (id) => !window.onairAdmin.reports.some((r) => r.id === id), report.id);
  result.report_after = (await call('GET', '/api/admin/reports?state=all', root.access_token)).find((r) => r.id === report.id);

  run.step = 'take the replay down';
  await waitFor(page, 'the saved replay is listed', (id) => window.onairAdmin.replays.some((s) => s.id === id), stream.id);
  await page.click(`#replay-rows tr[data-stream="${stream.id}"] button[data-action="takedown"]`, run.remaining());
  await confirmReason(page, 'Copyrighted music throughout');
  await waitFor(page, 'the replay left the list', (id) => !window.onairAdmin.replays.some((s) => s.id === id) && !document.querySelector(`#replay-rows tr[data-stream="${id}"]`), stream.id);
  result.after_takedown = (await call('GET', `/api/streams/${stream.id}`, root.access_token)).state;
  result.public_recent = (await call('GET', '/api/streams?type=recent', null)).streams.map((s) => s.id);

  run.step = 'add and delete a webhook';
  await page.fill('#webhook-url', `https://hooks.example.com/onair-${tag}`, run.remaining());
  await page.click('#webhook-add', run.remaining());
  await waitFor(page, 'the webhook is listed with its secret shown once', () => window.onairAdmin.webhooks.length === 1 && !document.querySelector('#webhook-secret').hidden);
  const hookId = (await admin(page, 'webhooks'))[0].id;
  await page.click(`#webhook-rows tr[data-webhook="${hookId}"] button[data-action="delete"]`, run.remaining());
  await page.click(`#webhook-rows tr[data-webhook="${hookId}"] button[data-action="delete"]`, run.remaining());
  await waitFor(page, 'the webhook is gone', () => window.onairAdmin.webhooks.length === 0);

  run.step = 'the audit log';
  await waitFor(page, 'eight entries in the log', () => document.querySelectorAll('#audit-rows tr').length === 8);
  result.audit_page = await page.evaluate(() => [...document.querySelectorAll('#audit-rows tr')].map((tr) => ({ action: tr.dataset.action, cells: [...tr.children].map((td) => td.textContent) })));
  result.audit_api = (await call('GET', '/api/admin/audit', root.access_token)).entries.map((e) => ({ id: e.id, action: e.action, reason: e.reason }));
  result.overview_after = await page.evaluate(() => ({ live_streams: document.getElementById('ov-live').textContent, open_reports: document.getElementById('ov-reports').textContent }));
  await page.click('#audit-refresh', run.remaining());
  await waitFor(page, 'the notices are gone', () => !document.querySelector('.toast'), null, 15000);
  await page.evaluate(() => document.getElementById('audit').scrollIntoView());
  await shot(page, 'admin-desktop-audit');
  await page.evaluate(() => document.getElementById('users').scrollIntoView());
  await shot(page, 'admin-desktop-users');

  run.step = 'the console on a phone';
  const phoneCtx = await context(chromium, root, { viewport: { width: 390, height: 844 }, isMobile: true, hasTouch: true, deviceScaleFactor: 2 });
  const phone = await open(phoneCtx, 'admin-phone', `${base}/admin`);
  await waitFor(phone, 'the phone console is ready', () => window.onairAdmin && window.onairAdmin.ready);
  result.phone_layout = await phone.evaluate(() => {
    const r = (el) => {
      const b = el.getBoundingClientRect();
      return { left: Math.round(b.left), right: Math.round(b.right), top: Math.round(b.top) };
    };
    const sections = ['overview', 'users', 'streams', 'reports', 'webhooks', 'audit'].map((id) => ({ id, ...r(document.getElementById(id)) }));
    const wrap = document.querySelector('#audit .table-wrap');
    // The users are cards on a phone: each one's actions on screen, not off to the side.
    const buttons = [...document.querySelectorAll('#user-rows tr:first-child .admin-actions > *')].map(r);
    return { w: window.innerWidth, users_actions: buttons, scroll_width: document.documentElement.scrollWidth, sections, table_scrolls: wrap.scrollWidth > wrap.clientWidth, table_wrap_overflow: getComputedStyle(wrap).overflowX };
  });
  await shot(phone, 'admin-phone');
  await phone.evaluate(() => document.getElementById('users').scrollIntoView());
  await shot(phone, 'admin-phone-users');
  await phone.evaluate(() => document.getElementById('audit').scrollIntoView());
  await shot(phone, 'admin-phone-audit');

  run.step = 'a viewer sees admins only';
  const viewerCtx = await context(chromium, viewer, { viewport: { width: 1280, height: 800 } });
  const vpage = await open(viewerCtx, 'viewer', `${base}/admin`);
  await waitFor(vpage, 'the admins-only message', () => window.onairAdmin && window.onairAdmin.forbidden && !document.querySelector('#forbidden').hidden);
  result.viewer = await vpage.evaluate(() => ({ heading: document.querySelector('#forbidden h1').textContent, console_hidden: document.querySelector('#console').hidden, admin_link: !!document.querySelector('#account a[href="/admin"]') }));
  await shot(vpage, 'admin-viewer-refused');

  run.step = 'logged out: sent to the login page';
  const anonCtx = await context(chromium, null, { viewport: { width: 1280, height: 800 } });
  const apage = await open(anonCtx, 'anonymous', `${base}/admin`);
  await waitFor(apage, 'on the login page', () => window.location.pathname === '/login');
  result.anonymous_url = await apage.evaluate(() => window.location.pathname + window.location.search);

  await run.succeed(result);
}

main().catch((err) => run.fail(err));
