// OnAir login session: tokens in localStorage, the JSON API with one
// refresh-and-retry on an expired access token, and the page header's
// account links. ES module, no build step.
//
// Access tokens live 15 minutes, refresh tokens once: a refresh token that is
// traded twice ends the login. Several tabs share the tokens, so a refresh
// runs under a Web Lock (where available) and first re-reads the storage: if
// another tab refreshed meanwhile, its fresh pair is used instead.

import { OnAirError, errorFromResponse, store } from './common.js';

const ACCESS = 'onair.accessToken';
const REFRESH = 'onair.refreshToken';
const USER = 'onair.user';
const VIEWER_KEY = 'onair.viewerKey';
const LOCK = 'onair-token-refresh';
/** Refresh when the access token has less than this left. */
const MIN_VALIDITY_MS = 30 * 1000;

const listeners = new Set();

/** The logged-in user ({id, username, display_name, role, ...}) or null. */
export function currentUser() {
  const raw = store.get(USER);
  if (!raw || !store.get(REFRESH)) return null;
  try {
    return JSON.parse(raw);
  } catch {
    return null;
  }
}

export function isLoggedIn() {
  return currentUser() !== null;
}

export function isHost(user = currentUser()) {
  return !!user && ['host', 'admin'].includes(user.role);
}

export function accessToken() {
  return store.get(ACCESS);
}

/** Saves a TokenPair from login, register or refresh. */
export function saveLogin(pair) {
  store.set(ACCESS, pair.access_token);
  store.set(REFRESH, pair.refresh_token);
  if (pair.user) store.set(USER, JSON.stringify(pair.user));
  notify();
}

/** Forgets the login locally. */
export function clearLogin() {
  const had = store.get(REFRESH) || store.get(ACCESS);
  store.set(ACCESS, null);
  store.set(REFRESH, null);
  store.set(USER, null);
  if (had) notify();
}

/** `fn(user|null)` whenever the login changes (in this tab or another). */
export function onLoginChange(fn) {
  listeners.add(fn);
  return () => listeners.delete(fn);
}

function notify() {
  const u = currentUser();
  for (const fn of listeners) {
    try {
      fn(u);
    } catch (err) {
      console.error('[onair] login listener failed:', err);
    }
  }
}

window.addEventListener('storage', (ev) => {
  if (ev.key === USER || ev.key === REFRESH || ev.key === null) notify();
});

/** Milliseconds since the epoch when a JWT expires (0 when unreadable). */
export function tokenExpiry(token) {
  try {
    const part = token.split('.')[1];
    const json = atob(part.replace(/-/g, '+').replace(/_/g, '/').padEnd(Math.ceil(part.length / 4) * 4, '='));
    const exp = JSON.parse(json).exp;
    return typeof exp === 'number' ? exp * 1000 : 0;
  } catch {
    return 0;
  }
}

function fresh(token) {
  return !!token && tokenExpiry(token) - Date.now() > MIN_VALIDITY_MS;
}

let refreshing = null;

/**
 * Trades the refresh token for a new pair. `stale` is the access token that
 * failed (if any): when storage already holds a different, valid one,
 * another tab refreshed first and that one is used. Resolves to the new
 * access token; throws (and logs out locally) when the login is over.
 */
export function refreshLogin(stale = accessToken()) {
  if (refreshing) return refreshing;
  const run = async () => {
    const now = accessToken();
    if (now && now !== stale && fresh(now)) return now;
    const rt = store.get(REFRESH);
    if (!rt) throw new OnAirError('Your login has ended. Log in again.', { status: 401, code: 'login_expired' });
    let resp;
    try {
      resp = await fetch('/api/auth/refresh', {
        method: 'POST',
        headers: { 'Content-Type': 'application/json' },
        body: JSON.stringify({ refresh_token: rt }),
      });
    } catch (err) {
      throw new OnAirError('Cannot reach the OnAir server. Check your network connection.', { code: 'network' });
    }
    if (!resp.ok) {
      const err = await errorFromResponse(resp);
      if (resp.status === 401 || resp.status === 400) {
        clearLogin();
        throw new OnAirError('Your login has ended. Log in again.', { status: 401, code: 'login_expired' });
      }
      throw err;
    }
    const pair = await resp.json();
    saveLogin(pair);
    return pair.access_token;
  };
  const locked =
    navigator.locks && typeof navigator.locks.request === 'function'
      ? navigator.locks.request(LOCK, run)
      : run();
  refreshing = locked.finally(() => {
    refreshing = null;
  });
  return refreshing;
}

/**
 * A valid access token (refreshed first when it is about to expire), or null
 * when not logged in.
 */
export async function freshAccessToken() {
  if (!store.get(REFRESH)) return null;
  const t = accessToken();
  if (fresh(t)) return t;
  try {
    return await refreshLogin(t);
  } catch (err) {
    if (err.code === 'login_expired') return null;
    throw err;
  }
}

/**
 * Calls the JSON API. `body` is sent as JSON. The access token goes along
 * when logged in (`auth: false` leaves it out); a 401 `invalid_token` is
 * answered by one refresh and a retry. Resolves to the parsed JSON (null for
 * 204); throws OnAirError with `status`, `code`, `fields`, `retryAfterMs`.
 */
export async function api(path, { method = 'GET', body, auth = true, headers = {}, keepalive = false } = {}) {
  const send = async (token) => {
    const h = { Accept: 'application/json', ...headers };
    if (body !== undefined) h['Content-Type'] = 'application/json';
    if (token) h.Authorization = `Bearer ${token}`;
    let resp;
    try {
      resp = await fetch(path, {
        method,
        headers: h,
        body: body === undefined ? undefined : JSON.stringify(body),
        cache: 'no-store',
        keepalive,
      });
    } catch {
      throw new OnAirError('Cannot reach the OnAir server. Check your network connection.', { code: 'network' });
    }
    return resp;
  };
  let token = auth ? await freshAccessToken() : null;
  let resp = await send(token);
  if (resp.status === 401 && token) {
    const err = await errorFromResponse(resp.clone());
    if (err.code === 'invalid_token') {
      try {
        token = await refreshLogin(token);
      } catch (e) {
        throw e;
      }
      resp = await send(token);
    }
  }
  if (!resp.ok) throw await errorFromResponse(resp);
  if (resp.status === 204) return null;
  const text = await resp.text();
  if (!text) return null;
  try {
    return JSON.parse(text);
  } catch {
    return text;
  }
}

/**
 * Uploads an image (a File or Blob: JPEG, PNG or WebP) with `PUT path`,
 * logged in; resolves to the parsed JSON answer, throws OnAirError.
 */
export async function uploadImage(path, blob) {
  const token = await freshAccessToken();
  let resp;
  try {
    resp = await fetch(path, {
      method: 'PUT',
      headers: { 'Content-Type': blob.type || 'application/octet-stream', ...(token ? { Authorization: `Bearer ${token}` } : {}) },
      body: blob,
    });
  } catch {
    throw new OnAirError('Cannot reach the OnAir server. Check your network connection.', { code: 'network' });
  }
  if (!resp.ok) throw await errorFromResponse(resp);
  return resp.json();
}

/** Ends the login on the server (best effort) and locally. */
export async function logout() {
  const t = accessToken();
  if (t) {
    try {
      await fetch('/api/auth/logout', { method: 'POST', headers: { Authorization: `Bearer ${t}` } });
    } catch {
      /* offline: forget it locally anyway */
    }
  }
  clearLogin();
}

/** This browser's viewer key: one random id per browser, shared by its pages. */
export function viewerKey() {
  let k = store.get(VIEWER_KEY);
  if (!k || !/^[A-Za-z0-9_-]{8,64}$/.test(k)) {
    const bytes = new Uint8Array(16);
    crypto.getRandomValues(bytes);
    k = `v_${Array.from(bytes, (b) => b.toString(16).padStart(2, '0')).join('')}`;
    store.set(VIEWER_KEY, k);
  }
  return k;
}

/** `/login?next=<this page>` (or another path). */
export function loginUrl(next = window.location.pathname + window.location.search) {
  return `/login?next=${encodeURIComponent(next)}`;
}

/**
 * Fills the header's account area (`#account`): Log in, or the user with
 * Dashboard (hosts) and Log out. `current` marks the page's own link.
 */
export function renderAccount({ current = '' } = {}) {
  const nav = document.getElementById('account');
  if (!nav) return;
  const draw = () => {
    const u = currentUser();
    const links = [];
    const link = (href, text, key, cls = '') => {
      const a = document.createElement('a');
      a.href = href;
      a.textContent = text;
      if (cls) a.className = cls;
      if (key === current) a.setAttribute('aria-current', 'page');
      links.push(a);
      return a;
    };
    link('/', 'Live', 'home', 'nav-opt');
    if (u && isHost(u)) {
      link('/dashboard', 'Dashboard', 'dashboard');
      link('/publish', 'Studio', 'publish', 'nav-opt');
      link('/earnings', 'Earnings', 'earnings', 'nav-opt');
    }
    if (u) link('/wallet', 'Wallet', 'wallet').id = 'wallet-link';
    if (u && u.role === 'admin') link('/admin', 'Admin', 'admin', 'nav-opt').id = 'admin-link';
    if (u) {
      const who = document.createElement('span');
      who.className = 'nav-user nav-opt';
      who.id = 'account-user';
      who.textContent = `@${u.username}`;
      who.title = `Logged in as ${u.display_name || u.username}`;
      links.push(who);
      const out = document.createElement('button');
      out.type = 'button';
      out.className = 'nav-link';
      out.id = 'logout';
      out.textContent = 'Log out';
      out.addEventListener('click', async () => {
        out.disabled = true;
        await logout();
        window.location.href = '/';
      });
      links.push(out);
    } else {
      link(loginUrl(), 'Log in', 'login').id = 'login-link';
    }
    nav.replaceChildren(...links);
  };
  draw();
  onLoginChange(draw);
}

// Stream key secrets are shown once (when made or rotated). The dashboard
// and the studio keep the ones made in this browser, per host, so that the
// studio can publish with them without pasting.

function keysName(user) {
  return `onair.streamKeys.${user.id}`;
}

/** {key id: secret} of the keys made in this browser by `user`. */
export function savedKeySecrets(user = currentUser()) {
  if (!user) return {};
  try {
    return JSON.parse(store.get(keysName(user), '{}')) || {};
  } catch {
    return {};
  }
}

/** Remembers (or, with a null secret, forgets) a key's secret. */
export function saveKeySecret(id, secret, user = currentUser()) {
  if (!user) return;
  const all = savedKeySecrets(user);
  if (secret) all[id] = secret;
  else delete all[id];
  store.set(keysName(user), JSON.stringify(all));
}
