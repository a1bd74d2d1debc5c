// Polls and Q&A during a stream, shared by the watch page (viewers vote, ask
// and upvote) and the host's dashboard and studio (open and close polls, run
// the Q&A queue). Everything live comes over the page's WebSocket:
// `poll_opened`, `poll_results` (at most five a second), `poll_closed`,
// `question_added`, `question_updated` (a hidden question comes without its
// text: viewers drop it).

import { h, toast, setText, describeError, formatClock } from './common.js';
import { api, currentUser, loginUrl } from './session.js';
import { refusalText } from './chat.js';

const POLL_REFUSAL = {
  poll_closed: () => 'This poll has closed.',
  subscribers_only: (e) => e.message || 'This poll is for subscribers.',
  banned: () => 'You are banned from this channel.',
  poll_open: () => 'A poll is already open: close it first.',
};

function pollRefusal(err) {
  const f = err && POLL_REFUSAL[err.code];
  return f ? f(err) : refusalText(err);
}

const pct = (n, total) => (total > 0 ? Math.round((n * 100) / total) : 0);

function timeLeft(closesAt) {
  if (!closesAt) return '';
  const s = Math.max(0, Math.ceil((new Date(closesAt).getTime() - Date.now()) / 1000));
  return `${Math.floor(s / 60)}:${String(s % 60).padStart(2, '0')} left`;
}

/**
 * One poll: its question, options as buttons with result bars, the total and
 * the time left. `onVote(index)` makes options clickable (viewers while open);
 * `showResults` shows the bars before one has voted (the host's view).
 */
function renderPoll(poll, { onVote = null, showResults = false, busy = false } = {}) {
  const open = poll.state === 'open';
  const voted = poll.my_vote != null;
  const results = showResults || voted || !open;
  const total = poll.total_votes || 0;
  const max = Math.max(0, ...poll.options.map((o) => o.votes));
  const list = h('ol.poll-options', { 'aria-label': 'Options' });
  poll.options.forEach((o, i) => {
    const p = pct(o.votes, total);
    const mine = poll.my_vote === i;
    const lead = !open && total > 0 && o.votes === max;
    // CSSOM, not a style attribute: the pages' CSP allows no inline styles.
    const bar = h('span.poll-bar');
    bar.style.width = results ? `${p}%` : '0';
    const inner = [
      bar,
      h('span.poll-text', {}, o.text),
      mine ? h('span.poll-mine', { title: 'Your vote', 'aria-label': 'your vote' }, '✓') : null,
      results ? h('span.poll-pct', {}, `${p}%`) : null,
    ];
    const item = onVote && open
      ? h('button.poll-option', { type: 'button', disabled: busy, 'aria-pressed': mine ? 'true' : 'false', dataset: { index: i }, onclick: () => onVote(i) }, ...inner)
      : h('div.poll-option', { dataset: { index: i } }, ...inner);
    if (lead) item.classList.add('lead');
    list.append(h('li', {}, item));
  });
  const foot = [
    h('span.poll-total', {}, `${total} ${total === 1 ? 'vote' : 'votes'}`),
    poll.subscribers_only ? h('span.chip', {}, 'Subscribers') : null,
    h('span.spacer'),
    open ? h('span.poll-left', { dataset: { closesAt: poll.closes_at || '' } }, poll.closes_at ? timeLeft(poll.closes_at) : 'Open') : h('span.poll-final', {}, 'Final results'),
  ];
  return [h('p.poll-question', {}, poll.question), list, h('div.poll-foot', {}, ...foot)];
}

/** Ticks the "0:42 left" of every poll on the page. */
function tickCountdowns() {
  for (const el of document.querySelectorAll('.poll-left[data-closes-at]')) {
    if (el.dataset.closesAt) setText(el, timeLeft(el.dataset.closesAt));
  }
}
setInterval(tickCountdowns, 1000);

/** A viewer's poll card (watch page): the open poll, or the last one's final results until dismissed. */
export class PollView {
  constructor(root) {
    this.root = root;
    this.streamId = null;
    this.poll = null;
    this.busy = false;
    this.dismissed = new Set();
  }

  async load(streamId) {
    this.streamId = streamId;
    this.poll = null;
    this.render();
    try {
      const polls = await api(`/api/streams/${streamId}/polls`);
      if (streamId !== this.streamId) return;
      const open = polls.find((p) => p.state === 'open');
      this.poll = open || null;
      this.render();
    } catch (err) {
      console.warn('[onair] polls:', describeError(err));
    }
  }

  clear() {
    this.streamId = null;
    this.poll = null;
    this.render();
  }

  /** A poll event of the page's socket. */
  event(msg) {
    const p = msg.poll;
    if (!p || p.stream_id !== this.streamId) return;
    if (msg.type === 'poll_opened') this.poll = p;
    else if (this.poll && this.poll.id === p.id) {
      // Events carry no `my_vote`: keep ours.
      this.poll = { ...p, my_vote: this.poll.my_vote };
    } else if (msg.type === 'poll_results') this.poll = p;
    else return;
    this.render();
  }

  async vote(index) {
    const poll = this.poll;
    if (!poll) return;
    if (!currentUser()) {
      window.location.href = loginUrl();
      return;
    }
    if (poll.my_vote === index || this.busy) return;
    this.busy = true;
    const before = poll.my_vote;
    poll.my_vote = index;
    this.render();
    try {
      await api(`/api/streams/${poll.stream_id}/polls/${poll.id}/votes`, { method: 'POST', body: { option: index } });
    } catch (err) {
      if (this.poll && this.poll.id === poll.id) this.poll.my_vote = before;
      toast(pollRefusal(err), 'error');
    } finally {
      this.busy = false;
      this.render();
    }
  }

  render() {
    const poll = this.poll;
    const show = poll && !this.dismissed.has(poll.id);
    this.root.hidden = !show;
    window.onair && (window.onair.poll = poll ? { id: poll.id, state: poll.state, votes: poll.options.map((o) => o.votes), my_vote: poll.my_vote ?? null } : null);
    if (!show) return;
    const close = poll.state === 'closed' ? h('button.icon-btn.poll-dismiss', { type: 'button', title: 'Hide', 'aria-label': 'Hide the results', onclick: () => {
      this.dismissed.add(poll.id);
      this.render();
    } }, '×') : null;
    this.root.replaceChildren(
      h('div.poll-head', {}, h('span.poll-label', {}, poll.state === 'open' ? 'Poll' : 'Poll closed'), h('span.spacer'), close),
      ...renderPoll(poll, { onVote: (i) => this.vote(i), busy: this.busy }),
    );
    this.root.dataset.state = poll.state;
  }
}

/**
 * The Q&A list. Viewers ask, upvote and see what the host answers now; with
 * `team` (host and moderators) every question has Answer now / Answered /
 * Hide, and hidden ones stay listed, marked.
 */
export class QaView {
  constructor({ list, empty = null, sortButtons = [], form = null, input = null, hint = null, loginBox = null, count = null, team = false, onAnswering = null }) {
    Object.assign(this, { list, empty, sortButtons, form, input, hint, loginBox, count, team, onAnswering });
    this.streamId = null;
    this.sort = 'top';
    this.questions = new Map();
    this.over = false;
    for (const b of sortButtons) {
      b.addEventListener('click', () => {
        this.sort = b.dataset.sort;
        this.render();
      });
    }
    if (form) {
      form.addEventListener('submit', (ev) => {
        ev.preventDefault();
        this.ask();
      });
    }
    this.list.addEventListener('click', (ev) => {
      const btn = ev.target.closest('button[data-action]');
      const li = ev.target.closest('.qa-item');
      if (!btn || !li) return;
      this.act(Number(li.dataset.id), btn.dataset.action, btn);
    });
  }

  async load(streamId) {
    this.streamId = streamId;
    this.questions.clear();
    this.render();
    try {
      const qs = await api(`/api/streams/${streamId}/questions?sort=new&limit=500`);
      if (streamId !== this.streamId) return;
      for (const q of qs) this.questions.set(q.id, q);
      this.render();
    } catch (err) {
      console.warn('[onair] questions:', describeError(err));
    }
  }

  clear() {
    this.streamId = null;
    this.questions.clear();
    this.render();
  }

  /** A question event of the page's socket. */
  event(msg) {
    const q = msg.question;
    if (!q || q.stream_id !== this.streamId) return;
    const had = this.questions.get(q.id);
    if (q.state === 'hidden' && !this.team) {
      this.questions.delete(q.id);
    } else if (q.state === 'hidden' && had) {
      // The event leaves the text out; the team keeps what it has.
      this.questions.set(q.id, { ...had, state: 'hidden', upvotes: q.upvotes });
    } else {
      this.questions.set(q.id, { ...q, upvoted: had ? had.upvoted : q.upvoted });
    }
    this.render();
  }

  setOver(over) {
    this.over = over;
    this.renderForm();
  }

  async ask() {
    if (!this.input || this.streamId == null) return;
    const text = this.input.value.trim();
    if (!text) return;
    this.setHint('');
    try {
      const q = await api(`/api/streams/${this.streamId}/questions`, { method: 'POST', body: { text } });
      this.questions.set(q.id, q);
      this.input.value = '';
      this.render();
      toast('Question sent', 'ok', 1800);
    } catch (err) {
      this.setHint(refusalText(err));
      if (window.onair) window.onair.qaRefusal = err.code || 'error';
    }
  }

  setHint(text) {
    if (!this.hint) return;
    setText(this.hint, text);
    this.hint.hidden = !text;
  }

  async act(id, action, btn) {
    const q = this.questions.get(id);
    if (!q || this.streamId == null) return;
    if (!currentUser()) {
      window.location.href = loginUrl();
      return;
    }
    const base = `/api/streams/${this.streamId}/questions/${id}`;
    btn.disabled = true;
    try {
      let out;
      if (action === 'upvote') out = await api(`${base}/upvote`, { method: q.upvoted ? 'DELETE' : 'POST' });
      else out = await api(base, { method: 'PATCH', body: { state: action } });
      this.questions.set(id, { ...q, ...out, text: out.text || q.text, user: out.user || q.user });
      if (action === 'answering') {
        // The one answered before is answered now (its event follows too).
        for (const other of this.questions.values()) if (other.id !== id && other.state === 'answering') other.state = 'answered';
      }
    } catch (err) {
      toast(err.code === 'own_question' ? 'You cannot upvote your own question.' : refusalText(err), 'error');
    } finally {
      btn.disabled = false;
      this.render();
    }
  }

  sorted() {
    const all = [...this.questions.values()];
    if (this.sort === 'new') return all.sort((a, b) => b.id - a.id);
    // Top: answering now first, open ones by upvotes, answered (and hidden) last.
    const rank = (q) => ({ answering: 0, open: 1, answered: 2, hidden: 3 })[q.state] ?? 1;
    return all.sort((a, b) => rank(a) - rank(b) || b.upvotes - a.upvotes || a.id - b.id);
  }

  render() {
    const me = currentUser();
    const items = this.sorted().map((q) => {
      const mine = me && q.user && q.user.id === me.id;
      const up = h(
        'button.qa-up',
        { type: 'button', dataset: { action: 'upvote' }, 'aria-pressed': q.upvoted ? 'true' : 'false', disabled: mine || q.state === 'hidden' || this.over, title: mine ? 'Your question' : q.upvoted ? 'Take your upvote back' : 'Upvote' },
        h('span.qa-arrow', { 'aria-hidden': 'true' }, '▲'),
        h('span.qa-votes', {}, String(q.upvotes)),
      );
      const stateChip = q.state === 'open' ? null : h(`span.chip.qa-state.qa-${q.state}`, {}, { answering: 'Answering now', answered: 'Answered', hidden: 'Hidden' }[q.state]);
      const actions = this.team
        ? h(
            'div.qa-actions',
            {},
            q.state !== 'answering' && q.state !== 'hidden' ? h('button.btn.btn-sm', { type: 'button', dataset: { action: 'answering' } }, 'Answer now') : null,
            q.state === 'answering' ? h('button.btn.btn-sm', { type: 'button', dataset: { action: 'answered' } }, 'Done') : null,
            q.state === 'hidden' ? h('button.btn.btn-sm.btn-ghost', { type: 'button', dataset: { action: 'open' } }, 'Unhide') : h('button.btn.btn-sm.btn-ghost', { type: 'button', dataset: { action: 'hidden' } }, 'Hide'),
          )
        : null;
      return h(
        'li.qa-item',
        { dataset: { id: q.id, state: q.state } },
        up,
        h('div.qa-main', {}, h('p.qa-text', {}, q.text || '(hidden)'), h('p.qa-meta', {}, q.user ? q.user.display_name || q.user.username : 'someone', ' · ', formatClock(q.created_at), stateChip ? ' ' : null, stateChip), actions),
      );
    });
    this.list.replaceChildren(...items);
    if (this.empty) this.empty.hidden = items.length > 0;
    for (const b of this.sortButtons) b.setAttribute('aria-pressed', b.dataset.sort === this.sort ? 'true' : 'false');
    const open = [...this.questions.values()].filter((q) => q.state === 'open' || q.state === 'answering').length;
    if (this.count) setText(this.count, open ? String(open) : '');
    const answering = [...this.questions.values()].find((q) => q.state === 'answering') || null;
    if (this.onAnswering) this.onAnswering(answering);
    if (window.onair) window.onair.questions = this.sorted().map((q) => ({ id: q.id, text: q.text, upvotes: q.upvotes, state: q.state, upvoted: q.upvoted ?? null }));
    this.renderForm();
  }

  renderForm() {
    const logged = !!currentUser();
    if (this.form) this.form.hidden = !logged || this.over;
    if (this.loginBox) this.loginBox.hidden = logged || this.over;
  }
}

/**
 * The host's tools for a live stream (dashboard and studio): open a poll
 * (2-6 options, optional duration, subscribers only), watch its results and
 * close it; the Q&A queue with Answer now / Done / Hide.
 */
export class HostTools {
  constructor(root) {
    this.root = root;
    this.streamId = null;
    this.polls = [];
    root.classList.add('host-tools');
    root.replaceChildren(
      h('div.card-head', {}, h('h2', {}, 'Poll & Q&A'), h('span.spacer'), h('span.card-note.ht-note', {}, '')),
      h(
        'div.card-body',
        {},
        h('div.ht-poll', {}),
        h(
          'form.ht-poll-form',
          { autocomplete: 'off' },
          h('label.label', { for: `${root.id}-question` }, 'New poll'),
          h('input.input.ht-question', { id: `${root.id}-question`, type: 'text', maxlength: 200, placeholder: 'Ask your viewers…' }),
          h('div.ht-options', {}),
          h('div.ht-row', {}, h('button.btn.btn-sm.btn-ghost.ht-add', { type: 'button' }, '+ Option'), h('span.spacer'), h('select.select.ht-duration', { 'aria-label': 'Duration' }, ...[
            ['', 'Until closed'],
            ['30', '30 s'],
            ['60', '1 min'],
            ['120', '2 min'],
            ['300', '5 min'],
          ].map(([v, t]) => h('option', { value: v }, t)))),
          h('label.check', {}, h('input.ht-subs', { type: 'checkbox' }), ' Subscribers only'),
          h('p.field-error.ht-error', { hidden: true }),
          h('button.btn.btn-primary.btn-block.ht-open', { type: 'submit' }, 'Open poll'),
        ),
        h('div.ht-qa-head', {}, h('h3', {}, 'Questions'), h('span.spacer'), h('div.seg', {}, h('button.seg-btn', { type: 'button', dataset: { sort: 'top' } }, 'Top'), h('button.seg-btn', { type: 'button', dataset: { sort: 'new' } }, 'New'))),
        h('ul.qa-list.ht-qa', { 'aria-label': 'Questions' }),
        h('p.muted.ht-qa-empty', {}, 'No questions yet. Viewers ask from the watch page.'),
      ),
    );
    const $ = (s) => root.querySelector(s);
    this.els = { poll: $('.ht-poll'), form: $('.ht-poll-form'), question: $('.ht-question'), options: $('.ht-options'), add: $('.ht-add'), duration: $('.ht-duration'), subs: $('.ht-subs'), error: $('.ht-error'), open: $('.ht-open') };
    this.qa = new QaView({ list: $('.ht-qa'), empty: $('.ht-qa-empty'), sortButtons: [...root.querySelectorAll('.seg-btn')], team: true });
    this.resetForm();
    this.els.add.addEventListener('click', () => this.addOption(''));
    this.els.form.addEventListener('submit', (ev) => {
      ev.preventDefault();
      this.openPoll();
    });
  }

  addOption(value) {
    const n = this.els.options.children.length;
    if (n >= 6) return;
    const input = h('input.input.ht-option', { type: 'text', maxlength: 80, value, placeholder: `Option ${n + 1}`, 'aria-label': `Option ${n + 1}` });
    const remove = h('button.icon-btn', { type: 'button', title: 'Remove', 'aria-label': 'Remove option', onclick: () => {
      if (this.els.options.children.length > 2) row.remove();
      this.els.add.disabled = this.els.options.children.length >= 6;
    } }, '×');
    const row = h('div.ht-option-row', {}, input, remove);
    this.els.options.append(row);
    this.els.add.disabled = this.els.options.children.length >= 6;
  }

  resetForm() {
    this.els.question.value = '';
    this.els.options.replaceChildren();
    this.addOption('');
    this.addOption('');
    this.els.subs.checked = false;
    this.els.duration.value = '';
    this.els.error.hidden = true;
  }

  async setStream(id) {
    if (id === this.streamId) return;
    this.streamId = id;
    this.root.hidden = id == null;
    this.polls = [];
    this.render();
    if (id == null) {
      this.qa.clear();
      return;
    }
    this.qa.load(id);
    try {
      this.polls = await api(`/api/streams/${id}/polls`);
      this.render();
    } catch (err) {
      console.warn('[onair] polls:', describeError(err));
    }
  }

  event(msg) {
    if (msg.poll) {
      if (msg.poll.stream_id !== this.streamId) return;
      const i = this.polls.findIndex((p) => p.id === msg.poll.id);
      if (i >= 0) this.polls[i] = msg.poll;
      else this.polls.push(msg.poll);
      this.render();
    } else if (msg.question) {
      this.qa.event(msg);
    }
  }

  async openPoll() {
    const question = this.els.question.value.trim();
    const options = [...this.els.options.querySelectorAll('input')].map((i) => i.value.trim()).filter(Boolean);
    const body = { question, options, subscribers_only: this.els.subs.checked };
    if (this.els.duration.value) body.duration_s = Number(this.els.duration.value);
    this.els.error.hidden = true;
    this.els.open.disabled = true;
    try {
      const poll = await api(`/api/streams/${this.streamId}/polls`, { method: 'POST', body });
      if (!this.polls.some((p) => p.id === poll.id)) this.polls.push(poll);
      this.resetForm();
      this.render();
    } catch (err) {
      const fields = err.fields ? Object.entries(err.fields).map(([k, v]) => `${k.replace('options[', 'option ').replace(']', '')}: ${v}`).join('; ') : '';
      setText(this.els.error, fields || pollRefusal(err));
      this.els.error.hidden = false;
    } finally {
      this.els.open.disabled = false;
    }
  }

  async closePoll(poll, btn) {
    btn.disabled = true;
    try {
      const closed = await api(`/api/streams/${poll.stream_id}/polls/${poll.id}/close`, { method: 'POST' });
      const i = this.polls.findIndex((p) => p.id === closed.id);
      if (i >= 0) this.polls[i] = closed;
      this.render();
    } catch (err) {
      toast(pollRefusal(err), 'error');
      btn.disabled = false;
    }
  }

  render() {
    const open = this.polls.find((p) => p.state === 'open') || null;
    const last = open || this.polls[this.polls.length - 1] || null;
    this.els.form.hidden = !!open;
    if (!last) {
      this.els.poll.replaceChildren();
      this.els.poll.hidden = true;
    } else {
      this.els.poll.hidden = false;
      const closeBtn = open ? h('button.btn.btn-sm.btn-danger.ht-close', { type: 'button', onclick: (ev) => this.closePoll(open, ev.currentTarget) }, 'Close poll') : null;
      this.els.poll.replaceChildren(h('div.poll-card', { dataset: { state: last.state } }, h('div.poll-head', {}, h('span.poll-label', {}, open ? 'Live poll' : 'Last poll'), h('span.spacer'), closeBtn), ...renderPoll(last, { showResults: true })));
    }
    setText(this.root.querySelector('.ht-note'), this.polls.length ? `${this.polls.length} ${this.polls.length === 1 ? 'poll' : 'polls'}` : '');
    if (window.onair) window.onair.hostPolls = this.polls.map((p) => ({ id: p.id, state: p.state, votes: p.options.map((o) => o.votes) }));
  }
}

/** Forwards the poll and question events of `rt` to `fn(msg)`. */
export function onInteractEvents(rt, fn) {
  for (const t of ['poll_opened', 'poll_results', 'poll_closed', 'question_added', 'question_updated']) rt.on(t, fn);
}
