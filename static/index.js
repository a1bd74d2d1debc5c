// OnAir live directory: live now (with real viewer counts), upcoming (with a
// countdown and reminders) and recent streams. Everything after the first
// load arrives over the WebSocket: `stream_status` directory events move
// cards between the sections, `viewer_count` updates the live cards.

import { $, h, formatNumber, formatStartsIn, formatWhen, timeAgo, initial, describeError, toast, store } from './common.js';
import { thumb, visibilityChip, categoryChip } from './cards.js';
import { api, currentUser, renderAccount, loginUrl, onLoginChange } from './session.js';
import { Realtime, showReminders } from './realtime.js';

const LIMITS = { live: 48, upcoming: 24, recent: 12 };

const els = {
  conn: $('#conn'),
  error: $('#error'),
  errorMessage: $('#error-message'),
  grids: { live: $('#live-grid'), upcoming: $('#upcoming-grid'), recent: $('#recent-grid') },
  counts: { live: $('#live-count'), upcoming: $('#upcoming-count'), recent: $('#recent-count') },
  empties: { live: $('#live-empty'), upcoming: $('#upcoming-empty'), recent: $('#recent-empty') },
};

/** id -> {stream, at (ms when starts_in_seconds was read), eventAt} */
const streams = new Map();
const cards = new Map(); // id -> element
const subscribed = new Set(); // live stream ids joined for viewer counts
const rt = new Realtime({ name: 'directory' });

const onair = {
  page: 'directory',
  connected: false,
  loaded: false,
  live: [],
  upcoming: [],
  recent: [],
  viewers: {}, // stream id -> viewers (from the server)
  viewerCountSource: {}, // stream id -> 'list' | 'stream_status' | 'viewer_count'
  reload: () => load(),
};
window.onair = onair;

function sectionOf(s) {
  if (s.state === 'live') return 'live';
  if (s.state === 'scheduled' && s.scheduled_at) return 'upcoming';
  if (s.state === 'ended' || s.state === 'archived') return 'recent';
  return null;
}

// ---------------------------------------------------------------- reminders (remembered per user)

function reminderKey() {
  const u = currentUser();
  return u ? `onair.reminders.${u.id}` : null;
}

function reminders() {
  const k = reminderKey();
  if (!k) return new Set();
  try {
    return new Set(JSON.parse(store.get(k, '[]')));
  } catch {
    return new Set();
  }
}

function saveReminders(set) {
  const k = reminderKey();
  if (k) store.set(k, JSON.stringify([...set]));
}

async function toggleReminder(s, btn) {
  const set = reminders();
  const on = set.has(s.id);
  btn.disabled = true;
  try {
    await api(`/api/streams/${s.id}/reminder`, { method: on ? 'DELETE' : 'POST' });
    if (on) set.delete(s.id);
    else set.add(s.id);
    saveReminders(set);
    toast(on ? 'Reminder removed' : `We’ll tell you when “${s.title}” starts`, 'ok');
  } catch (err) {
    toast(`Couldn’t ${on ? 'remove' : 'set'} the reminder: ${describeError(err)}`, 'error');
  } finally {
    btn.disabled = false;
    renderCard(s.id);
  }
}

// ---------------------------------------------------------------- cards

function subline(s, section) {
  if (section === 'live') {
    // Live since its first video, not since it was started and waited for it.
    const since = s.live_since ? `Live since ${formatWhen(s.live_since)}` : 'Starting: waiting for video';
    return h('span.stream-sub', {}, since, categoryChip(s), visibilityChip(s));
  }
  if (section === 'upcoming') {
    const c = h('span.countdown', { dataset: { id: s.id } });
    updateCountdown(c);
    return h('span.stream-sub', {}, c, s.recurrence ? h('span.chip', {}, s.recurrence.freq === 'weekly' ? 'Weekly' : 'Daily') : null, categoryChip(s), visibilityChip(s));
  }
  const parts = [`Ended ${timeAgo(s.ended_at || s.started_at)}`];
  if (s.peak_viewers) parts.push(`peak ${formatNumber(s.peak_viewers)} watching`);
  return h('span.stream-sub', {}, parts.join(' · '), h('span.chip', { class: s.saved ? 'chip-ok' : '' }, s.saved ? 'Saved' : 'Not saved'));
}

function renderCard(id) {
  const entry = streams.get(id);
  const old = cards.get(id);
  if (!entry) {
    if (old) old.remove();
    cards.delete(id);
    return null;
  }
  const s = entry.stream;
  const section = sectionOf(s);
  const card = h(
    'article.stream-card',
    { dataset: { streamId: s.id, state: s.state, section } },
    thumb(s, section),
    h(
      'div.stream-meta',
      {},
      h('div.avatar.avatar-sm', { class: section === 'live' ? 'is-live' : '' }, initial(s.host.display_name || s.host.username)),
      h(
        'div.stream-text',
        {},
        h('a.stream-title', { href: s.watch_url || `/watch/${s.id}` }, s.title),
        h('a.stream-host', { href: `/c/${encodeURIComponent(s.host.username)}` }, s.host.display_name || s.host.username),
        subline(s, section),
      ),
    ),
  );
  if (section === 'upcoming') {
    const me = currentUser();
    let btn;
    if (!me) {
      btn = h('a.btn.btn-sm.remind', { href: loginUrl('/'), title: 'Log in to get a reminder' }, 'Remind me');
    } else if (me.id !== s.host.id) {
      const on = reminders().has(s.id);
      btn = h('button.btn.btn-sm.remind', { type: 'button', 'aria-pressed': String(on), class: on ? 'is-on' : '' }, on ? 'Reminder set ✓' : 'Remind me');
      btn.addEventListener('click', () => toggleReminder(s, btn));
    }
    if (btn) card.append(h('div.stream-actions', {}, btn));
  }
  if (old) old.replaceWith(card);
  cards.set(id, card);
  return card;
}

function updateCountdown(el) {
  const entry = streams.get(Number(el.dataset.id));
  if (!entry) return;
  const s = entry.stream;
  const left = (s.starts_in_seconds ?? 0) - (Date.now() - entry.at) / 1000;
  el.textContent = formatStartsIn(left, s.scheduled_at);
  el.classList.toggle('soon', left < 600);
}

function tick() {
  for (const el of document.querySelectorAll('.countdown[data-id]')) updateCountdown(el);
}

/** Puts every card in its section, in order. */
function layout() {
  const by = { live: [], upcoming: [], recent: [] };
  for (const { stream: s } of streams.values()) {
    const sec = sectionOf(s);
    if (sec) by[sec].push(s);
  }
  const t = (v) => (v ? new Date(v).getTime() : 0);
  by.live.sort((a, b) => t(b.started_at) - t(a.started_at) || b.id - a.id);
  by.upcoming.sort((a, b) => t(a.scheduled_at) - t(b.scheduled_at) || a.id - b.id);
  by.recent.sort((a, b) => t(b.ended_at) - t(a.ended_at) || b.id - a.id);
  for (const sec of Object.keys(by)) {
    const list = by[sec].slice(0, LIMITS[sec]);
    const grid = els.grids[sec];
    const want = list.map((s) => cards.get(s.id) || renderCard(s.id));
    // Move only what is out of place (keeps focus and images stable).
    want.forEach((card, i) => {
      if (grid.children[i] !== card) grid.insertBefore(card, grid.children[i] || null);
    });
    while (grid.children.length > want.length) grid.lastElementChild.remove();
    els.counts[sec].textContent = formatNumber(by[sec].length);
    els.empties[sec].hidden = by[sec].length > 0 || !onair.loaded;
    onair[sec] = list.map((s) => s.id);
  }
  // Cards no longer shown anywhere.
  for (const [id, card] of cards) {
    if (!card.isConnected) cards.delete(id);
  }
  syncSubscriptions(by.live.slice(0, LIMITS.live).map((s) => s.id));
}

/** Joins each shown live stream for its viewer count; leaves the others. */
function syncSubscriptions(liveIds) {
  const want = new Set(liveIds);
  for (const id of want) {
    if (!subscribed.has(id)) {
      subscribed.add(id);
      rt.subscribe(id);
    }
  }
  for (const id of [...subscribed]) {
    if (!want.has(id)) {
      subscribed.delete(id);
      rt.unsubscribe(id);
    }
  }
}

/** A stream as it is now (from a listing or an event). */
function upsert(s, { fromEvent = false } = {}) {
  if (!s || s.id == null) return;
  const prev = streams.get(s.id);
  if (!sectionOf(s)) {
    streams.delete(s.id);
    renderCard(s.id);
    delete onair.viewers[s.id];
    return;
  }
  streams.set(s.id, { stream: s, at: Date.now(), eventAt: fromEvent ? Date.now() : prev ? prev.eventAt : 0 });
  if (s.state === 'live') {
    // A listing or status carries the count at that moment; viewer_count updates it.
    if (!fromEvent || onair.viewerCountSource[s.id] !== 'viewer_count') {
      onair.viewers[s.id] = s.viewers || 0;
      onair.viewerCountSource[s.id] = fromEvent ? 'stream_status' : 'list';
    } else {
      s.viewers = onair.viewers[s.id];
    }
  }
  renderCard(s.id);
}

// ---------------------------------------------------------------- loading

let loadGen = 0;

async function load() {
  const gen = ++loadGen;
  const started = Date.now();
  try {
    const [live, upcoming, recent] = await Promise.all([
      api(`/api/streams?type=live&limit=${LIMITS.live}`, { auth: false }),
      api(`/api/streams?type=scheduled&limit=${LIMITS.upcoming}`, { auth: false }),
      api(`/api/streams?type=recent&limit=${LIMITS.recent}`, { auth: false }),
    ]);
    if (gen !== loadGen) return;
    const seen = new Set();
    for (const page of [live, upcoming, recent]) {
      for (const s of page.streams) {
        seen.add(s.id);
        const prev = streams.get(s.id);
        // An event newer than this listing wins.
        if (prev && prev.eventAt > started) continue;
        upsert(s);
      }
    }
    // Streams that left every listing while we were away (deleted, cancelled).
    for (const [id, e] of [...streams]) {
      if (!seen.has(id) && e.eventAt < started) {
        streams.delete(id);
        renderCard(id);
      }
    }
    onair.loaded = true;
    els.error.hidden = true;
    layout();
  } catch (err) {
    if (gen !== loadGen) return;
    els.errorMessage.textContent = describeError(err);
    els.error.hidden = false;
  }
}

// ---------------------------------------------------------------- live updates

function setConn(state) {
  onair.connected = state === 'open';
  els.conn.dataset.state = state;
  els.conn.title = state === 'open' ? 'Live updates on' : state === 'closed' ? 'Reconnecting to live updates…' : 'Connecting to live updates…';
}

rt.on('open', () => {
  setConn('open');
  rt.directory();
  // First connect, or back after a drop: (re)load what may have changed.
  load();
});
rt.on('close', () => setConn('closed'));

rt.on('stream_status', (msg) => {
  upsert(msg.stream, { fromEvent: true });
  layout();
});

rt.on('subscribed', (msg) => {
  const s = msg.stream;
  if (s && streams.has(s.id)) {
    upsert(s, { fromEvent: true });
    onair.viewers[s.id] = s.viewers || 0;
    onair.viewerCountSource[s.id] = 'subscribed';
    layout();
  }
});

rt.on('viewer_count', (msg) => {
  const e = streams.get(msg.stream_id);
  onair.viewers[msg.stream_id] = msg.viewers;
  onair.viewerCountSource[msg.stream_id] = 'viewer_count';
  if (!e) return;
  e.stream.viewers = msg.viewers;
  e.stream.peak_viewers = msg.peak;
  const card = cards.get(msg.stream_id);
  const n = card && card.querySelector('.viewers-n');
  if (n) n.textContent = formatNumber(msg.viewers);
});

rt.on('error', (msg) => {
  // A stream we cannot follow (e.g. subscribers only): its card keeps the listing's figures.
  console.warn('[onair] directory:', msg.error && msg.error.message);
});

showReminders(rt);

renderAccount({ current: 'home' });
onLoginChange(() => {
  for (const id of cards.keys()) renderCard(id);
  layout();
});
setInterval(tick, 1000);
setConn('connecting');
rt.connect();
