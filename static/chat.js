// OnAir live chat: the message list (history, then live events) and the send
// box, shared by the watch page and the host's dashboard (which adds
// moderation buttons to each message).

import { h, formatClock, capitalize, describeError } from './common.js';
import { api, currentUser, loginUrl, onLoginChange } from './session.js';

const MAX_SHOWN = 300;
export const MAX_CHARS = 500;

/** What to tell a user whose message was refused, by error code. */
const REFUSAL = {
  too_long: (e) => e.message || `Messages are at most ${MAX_CHARS} characters.`,
  empty: () => 'Say something first.',
  rate_limited: () => 'You are sending messages too fast.',
  slow_mode: () => 'Slow mode is on.',
  duplicate: () => 'You sent that same message less than 30 seconds ago.',
  timed_out: (e) => e.message || 'You are timed out of this chat.',
  banned: () => 'You are banned from this channel’s chat.',
  subscribers_only: () => 'Chat is in subscribers-only mode: only subscribers can chat.',
  followers_only: (e) => e.message || 'Chat is in followers-only mode: follow the host to chat.',
  banned_word: () => 'Your message contains a word that is not allowed here.',
  chat_closed: () => 'This stream’s chat is closed.',
  login_required: () => 'Log in to chat.',
  subscription_required: (e) => e.message || 'This stream is for subscribers.',
  ticket_required: (e) => e.message || 'This stream needs a ticket.',
};

export function refusalText(err) {
  const f = err && REFUSAL[err.code];
  return f ? f(err) : describeError(err);
}

/** Describes chat rules for viewers ("Slow mode: 10 s · Subscribers only"). */
export function describeSettings(s) {
  if (!s) return '';
  const parts = [];
  if (s.slow_mode_seconds > 0) parts.push(`Slow mode: ${s.slow_mode_seconds} s`);
  if (s.subscribers_only) parts.push('Subscribers only');
  if (s.followers_only_minutes != null) {
    parts.push(s.followers_only_minutes > 0 ? `Followers (${s.followers_only_minutes} min) only` : 'Followers only');
  }
  return parts.join(' · ');
}

/**
 * The message list. `moderation` (dashboard) adds Delete / Timeout / Ban to
 * each message: `{onDelete(msg), onTimeout(msg, seconds), onBan(msg)}`.
 */
export class ChatView {
  constructor(listEl, { moderation = null, menu = false, emptyText = 'No messages yet. Say hello!' } = {}) {
    this.list = listEl;
    this.moderation = moderation;
    // Moderation behind a per-message ⋯ menu (the studio's narrow chat)
    // rather than buttons on every line (the dashboard).
    this.menu = menu;
    this.emptyText = emptyText;
    this.streamId = null;
    this.byId = new Map();
    this.loadGen = 0;
    this.stick = true;
    this.list.addEventListener('scroll', () => {
      this.stick = this.list.scrollHeight - this.list.scrollTop - this.list.clientHeight < 40;
      if (this.stick && this.jump) this.jump.hidden = true;
    });
    this.jump = listEl.parentElement ? listEl.parentElement.querySelector('.chat-jump') : null;
    if (this.jump) {
      this.jump.addEventListener('click', () => {
        this.stick = true;
        this.scrollToEnd();
      });
    }
    this.renderEmpty();
  }

  /** Messages shown (for tests): [{id, text, user, kind, deleted}]. */
  snapshot() {
    return [...this.byId.values()].map((m) => ({
      id: m.id,
      kind: m.kind,
      text: m.text,
      deleted: !!m.deleted,
      user: m.user ? m.user.username : null,
    }));
  }

  /** Switches to a stream and loads its history (again after a reconnect). */
  async load(streamId) {
    const gen = ++this.loadGen;
    if (streamId !== this.streamId) {
      this.streamId = streamId;
      this.byId.clear();
      this.list.replaceChildren();
    }
    let page;
    try {
      // With the login: the history of a ticketed or subscriber-only stream is for those who may watch it.
      page = await api(`/api/streams/${encodeURIComponent(streamId)}/chat?limit=100`);
    } catch (err) {
      if (gen !== this.loadGen) return;
      this.notice(`Couldn’t load the chat history: ${describeError(err)}`);
      return;
    }
    if (gen !== this.loadGen || streamId !== this.streamId) return;
    // Rebuild: history (oldest first) then anything that arrived meanwhile.
    const live = [...this.byId.values()].filter((m) => !page.messages.some((p) => p.id === m.id));
    this.byId.clear();
    this.list.replaceChildren();
    for (const m of [...page.messages, ...live].sort((a, b) => a.id - b.id)) this.add(m, { scroll: false });
    this.renderEmpty();
    this.stick = true;
    this.scrollToEnd();
  }

  clear() {
    this.streamId = null;
    this.byId.clear();
    this.list.replaceChildren();
    this.renderEmpty();
  }

  renderEmpty() {
    const empty = this.list.querySelector('.chat-empty');
    if (this.byId.size === 0 && !empty) {
      this.list.append(h('li.chat-empty', {}, this.emptyText));
    } else if (this.byId.size > 0 && empty) {
      empty.remove();
    }
  }

  notice(text) {
    this.list.append(h('li.msg.msg-notice', {}, text));
    this.scrollToEnd();
  }

  /** Adds a message (a `chat_message` event or an ack); duplicates are ignored. */
  add(m, { scroll = true } = {}) {
    if (!m || m.kind === 'reaction') return;
    if (this.streamId != null && m.stream_id != null && String(m.stream_id) !== String(this.streamId)) return;
    if (this.byId.has(m.id)) return;
    this.byId.set(m.id, m);
    const el = this.render(m);
    // Keep id order (an ack can overtake an event and vice versa).
    let before = null;
    for (const child of this.list.children) {
      const id = Number(child.dataset.id);
      if (Number.isFinite(id) && id > m.id) {
        before = child;
        break;
      }
    }
    this.list.insertBefore(el, before);
    while (this.byId.size > MAX_SHOWN) {
      const first = this.list.querySelector('.msg[data-id]');
      if (!first) break;
      this.byId.delete(Number(first.dataset.id));
      first.remove();
    }
    this.renderEmpty();
    if (scroll) {
      if (this.stick) this.scrollToEnd();
      else if (this.jump) this.jump.hidden = false;
    }
  }

  /** A moderator removed a message. */
  remove(messageId) {
    const m = this.byId.get(messageId);
    if (!m) return;
    m.deleted = true;
    m.text = '';
    const old = this.list.querySelector(`.msg[data-id="${messageId}"]`);
    if (old) old.replaceWith(this.render(m));
  }

  scrollToEnd() {
    this.list.scrollTop = this.list.scrollHeight;
    if (this.jump) this.jump.hidden = true;
  }

  render(m) {
    const me = currentUser();
    const li = h('li.msg', { dataset: { id: m.id, kind: m.kind } });
    if (m.kind === 'system') {
      li.classList.add('msg-system');
      li.append(h('span.msg-text', {}, m.text));
      return li;
    }
    if (m.deleted) {
      li.classList.add('msg-deleted');
      li.append(
        h('span.msg-author', {}, m.user ? m.user.display_name || m.user.username : ''),
        h('span.msg-text', {}, 'Message removed by a moderator'),
      );
      return li;
    }
    const badges = (m.badges || []).map((b) => h(`span.chat-badge.chat-badge-${b}`, { title: capitalize(b) }, b === 'host' ? 'Host' : b === 'moderator' ? 'Mod' : 'Sub'));
    const author = h(
      'span.msg-author',
      { title: m.user ? `@${m.user.username}` : '' },
      m.user ? m.user.display_name || m.user.username : 'Someone',
    );
    if (me && m.user && m.user.id === me.id) li.classList.add('msg-mine');
    li.append(h('time.msg-time', { datetime: m.created_at }, formatClock(m.created_at)), ...badges, author, h('span.msg-text', {}, m.text));
    if (m.kind === 'product_highlight' && m.product) {
      const p = m.product;
      li.classList.add('msg-product');
      li.append(
        h(
          p.url ? 'a.product-card' : 'div.product-card',
          p.url ? { href: p.url, target: '_blank', rel: 'noopener' } : {},
          h('strong', {}, p.title),
          p.price != null ? h('span.product-price', {}, String(p.price)) : null,
        ),
      );
    }
    if (this.moderation && m.user && !(m.badges || []).includes('host')) {
      li.append(this.modActions(m));
    }
    return li;
  }

  modActions(m) {
    const mod = this.moderation;
    const box = h('span.msg-actions');
    const act = (label, action, title, fn, cls = '') => {
      const b = h(`button.mod-btn${cls ? `.${cls}` : ''}`, { type: 'button', dataset: { action }, title, 'aria-label': `${title}: @${m.user.username}` }, label);
      b.addEventListener('click', (ev) => {
        ev.stopPropagation();
        fn(b);
      });
      return b;
    };
    const del = act('Delete', 'delete', 'Delete this message', (b) => {
      b.disabled = true;
      Promise.resolve(mod.onDelete(m)).finally(() => {
        b.disabled = false;
      });
    });
    const durations = h('span.mod-durations', { hidden: true });
    for (const [label, secs] of [
      ['1 min', 60],
      ['10 min', 600],
      ['1 h', 3600],
      ['24 h', 86400],
    ]) {
      durations.append(
        act(label, `timeout-${secs}`, `Time out for ${label}`, () => {
          durations.hidden = true;
          mod.onTimeout(m, secs);
        }),
      );
    }
    const timeout = act('Timeout', 'timeout', 'Time this user out', () => {
      durations.hidden = !durations.hidden;
      confirmBan.hidden = true;
    });
    const confirmBan = act('Ban @' + m.user.username + '?', 'ban-confirm', 'Confirm the ban', () => {
      confirmBan.hidden = true;
      mod.onBan(m);
    }, 'danger');
    confirmBan.hidden = true;
    const ban = act('Ban', 'ban', 'Ban this user from the chat', () => {
      confirmBan.hidden = !confirmBan.hidden;
      durations.hidden = true;
    }, 'danger');
    box.append(del, timeout, ban, durations, confirmBan);
    if (!this.menu) return box;
    box.hidden = true;
    box.classList.add('msg-menu-box');
    const open = act('⋯', 'menu', 'Moderate', (b) => {
      // One menu open at a time.
      for (const other of this.list.querySelectorAll('.msg-menu-box')) if (other !== box) other.hidden = true;
      box.hidden = !box.hidden;
      b.setAttribute('aria-expanded', String(!box.hidden));
    }, 'msg-menu');
    open.setAttribute('aria-haspopup', 'true');
    open.setAttribute('aria-expanded', 'false');
    return h('span.msg-mod', {}, open, box);
  }
}

/**
 * The send box. `send(text)` posts (over the WebSocket) and resolves with
 * the stored message or rejects with the refusal; refusals are shown under
 * the box, with a countdown for slow mode and rate limits.
 */
export class ChatComposer {
  constructor({ form, input, button, hint, counter = null, loginBox = null, send }) {
    this.form = form;
    this.input = input;
    this.button = button;
    this.hint = hint;
    this.counter = counter;
    this.loginBox = loginBox;
    this.sendFn = send;
    this.settings = null;
    this.closed = false;
    this.closedText = '';
    this.waitUntil = 0;
    this.waitTimer = null;
    this.waitReason = '';
    this.busy = false;
    this.lastError = null;
    // No maxLength: a browser would cut a long paste silently. The counter
    // shows the length, and the server refuses what is too long (too_long).
    this.lastCode = null;
    input.addEventListener('input', () => this.renderCounter());
    input.addEventListener('keydown', (ev) => {
      if (ev.key === 'Enter' && !ev.shiftKey) {
        ev.preventDefault();
        this.submit();
      }
    });
    form.addEventListener('submit', (ev) => {
      ev.preventDefault();
      this.submit();
    });
    this.renderLogin();
    this.renderCounter();
    onLoginChange(() => this.renderLogin());
  }

  renderLogin() {
    const u = currentUser();
    if (this.loginBox) {
      this.loginBox.hidden = !!u;
      const a = this.loginBox.querySelector('a');
      if (a) a.href = loginUrl();
    }
    this.form.hidden = !u;
  }

  renderCounter() {
    if (!this.counter) return;
    const n = [...this.input.value.trim()].length;
    this.counter.textContent = n > MAX_CHARS - 100 ? `${n}/${MAX_CHARS}` : '';
    this.counter.classList.toggle('over', n > MAX_CHARS);
    this.counter.title = n > MAX_CHARS ? `${n - MAX_CHARS} characters too many` : '';
  }

  setSettings(s) {
    this.settings = s;
    this.renderState();
  }

  /** Chat closed (the stream is over) or open again. */
  setClosed(closed, text = 'Chat is closed.') {
    this.closed = closed;
    this.closedText = text;
    this.renderState();
  }

  showHint(text, kind = 'info') {
    this.hint.textContent = text || '';
    this.hint.dataset.kind = kind;
    this.hint.hidden = !text;
  }

  renderState() {
    const waiting = this.waitUntil > Date.now();
    this.input.disabled = this.closed;
    this.button.disabled = this.closed || this.busy || waiting;
    this.input.placeholder = this.closed ? this.closedText : 'Send a message';
    if (this.closed) {
      this.showHint(this.closedText, 'info');
    } else if (waiting) {
      const s = Math.ceil((this.waitUntil - Date.now()) / 1000);
      const left = s >= 120 ? `${Math.ceil(s / 60)} min` : `${s} s`;
      this.showHint(`${this.waitReason} You can send again in ${left}.`, 'wait');
    } else if (this.lastError) {
      this.showHint(this.lastError, 'error');
    } else {
      this.showHint(describeSettings(this.settings), 'info');
    }
  }

  /** Disables sending for `ms` with a ticking countdown (local clock). */
  wait(ms, reason) {
    clearInterval(this.waitTimer);
    this.waitUntil = Date.now() + ms;
    this.waitReason = reason;
    this.lastError = null;
    this.renderState();
    this.waitTimer = setInterval(() => {
      if (Date.now() >= this.waitUntil) {
        clearInterval(this.waitTimer);
        this.waitTimer = null;
        this.waitUntil = 0;
      }
      this.renderState();
    }, 250);
  }

  async submit() {
    if (this.closed || this.busy || this.waitUntil > Date.now()) return;
    const text = this.input.value.trim();
    if (!text) {
      this.lastError = REFUSAL.empty();
      this.renderState();
      return;
    }
    this.busy = true;
    this.lastError = null;
    this.lastCode = null;
    this.renderState();
    try {
      const m = await this.sendFn(text);
      this.input.value = '';
      this.renderCounter();
      const team = m && (m.badges || []).some((b) => b === 'host' || b === 'moderator');
      const slow = this.settings ? this.settings.slow_mode_seconds : 0;
      this.busy = false;
      if (slow > 0 && !team) this.wait(slow * 1000, 'Slow mode is on.');
      else this.renderState();
    } catch (err) {
      this.busy = false;
      this.lastCode = err.code || 'error';
      if ((err.code === 'slow_mode' || err.code === 'rate_limited') && err.retryAfterMs) {
        this.wait(err.retryAfterMs, refusalText(err));
      } else {
        this.lastError = refusalText(err);
        this.renderState();
      }
    }
    this.input.focus();
  }
}
