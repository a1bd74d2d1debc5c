// OnAir real-time client: the page's one WebSocket to /api/ws.
//
// - Connects with the access token when logged in (anonymous otherwise), and
//   re-sends `auth` after a token refresh.
// - Remembers what the page joined (streams, watched stream, directory) and
//   joins it again after every reconnect; `open` listeners run after each
//   (re)connect so pages can reload what they may have missed (chat
//   history, lists).
// - Reconnects with backoff when the socket drops, including the server's
//   close code 4000 ("lagged"/"idle"); a heartbeat ping finds dead sockets.
// - `request(msg)` sends a message with a nonce `id` and resolves with its
//   `ack` (rejects with an OnAirError from its `error`).
//
// Nothing here polls: every number the pages show comes from events.

import { OnAirError, errorFromBody, wsUrl, backoff, noticeHost } from './common.js';
import { freshAccessToken, refreshLogin, isLoggedIn, currentUser, onLoginChange } from './session.js';

const HEARTBEAT_MS = 30000;
const PONG_TIMEOUT_MS = 10000;
const REQUEST_TIMEOUT_MS = 10000;

export class Realtime {
  constructor({ name = 'page' } = {}) {
    this.name = name;
    this.ws = null;
    this.state = 'idle'; // idle | connecting | open | closed
    this.user = null; // from `hello`
    this.handlers = new Map(); // type -> Set(fn)
    this.streams = new Map(); // stream ref -> {watch: bool, viewer}
    this.wantDirectory = false;
    this.pending = new Map(); // nonce -> {resolve, reject, timer, msg, retried}
    this.nonce = 0;
    this.attempt = 0;
    this.failedWithToken = 0;
    this.reconnectTimer = null;
    this.heartbeat = null;
    this.pongTimer = null;
    this.closed = false;
    this.connects = 0;
    this.lastClose = null; // {code, reason}
    this.tokenUsed = null;

    window.addEventListener('online', () => {
      if (this.state === 'closed' && !this.closed) this.reconnectNow();
    });
    // Logging in or out (here or in another tab): reconnect as the new user.
    // A token refresh keeps the user and the socket.
    this.userId = currentUser() ? currentUser().id : null;
    onLoginChange((u) => {
      const id = u ? u.id : null;
      if (id === this.userId) return;
      this.userId = id;
      if (!this.closed && this.state !== 'idle') this.reconnectNow();
    });
  }

  /** `fn(msg)` for each server message of `type` ('*' for all; 'open' and 'close' for the socket). */
  on(type, fn) {
    if (!this.handlers.has(type)) this.handlers.set(type, new Set());
    this.handlers.get(type).add(fn);
    return () => this.handlers.get(type).delete(fn);
  }

  emit(type, msg) {
    for (const key of [type, '*']) {
      const set = this.handlers.get(key);
      if (!set) continue;
      for (const fn of [...set]) {
        try {
          fn(msg);
        } catch (err) {
          console.error(`[onair] ${type} handler failed:`, err);
        }
      }
    }
  }

  connect() {
    this.closed = false;
    if (this.ws || this.state === 'connecting') return;
    this.open();
  }

  async open() {
    const gen = (this.gen = (this.gen || 0) + 1);
    this.state = 'connecting';
    clearTimeout(this.reconnectTimer);
    let token = null;
    if (isLoggedIn() && this.failedWithToken < 3) {
      try {
        token = this.failedWithToken > 0 ? await refreshLogin(this.tokenUsed) : await freshAccessToken();
      } catch (err) {
        if (gen !== this.gen) return;
        if (err && err.code === 'network') {
          // The server is unreachable: keep the login and try again later.
          this.state = 'closed';
          this.scheduleReconnect();
          return;
        }
        token = null; // the login is over: carry on anonymously
      }
    } else if (this.failedWithToken >= 3) {
      // The server keeps refusing the token: connect anonymously this time.
      console.warn('[onair] websocket refused the login three times; connecting anonymously');
      this.failedWithToken = 0;
    }
    if (this.closed || gen !== this.gen) return;
    this.tokenUsed = token;
    let url = wsUrl('/api/ws');
    if (token) url += `?token=${encodeURIComponent(token)}`;
    let ws;
    try {
      ws = new WebSocket(url);
    } catch (err) {
      console.warn('[onair] websocket unavailable:', err);
      this.scheduleReconnect();
      return;
    }
    this.ws = ws;
    let opened = false;
    ws.onopen = () => {
      opened = true;
    };
    ws.onmessage = (ev) => this.onMessage(ws, ev);
    ws.onerror = () => {
      /* onclose follows */
    };
    ws.onclose = (ev) => {
      if (this.ws !== ws) return;
      this.ws = null;
      this.stopHeartbeat();
      this.state = 'closed';
      this.lastClose = { code: ev.code, reason: ev.reason };
      // A refused upgrade with a token is most likely an expired or ended login.
      if (!opened && token) this.failedWithToken += 1;
      for (const [id, p] of this.pending) {
        clearTimeout(p.timer);
        p.reject(new OnAirError('The connection to the server dropped. Try again.', { code: 'disconnected' }));
        this.pending.delete(id);
      }
      this.emit('close', { code: ev.code, reason: ev.reason });
      if (!this.closed) this.scheduleReconnect(ev.code === 4000 ? 1 : undefined);
    };
  }

  scheduleReconnect(attemptOverride) {
    clearTimeout(this.reconnectTimer);
    const a = attemptOverride ?? this.attempt;
    this.attempt += 1;
    this.reconnectTimer = setTimeout(() => this.open(), backoff(a));
  }

  reconnectNow() {
    clearTimeout(this.reconnectTimer);
    if (this.ws) {
      const ws = this.ws;
      this.ws = null;
      ws.onclose = null;
      try {
        ws.close();
      } catch {
        /* ignore */
      }
      this.stopHeartbeat();
    }
    this.state = 'closed';
    this.attempt = 0;
    this.open();
  }

  close() {
    this.closed = true;
    clearTimeout(this.reconnectTimer);
    this.stopHeartbeat();
    if (this.ws) {
      this.ws.onclose = null;
      try {
        this.ws.close();
      } catch {
        /* ignore */
      }
      this.ws = null;
    }
    this.state = 'closed';
  }

  onMessage(ws, ev) {
    let msg;
    try {
      msg = JSON.parse(ev.data);
    } catch {
      return;
    }
    if (!msg || typeof msg !== 'object') return;
    if (msg.type === 'hello') {
      const first = this.state !== 'open';
      this.user = msg.user || null;
      if (first) {
        this.state = 'open';
        this.attempt = 0;
        this.failedWithToken = 0;
        this.connects += 1;
        this.startHeartbeat();
        this.rejoin();
        this.emit('hello', msg);
        this.emit('open', { reconnect: this.connects > 1 });
        return;
      }
    }
    if (msg.type === 'pong') {
      clearTimeout(this.pongTimer);
      this.pongTimer = null;
    }
    if ((msg.type === 'ack' || msg.type === 'error') && msg.id != null && this.pending.has(msg.id)) {
      const p = this.pending.get(msg.id);
      this.pending.delete(msg.id);
      clearTimeout(p.timer);
      if (msg.type === 'ack') {
        p.resolve(msg.message);
      } else {
        const err = errorFromBody(msg.error, msg.status || 0);
        // The socket's login expired: refresh, authenticate the socket again, retry once.
        if (err.status === 401 && !p.retried && isLoggedIn()) {
          this.reauth()
            .then(() => this.request(p.msg, { retried: true }))
            .then(p.resolve, p.reject);
        } else {
          p.reject(err);
        }
      }
      return;
    }
    this.emit(msg.type, msg);
  }

  rejoin() {
    if (this.wantDirectory) this.send({ type: 'directory' });
    for (const [stream, s] of this.streams) {
      if (s.watch) this.send({ type: 'watch', stream, viewer: s.viewer });
      else this.send({ type: 'subscribe', stream });
    }
  }

  startHeartbeat() {
    this.stopHeartbeat();
    this.heartbeat = setInterval(() => {
      if (this.state !== 'open' || this.pongTimer) return;
      this.send({ type: 'ping' });
      this.pongTimer = setTimeout(() => {
        // No answer: the socket is dead even if the browser has not noticed.
        this.pongTimer = null;
        console.warn('[onair] websocket heartbeat lost; reconnecting');
        this.reconnectNow();
      }, PONG_TIMEOUT_MS);
    }, HEARTBEAT_MS);
  }

  stopHeartbeat() {
    clearInterval(this.heartbeat);
    this.heartbeat = null;
    clearTimeout(this.pongTimer);
    this.pongTimer = null;
  }

  /** Sends a message now if the socket is open (returns whether it went out). */
  send(msg) {
    if (!this.ws || this.ws.readyState !== WebSocket.OPEN) return false;
    try {
      this.ws.send(JSON.stringify(msg));
      return true;
    } catch {
      return false;
    }
  }

  /** Sends `msg` with a nonce and resolves with its ack's `message`. */
  request(msg, { retried = false } = {}) {
    return new Promise((resolve, reject) => {
      if (this.state !== 'open') {
        reject(new OnAirError('Not connected to the server yet. Try again in a moment.', { code: 'disconnected' }));
        return;
      }
      this.nonce += 1;
      const id = `${this.name}-${Date.now().toString(36)}-${this.nonce}`;
      const full = { ...msg, id };
      const timer = setTimeout(() => {
        this.pending.delete(id);
        reject(new OnAirError('The server did not answer. Try again.', { code: 'timeout' }));
      }, REQUEST_TIMEOUT_MS);
      this.pending.set(id, { resolve, reject, timer, msg, retried });
      if (!this.send(full)) {
        clearTimeout(timer);
        this.pending.delete(id);
        reject(new OnAirError('Not connected to the server. Try again in a moment.', { code: 'disconnected' }));
      }
    });
  }

  /** After a token refresh: log the open socket in again with the new token. */
  async reauth() {
    const token = await refreshLogin(this.tokenUsed);
    this.tokenUsed = token;
    if (!token) return;
    await new Promise((resolve) => {
      const off = this.on('hello', () => {
        off();
        clearTimeout(t);
        resolve();
      });
      const t = setTimeout(() => {
        off();
        resolve();
      }, 3000);
      if (!this.send({ type: 'auth', token })) {
        off();
        clearTimeout(t);
        resolve();
      }
    });
  }

  /** Joins a stream's events (id or host username). */
  subscribe(stream) {
    const key = String(stream);
    const had = this.streams.get(key);
    if (had) return;
    this.streams.set(key, { watch: false });
    this.send({ type: 'subscribe', stream: key });
  }

  unsubscribe(stream) {
    const key = String(stream);
    if (!this.streams.delete(key)) return;
    this.send({ type: 'unsubscribe', stream: key });
  }

  /** Joins a stream's events and counts this page as watching it. */
  watch(stream, viewer) {
    const key = String(stream);
    this.streams.set(key, { watch: true, viewer });
    this.send({ type: 'watch', stream: key, viewer });
  }

  unwatch(stream) {
    const key = String(stream);
    if (!this.streams.delete(key)) return;
    this.send({ type: 'unwatch', stream: key });
  }

  /** Every stream's `stream_status` (the directory). */
  directory() {
    if (this.wantDirectory) return;
    this.wantDirectory = true;
    this.send({ type: 'directory' });
  }
}

/** Shows `reminder` events (a stream the user asked about went live) as a notice. */
export function showReminders(rt) {
  rt.on('reminder', (msg) => {
    const s = msg.stream || {};
    const host = noticeHost('reminders', 'reminders');
    const box = document.createElement('div');
    box.className = 'reminder';
    const text = document.createElement('span');
    text.textContent = `${(s.host && s.host.display_name) || 'A host'} is live: ${s.title || ''}`;
    const a = document.createElement('a');
    a.className = 'btn btn-live btn-sm';
    a.href = s.watch_url || `/watch/${s.id}`;
    a.textContent = 'Watch';
    const x = document.createElement('button');
    x.type = 'button';
    x.className = 'btn btn-ghost btn-sm';
    x.textContent = 'Dismiss';
    x.addEventListener('click', () => box.remove());
    box.append(text, a, x);
    host.appendChild(box);
  });
}
