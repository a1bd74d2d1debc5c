// OnAir shared browser helpers (ES module, no build step).
//
// Everything here uses standard web APIs only so that the pages work the same
// in Chromium and Firefox.

export const $ = (sel, root = document) => root.querySelector(sel);
export const $$ = (sel, root = document) => Array.from(root.querySelectorAll(sel));

/** Error carrying the HTTP status and the server's `error.code`. */
export class OnAirError extends Error {
  constructor(message, { status = 0, code = 'error', fields = null, retryAfterMs = null } = {}) {
    super(message);
    this.name = 'OnAirError';
    this.status = status;
    this.code = code;
    /** Per-field messages of a `validation` error ({field: message}). */
    this.fields = fields;
    /** When trying again can work (rate limits, slow mode, timeouts). */
    this.retryAfterMs = retryAfterMs;
  }
}

/** An OnAirError from the contract's `{"error":{...}}` object (e.g. on the WebSocket). */
export function errorFromBody(err, status = 0) {
  const e = err && typeof err === 'object' ? err : {};
  return new OnAirError(e.message ? capitalize(String(e.message)) : STATUS_TEXT[status] || 'Request failed.', {
    status,
    code: e.code ? String(e.code) : `http_${status}`,
    fields: e.fields && typeof e.fields === 'object' ? e.fields : null,
    retryAfterMs: typeof e.retry_after_ms === 'number' ? e.retry_after_ms : null,
  });
}

/** "wrong password" -> "Wrong password" (the server's messages are lower case). */
export function capitalize(s) {
  return s ? s[0].toUpperCase() + s.slice(1) : s;
}

const STATUS_TEXT = {
  400: 'The server rejected the request.',
  401: 'Not logged in, or the key was not accepted.',
  403: 'Not allowed.',
  404: 'Not found.',
  409: 'Conflict with the current state of the stream.',
  413: 'The request was too large.',
  415: 'Unsupported media type.',
  429: 'Too many requests, slow down a little.',
  500: 'The server hit an internal error.',
  502: 'The server is unreachable.',
  503: 'The server is busy or unavailable.',
};

/**
 * Turns a non-2xx fetch Response into an OnAirError, reading the contract's
 * `{"error":{"code":"...","message":"..."}}` body when there is one.
 */
export async function errorFromResponse(resp) {
  let code = `http_${resp.status}`;
  let message = '';
  let text = '';
  let fields = null;
  let retryAfterMs = null;
  try {
    text = await resp.text();
  } catch {
    /* ignore */
  }
  try {
    const body = JSON.parse(text);
    const err = body && body.error;
    if (err && typeof err === 'object') {
      if (err.code) code = String(err.code);
      if (err.message) message = capitalize(String(err.message));
      if (err.fields && typeof err.fields === 'object') fields = err.fields;
      if (typeof err.retry_after_ms === 'number') retryAfterMs = err.retry_after_ms;
    } else if (typeof err === 'string') {
      message = err;
    } else if (body && typeof body.message === 'string') {
      message = body.message;
    }
  } catch {
    if (text && text.length < 300 && !/^\s*</.test(text)) message = text.trim();
  }
  if (!message) message = STATUS_TEXT[resp.status] || `Request failed (HTTP ${resp.status}).`;
  return new OnAirError(message, { status: resp.status, code, fields, retryAfterMs });
}

/** Human text for an exception, whatever threw it. */
export function describeError(err) {
  if (!err) return 'Unknown error';
  if (err instanceof OnAirError) return err.message;
  if (err.name === 'TypeError' && /fetch|network/i.test(err.message || '')) {
    return 'Cannot reach the OnAir server. Check your network connection.';
  }
  return err.message || String(err);
}

/** Fetches /api/config and returns RTCPeerConnection iceServers ([] on any problem). */
/** The server's public settings (`GET /api/config`); null when unreachable. */
export async function getConfig() {
  try {
    const resp = await fetch('/api/config', { cache: 'no-store' });
    if (!resp.ok) throw new Error(`HTTP ${resp.status}`);
    return await resp.json();
  } catch (err) {
    console.warn('[onair] could not load /api/config:', err);
    return null;
  }
}

export async function getIceServers() {
  return iceServersOf(await getConfig());
}

/** The usable ICE servers of a `/api/config` answer (none when it is null). */
export function iceServersOf(cfg) {
  try {
    const list = Array.isArray(cfg && cfg.ice_servers) ? cfg.ice_servers : [];
    return list
      .map((s) => {
        if (!s) return null;
        let urls = s.urls ?? s.url;
        if (typeof urls === 'string') urls = [urls];
        if (!Array.isArray(urls)) return null;
        urls = urls.filter((u) => typeof u === 'string' && /^(stun|stuns|turn|turns):/i.test(u));
        if (!urls.length) return null;
        const out = { urls };
        if (s.username) out.username = String(s.username);
        if (s.credential) out.credential = String(s.credential);
        return out;
      })
      .filter(Boolean);
  } catch (err) {
    console.warn('[onair] unusable ice_servers in /api/config, using none:', err);
    return [];
  }
}

/**
 * Resolves once ICE gathering is complete, or after `timeoutMs` (the server is
 * ICE-lite, so host candidates are enough and trickle is not needed).
 */
export function waitForIceGathering(pc, timeoutMs = 1000) {
  if (pc.iceGatheringState === 'complete') return Promise.resolve();
  return new Promise((resolve) => {
    let done = false;
    const finish = () => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      pc.removeEventListener('icegatheringstatechange', onState);
      pc.removeEventListener('icecandidate', onCandidate);
      resolve();
    };
    const onState = () => {
      if (pc.iceGatheringState === 'complete') finish();
    };
    const onCandidate = (ev) => {
      if (!ev.candidate) finish();
    };
    const timer = setTimeout(finish, timeoutMs);
    pc.addEventListener('icegatheringstatechange', onState);
    pc.addEventListener('icecandidate', onCandidate);
  });
}

/**
 * Reorders a transceiver's codecs so `mimeType` comes first (keeping the
 * others, e.g. rtx/red/fec, after it). No-op where setCodecPreferences or
 * getCapabilities is missing. Returns true when applied.
 */
export function preferCodec(transceiver, kind, mimeType) {
  if (!transceiver || typeof transceiver.setCodecPreferences !== 'function') return false;
  const want = mimeType.toLowerCase();
  // Older engines validate against the receiver's capabilities only, newer
  // ones accept the sender's: try both.
  const sources = [window.RTCRtpSender, window.RTCRtpReceiver];
  let lastErr = null;
  for (const api of sources) {
    try {
      const caps = api && api.getCapabilities ? api.getCapabilities(kind) : null;
      if (!caps || !caps.codecs) continue;
      const first = caps.codecs.filter((c) => c.mimeType.toLowerCase() === want);
      if (!first.length) continue;
      const rest = caps.codecs.filter((c) => c.mimeType.toLowerCase() !== want);
      transceiver.setCodecPreferences([...first, ...rest]);
      return true;
    } catch (err) {
      lastErr = err;
    }
  }
  if (lastErr) console.warn(`[onair] could not prefer ${mimeType}:`, lastErr);
  return false;
}

/** Absolute URL for a (possibly relative) Location header. */
export function resolveLocation(loc) {
  return new URL(loc, window.location.href).toString();
}

/** Last path segment of a Location URL: the session id. */
export function sessionFromLocation(loc) {
  try {
    const parts = new URL(loc, window.location.href).pathname.split('/').filter(Boolean);
    return decodeURIComponent(parts[parts.length - 1] || '');
  } catch {
    return '';
  }
}

/**
 * Fire-and-forget DELETE of a WHIP/WHEP session (survives page unload). A
 * session opened with a bearer credential (stream key, access token) is
 * ended only with the same one.
 */
export function deleteSession(url, bearer) {
  if (!url) return Promise.resolve();
  const headers = bearer ? { Authorization: `Bearer ${bearer}` } : {};
  return fetch(url, { method: 'DELETE', keepalive: true, headers }).then(
    () => undefined,
    () => undefined,
  );
}

/** 1234567 -> "1.23 Mbps". */
export function formatBitrate(bps) {
  if (bps == null || !Number.isFinite(bps)) return '—';
  if (bps >= 1e6) return `${(bps / 1e6).toFixed(bps >= 1e7 ? 1 : 2)} Mbps`;
  if (bps >= 1e3) return `${Math.round(bps / 1e3)} kbps`;
  return `${Math.round(bps)} bps`;
}

/** Milliseconds -> "mm:ss" or "h:mm:ss". */
export function formatDuration(ms) {
  const total = Math.max(0, Math.floor(ms / 1000));
  const h = Math.floor(total / 3600);
  const m = Math.floor((total % 3600) / 60);
  const s = total % 60;
  const mm = String(m).padStart(2, '0');
  const ss = String(s).padStart(2, '0');
  return h ? `${h}:${mm}:${ss}` : `${mm}:${ss}`;
}

export function formatNumber(n) {
  if (n == null || !Number.isFinite(n)) return '—';
  return new Intl.NumberFormat().format(n);
}

/** ws:// or wss:// URL for a same-origin path. */
export function wsUrl(path) {
  const proto = window.location.protocol === 'https:' ? 'wss:' : 'ws:';
  return `${proto}//${window.location.host}${path}`;
}

export function healthPath(stream) {
  return `/api/streams/${encodeURIComponent(stream)}/health`;
}

/**
 * Follows a stream's health over its WebSocket (`.../health/ws?token=`),
 * which only the stream's host sees: `token` is the stream key or the host's
 * access token (a function returning either, or a promise of it, is called
 * at each connect). There is no polling: when the socket drops it reconnects
 * with backoff. `onData(json)` gets each health object (pushed every
 * second); `onEvent(event)` each stream event ({type: 'stream_ended' |
 * 'speaking' | ...}); `onState('open'|'closed')` the socket's state.
 */
export function watchHealth(stream, token, onData, { onEvent = null, onState = null } = {}) {
  let ws = null;
  let closed = false;
  let reconnectTimer = null;
  let attempt = 0;

  const call = (fn, arg) => {
    if (!fn || closed) return;
    try {
      fn(arg);
    } catch (err) {
      console.error('[onair] health handler failed:', err);
    }
  };

  const retry = () => {
    if (closed) return;
    const delay = backoff(attempt);
    attempt += 1;
    reconnectTimer = setTimeout(connect, delay);
  };

  const connect = async () => {
    if (closed) return;
    let t = null;
    try {
      t = typeof token === 'function' ? await token() : token;
    } catch (err) {
      console.warn('[onair] no token for the health feed:', err);
    }
    if (closed) return;
    if (!t) {
      retry();
      return;
    }
    try {
      ws = new WebSocket(wsUrl(`${healthPath(stream)}/ws?token=${encodeURIComponent(t)}`));
    } catch (err) {
      console.warn('[onair] health websocket unavailable:', err);
      retry();
      return;
    }
    ws.onopen = () => {
      attempt = 0;
      call(onState, 'open');
    };
    ws.onmessage = (ev) => {
      let msg;
      try {
        msg = JSON.parse(ev.data);
      } catch {
        return; /* ignore non-JSON frames */
      }
      if (msg && msg.event) call(onEvent, msg.event);
      else if (msg && typeof msg === 'object') call(onData, msg);
    };
    ws.onclose = () => {
      ws = null;
      if (closed) return;
      call(onState, 'closed');
      retry();
    };
    ws.onerror = () => {
      /* onclose follows */
    };
  };

  connect();
  return {
    close() {
      closed = true;
      clearTimeout(reconnectTimer);
      if (ws) {
        ws.onclose = null;
        try {
          ws.close();
        } catch {
          /* ignore */
        }
        ws = null;
      }
    },
  };
}

/** Reconnect delay for the n-th attempt: 0.5 s doubling to 15 s, with jitter. */
export function backoff(attempt) {
  const base = Math.min(15000, 500 * 2 ** Math.min(attempt, 5));
  return Math.round(base * (0.75 + Math.random() * 0.5));
}

/** Copies text, with a fallback for plain-http pages where navigator.clipboard is absent. */
export async function copyText(text) {
  if (navigator.clipboard && window.isSecureContext) {
    try {
      await navigator.clipboard.writeText(text);
      return true;
    } catch {
      /* fall through */
    }
  }
  const ta = document.createElement('textarea');
  ta.value = text;
  ta.setAttribute('readonly', '');
  ta.style.position = 'fixed';
  ta.style.opacity = '0';
  document.body.appendChild(ta);
  ta.select();
  let ok = false;
  try {
    ok = document.execCommand('copy');
  } catch {
    ok = false;
  }
  ta.remove();
  return ok;
}

/** A polite live region (made once) that notices are appended to. */
export function noticeHost(id, className) {
  let host = document.getElementById(id);
  if (!host) {
    host = document.createElement('div');
    host.id = id;
    host.className = className;
    host.setAttribute('role', 'status');
    host.setAttribute('aria-live', 'polite');
    document.body.appendChild(host);
  }
  return host;
}

/** Small transient notification in the bottom corner. */
export function toast(message, kind = 'info', ms = 3500) {
  const host = noticeHost('toasts', 'toasts');
  const el = document.createElement('div');
  el.className = `toast toast-${kind}`;
  el.textContent = message;
  host.appendChild(el);
  requestAnimationFrame(() => el.classList.add('show'));
  setTimeout(() => {
    el.classList.remove('show');
    setTimeout(() => el.remove(), 300);
  }, ms);
}

/** Shows or hides an element via the `hidden` attribute (works for SVG too, which has no .hidden property). */
export function showEl(el, visible) {
  if (el) el.toggleAttribute('hidden', !visible);
}

/** Sets textContent only when it changed (avoids layout churn in stats loops). */
export function setText(el, text) {
  if (typeof el === 'string') el = document.getElementById(el);
  if (el && el.textContent !== text) el.textContent = text;
}

/** localStorage that never throws (private mode, disabled storage...). */
export const store = {
  get(key, fallback = null) {
    try {
      const v = window.localStorage.getItem(key);
      return v == null ? fallback : v;
    } catch {
      return fallback;
    }
  },
  set(key, value) {
    try {
      if (value == null || value === '') window.localStorage.removeItem(key);
      else window.localStorage.setItem(key, value);
    } catch {
      /* ignore */
    }
  },
};

/** Quality string from the server -> CSS modifier. */
export function qualityClass(q) {
  const v = String(q || '').toLowerCase();
  return ['excellent', 'good', 'fair', 'poor'].includes(v) ? v : 'unknown';
}

export const LAYER_NAMES = { f: 'High', h: 'Medium', q: 'Low', auto: 'Auto' };

export function layerName(l) {
  if (!l) return '—';
  return LAYER_NAMES[l] || String(l);
}

export function sleep(ms) {
  return new Promise((r) => setTimeout(r, ms));
}

/**
 * Builds an element: `h('a.card', {href: '/x', dataset: {id: 1}}, 'text', child)`.
 * Strings become text nodes (never HTML), null/false children are skipped.
 */
export function h(tag, attrs = {}, ...children) {
  const [name, ...classes] = tag.split('.');
  const el = document.createElement(name || 'div');
  if (classes.length) el.className = classes.join(' ');
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v == null || v === false) continue;
    if (k === 'dataset') Object.assign(el.dataset, v);
    else if (k === 'class') el.className = [el.className, v].filter(Boolean).join(' ');
    else if (k === 'text') el.textContent = v;
    // Through the CSSOM: the Content-Security-Policy (style-src 'self') refuses style attributes.
    else if (k === 'style') el.style.cssText = String(v);
    else if (k.startsWith('on') && typeof v === 'function') el.addEventListener(k.slice(2), v);
    else if (v === true) el.setAttribute(k, '');
    else el.setAttribute(k, String(v));
  }
  for (const c of children.flat()) {
    if (c == null || c === false) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return el;
}

/** Seconds -> "45 s", "12:05", "3:12:05" or "2 d 4 h" (countdowns). */
export function formatCountdown(seconds) {
  const s = Math.max(0, Math.floor(seconds));
  if (s >= 2 * 86400) {
    const d = Math.floor(s / 86400);
    const hh = Math.floor((s % 86400) / 3600);
    return hh ? `${d} d ${hh} h` : `${d} d`;
  }
  if (s < 60) return `${s} s`;
  return formatDuration(s * 1000);
}

/**
 * When a scheduled stream starts, for people: relative words under a day
 * ("Starts in 45 s", "Starts in 12 min", "Starts in 3 h 5 min"), the day and
 * time beyond ("Starts tomorrow, 6:00 PM", "Starts Sat 5 Dec, 6:00 PM").
 * `seconds` is the time left; `at` the start (RFC 3339).
 */
export function formatStartsIn(seconds, at, now = new Date()) {
  const s = Math.max(0, Math.round(seconds));
  if (s < 1) return 'Starting any moment';
  if (s < 60) return `Starts in ${s} s`;
  if (s < 3600) return `Starts in ${Math.ceil(s / 60)} min`;
  if (s < 86400) {
    const hh = Math.floor(s / 3600);
    const m = Math.round((s % 3600) / 60);
    return m ? `Starts in ${hh} h ${m} min` : `Starts in ${hh} h`;
  }
  const d = at ? new Date(at) : new Date(now.getTime() + s * 1000);
  const time = d.toLocaleTimeString(undefined, { hour: 'numeric', minute: '2-digit' });
  const tomorrow = new Date(now.getFullYear(), now.getMonth(), now.getDate() + 1);
  if (d.getFullYear() === tomorrow.getFullYear() && d.getMonth() === tomorrow.getMonth() && d.getDate() === tomorrow.getDate()) {
    return `Starts tomorrow, ${time}`;
  }
  const opts = { weekday: 'short', day: 'numeric', month: 'short' };
  if (d.getFullYear() !== now.getFullYear()) opts.year = 'numeric';
  return `Starts ${d.toLocaleDateString(undefined, opts)}, ${time}`;
}

/** Seconds -> "1 h 5 min", "12 min", "40 s" (durations in reports). */
export function formatSeconds(seconds) {
  const s = Math.max(0, Math.round(seconds || 0));
  if (s < 60) return `${s} s`;
  const hh = Math.floor(s / 3600);
  const m = Math.floor((s % 3600) / 60);
  return hh ? `${hh} h ${m} min` : `${m} min`;
}

/** RFC 3339 -> "Tue 1 Dec, 18:00" in the browser's time zone. */
export function formatWhen(iso, { withYear = false } = {}) {
  if (!iso) return '—';
  const d = new Date(iso);
  if (Number.isNaN(d.getTime())) return '—';
  const opts = { weekday: 'short', day: 'numeric', month: 'short', hour: '2-digit', minute: '2-digit' };
  if (withYear || d.getFullYear() !== new Date().getFullYear()) opts.year = 'numeric';
  return d.toLocaleString(undefined, opts);
}

/** RFC 3339 -> "18:04" (chat timestamps). */
export function formatClock(iso) {
  const d = new Date(iso);
  if (Number.isNaN(d.getTime())) return '';
  return d.toLocaleTimeString(undefined, { hour: '2-digit', minute: '2-digit' });
}

/** RFC 3339 -> "5 min ago", "2 h ago", "3 d ago". */
export function timeAgo(iso) {
  const t = new Date(iso).getTime();
  if (!Number.isFinite(t)) return '';
  const s = Math.max(0, (Date.now() - t) / 1000);
  if (s < 60) return 'just now';
  if (s < 3600) return `${Math.floor(s / 60)} min ago`;
  if (s < 86400) return `${Math.floor(s / 3600)} h ago`;
  return `${Math.floor(s / 86400)} d ago`;
}

/** Initial for an avatar. */
export function initial(name) {
  return (String(name || '?').trim()[0] || '?').toUpperCase();
}

/** Same-origin path from a `?next=` value (anything else becomes `fallback`). */
export function safeNext(value, fallback = '/') {
  if (!value || typeof value !== 'string') return fallback;
  if (!value.startsWith('/') || value.startsWith('//') || value.startsWith('/\\')) return fallback;
  return value;
}

/** Human words for a stream's state. */
export const STATE_LABEL = {
  scheduled: 'Scheduled',
  live: 'Live',
  ended: 'Ended',
  archived: 'Saved',
  cancelled: 'Cancelled',
  error: 'Failed',
};

export const VISIBILITY_LABEL = { public: 'Public', subscribers: 'Subscribers only', ticketed: 'Ticketed' };
