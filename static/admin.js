// The admin console (`/admin`): the platform at a glance with the day's
// health drawn as small SVG line charts, users and host approval, streams
// live now (end one with a reason) and replays (take one down), viewers'
// reports, payouts waiting, webhooks and the audit log. Every action goes
// through the admin API (`/api/admin/*`), which answers 403 to anyone but an
// admin: the page then says so. ES module, no build step.

import { $, h, describeError, formatNumber, formatWhen, timeAgo, toast } from './common.js';
import { api, currentUser, loginUrl, renderAccount } from './session.js';

const SVG = 'http://www.w3.org/2000/svg';
const AUDIT_PAGE = 25;
const USERS_PAGE = 50;
/** What the page shows, for people and for the browser test. */
const state = { overview: null, users: [], usersTotal: 0, live: [], replays: [], reports: [], payouts: [], webhooks: [], audit: [], auditNext: null, forbidden: false, ready: false };
window.onairAdmin = state;

const ACTION = {
  change_user: 'Changed user',
  approve_host: 'Approved host',
  reject_host: 'Declined host',
  end_stream: 'Ended stream',
  take_down: 'Took replay down',
  resolve_report: 'Resolved report',
  dismiss_report: 'Dismissed report',
  create_webhook: 'Added webhook',
  delete_webhook: 'Deleted webhook',
};
const ROLE = { viewer: 'Viewer', host: 'Host', admin: 'Admin' };

// ------------------------------------------------------------------ helpers

function s(tag, attrs = {}, ...children) {
  const el = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs)) el.setAttribute(k, String(v));
  for (const c of children) el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  return el;
}

function bytes(n) {
  if (n == null || !Number.isFinite(n)) return '—';
  if (n >= 1 << 30) return `${(n / (1 << 30)).toFixed(2)} GiB`;
  if (n >= 1 << 20) return `${Math.round(n / (1 << 20))} MiB`;
  return `${Math.round(n / 1024)} KiB`;
}

function setFigure(id, text) {
  $(id).textContent = text;
}

/** A button that runs `fn` once at a time and reports its error. */
function action(label, cls, fn, attrs = {}) {
  const b = h(`button.btn.btn-sm${cls}`, { type: 'button', ...attrs }, label);
  b.addEventListener('click', async () => {
    b.disabled = true;
    try {
      await fn(b);
    } catch (err) {
      toast(describeError(err), 'error');
    } finally {
      if (b.isConnected) b.disabled = false;
    }
  });
  return b;
}

function userLink(u) {
  if (!u) return h('span.muted', {}, '—');
  return h('a', { href: `/c/${encodeURIComponent(u.username)}` }, `@${u.username}`);
}

function show(listId, emptyId, rows) {
  $(listId).replaceChildren(...rows);
  $(emptyId).hidden = rows.length > 0;
}

// ------------------------------------------------------------------ the reason dialog

/**
 * Asks for a reason (or a note): resolves to the text, or null when
 * cancelled. `required` refuses an empty one.
 */
function askReason({ title, hint, confirm = 'Confirm', required = true, danger = true }) {
  const dlg = $('#reason-dialog');
  const input = $('#reason-input');
  $('#reason-title').textContent = title;
  $('#reason-hint').textContent = hint;
  $('#reason-ok').textContent = confirm;
  $('#reason-ok').className = `btn ${danger ? 'btn-danger' : 'btn-live'}`;
  input.value = '';
  input.required = required;
  return new Promise((resolve) => {
    const done = (value) => {
      $('#reason-form').removeEventListener('submit', onSubmit);
      $('#reason-cancel').removeEventListener('click', onCancel);
      dlg.removeEventListener('cancel', onCancel);
      if (dlg.open) dlg.close();
      resolve(value);
    };
    const onSubmit = (ev) => {
      ev.preventDefault();
      const v = input.value.trim();
      if (required && !v) {
        input.focus();
        return;
      }
      done(v);
    };
    const onCancel = (ev) => {
      ev.preventDefault();
      done(null);
    };
    $('#reason-form').addEventListener('submit', onSubmit);
    $('#reason-cancel').addEventListener('click', onCancel);
    dlg.addEventListener('cancel', onCancel);
    dlg.showModal();
    input.focus();
  });
}

// ------------------------------------------------------------------ overview

/** A small line chart of one series of the day's samples, drawn by hand. */
export function lineChart(title, samples, pick, format, current = null) {
  const W = 320;
  const H = 110;
  const pad = { l: 6, r: 6, t: 10, b: 18 };
  const values = samples.map(pick).map((v) => (Number.isFinite(v) ? v : 0));
  // The headline is the figure now (read every few seconds), not the last minute's sample.
  const now = current ?? (values.length ? values[values.length - 1] : null);
  const max = Math.max(1e-9, ...values);
  const svg = s('svg', { class: 'chart admin-spark', viewBox: `0 0 ${W} ${H}`, role: 'img', 'aria-label': `${title} over the last 24 hours` });
  svg.append(s('line', { class: 'axis', x1: pad.l, x2: W - pad.r, y1: H - pad.b, y2: H - pad.b }));
  if (values.length >= 2) {
    const t0 = Date.parse(samples[0].at);
    const t1 = Date.parse(samples[samples.length - 1].at);
    const span = Math.max(1, t1 - t0);
    const pts = samples.map((smp, i) => {
      const x = pad.l + ((Date.parse(smp.at) - t0) / span) * (W - pad.l - pad.r);
      const y = pad.t + (1 - values[i] / max) * (H - pad.t - pad.b);
      return [x, y];
    });
    const d = pts.map(([x, y], i) => `${i ? 'L' : 'M'}${x.toFixed(1)} ${y.toFixed(1)}`).join(' ');
    svg.append(s('path', { class: 'area', d: `${d} L${pts[pts.length - 1][0].toFixed(1)} ${H - pad.b} L${pts[0][0].toFixed(1)} ${H - pad.b} Z` }));
    svg.append(s('path', { class: 'line', d }));
    const clock = (t) => new Date(t).toLocaleTimeString(undefined, { hour: '2-digit', minute: '2-digit' });
    svg.append(s('text', { x: pad.l, y: H - 4, 'text-anchor': 'start' }, clock(t0)));
    svg.append(s('text', { x: W - pad.r, y: H - 4, 'text-anchor': 'end' }, clock(t1)));
    svg.append(s('text', { x: W - pad.r, y: pad.t + 2, 'text-anchor': 'end' }, `max ${format(max)}`));
  } else {
    svg.append(s('text', { x: W / 2, y: H / 2, 'text-anchor': 'middle' }, 'Collecting samples (one a minute)…'));
  }
  return h('div.card.admin-chart', {}, h('div.admin-chart-head', {}, h('span.label', {}, title), h('b', {}, now == null ? '—' : format(now))), svg);
}

function drawCharts(o) {
  const history = o.history || [];
  const hl = o.health;
  const int = (v) => formatNumber(Math.round(v));
  $('#charts').replaceChildren(
    lineChart('Viewers', history, (x) => x.viewers, int, o.viewers_now),
    lineChart('Live streams', history, (x) => x.live_streams, int, o.live_streams),
    lineChart('Media sessions', history, (x) => x.media_sessions, int, hl.media_sessions),
    lineChart('Packets / s', history, (x) => x.packets_per_second, int, hl.packets_per_second),
    lineChart('CPU %', history, (x) => x.cpu_percent, (v) => `${v.toFixed(1)}%`, hl.cpu_percent),
    lineChart('Memory', history, (x) => x.memory_bytes, bytes, hl.memory_bytes),
  );
}

async function loadOverview() {
  const o = await api('/api/admin/overview');
  state.overview = o;
  setFigure('#ov-live', formatNumber(o.live_streams));
  setFigure('#ov-viewers', formatNumber(o.viewers_now));
  setFigure('#ov-peak', formatNumber(o.peak_today));
  setFigure('#ov-new', formatNumber(o.new_users_today));
  setFigure('#ov-users-sub', `today · ${formatNumber(o.users_total)} accounts, ${formatNumber(o.hosts)} hosts`);
  setFigure('#ov-revenue', o.revenue_today == null ? '—' : formatNumber(o.revenue_today));
  setFigure('#ov-reports', formatNumber(o.open_reports));
  setFigure('#ov-pending', formatNumber(o.pending_hosts));
  $('#nav-reports').textContent = o.open_reports ? String(o.open_reports) : '';
  const hl = o.health;
  setFigure('#hl-sessions', formatNumber(hl.media_sessions));
  setFigure('#hl-split', `${formatNumber(hl.publishers)} / ${formatNumber(hl.webrtc_viewers)}`);
  setFigure('#hl-pps', formatNumber(Math.round(hl.packets_per_second)));
  setFigure('#hl-cpu', `${hl.cpu_percent.toFixed(1)}%`);
  setFigure('#hl-mem', bytes(hl.memory_bytes));
  setFigure('#hl-workers', `${hl.workers}${hl.worker_restarts ? ` · ${hl.worker_restarts} restarted` : ' · all running'}${hl.peer_panics ? ` · ${hl.peer_panics} peer panics` : ''}`);
  setFigure('#hl-ws', `${formatNumber(hl.ws_events_published)} (${formatNumber(hl.ws_events_dropped)})`);
  setFigure('#ov-updated', `Updated ${new Date().toLocaleTimeString()}`);
  drawCharts(o);
}

async function loadLedger() {
  const chip = $('#ov-ledger');
  try {
    const r = await api('/api/admin/ledger/check');
    chip.className = `chip ${r.ok ? 'chip-ok' : 'chip-bad'}`;
    chip.textContent = r.ok ? 'Ledger balanced' : `Ledger: ${r.problems.length} problem(s)`;
    chip.title = r.ok ? `${r.accounts} accounts, ${r.transfers} transfers checked` : r.problems.join('\n');
    chip.hidden = false;
  } catch {
    chip.hidden = true;
  }
}

// ------------------------------------------------------------------ users

function statusOf(u) {
  if (u.disabled) return h('span.chip.chip-bad', {}, 'Disabled');
  if (u.host_approval === 'pending') return h('span.chip.chip-warn', {}, 'Waiting for approval');
  if (u.host_approval === 'rejected') return h('span.chip.chip-bad', {}, 'Declined');
  if (u.live) return h('span.chip.chip-ok', {}, 'Live');
  return h('span.chip', {}, 'Active');
}

function userRow(u) {
  const me = currentUser();
  const self = me && me.id === u.id;
  const role = h('select.select.select-auto.admin-role', { 'aria-label': `Role of ${u.username}`, disabled: self }, ...Object.entries(ROLE).map(([v, t]) => h('option', { value: v, selected: v === u.role }, t)));
  role.addEventListener('change', async () => {
    const to = role.value;
    role.disabled = true;
    try {
      await api(`/api/admin/users/${u.id}`, { method: 'PATCH', body: { role: to } });
      toast(`@${u.username} is now ${ROLE[to].toLowerCase()}`, 'ok');
      await Promise.all([loadUsers(), loadAudit(), loadOverview()]);
    } catch (err) {
      role.value = u.role;
      role.disabled = false;
      toast(describeError(err), 'error');
    }
  });
  const actions = [role];
  if (!self) {
    actions.push(
      action(u.disabled ? 'Enable' : 'Disable', u.disabled ? '' : '.btn-danger', async () => {
        await api(`/api/admin/users/${u.id}`, { method: 'PATCH', body: { disabled: !u.disabled } });
        toast(`@${u.username} ${u.disabled ? 'enabled' : 'disabled'}`, 'ok');
        await Promise.all([loadUsers(), loadAudit()]);
      }, { 'data-action': u.disabled ? 'enable' : 'disable' }),
    );
  }
  if (u.host_approval === 'pending' || u.host_approval === 'rejected') {
    actions.push(action('Approve', '.btn-live', () => decide(u, true), { 'data-action': 'approve' }));
  }
  if (u.host_approval === 'pending') {
    actions.push(action('Decline', '.btn-ghost', () => decide(u, false), { 'data-action': 'reject' }));
  }
  actions.push(action('Details', '.btn-ghost', () => loadUserDetail(u.id), { 'data-action': 'details' }));
  return h(
    'tr',
    { dataset: { user: u.username } },
    h('td', {}, h('div.admin-who', {}, h('b', {}, u.display_name || u.username), h('span.muted.small', {}, `@${u.username}${u.email ? ` · ${u.email}` : ''}`))),
    h('td', {}, ROLE[u.role] || u.role),
    h('td.admin-status', {}, statusOf(u)),
    h('td.num', { 'data-label': 'Streams' }, formatNumber(u.streams)),
    h('td.num', { 'data-label': 'Keys' }, formatNumber(u.active_keys)),
    h('td', { title: formatWhen(u.created_at, { withYear: true }), 'data-label': 'Joined' }, timeAgo(u.created_at)),
    h('td', {}, h('div.admin-actions', {}, ...actions)),
  );
}

async function decide(u, approve) {
  const note = await askReason({
    title: approve ? `Approve @${u.username} to stream` : `Decline @${u.username}`,
    hint: approve ? 'A note for the record (optional); the host is told they can stream.' : 'Why: the host is told.',
    confirm: approve ? 'Approve' : 'Decline',
    required: !approve,
    danger: !approve,
  });
  if (note == null) return;
  await api(`/api/admin/users/${u.id}/host-approval`, { method: 'POST', body: { approve, note } });
  toast(approve ? `@${u.username} may stream` : `@${u.username} declined`, 'ok');
  await Promise.all([loadUsers(), loadAudit(), loadOverview()]);
}

function usersQuery(offset = 0) {
  const p = new URLSearchParams();
  const q = $('#user-q').value.trim();
  if (q) p.set('q', q);
  if ($('#user-role').value) p.set('role', $('#user-role').value);
  if ($('#user-status').value) p.set('status', $('#user-status').value);
  p.set('limit', String(USERS_PAGE));
  if (offset) p.set('offset', String(offset));
  return `/api/admin/users?${p}`;
}

async function loadUsers({ more = false } = {}) {
  const page = await api(usersQuery(more ? state.users.length : 0));
  state.users = more ? [...state.users, ...page.users] : page.users;
  state.usersTotal = page.total;
  show('#user-rows', '#users-empty', state.users.map(userRow));
  $('#users-total').textContent = `${formatNumber(page.total)} ${page.total === 1 ? 'user' : 'users'}`;
  $('#users-more').hidden = state.users.length >= page.total;
}

async function loadUserDetail(idOrName) {
  const d = await api(`/api/admin/users/${encodeURIComponent(idOrName)}`);
  const box = $('#user-detail');
  const streams = d.streams.map((st) =>
    h('tr', {}, h('td', {}, h('a', { href: `/watch/${st.id}` }, st.title)), h('td', {}, st.state), h('td', {}, formatWhen(st.ended_at || st.started_at || st.scheduled_at || st.created_at)), h('td', {}, replayAction(st, () => loadUserDetail(d.user.id)))),
  );
  const keys = d.keys.map((k) => h('li', {}, h('span.mono', {}, `${k.prefix || ''}…`), ' ', k.label || '', k.revoked_at ? h('span.chip.chip-bad', {}, 'revoked') : null));
  box.replaceChildren(
    h('div.card-head', {}, h('h2', {}, `@${d.user.username}`), h('span.spacer'), h('button.btn.btn-ghost.btn-sm', { type: 'button', onclick: () => (box.hidden = true) }, 'Close')),
    h('div.card-body.stack', {},
      h('p.muted.small', {}, `${ROLE[d.user.role]} · joined ${formatWhen(d.user.created_at, { withYear: true })}${d.user.host_approval ? ` · host approval ${d.user.host_approval}` : ''}`),
      h('h3.admin-sub', {}, 'Streams'),
      streams.length ? h('div.table-wrap', {}, h('table.ledger-table.admin-table', {}, h('thead', {}, h('tr', {}, h('th', {}, 'Title'), h('th', {}, 'State'), h('th', {}, 'When'), h('th', {}, 'Actions'))), h('tbody', {}, ...streams))) : h('p.muted', {}, 'No streams.'),
      h('h3.admin-sub', {}, 'Stream keys'),
      keys.length ? h('ul.admin-keys', {}, ...keys) : h('p.muted', {}, 'No stream keys.'),
    ),
  );
  box.hidden = false;
  box.scrollIntoView({ block: 'nearest' });
}

// ------------------------------------------------------------------ streams

function replayAction(st, after) {
  if (st.state === 'live') return action('End', '.btn-danger', () => endStream(st), { 'data-action': 'end' });
  if (st.state !== 'ended' && st.state !== 'archived') return null;
  return action('Take down', '.btn-ghost', async () => {
    const reason = await askReason({ title: `Take down “${st.title}”`, hint: 'The replay is unlisted for good; the host is told this reason.', confirm: 'Take down' });
    if (reason == null) return;
    await api(`/api/admin/streams/${st.id}/takedown`, { method: 'POST', body: { reason } });
    toast('Replay taken down', 'ok');
    await Promise.all([loadStreams(), loadAudit(), after ? after() : null]);
  }, { 'data-action': 'takedown' });
}

async function endStream(st) {
  const reason = await askReason({ title: `End “${st.title}”`, hint: `@${st.host.username} is told this reason, and it is said in the stream's chat.`, confirm: 'End stream' });
  if (reason == null) return;
  await api(`/api/admin/streams/${st.id}/end`, { method: 'POST', body: { reason } });
  toast('Stream ended', 'ok');
  await Promise.all([loadStreams(), loadAudit(), loadOverview()]);
}

async function loadStreams() {
  const [live, recent] = await Promise.all([api('/api/streams?type=live&limit=100'), api('/api/streams?type=recent&limit=20')]);
  state.live = live.streams;
  state.replays = recent.streams;
  show(
    '#live-rows',
    '#live-empty',
    live.streams.map((st) =>
      h('tr', { dataset: { stream: st.id } }, h('td', {}, h('a', { href: `/watch/${st.id}` }, st.title)), h('td', {}, userLink(st.host)), h('td', {}, st.live_since ? timeAgo(st.live_since) : '—'), h('td.num', {}, formatNumber(st.viewers)), h('td', {}, h('div.admin-actions', {}, replayAction(st)))),
    ),
  );
  show(
    '#replay-rows',
    '#replay-empty',
    recent.streams.map((st) =>
      h('tr', { dataset: { stream: st.id } }, h('td', {}, h('a', { href: `/watch/${st.id}` }, st.title)), h('td', {}, userLink(st.host)), h('td', {}, formatWhen(st.ended_at)), h('td', {}, h('div.admin-actions', {}, replayAction(st)))),
    ),
  );
}

// ------------------------------------------------------------------ reports

async function review(r, outcome) {
  const note = await askReason({
    title: outcome === 'resolved' ? 'Resolve the report' : 'Dismiss the report',
    hint: outcome === 'resolved' ? 'What was done (for the record).' : 'Why nothing was wrong (for the record, optional).',
    confirm: outcome === 'resolved' ? 'Resolve' : 'Dismiss',
    required: false,
    danger: false,
  });
  if (note == null) return;
  await api(`/api/admin/reports/${r.id}/resolve`, { method: 'POST', body: { outcome, note } });
  toast(outcome === 'resolved' ? 'Report resolved' : 'Report dismissed', 'ok');
  await Promise.all([loadReports(), loadAudit(), loadOverview()]);
}

async function loadReports() {
  state.reports = await api(`/api/admin/reports?state=${encodeURIComponent($('#report-state').value)}`);
  show(
    '#report-rows',
    '#reports-empty',
    state.reports.map((r) => {
      const open = r.state === 'open';
      const stream = h('div.admin-who', {}, h('a', { href: `/watch/${r.stream_id}` }, r.stream_title), h('span.muted.small', {}, `@${r.host.username} · ${r.stream_state}${r.open_reports_of_stream > 1 ? ` · ${r.open_reports_of_stream} open reports` : ''}`));
      const actions = open
        ? [
            action('Resolve', '.btn-live', () => review(r, 'resolved'), { 'data-action': 'resolve' }),
            action('Dismiss', '.btn-ghost', () => review(r, 'dismissed'), { 'data-action': 'dismiss' }),
            r.stream_state === 'live' ? action('End stream', '.btn-danger', () => endStream({ id: r.stream_id, title: r.stream_title, host: r.host })) : null,
          ]
        : [h('span.muted.small', {}, r.resolution || '')];
      return h(
        'tr',
        { dataset: { report: r.id } },
        h('td', { title: formatWhen(r.created_at, { withYear: true }) }, timeAgo(r.created_at)),
        h('td', {}, stream),
        h('td', { 'data-label': 'By' }, userLink(r.reporter)),
        h('td.admin-reason', {}, r.reason),
        h('td', {}, h(`span.chip${open ? '.chip-warn' : r.state === 'resolved' ? '.chip-ok' : ''}`, {}, r.state)),
        h('td', {}, h('div.admin-actions', {}, ...actions)),
      );
    }),
  );
}

// ------------------------------------------------------------------ payouts

async function loadPayouts() {
  try {
    state.payouts = await api('/api/admin/payouts?status=pending');
  } catch {
    state.payouts = [];
  }
  show('#payout-rows', '#payouts-empty', state.payouts.map((p) => h('tr', {}, h('td', {}, formatWhen(p.created_at)), h('td', {}, `@${p.username}`), h('td.num', {}, formatNumber(p.amount)), h('td.muted', {}, p.note || ''))));
}

// ------------------------------------------------------------------ webhooks

async function loadWebhooks() {
  state.webhooks = await api('/api/admin/webhooks');
  show(
    '#webhook-rows',
    '#webhooks-empty',
    state.webhooks.map((w) => {
      // Two clicks: the first arms the button, the second deletes.
      const del = action('Delete', '.btn-ghost', async (b) => {
        if (b.dataset.armed !== '1') {
          b.dataset.armed = '1';
          b.textContent = 'Really delete?';
          b.classList.replace('btn-ghost', 'btn-danger');
          return;
        }
        await api(`/api/admin/webhooks/${w.id}`, { method: 'DELETE' });
        toast('Webhook deleted', 'ok');
        $('#webhook-secret').hidden = true;
        await Promise.all([loadWebhooks(), loadAudit()]);
      }, { 'data-action': 'delete' });
      return h('tr', { dataset: { webhook: w.id } }, h('td.mono.admin-url', {}, w.url), h('td', {}, w.events.join(', ')), h('td', {}, formatWhen(w.created_at)), h('td', {}, del));
    }),
  );
}

async function addWebhook(ev) {
  ev.preventDefault();
  const url = $('#webhook-url').value.trim();
  const events = $('#webhook-events').value.split(',').map((e) => e.trim()).filter(Boolean);
  $('#webhook-add').disabled = true;
  try {
    const hook = await api('/api/admin/webhooks', { method: 'POST', body: events.length ? { url, events } : { url } });
    $('#webhook-secret').replaceChildren(h('strong', {}, 'Signing secret: shown this once, copy it now'), h('code.mono', {}, hook.secret));
    $('#webhook-secret').hidden = false;
    $('#webhook-url').value = '';
    $('#webhook-events').value = '';
    await Promise.all([loadWebhooks(), loadAudit()]);
  } catch (err) {
    const fields = err.fields ? Object.values(err.fields).join(' ') : '';
    toast(fields || describeError(err), 'error');
  } finally {
    $('#webhook-add').disabled = false;
  }
}

// ------------------------------------------------------------------ audit log

function auditTarget(e) {
  const d = e.detail || {};
  if (e.target_type === 'user') {
    const bits = [`@${d.username || e.target_id}`];
    if (d.role && d.role !== d.role_before) bits.push(`role ${d.role_before} → ${d.role}`);
    if (d.disabled === true) bits.push('disabled');
    if (d.disabled === false) bits.push('enabled');
    return bits.join(' · ');
  }
  if (e.target_type === 'stream') return `“${d.title || `stream ${e.target_id}`}”${d.host ? ` by @${d.host}` : ''}`;
  if (e.target_type === 'report') return `report ${e.target_id}${d.reason ? `: ${d.reason}` : ''}`;
  if (e.target_type === 'webhook') return d.url || `webhook ${e.target_id}`;
  return `${e.target_type} ${e.target_id ?? ''}`;
}

async function loadAudit({ more = false } = {}) {
  const p = new URLSearchParams({ limit: String(AUDIT_PAGE) });
  if (more && state.auditNext != null) p.set('before', String(state.auditNext));
  const page = await api(`/api/admin/audit?${p}`);
  state.audit = more ? [...state.audit, ...page.entries] : page.entries;
  state.auditNext = page.next_before;
  show(
    '#audit-rows',
    '#audit-empty',
    state.audit.map((e) =>
      h('tr', { dataset: { audit: e.id, action: e.action } }, h('td', { title: formatWhen(e.created_at, { withYear: true }) }, formatWhen(e.created_at)), h('td', {}, userLink(e.actor)), h('td', {}, ACTION[e.action] || e.action), h('td', {}, auditTarget(e)), h('td.admin-reason', {}, e.reason || '')),
    ),
  );
  $('#audit-more').hidden = page.next_before == null;
}

// ------------------------------------------------------------------ start

function refuse(err) {
  if (err && err.status === 403) {
    state.forbidden = true;
    $('#console').hidden = true;
    $('#forbidden').hidden = false;
    return true;
  }
  if (err && (err.status === 401 || err.code === 'login_expired')) {
    window.location.replace(loginUrl());
    return true;
  }
  return false;
}

async function main() {
  renderAccount({ current: 'admin' });
  if (!currentUser()) {
    window.location.replace(loginUrl());
    return;
  }
  try {
    await loadOverview();
  } catch (err) {
    if (!refuse(err)) toast(describeError(err), 'error');
    if (state.forbidden) return;
  }
  $('#console').hidden = false;
  const safely = (p) => p.catch((err) => refuse(err) || toast(describeError(err), 'error'));
  await Promise.all([safely(loadUsers()), safely(loadStreams()), safely(loadReports()), safely(loadWebhooks()), safely(loadAudit()), loadPayouts(), loadLedger()]);

  let typing = null;
  $('#user-filters').addEventListener('submit', (ev) => {
    ev.preventDefault();
    clearTimeout(typing);
    safely(loadUsers());
  });
  $('#user-q').addEventListener('input', () => {
    clearTimeout(typing);
    typing = setTimeout(() => safely(loadUsers()), 300);
  });
  $('#user-role').addEventListener('change', () => safely(loadUsers()));
  $('#user-status').addEventListener('change', () => safely(loadUsers()));
  $('#users-more').addEventListener('click', () => safely(loadUsers({ more: true })));
  $('#report-state').addEventListener('change', () => safely(loadReports()));
  $('#streams-refresh').addEventListener('click', () => safely(loadStreams()));
  $('#webhook-form').addEventListener('submit', addWebhook);
  $('#audit-refresh').addEventListener('click', () => safely(loadAudit()));
  $('#audit-more').addEventListener('click', () => safely(loadAudit({ more: true })));
  // The figures "now" every 30 s while the page is shown.
  setInterval(() => {
    if (!document.hidden) safely(loadOverview());
  }, 30000);
  state.ready = true;
}

main();
