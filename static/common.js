// OnAir shared browser helpers (ES module, no build step).
//
// Everything here uses standard web APIs only so that the pages work the same
// in Chromium and Firefox.

export const $ = (sel, root = document) => root.querySelector(sel);
export const $$ = (sel, root = document) => Array.from(root.querySelectorAll(sel));

/** Error carrying the HTTP status and the server's `error.code`. */
export class OnAirError extends Error {
  constructor(message, { status = 0, code = 'error' } = {}) {
    super(message);
    this.name = 'OnAirError';
    this.status = status;
    this.code = code;
  }
}

const STATUS_TEXT = {
  400: 'The server rejected the request.',
  401: 'The stream key was not accepted.',
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
      if (err.message) message = String(err.message);
    } else if (typeof err === 'string') {
      message = err;
    } else if (body && typeof body.message === 'string') {
      message = body.message;
    }
  } catch {
    if (text && text.length < 300 && !/^\s*</.test(text)) message = text.trim();
  }
  if (!message) message = STATUS_TEXT[resp.status] || `Request failed (HTTP ${resp.status}).`;
  return new OnAirError(message, { status: resp.status, code });
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
export async function getIceServers() {
  try {
    const resp = await fetch('/api/config', { cache: 'no-store' });
    if (!resp.ok) throw new Error(`HTTP ${resp.status}`);
    const cfg = await resp.json();
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
    console.warn('[onair] /api/config unavailable, using no ICE servers:', err);
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

/** Fire-and-forget DELETE of a WHIP/WHEP session (survives page unload). */
export function deleteSession(url) {
  if (!url) return Promise.resolve();
  return fetch(url, { method: 'DELETE', keepalive: true }).then(
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
 * Follows a stream's health: WebSocket push at .../health/ws, falling back to
 * polling GET .../health while the socket is down, reconnecting with backoff.
 * `onData(json, source)` is called with each health object; `onEvent(event)`
 * with each stream event the socket pushes ({type: 'stream_ended' |
 * 'speaking' | 'active_speaker' | ...}).
 */
export function watchHealth(stream, onData, { pollMs = 2000, onEvent = null } = {}) {
  const httpUrl = healthPath(stream);
  const socketUrl = wsUrl(`${httpUrl}/ws`);
  let ws = null;
  let closed = false;
  let pollTimer = null;
  let reconnectTimer = null;
  let attempt = 0;

  const emit = (data, source) => {
    if (closed || !data || typeof data !== 'object') return;
    try {
      onData(data, source);
    } catch (err) {
      console.error('[onair] health handler failed:', err);
    }
  };

  const poll = async () => {
    try {
      const resp = await fetch(httpUrl, { cache: 'no-store' });
      if (resp.ok) emit(await resp.json(), 'poll');
    } catch {
      /* server unreachable: try again next tick */
    }
  };
  const startPolling = () => {
    if (pollTimer || closed) return;
    poll();
    pollTimer = setInterval(poll, pollMs);
  };
  const stopPolling = () => {
    clearInterval(pollTimer);
    pollTimer = null;
  };

  const connect = () => {
    if (closed) return;
    try {
      ws = new WebSocket(socketUrl);
    } catch (err) {
      console.warn('[onair] health websocket unavailable:', err);
      startPolling();
      return;
    }
    ws.onopen = () => {
      attempt = 0;
      stopPolling();
    };
    ws.onmessage = (ev) => {
      let msg;
      try {
        msg = JSON.parse(ev.data);
      } catch {
        return; /* ignore non-JSON frames */
      }
      if (msg && msg.event) {
        if (onEvent && !closed) {
          try {
            onEvent(msg.event);
          } catch (err) {
            console.error('[onair] event handler failed:', err);
          }
        }
        return;
      }
      emit(msg, 'ws');
    };
    ws.onclose = () => {
      ws = null;
      if (closed) return;
      startPolling();
      const delay = Math.min(10000, 1000 * 2 ** attempt);
      attempt += 1;
      reconnectTimer = setTimeout(connect, delay);
    };
    ws.onerror = () => {
      /* onclose follows */
    };
  };

  connect();
  return {
    close() {
      closed = true;
      stopPolling();
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

/** Small transient notification in the bottom corner. */
export function toast(message, kind = 'info', ms = 3500) {
  let host = document.getElementById('toasts');
  if (!host) {
    host = document.createElement('div');
    host.id = 'toasts';
    host.className = 'toasts';
    host.setAttribute('role', 'status');
    host.setAttribute('aria-live', 'polite');
    document.body.appendChild(host);
  }
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
