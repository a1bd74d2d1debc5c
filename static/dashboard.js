// OnAir host dashboard: my streams and their lifecycle, scheduling (once or
// weekly), stream keys, and for the live stream its figures, chat with
// moderation, chat rules and the ban list. Live figures come from the
// WebSocket (`viewer_count`, `likes`, `chat_message`, `stream_status` on the
// host's own topic); nothing is polled.

import {
  $,
  $$,
  h,
  describeError,
  formatNumber,
  formatDuration,
  formatSeconds,
  formatWhen,
  formatClock,
  copyText,
  toast,
  STATE_LABEL,
  VISIBILITY_LABEL,
} from './common.js';
import { api, currentUser, isHost, loginUrl, onLoginChange, renderAccount, savedKeySecrets, saveKeySecret, uploadImage } from './session.js';
import { Realtime, showReminders } from './realtime.js';
import { ChatView, ChatComposer, describeSettings } from './chat.js';
import { HostTools, onInteractEvents } from './interact.js';

const me = currentUser();
if (!me) window.location.replace(loginUrl('/dashboard'));

const DAYS = ['sun', 'mon', 'tue', 'wed', 'thu', 'fri', 'sat'];
const DAY_LABEL = { mon: 'Mon', tue: 'Tue', wed: 'Wed', thu: 'Thu', fri: 'Fri', sat: 'Sat', sun: 'Sun' };
const browserTz = (() => {
  try {
    return Intl.DateTimeFormat().resolvedOptions().timeZone || 'UTC';
  } catch {
    return 'UTC';
  }
})();

const els = {
  gate: $('#gate'),
  gateTitle: $('#gate-title'),
  gateText: $('#gate-text'),
  dash: $('#dash'),
  conn: $('#conn'),
  livePanel: $('#live-panel'),
  liveState: $('#live-state'),
  liveStateText: $('#live-state-text'),
  liveTitle: $('#live-title'),
  liveWatch: $('#live-watch'),
  liveWaiting: $('#live-waiting'),
  liveWaitingText: $('#live-waiting-text'),
  liveError: $('#live-error'),
  whipUrl: $('#whip-url'),
  figViewers: $('#fig-viewers'),
  figPeak: $('#fig-peak'),
  figLikes: $('#fig-likes'),
  figChat: $('#fig-chat'),
  figDuration: $('#fig-duration'),
  openStudio: $('#open-studio'),
  endSave: $('#end-save'),
  endDiscard: $('#end-discard'),
  summaryPanel: $('#summary-panel'),
  summaryTitle: $('#summary-title'),
  summarySub: $('#summary-sub'),
  chatPanel: $('#chat-panel'),
  chatModes: $('#chat-modes'),
  streamsList: $('#my-streams'),
  streamsEmpty: $('#streams-empty'),
  streamsNote: $('#streams-note'),
  createForm: $('#create-form'),
  createError: $('#create-error'),
  visibility: $('#new-visibility'),
  priceField: $('#price-field'),
  atField: $('#at-field'),
  weeklyFields: $('#weekly-fields'),
  at: $('#new-at'),
  tz: $('#new-tz'),
  submit: $('#new-submit'),
  keysList: $('#keys-list'),
  keyForm: $('#key-form'),
  keyLabel: $('#key-label'),
  keyError: $('#key-error'),
  secretBox: $('#key-secret-box'),
  secret: $('#key-secret'),
  keyUse: $('#key-use'),
  settingsForm: $('#settings-form'),
  setSlow: $('#set-slow'),
  setFollowers: $('#set-followers'),
  setSubs: $('#set-subs'),
  setWords: $('#set-words'),
  setStatus: $('#set-status'),
  restrictions: $('#restrictions'),
  restrictionsEmpty: $('#restrictions-empty'),
};

const streams = new Map(); // id -> Stream
const rt = new Realtime({ name: 'dashboard' });
const hostTools = new HostTools($('#host-tools'));
onInteractEvents(rt, (msg) => hostTools.event(msg));
let liveId = null;
let openOccurrences = new Set();
let restrictions = [];

const live = { viewers: null, peak: null, likes: null, chat_messages: null, started_at: null, live_since: null, state: null, media_state: null };

const onair = {
  page: 'dashboard',
  user: me,
  connected: false,
  loaded: false,
  streams: [],
  liveId: null,
  live,
  summary: null,
  summaryStreamId: null,
  keys: [],
  newKey: null, // {id, prefix} of the key made last (its secret is shown once)
  settings: null,
  restrictions: [],
  get chat() {
    return chat ? chat.snapshot() : [];
  },
};
window.onair = onair;

// ---------------------------------------------------------------- helpers

function setConn(state) {
  onair.connected = state === 'open';
  els.conn.dataset.state = state;
  els.conn.title = state === 'open' ? 'Live updates on' : 'Reconnecting to live updates…';
}

/** Two-step confirmation for destructive buttons with `data-confirm`. */
function confirmed(btn) {
  if (!btn.dataset.confirm) return true;
  if (btn.classList.contains('confirming')) {
    btn.classList.remove('confirming');
    btn.textContent = btn.dataset.label;
    clearTimeout(Number(btn.dataset.timer));
    return true;
  }
  btn.dataset.label = btn.textContent;
  btn.classList.add('confirming');
  btn.textContent = btn.dataset.confirm;
  btn.dataset.timer = String(
    setTimeout(() => {
      btn.classList.remove('confirming');
      btn.textContent = btn.dataset.label;
    }, 4000),
  );
  return false;
}

function fieldErrors(form, err, generalEl) {
  for (const el of form.querySelectorAll('.field-error')) {
    el.hidden = true;
    el.textContent = '';
  }
  for (const el of form.querySelectorAll('[aria-invalid]')) el.removeAttribute('aria-invalid');
  if (generalEl) generalEl.hidden = true;
  if (!err) return;
  const fields = err.fields || {};
  const unplaced = [];
  let first = null;
  for (const [name, msg] of Object.entries(fields)) {
    const slot = form.querySelector(`.field-error[data-for="${name}"]`);
    const text = msg.charAt(0).toUpperCase() + msg.slice(1);
    if (slot) {
      slot.textContent = text;
      slot.hidden = false;
    } else {
      unplaced.push(`${name}: ${msg}`);
    }
    const input = form.querySelector(`[name="${name}"]`);
    if (input) {
      input.setAttribute('aria-invalid', 'true');
      first = first || input;
    }
  }
  if (generalEl && (!Object.keys(fields).length || unplaced.length)) {
    generalEl.textContent = unplaced.length ? `${describeError(err)} (${unplaced.join('; ')})` : describeError(err);
    generalEl.hidden = false;
  }
  if (first) first.focus();
}

const savedSecrets = () => savedKeySecrets(me);
const saveSecret = (id, secret) => saveKeySecret(id, secret, me);

// ---------------------------------------------------------------- streams

function sortKey(s) {
  const t = (v) => (v ? new Date(v).getTime() : 0);
  if (s.state === 'live') return [0, 0];
  if (s.state === 'scheduled') return s.scheduled_at ? [1, t(s.scheduled_at)] : [2, -t(s.created_at)];
  return [3, -(t(s.ended_at) || t(s.created_at))];
}

function describeRecurrence(r) {
  if (!r) return '';
  const when = r.freq === 'daily' ? 'Daily' : `Weekly on ${(r.days || []).map((d) => DAY_LABEL[d] || d).join(', ')}`;
  return `${when} at ${r.time} (${r.timezone})${r.until ? `, until ${formatWhen(r.until)}` : ''}`;
}

function rowSub(s) {
  const parts = [];
  if (s.state === 'scheduled') {
    parts.push(s.scheduled_at ? formatWhen(s.scheduled_at) : 'Draft — not scheduled');
    if (s.recurrence) parts.push(describeRecurrence(s.recurrence));
  } else if (s.state === 'live') {
    // From the first video, not from pressing Go live.
    parts.push(s.live_since ? `Live since ${formatClock(s.live_since)}` : 'Starting: waiting for your video');
  } else if (s.state === 'ended' || s.state === 'archived') {
    parts.push(`Ended ${formatWhen(s.ended_at)}`);
    if (s.peak_viewers) parts.push(`peak ${formatNumber(s.peak_viewers)}`);
    parts.push(s.saved ? 'saved' : 'not saved');
  } else if (s.state === 'error') {
    parts.push(s.error || 'It did not start');
  }
  parts.push(VISIBILITY_LABEL[s.visibility] || s.visibility);
  if (s.visibility === 'ticketed' && s.ticket_price) parts.push(`${formatNumber(s.ticket_price)} coins`);
  return parts.join(' · ');
}

function actionButton(action, label, { cls = '', confirm = null, title = null } = {}) {
  return h(`button.btn.btn-sm${cls ? `.${cls}` : ''}`, { type: 'button', dataset: confirm ? { action, confirm } : { action }, title }, label);
}

function renderRow(s) {
  const acts = [];
  if (s.state === 'scheduled') {
    acts.push(actionButton('start', 'Go live', { cls: 'btn-live', title: 'Go live now: the stream waits for your video from the studio or OBS' }));
    acts.push(actionButton('occurrences', openOccurrences.has(s.id) ? 'Hide times' : 'Upcoming times'));
    acts.push(actionButton('thumbnail', s.thumbnail_url ? 'Change thumbnail' : 'Add thumbnail'));
    if (s.recurrence) {
      acts.push(actionButton('cancel', 'Skip this one', { confirm: 'Skip this occurrence?' }));
      acts.push(actionButton('cancel-series', 'Cancel series', { cls: 'btn-danger', confirm: 'Cancel every occurrence?' }));
    } else {
      acts.push(actionButton('cancel', 'Cancel', { cls: 'btn-danger', confirm: 'Cancel this stream?' }));
    }
    acts.push(actionButton('delete', 'Delete', { cls: 'btn-danger', confirm: 'Delete for good?' }));
  } else if (s.state === 'live') {
    acts.push(h('a.btn.btn-sm', { href: `/publish?stream=${s.id}`, target: '_blank', rel: 'noopener', dataset: { action: 'studio' } }, 'Studio'));
    acts.push(actionButton('end-save', 'End · save', { cls: 'btn-danger', confirm: 'End the stream and save it?' }));
    acts.push(actionButton('end-discard', 'End · don\'t save', { cls: 'btn-danger', confirm: 'End the stream without saving it?' }));
  } else {
    if (s.state === 'ended') acts.push(actionButton('archive', 'Save'));
    if (s.state === 'ended' || s.state === 'archived') acts.push(actionButton('summary', 'Figures'));
    acts.push(actionButton('delete', 'Delete', { cls: 'btn-danger', confirm: 'Delete for good?' }));
  }
  const li = h(
    'li.stream-row',
    { dataset: { streamId: s.id, state: s.state } },
    h(
      'div.row-main',
      {},
      h('span.state-badge', { dataset: { state: s.state, media: s.media_state || '' } }, s.state === 'live' && s.media_state === 'waiting' ? 'Starting' : s.state === 'live' && s.media_state === 'reconnecting' ? 'Reconnecting' : STATE_LABEL[s.state] || s.state),
      h('div.row-text', {}, h('a.row-title', { href: s.watch_url || `/watch/${s.id}`, target: '_blank', rel: 'noopener' }, s.title), h('span.row-sub', {}, rowSub(s))),
    ),
    h('div.row-actions', {}, acts),
    h('div.row-error', { role: 'alert', hidden: true }),
  );
  if (openOccurrences.has(s.id)) {
    const ul = h('ul.occurrences', { dataset: { for: s.id } }, h('li.muted', {}, 'Loading…'));
    li.append(ul);
    loadOccurrences(s.id, ul);
  }
  return li;
}

function renderStreams() {
  const list = [...streams.values()].sort((a, b) => {
    const ka = sortKey(a);
    const kb = sortKey(b);
    return ka[0] - kb[0] || ka[1] - kb[1] || b.id - a.id;
  });
  const rows = list.map(renderRow);
  els.streamsList.replaceChildren(...rows);
  els.streamsEmpty.hidden = list.length > 0 || !onair.loaded;
  onair.streams = list.map((s) => ({ id: s.id, title: s.title, state: s.state, media_state: s.media_state, scheduled_at: s.scheduled_at }));
  const counts = { live: 0, scheduled: 0 };
  for (const s of list) if (s.state in counts) counts[s.state] += 1;
  els.streamsNote.textContent = list.length ? `${counts.scheduled} scheduled · ${list.length} in all` : '';
  syncLive();
}

function upsert(s) {
  if (!s || !s.host || s.host.id !== me.id) return;
  streams.set(s.id, s);
}

async function loadStreams() {
  try {
    const page = await api(`/api/streams?type=all&host=${encodeURIComponent(me.username)}&limit=100`);
    streams.clear();
    for (const s of page.streams) upsert(s);
    onair.loaded = true;
    if (page.total > page.streams.length) els.streamsNote.textContent = `Showing ${page.streams.length} of ${page.total}`;
    renderStreams();
  } catch (err) {
    toast(`Couldn’t load your streams: ${describeError(err)}`, 'error', 6000);
  }
}

async function loadOccurrences(id, ul) {
  try {
    const r = await api(`/api/streams/${id}/occurrences?count=5`);
    const items = r.occurrences.map((t) => h('li', {}, formatWhen(t, { withYear: true })));
    ul.replaceChildren(...(items.length ? items : [h('li.muted', {}, 'No upcoming times.')]));
    if (r.timezone) ul.append(h('li.muted.small', {}, `Computed in ${r.timezone}, shown in your time (${browserTz}).`));
  } catch (err) {
    ul.replaceChildren(h('li.field-error', {}, describeError(err)));
  }
}

async function streamAction(id, action, btn) {
  const row = btn.closest('.stream-row');
  const errEl = row ? row.querySelector('.row-error') : null;
  if (errEl) errEl.hidden = true;
  const base = `/api/streams/${id}`;
  btn.disabled = true;
  try {
    let s = null;
    switch (action) {
      case 'start':
        s = await api(`${base}/start`, { method: 'POST' });
        toast('You’re on: now send your video from the studio or OBS', 'ok', 5000);
        break;
      case 'end-save':
      case 'end-discard':
        s = await api(`${base}/end`, { method: 'POST', body: { save: action === 'end-save' } });
        break;
      case 'archive':
        s = await api(`${base}/archive`, { method: 'POST' });
        break;
      case 'cancel':
      case 'cancel-series':
        s = await api(`${base}/cancel`, { method: 'POST', body: { series: action === 'cancel-series' } });
        toast(action === 'cancel-series' ? 'Series cancelled' : 'Cancelled', 'ok');
        break;
      case 'delete':
        await api(base, { method: 'DELETE' });
        streams.delete(id);
        openOccurrences.delete(id);
        toast('Deleted', 'ok');
        break;
      case 'occurrences':
        if (openOccurrences.has(id)) openOccurrences.delete(id);
        else openOccurrences.add(id);
        break;
      case 'summary':
        await showSummary(id);
        break;
      case 'thumbnail': {
        const file = await pickImage();
        if (!file) return;
        s = await uploadImage(`${base}/thumbnail`, file);
        toast('Thumbnail uploaded', 'ok');
        break;
      }
      default:
        return;
    }
    if (s) upsert(s);
    renderStreams();
  } catch (err) {
    if (errEl && errEl.isConnected) {
      errEl.textContent = describeError(err);
      errEl.hidden = false;
    } else {
      toast(describeError(err), 'error', 6000);
    }
  } finally {
    btn.disabled = false;
  }
}

els.streamsList.addEventListener('click', (ev) => {
  const btn = ev.target.closest('button[data-action]');
  if (!btn) return;
  const row = btn.closest('.stream-row');
  if (!row) return;
  if (!confirmed(btn)) return;
  streamAction(Number(row.dataset.streamId), btn.dataset.action, btn);
});

// ---------------------------------------------------------------- the live stream

function syncLive() {
  const s = [...streams.values()].find((x) => x.state === 'live') || null;
  const prev = liveId;
  if (s && s.id !== liveId) {
    if (liveId != null) rt.unsubscribe(liveId);
    liveId = s.id;
    onair.liveId = liveId;
    Object.assign(live, { viewers: s.viewers, peak: s.peak_viewers, likes: s.likes, chat_messages: s.chat_messages });
    rt.subscribe(liveId);
    chat.load(liveId);
    hostTools.setStream(liveId);
    els.summaryPanel.hidden = true;
  } else if (!s && liveId != null) {
    rt.unsubscribe(liveId);
    liveId = null;
    onair.liveId = null;
    chat.clear();
    hostTools.setStream(null);
    // It ended: its final figures.
    const ended = streams.get(prev);
    if (ended && (ended.state === 'ended' || ended.state === 'archived')) showSummary(prev);
  }
  els.livePanel.hidden = !s;
  els.chatPanel.hidden = !s;
  if (!s) return;
  live.started_at = s.started_at;
  live.live_since = s.live_since;
  fillLiveEdit(s);
  live.state = s.state;
  live.media_state = s.media_state;
  els.liveTitle.textContent = s.title;
  const watch = new URL(s.watch_url || `/watch/${s.id}`, window.location.href).toString();
  els.liveWatch.href = watch;
  els.liveWatch.textContent = watch;
  els.openStudio.href = `/publish?stream=${s.id}`;
  const media = s.media_state;
  els.liveState.dataset.state = media === 'receiving' ? 'live' : 'connecting';
  els.liveStateText.textContent = media === 'receiving' ? 'LIVE' : media === 'reconnecting' ? 'Reconnecting' : 'Starting';
  els.liveWaiting.hidden = media === 'receiving';
  if (media === 'reconnecting') {
    els.liveWaitingText.replaceChildren(h('strong', {}, 'Your video dropped.'), ' Viewers see “reconnecting”; publish again within a few seconds to carry on, or end the stream.');
  } else if (media === 'waiting') {
    els.liveWaitingText.replaceChildren(
      h('strong', {}, 'Waiting for your video.'),
      ' Open the studio, or start OBS with one of your stream keys (WHIP server ',
      h('span.mono', {}, new URL('/whip', window.location.href).toString()),
      ').',
    );
  }
  renderFigures();
}

function renderFigures() {
  const n = (v) => (v == null ? '—' : formatNumber(v));
  els.figViewers.textContent = n(live.viewers);
  els.figPeak.textContent = n(live.peak);
  els.figLikes.textContent = n(live.likes);
  els.figChat.textContent = n(live.chat_messages);
  tickDuration();
}

function tickDuration() {
  // "Live for" counts from the first video: nothing ticks while it waits.
  if (!liveId || !live.live_since) {
    els.figDuration.textContent = '—';
    return;
  }
  els.figDuration.textContent = formatDuration(Date.now() - new Date(live.live_since).getTime());
}

async function endLive(save, btn) {
  if (!liveId || !confirmed(btn)) return;
  btn.disabled = true;
  els.liveError.hidden = true;
  try {
    const s = await api(`/api/streams/${liveId}/end`, { method: 'POST', body: { save } });
    upsert(s);
    renderStreams();
    toast(save ? 'Stream ended and saved' : 'Stream ended', 'ok');
  } catch (err) {
    els.liveError.textContent = describeError(err);
    els.liveError.hidden = false;
  } finally {
    btn.disabled = false;
  }
}

els.endSave.addEventListener('click', () => endLive(true, els.endSave));
els.endDiscard.addEventListener('click', () => endLive(false, els.endDiscard));

async function showSummary(id) {
  const s = streams.get(id);
  try {
    const r = await api(`/api/streams/${id}/analytics`);
    const sum = r.summary || {};
    onair.summary = sum;
    onair.summaryStreamId = id;
    els.summaryTitle.textContent = s ? s.title : `Stream ${id}`;
    els.summarySub.textContent = `${r.over ? 'Final figures' : 'So far'}${s && s.ended_at ? ` · ended ${formatWhen(s.ended_at)}` : ''}${r.webrtc_viewers != null ? ` · ${formatNumber(r.webrtc_viewers)} watched the video` : ''}`;
    $('#sum-duration').textContent = formatSeconds(sum.duration_seconds);
    $('#sum-unique').textContent = formatNumber(sum.unique_viewers ?? 0);
    $('#sum-peak').textContent = formatNumber(sum.peak_viewers ?? 0);
    $('#sum-likes').textContent = formatNumber(sum.likes ?? 0);
    $('#sum-chat').textContent = formatNumber(sum.chat_messages ?? 0);
    $('#sum-total').textContent = formatSeconds(sum.total_watch_seconds);
    $('#sum-average').textContent = formatSeconds(sum.average_watch_seconds);
    els.summaryPanel.hidden = false;
  } catch (err) {
    toast(`Couldn’t load the figures: ${describeError(err)}`, 'error');
  }
}

$('#summary-close').addEventListener('click', () => {
  els.summaryPanel.hidden = true;
});

// ---------------------------------------------------------------- chat & moderation

const chat = new ChatView($('#chat-list'), {
  emptyText: 'No messages yet.',
  moderation: {
    async onDelete(m) {
      try {
        await api(`/api/streams/${m.stream_id}/chat/${m.id}`, { method: 'DELETE' });
      } catch (err) {
        toast(`Couldn’t delete: ${describeError(err)}`, 'error');
      }
    },
    async onTimeout(m, seconds) {
      try {
        await api(`/api/channels/${encodeURIComponent(me.username)}/timeouts`, { method: 'POST', body: { user: m.user.username, seconds, reason: '' } });
        toast(`@${m.user.username} is timed out for ${formatSeconds(seconds)}`, 'ok');
        loadRestrictions();
      } catch (err) {
        toast(`Couldn’t time out: ${describeError(err)}`, 'error');
      }
    },
    async onBan(m) {
      try {
        await api(`/api/channels/${encodeURIComponent(me.username)}/bans`, { method: 'POST', body: { user: m.user.username, reason: '' } });
        toast(`@${m.user.username} is banned from your chat`, 'ok');
        loadRestrictions();
      } catch (err) {
        toast(`Couldn’t ban: ${describeError(err)}`, 'error');
      }
    },
  },
});

const composer = new ChatComposer({
  form: $('#chat-form'),
  input: $('#chat-input'),
  button: $('#chat-send'),
  hint: $('#chat-hint'),
  counter: $('#chat-counter'),
  send: (text) => rt.request({ type: 'chat', stream: liveId, text }),
});

// ---------------------------------------------------------------- keys

async function loadKeys() {
  try {
    const keys = await api('/api/me/stream-keys');
    onair.keys = keys.filter((k) => !k.revoked_at);
    // Forget secrets of keys that are gone.
    const saved = savedSecrets();
    for (const id of Object.keys(saved)) if (!onair.keys.some((k) => String(k.id) === id)) saveSecret(id, null);
    renderKeys();
  } catch (err) {
    els.keysList.replaceChildren(h('li.field-error', {}, describeError(err)));
  }
}

function renderKeys() {
  const saved = savedSecrets();
  const rows = onair.keys.map((k) =>
    h(
      'li.key-row',
      { dataset: { keyId: k.id } },
      h(
        'div.row-text',
        {},
        h('strong', {}, k.label || 'Stream key'),
        h('span.row-sub', {}, h('span.mono', {}, `${k.prefix}…`), ` · made ${formatWhen(k.created_at)}`, k.last_used_at ? ` · used ${formatWhen(k.last_used_at)}` : ' · never used', saved[k.id] ? h('span.chip.chip-ok', {}, 'in this browser') : null),
      ),
      h('div.row-actions', {}, actionButton('rotate', 'Rotate', { confirm: 'Rotate? The old key stops' }), actionButton('revoke', 'Revoke', { cls: 'btn-danger', confirm: 'Revoke for good?' })),
    ),
  );
  els.keysList.replaceChildren(...(rows.length ? rows : [h('li.muted.small', {}, 'No keys yet.')]));
}

function showSecret(k) {
  saveSecret(k.id, k.key);
  onair.newKey = { id: k.id, prefix: k.prefix, label: k.label };
  els.secret.value = k.key;
  els.keyUse.href = `/publish?key=${k.id}${liveId ? `&stream=${liveId}` : ''}`;
  els.secretBox.hidden = false;
  els.secret.focus();
  els.secret.select();
}

els.keyForm.addEventListener('submit', async (ev) => {
  ev.preventDefault();
  els.keyError.hidden = true;
  const btn = $('#key-create');
  btn.disabled = true;
  try {
    const label = els.keyLabel.value.trim();
    const k = await api('/api/me/stream-keys', { method: 'POST', body: label ? { label } : {} });
    els.keyLabel.value = '';
    showSecret(k);
    await loadKeys();
  } catch (err) {
    els.keyError.textContent = err.fields && err.fields.label ? `Label: ${err.fields.label}` : describeError(err);
    els.keyError.hidden = false;
  } finally {
    btn.disabled = false;
  }
});

els.keysList.addEventListener('click', async (ev) => {
  const btn = ev.target.closest('button[data-action]');
  if (!btn || !confirmed(btn)) return;
  const id = Number(btn.closest('.key-row').dataset.keyId);
  btn.disabled = true;
  try {
    if (btn.dataset.action === 'rotate') {
      const k = await api(`/api/me/stream-keys/${id}/rotate`, { method: 'POST' });
      saveSecret(id, null);
      showSecret(k);
      toast('Key rotated: update OBS with the new one', 'ok');
    } else {
      await api(`/api/me/stream-keys/${id}`, { method: 'DELETE' });
      saveSecret(id, null);
      toast('Key revoked', 'ok');
    }
    await loadKeys();
  } catch (err) {
    toast(describeError(err), 'error');
    btn.disabled = false;
  }
});

$('#key-copy').addEventListener('click', async () => {
  const ok = await copyText(els.secret.value);
  toast(ok ? 'Key copied' : 'Copy failed: select the key and copy it', ok ? 'ok' : 'error');
});
$('#key-hide').addEventListener('click', () => {
  els.secretBox.hidden = true;
  els.secret.value = '';
});

// ---------------------------------------------------------------- chat settings

let settingsDirty = false;

function selectValue(select, value) {
  const v = String(value);
  if (![...select.options].some((o) => o.value === v)) {
    select.append(h('option', { value: v }, select === els.setSlow ? `${v} s` : `Following ${v} min`));
  }
  select.value = v;
}

function fillSettings(s, { words = true } = {}) {
  onair.settings = { ...(onair.settings || {}), ...s, banned_words: words ? s.banned_words : (onair.settings || {}).banned_words };
  selectValue(els.setSlow, s.slow_mode_seconds || 0);
  selectValue(els.setFollowers, s.followers_only_minutes == null ? -1 : s.followers_only_minutes);
  els.setSubs.checked = !!s.subscribers_only;
  if (words) els.setWords.value = (s.banned_words || []).join('\n');
  els.chatModes.textContent = describeSettings(s);
  settingsDirty = false;
}

async function loadSettings() {
  try {
    fillSettings(await api(`/api/channels/${encodeURIComponent(me.username)}/chat-settings/full`));
  } catch (err) {
    els.setStatus.textContent = describeError(err);
  }
}

els.settingsForm.addEventListener('input', () => {
  settingsDirty = true;
  els.setStatus.textContent = '';
});
els.settingsForm.addEventListener('submit', async (ev) => {
  ev.preventDefault();
  fieldErrors(els.settingsForm, null);
  const btn = $('#set-save');
  btn.disabled = true;
  els.setStatus.textContent = 'Saving…';
  const words = els.setWords.value
    .split(/\n/)
    .map((w) => w.trim())
    .filter(Boolean);
  try {
    const s = await api(`/api/channels/${encodeURIComponent(me.username)}/chat-settings`, {
      method: 'PATCH',
      body: {
        slow_mode_seconds: Number(els.setSlow.value),
        followers_only_minutes: Number(els.setFollowers.value),
        subscribers_only: els.setSubs.checked,
        banned_words: words,
      },
    });
    fillSettings(s);
    els.setStatus.textContent = 'Saved';
  } catch (err) {
    els.setStatus.textContent = '';
    fieldErrors(els.settingsForm, err, els.setStatus);
  } finally {
    btn.disabled = false;
  }
});

// ---------------------------------------------------------------- bans & timeouts

async function loadRestrictions() {
  try {
    restrictions = await api(`/api/channels/${encodeURIComponent(me.username)}/restrictions`);
    renderRestrictions();
  } catch (err) {
    els.restrictions.replaceChildren(h('li.field-error', {}, describeError(err)));
  }
}

function activeRestrictions() {
  const now = Date.now();
  return restrictions.filter((r) => r.banned || (r.timeout_until && new Date(r.timeout_until).getTime() > now));
}

function renderRestrictions() {
  const list = activeRestrictions();
  onair.restrictions = list.map((r) => ({ username: r.username, banned: r.banned, until: r.timeout_until }));
  els.restrictions.replaceChildren(
    ...list.map((r) =>
      h(
        'li.restriction-row',
        { dataset: { user: r.username } },
        h(
          'div.row-text',
          {},
          h('strong', {}, `@${r.username}`),
          h('span.row-sub', {}, h('span.chip', { class: r.banned ? 'chip-bad' : 'chip-warn' }, r.banned ? 'Banned' : `Timed out until ${formatClock(r.timeout_until)}`), r.reason ? ` ${r.reason}` : ''),
        ),
        h('div.row-actions', {}, h('button.btn.btn-sm', { type: 'button', dataset: { action: r.banned ? 'unban' : 'untimeout' } }, r.banned ? 'Lift ban' : 'Lift timeout')),
      ),
    ),
  );
  els.restrictionsEmpty.hidden = list.length > 0;
}

els.restrictions.addEventListener('click', async (ev) => {
  const btn = ev.target.closest('button[data-action]');
  if (!btn) return;
  const user = btn.closest('.restriction-row').dataset.user;
  btn.disabled = true;
  try {
    const kind = btn.dataset.action === 'unban' ? 'bans' : 'timeouts';
    await api(`/api/channels/${encodeURIComponent(me.username)}/${kind}/${encodeURIComponent(user)}`, { method: 'DELETE' });
    toast(`@${user} may chat again`, 'ok');
  } catch (err) {
    toast(describeError(err), 'error');
  }
  loadRestrictions();
});

// ---------------------------------------------------------------- new stream form

function pad(n) {
  return String(n).padStart(2, '0');
}

function localInputValue(d) {
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())}T${pad(d.getHours())}:${pad(d.getMinutes())}`;
}

function whenMode() {
  const r = els.createForm.querySelector('input[name="when"]:checked');
  return r ? r.value : 'at';
}

function renderWhen() {
  const mode = whenMode();
  els.atField.hidden = mode !== 'at';
  els.weeklyFields.hidden = mode !== 'weekly';
  els.submit.querySelector('.btn-label').textContent = mode === 'now' ? 'Create and go live' : mode === 'weekly' ? 'Schedule weekly' : 'Schedule';
}

function fillTimeZones() {
  let zones = [];
  try {
    zones = Intl.supportedValuesOf('timeZone');
  } catch {
    zones = ['UTC', 'Europe/London', 'Europe/Berlin', 'America/New_York', 'America/Los_Angeles', 'Asia/Tokyo'];
  }
  if (!zones.includes(browserTz)) zones = [browserTz, ...zones];
  if (!zones.includes('UTC')) zones.push('UTC');
  els.tz.replaceChildren(...zones.map((z) => h('option', { value: z }, z.replace(/_/g, ' '))));
  els.tz.value = browserTz;
  for (const el of $$('.tz-name')) el.textContent = browserTz.replace(/_/g, ' ');
}

function resetCreate() {
  const soon = new Date(Date.now() + 60 * 60 * 1000);
  soon.setMinutes(Math.ceil(soon.getMinutes() / 5) * 5, 0, 0);
  els.at.value = localInputValue(soon);
  els.at.min = localInputValue(new Date());
  const today = DAYS[new Date().getDay()];
  for (const cb of els.createForm.querySelectorAll('input[name="day"]')) cb.checked = cb.value === today;
}

els.createForm.addEventListener('change', (ev) => {
  if (ev.target.name === 'when') renderWhen();
  if (ev.target === els.visibility) els.priceField.hidden = els.visibility.value !== 'ticketed';
});

els.createForm.addEventListener('submit', async (ev) => {
  ev.preventDefault();
  fieldErrors(els.createForm, null, els.createError);
  const f = new FormData(els.createForm);
  const mode = whenMode();
  const body = { title: String(f.get('title') || '').trim(), visibility: els.visibility.value };
  const description = String(f.get('description') || '').trim();
  if (description) body.description = description;
  const thumb = String(f.get('thumbnail_url') || '').trim();
  if (thumb) body.thumbnail_url = thumb;
  const category = String(f.get('category') || '').trim();
  if (category) body.category = category;
  const thumbFile = $('#new-thumbnail-file').files[0] || null;
  if (body.visibility === 'ticketed') {
    const p = String(f.get('ticket_price') || '').trim();
    body.ticket_price = p === '' ? null : Number(p);
  }
  const local = {};
  if (!body.title) local.title = 'give the stream a title';
  if (mode === 'at') {
    const v = els.at.value;
    const d = v ? new Date(v) : null;
    // Said here in words: the server's checks are the same, but a year
    // such as 9999 would reach it as a date it cannot even read.
    if (!d || Number.isNaN(d.getTime())) local.scheduled_at = 'pick a date and time';
    else if (d.getTime() > Date.now() + 365 * 86400 * 1000) local.scheduled_at = 'pick a time within the next year';
    else if (d.getTime() < Date.now() - 60 * 1000) local.scheduled_at = 'pick a time that has not passed';
    else body.scheduled_at = d.toISOString();
  } else if (mode === 'weekly') {
    const days = f.getAll('day').map(String);
    if (!days.length) local['recurrence.days'] = 'pick at least one day';
    body.recurrence = { freq: 'weekly', days, time: String(f.get('recurrence.time') || ''), timezone: els.tz.value };
    const until = String(f.get('recurrence.until') || '');
    if (until) body.recurrence.until = new Date(`${until}T23:59:59`).toISOString();
  }
  if (Object.keys(local).length) {
    fieldErrors(els.createForm, { code: 'validation', message: 'Check the form.', fields: local }, els.createError);
    return;
  }
  els.submit.disabled = true;
  els.submit.querySelector('.spinner').hidden = false;
  try {
    let s = await api('/api/streams', { method: 'POST', body });
    upsert(s);
    if (thumbFile) {
      try {
        s = await uploadImage(`/api/streams/${s.id}/thumbnail`, thumbFile);
        upsert(s);
      } catch (err) {
        toast(`Created, but the thumbnail was refused: ${describeError(err)}`, 'error', 6000);
      }
    }
    if (mode === 'now') {
      try {
        s = await api(`/api/streams/${s.id}/start`, { method: 'POST' });
        upsert(s);
        toast('You’re on: now send your video from the studio or OBS', 'ok', 5000);
      } catch (err) {
        toast(`Created, but couldn’t go live: ${describeError(err)}`, 'error', 6000);
      }
    } else {
      toast(s.scheduled_at ? `Scheduled for ${formatWhen(s.scheduled_at)}` : 'Created', 'ok');
    }
    els.createForm.reset();
    els.tz.value = browserTz;
    resetCreate();
    renderWhen();
    els.priceField.hidden = true;
    renderStreams();
  } catch (err) {
    fieldErrors(els.createForm, err, els.createError);
  } finally {
    els.submit.disabled = false;
    els.submit.querySelector('.spinner').hidden = true;
  }
});

// ---------------------------------------------------------------- pictures

/** Lets the host pick an image file (resolves to null when they cancel). */
function pickImage() {
  return new Promise((resolve) => {
    const input = h('input', { type: 'file', accept: 'image/jpeg,image/png,image/webp', hidden: true });
    input.addEventListener('change', () => {
      resolve(input.files[0] || null);
      input.remove();
    });
    input.addEventListener('cancel', () => {
      resolve(null);
      input.remove();
    });
    document.body.append(input);
    input.click();
  });
}

// ---------------------------------------------------------------- the live stream's details

function fillLiveEdit(s) {
  const form = $('#live-edit-form');
  // Not while the host is typing in it.
  if (form.contains(document.activeElement) && form.dataset.streamId === String(s.id)) return;
  form.dataset.streamId = String(s.id);
  $('#live-edit-title').value = s.title;
  $('#live-edit-description').value = s.description || '';
  $('#live-edit-category').value = s.category || '';
}

$('#live-edit-form').addEventListener('submit', async (ev) => {
  ev.preventDefault();
  const form = ev.target;
  fieldErrors(form, null);
  const status = $('#live-edit-status');
  if (!liveId) return;
  const btn = $('#live-edit-save');
  btn.disabled = true;
  status.textContent = 'Saving…';
  try {
    const s = await api(`/api/streams/${liveId}`, {
      method: 'PATCH',
      body: { title: $('#live-edit-title').value, description: $('#live-edit-description').value, category: $('#live-edit-category').value },
    });
    upsert(s);
    renderStreams();
    status.textContent = 'Saved: viewers see it now';
  } catch (err) {
    status.textContent = '';
    fieldErrors(form, err, status);
    status.hidden = false;
  } finally {
    btn.disabled = false;
  }
});

// ---------------------------------------------------------------- the channel

const channel = { profile: null, defaults: null };
onair.channel = channel;

function renderChannelPics() {
  const av = $('#ch-avatar-preview');
  av.replaceChildren(channel.profile && channel.profile.avatar_url ? h('img', { src: channel.profile.avatar_url, alt: '' }) : (me.display_name || me.username || '?')[0].toUpperCase());
  const th = $('#def-thumb-preview');
  th.replaceChildren(channel.defaults && channel.defaults.thumbnail_url ? h('img', { src: channel.defaults.thumbnail_url, alt: '' }) : h('span.muted.small', {}, 'None'));
}

function fillChannel() {
  const d = channel.defaults;
  $('#ch-bio').value = (channel.profile && channel.profile.bio) || '';
  $('#def-title').value = d.title;
  $('#def-title').placeholder = `${me.display_name || me.username} is live`;
  $('#def-description').value = d.description;
  $('#def-category').value = d.category;
  $('#def-visibility').value = d.visibility;
  $('#def-record').checked = d.record;
  renderChannelPics();
}

async function loadChannel() {
  $('#channel-link').href = `/c/${encodeURIComponent(me.username)}`;
  try {
    const [profile, defaults] = await Promise.all([api(`/api/users/${encodeURIComponent(me.username)}`), api(`/api/channels/${encodeURIComponent(me.username)}/defaults`)]);
    channel.profile = profile;
    channel.defaults = defaults;
    fillChannel();
  } catch (err) {
    $('#ch-status').textContent = describeError(err);
  }
}

$('#channel-form').addEventListener('submit', async (ev) => {
  ev.preventDefault();
  const form = ev.target;
  fieldErrors(form, null);
  const status = $('#ch-status');
  const btn = $('#ch-save');
  btn.disabled = true;
  status.textContent = 'Saving…';
  try {
    channel.profile = await api('/api/me', { method: 'PATCH', body: { bio: $('#ch-bio').value } });
    channel.defaults = await api(`/api/channels/${encodeURIComponent(me.username)}/defaults`, {
      method: 'PATCH',
      body: {
        title: $('#def-title').value,
        description: $('#def-description').value,
        category: $('#def-category').value,
        visibility: $('#def-visibility').value,
        record: $('#def-record').checked,
      },
    });
    fillChannel();
    status.textContent = 'Saved';
  } catch (err) {
    status.textContent = '';
    fieldErrors(form, err, status);
    status.hidden = false;
  } finally {
    btn.disabled = false;
  }
});

async function uploadPicture(input, path, apply, what) {
  const file = input.files[0];
  if (!file) return;
  input.disabled = true;
  try {
    apply(await uploadImage(path, file));
    renderChannelPics();
    toast(`${what} uploaded`, 'ok');
  } catch (err) {
    toast(`${what} refused: ${describeError(err)}`, 'error', 6000);
  } finally {
    input.value = '';
    input.disabled = false;
  }
}

$('#ch-avatar').addEventListener('change', (ev) => uploadPicture(ev.target, '/api/me/avatar', (p) => (channel.profile = p), 'Picture'));
$('#def-thumbnail').addEventListener('change', (ev) =>
  uploadPicture(ev.target, `/api/channels/${encodeURIComponent(me.username)}/defaults/thumbnail`, (d) => (channel.defaults = d), 'Thumbnail'),
);

// ---------------------------------------------------------------- live updates

rt.on('open', ({ reconnect }) => {
  setConn('open');
  // After a drop, whatever changed meanwhile.
  if (reconnect) {
    loadStreams();
    loadRestrictions();
  }
});
rt.on('close', () => setConn('closed'));

rt.on('stream_status', (msg) => {
  const s = msg.stream;
  if (!s || !s.host || s.host.id !== me.id) return;
  const prev = streams.get(s.id);
  upsert(s);
  renderStreams();
  // A key just started a publish: its "last used" changed.
  if (s.media_state === 'receiving' && (!prev || prev.media_state !== 'receiving')) loadKeys();
});

rt.on('subscribed', (msg) => {
  const s = msg.stream;
  if (!s || s.id !== liveId) return;
  upsert(s);
  // The counts at this moment; events keep them current from here.
  Object.assign(live, { viewers: s.viewers, peak: s.peak_viewers, likes: s.likes, chat_messages: s.chat_messages });
  chat.load(liveId);
  renderStreams();
});

rt.on('viewer_count', (msg) => {
  if (msg.stream_id !== liveId) return;
  live.viewers = msg.viewers;
  live.peak = msg.peak;
  renderFigures();
});

rt.on('likes', (msg) => {
  if (msg.stream_id !== liveId) return;
  live.likes = msg.likes;
  renderFigures();
});

rt.on('chat_message', (msg) => {
  const m = msg.message;
  if (!m || m.stream_id !== liveId) return;
  if (m.kind === 'chat' && !chat.byId.has(m.id)) live.chat_messages = (live.chat_messages || 0) + 1;
  chat.add(m);
  renderFigures();
});

rt.on('chat_deleted', (msg) => {
  if (msg.stream_id === liveId) chat.remove(msg.message_id);
});

rt.on('moderation', () => loadRestrictions());

rt.on('chat_settings', (msg) => {
  if (!msg.settings || msg.settings.host_id !== me.id) return;
  if (!settingsDirty) fillSettings(msg.settings, { words: false });
  els.chatModes.textContent = describeSettings(msg.settings);
});

showReminders(rt);

// ---------------------------------------------------------------- start

function start() {
  renderAccount({ current: 'dashboard' });
  if (!me) return;
  // Logged out (or in as someone else) in another tab: this dashboard is not theirs.
  onLoginChange((u) => {
    if (!u || u.id !== me.id) window.location.replace(loginUrl('/dashboard'));
  });
  if (!isHost(me)) {
    els.gate.hidden = false;
    els.gateText.textContent = `You are logged in as @${me.username}, a viewer account. Hosts get a dashboard to schedule streams, make stream keys and moderate their chat.`;
    return;
  }
  els.dash.hidden = false;
  els.whipUrl.textContent = new URL('/whip', window.location.href).toString();
  fillTimeZones();
  resetCreate();
  renderWhen();
  setConn('connecting');
  rt.connect();
  loadStreams();
  loadKeys();
  loadSettings();
  loadRestrictions();
  loadChannel();
  setInterval(() => {
    tickDuration();
    // Timeouts run out on their own: drop them from the list when they do.
    if (restrictions.length && activeRestrictions().length !== onair.restrictions.length) renderRestrictions();
  }, 1000);
}

start();
