// The watch page's coins: the gift tray and tip form, the gifts that fly
// over the video (a lane per sender and gift whose counter grows with the
// combo; big gifts fill the stage), the top-supporters strip, and the
// ticket and subscribe buttons. Gifts and tips are spent with an
// Idempotency-Key per press; what everyone sees comes from the stream's
// `gift` and `tip` events, after the coins moved. ES module, no build step.

import { $, h, initial, toast } from './common.js';
import { api, currentUser, loginUrl } from './session.js';
import { WalletWatch, coins, coinIcon, describePayError, formatCoins, pay } from './money.js';

/** A lane stays this long after its last gift. */
const LANE_MS = 4000;
/** Lanes at once (older ones make room). */
const MAX_LANES = 3;
/** Big (full-stage) animations from this tier up. */
const BIG_TIER = 3;
const COUNTS = [1, 5, 10, 99];
const TIPS = [10, 50, 100, 500];

export class SupportPanel {
  /**
   * `rt`: the page's Realtime; `stage`: the video stage (animations go on
   * it); `root`: the panel's card; `subscribeButton`: the channel's
   * Subscribe button.
   */
  constructor({ rt, stage, root, subscribeButton }) {
    this.rt = rt;
    this.stage = stage;
    this.root = root;
    this.subscribeButton = subscribeButton;
    this.stream = null;
    this.gifts = [];
    this.selected = null;
    this.count = 1;
    this.supporters = new Map(); // user id -> {user, coins}
    this.lanes = new Map(); // `${from}:${gift}` -> {el, timer}
    this.seen = new Set(); // event ids already shown (a send's own answer and its event)
    this.wallet = new WalletWatch(rt);
    this.layer = h('div.gift-layer', { 'aria-hidden': 'true' });
    this.laneBox = h('div.gift-lanes');
    this.layer.append(this.laneBox);
    stage.append(this.layer);
    this.build();
    rt.on('gift', (ev) => this.onEvent(ev));
    rt.on('tip', (ev) => this.onEvent(ev));
    this.wallet.onChange((w) => this.renderWallet(w));
    this.loadGifts();
    this.wallet.load();
    if (subscribeButton) subscribeButton.addEventListener('click', () => this.subscribe());
  }

  // ------------------------------------------------------------ building

  build() {
    const r = this.root;
    this.strip = h('ol.supporters', { 'aria-label': 'Top supporters' });
    this.walletChip = h('a.wallet-chip', { href: '/wallet', title: 'Your coins: top up' }, coinIcon(16), h('span', { text: '—' }));
    this.tabGifts = h('button.tray-tab', { type: 'button', role: 'tab', 'aria-selected': 'true', onclick: () => this.tab('gifts') }, 'Gifts');
    this.tabTip = h('button.tray-tab', { type: 'button', role: 'tab', 'aria-selected': 'false', onclick: () => this.tab('tip') }, 'Tip');
    this.tray = h('div.gift-tray', { role: 'listbox', 'aria-label': 'Gifts' });
    this.countBox = h('div.count-pick', { role: 'radiogroup', 'aria-label': 'How many' });
    for (const n of COUNTS) {
      this.countBox.append(h('button.count-opt', { type: 'button', role: 'radio', 'aria-checked': String(n === 1), dataset: { n }, onclick: () => this.setCount(n) }, `×${n}`));
    }
    this.sendBtn = h('button.btn.btn-live.send-gift', { type: 'button', disabled: true, onclick: () => this.sendGift() }, 'Send');
    this.giftPane = h('div.tray-pane', {}, this.tray, h('div.tray-foot', {}, this.countBox, h('span.spacer'), this.sendBtn));
    this.tipAmount = h('input.input.tip-amount', { type: 'number', min: '1', max: '1000000', step: '1', value: '50', 'aria-label': 'Coins to tip' });
    this.tipMessage = h('input.input', { type: 'text', maxlength: '200', placeholder: 'Say something (optional)', 'aria-label': 'Tip message' });
    const chips = h('div.tip-chips');
    for (const n of TIPS) chips.append(h('button.count-opt', { type: 'button', onclick: () => (this.tipAmount.value = String(n)) }, coinIcon(14), ` ${formatCoins(n)}`));
    this.tipBtn = h('button.btn.btn-live', { type: 'submit', disabled: true }, 'Tip');
    this.tipPane = h(
      'form.tray-pane.tip-pane',
      { hidden: true, onsubmit: (e) => (e.preventDefault(), this.sendTip()) },
      chips,
      h('div.tip-row', {}, this.tipAmount, this.tipMessage, this.tipBtn),
    );
    this.note = h('p.tray-note.muted.small', { hidden: true });
    r.replaceChildren(
      h('div.support-head', {}, h('span.support-title', { text: 'Top supporters' }), this.strip, h('span.spacer'), this.walletChip),
      h('div.tray-tabs', { role: 'tablist' }, this.tabGifts, this.tabTip),
      this.giftPane,
      this.tipPane,
      this.note,
    );
  }

  tab(which) {
    this.tabGifts.setAttribute('aria-selected', String(which === 'gifts'));
    this.tabTip.setAttribute('aria-selected', String(which === 'tip'));
    this.giftPane.hidden = which !== 'gifts';
    this.tipPane.hidden = which !== 'tip';
  }

  setCount(n) {
    this.count = n;
    for (const b of this.countBox.children) b.setAttribute('aria-checked', String(Number(b.dataset.n) === n));
    this.renderPrice();
  }

  async loadGifts() {
    try {
      this.gifts = await api('/api/gifts', { auth: false });
    } catch {
      this.gifts = [];
    }
    this.tray.replaceChildren(
      ...this.gifts.map((g) =>
        h(
          'button.gift-opt',
          { type: 'button', role: 'option', 'aria-selected': 'false', dataset: { gift: g.id, tier: g.tier }, title: `${g.name} · ${formatCoins(g.coins)} coins`, onclick: () => this.select(g) },
          h('img.gift-img', { src: g.animation, alt: '', width: 44, height: 44 }),
          h('span.gift-name', { text: g.name }),
          h('span.gift-price', {}, coinIcon(12), ` ${formatCoins(g.coins)}`),
        ),
      ),
    );
    if (this.gifts.length) this.select(this.gifts[0]);
  }

  select(g) {
    this.selected = g;
    for (const b of this.tray.children) b.setAttribute('aria-selected', String(b.dataset.gift === g.id));
    this.renderPrice();
  }

  renderPrice() {
    const g = this.selected;
    this.sendBtn.replaceChildren(g ? h('span', {}, 'Send ', coinIcon(14), ` ${formatCoins(g.coins * this.count)}`) : 'Send');
  }

  renderWallet(w) {
    const label = this.walletChip.lastChild;
    label.textContent = w ? formatCoins(w.coins + w.promo_coins) : 'Get coins';
    this.walletChip.title = w ? `${formatCoins(w.coins)} coins${w.promo_coins ? ` + ${formatCoins(w.promo_coins)} promotional` : ''}: top up` : 'Log in to get coins';
  }

  // ------------------------------------------------------------ the stream

  /** The stream as the page knows it now. */
  setStream(s) {
    const changed = !this.stream || this.stream.id !== s.id;
    this.stream = s;
    const me = currentUser();
    const own = me && s.host && me.id === s.host.id;
    const live = s.state === 'live';
    this.root.hidden = false;
    // A host watching their own stream sees what arrives, not a tray to send from.
    for (const el of [this.tabGifts.parentElement, this.giftPane, this.tipPane]) el.classList.toggle('own-stream', !!own);
    this.sendBtn.disabled = !live || own || !me;
    this.tipBtn.disabled = !live || own || !me;
    this.note.hidden = false;
    if (!me) {
      this.note.replaceChildren(h('a', { href: loginUrl() }, 'Log in'), ' to send gifts and tips.');
    } else if (own) {
      this.note.textContent = 'Gifts and tips from your viewers land here.';
    } else if (!live) {
      this.note.textContent = 'Gifts and tips open while the stream is live.';
    } else {
      this.note.hidden = true;
    }
    if (this.subscribeButton) this.subscribeButton.hidden = !me || own || !s.host || !['host', 'admin'].includes(s.host.role);
    if (changed) this.loadSupporters();
  }

  async loadSupporters() {
    if (!this.stream) return;
    try {
      const r = await api(`/api/streams/${this.stream.id}/supporters?limit=10`, { auth: false });
      this.supporters = new Map(r.supporters.map((s) => [s.user.id, { user: s.user, coins: s.coins }]));
    } catch {
      /* the strip stays as it is */
    }
    this.renderSupporters();
  }

  renderSupporters() {
    const top = [...this.supporters.values()].sort((a, b) => b.coins - a.coins).slice(0, 5);
    this.strip.replaceChildren(
      ...(top.length
        ? top.map((s, i) =>
            h(
              'li.supporter',
              { dataset: { rank: i + 1 }, title: `${s.user.display_name || s.user.username}: ${formatCoins(s.coins)} coins` },
              h('span.supporter-avatar', { text: initial(s.user.display_name || s.user.username) }),
              h('span.supporter-name', { text: s.user.display_name || s.user.username }),
              h('span.supporter-coins', {}, coinIcon(12), ` ${formatCoins(s.coins)}`),
            ),
          )
        : [h('li.supporter-empty.muted', { text: 'Be the first to send a gift' })]),
    );
  }

  // ------------------------------------------------------------ sending

  async sendGift() {
    const g = this.selected;
    if (!g || !this.stream) return;
    this.sendBtn.classList.remove('pulse');
    void this.sendBtn.offsetWidth;
    this.sendBtn.classList.add('pulse');
    try {
      const sent = await pay(`/api/streams/${this.stream.id}/gifts`, { gift: g.id, count: this.count });
      this.afterSend(sent);
    } catch (err) {
      this.payFailed(err);
    }
  }

  async sendTip() {
    const n = Math.floor(Number(this.tipAmount.value));
    if (!this.stream || !(n >= 1)) return;
    this.tipBtn.disabled = true;
    try {
      const body = { coins: n };
      const m = this.tipMessage.value.trim();
      if (m) body.message = m;
      const sent = await pay(`/api/streams/${this.stream.id}/tips`, body);
      this.tipMessage.value = '';
      this.afterSend(sent);
    } catch (err) {
      this.payFailed(err);
    } finally {
      this.tipBtn.disabled = this.stream.state !== 'live';
    }
  }

  afterSend(sent) {
    if (this.wallet.wallet) this.wallet.set({ ...this.wallet.wallet, coins: sent.balance.coins, promo_coins: sent.balance.promo_coins });
  }

  payFailed(err) {
    if (err && err.code === 'insufficient_funds') {
      toast('Not enough coins. Opening your wallet…', 'error', 2500);
      setTimeout(() => (window.location.href = `/wallet?next=${encodeURIComponent(window.location.pathname)}`), 900);
      return;
    }
    if (err && err.status === 401) {
      window.location.href = loginUrl();
      return;
    }
    toast(describePayError(err), 'error');
  }

  /** Buys a ticket to this stream with coins; true when the page may play. */
  async buyTicket() {
    if (!this.stream) return false;
    if (!currentUser()) {
      window.location.href = loginUrl();
      return false;
    }
    try {
      const t = await pay(`/api/streams/${this.stream.id}/tickets/purchase`, {});
      toast(t.status === 'held' ? `Ticket bought: ${formatCoins(t.price)} coins held until the stream starts` : `Ticket bought: ${formatCoins(t.price)} coins`, 'ok');
      this.wallet.load();
      return true;
    } catch (err) {
      if (err && err.code === 'already_have_ticket') return true;
      this.payFailed(err);
      return false;
    }
  }

  /** Subscribes to this stream's host with coins; true on success. */
  async subscribe() {
    const s = this.stream;
    if (!s || !s.host) return false;
    if (!currentUser()) {
      window.location.href = loginUrl();
      return false;
    }
    try {
      const sub = await pay(`/api/channels/${encodeURIComponent(s.host.username)}/subscriptions/purchase`, { plan: 'monthly' });
      toast(`Subscribed to ${s.host.display_name || s.host.username} until ${new Date(sub.expires_at).toLocaleDateString()}`, 'ok');
      this.wallet.load();
      return true;
    } catch (err) {
      this.payFailed(err);
      return false;
    }
  }

  // ------------------------------------------------------------ showing

  onEvent(ev) {
    if (!this.stream || ev.stream_id !== this.stream.id || this.seen.has(ev.id)) return;
    this.seen.add(ev.id);
    if (this.seen.size > 500) this.seen = new Set([...this.seen].slice(-200));
    const cur = this.supporters.get(ev.from.id) || { user: ev.from, coins: 0 };
    cur.coins += ev.coins;
    this.supporters.set(ev.from.id, cur);
    this.renderSupporters();
    if (ev.gift) this.showGift(ev);
    else this.showTip(ev);
  }

  lane(key, build) {
    let lane = this.lanes.get(key);
    if (!lane) {
      while (this.lanes.size >= MAX_LANES) {
        const [oldKey, old] = this.lanes.entries().next().value;
        this.dropLane(oldKey, old);
      }
      lane = { el: build() };
      this.lanes.set(key, lane);
      this.laneBox.append(lane.el);
      requestAnimationFrame(() => lane.el.classList.add('in'));
    }
    clearTimeout(lane.timer);
    lane.timer = setTimeout(() => this.dropLane(key, lane), LANE_MS);
    return lane;
  }

  dropLane(key, lane) {
    clearTimeout(lane.timer);
    this.lanes.delete(key);
    lane.el.classList.remove('in');
    lane.el.classList.add('out');
    setTimeout(() => lane.el.remove(), 400);
  }

  showGift(ev) {
    const g = ev.gift;
    const who = ev.from.display_name || ev.from.username;
    const lane = this.lane(`${ev.from.id}:${g.id}`, () =>
      h(
        'div.gift-lane',
        { dataset: { tier: g.tier } },
        h('span.lane-avatar', { text: initial(who) }),
        h('span.lane-text', {}, h('strong', { text: who }), h('span', { text: `sent ${g.name}` })),
        h('img.lane-gift', { src: g.animation, alt: g.name, width: 52, height: 52 }),
        h('span.lane-combo', { text: '' }),
      ),
    );
    const combo = lane.el.querySelector('.lane-combo');
    combo.textContent = `×${ev.combo || ev.count || 1}`;
    combo.classList.remove('bump');
    void combo.offsetWidth;
    combo.classList.add('bump');
    lane.el.dataset.combo = String(ev.combo || ev.count || 1);
    if (g.tier >= BIG_TIER) this.showBig(ev);
  }

  showBig(ev) {
    const g = ev.gift;
    const who = ev.from.display_name || ev.from.username;
    const big = h(
      'div.gift-big',
      { dataset: { tier: g.tier, gift: g.id } },
      h('div.gift-big-banner', {}, h('strong', { text: who }), ` sent ${g.name}`, ev.count > 1 ? ` ×${ev.count}` : ''),
      h('img.gift-big-img', { src: g.animation, alt: '' }),
    );
    this.layer.append(big);
    setTimeout(() => big.remove(), g.tier >= 4 ? 4200 : 3200);
  }

  showTip(ev) {
    const who = ev.from.display_name || ev.from.username;
    const lane = this.lane(`${ev.from.id}:tip:${ev.id}`, () =>
      h(
        'div.gift-lane.tip-lane',
        {},
        h('span.lane-avatar', { text: initial(who) }),
        h('span.lane-text', {}, h('strong', { text: who }), h('span', { text: ev.message ? `“${ev.message}”` : 'sent a tip' })),
        coins(ev.coins, 18),
      ),
    );
    lane.el.classList.add('tip');
  }
}
