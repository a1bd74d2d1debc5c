// The wallet page: balances (live, from `wallet` events), coin packages
// bought through the payment provider's checkout, subscriptions, and the
// statement of every ledger line. ES module, no build step.

import { $, h, describeError, formatWhen, safeNext, toast } from './common.js';
import { api, currentUser, isHost, loginUrl, renderAccount } from './session.js';
import { Realtime } from './realtime.js';
import { WalletWatch, coins, formatCoins, formatMoney, pay } from './money.js';

const KIND = {
  top_up: 'Coins bought',
  recredit: 'Coins returned',
  clawback: 'Refund claw-back',
  settle: 'Debt paid off',
  tip: 'Tip',
  gift: 'Gift',
  ticket: 'Ticket',
  subscription: 'Subscription',
  payout: 'Payout',
  payout_rejected: 'Payout rejected',
  promo: 'Promotional coins',
  expired: 'Hold expired',
  cancelled: 'Cancelled: refunded',
  lapsed: 'Renewal lapsed',
  superseded: 'Renewal replaced',
};

const params = new URLSearchParams(window.location.search);
const next = safeNext(params.get('next'), '');
const rt = new Realtime({ name: 'wallet' });
const watch = new WalletWatch(rt);
/** State for tests and debugging. */
const page = { wallet: null, packages: [], statement: [], payment: null };
window.onairWallet = page;
let cursor = null;

function renderBalances(w) {
  page.wallet = w;
  if (!w) return;
  $('#bal-coins').replaceChildren(coins(w.coins, 24));
  $('#bal-promo').replaceChildren(coins(w.promo_coins, 24));
  $('#bal-held').replaceChildren(coins(w.held, 24));
  $('#owed-card').hidden = !w.owed;
  $('#bal-owed').replaceChildren(coins(w.owed, 24));
  const host = isHost();
  $('#earnings-card').hidden = !host && !w.earnings && !w.earnings_pending;
  $('#bal-earnings').replaceChildren(coins(w.earnings, 24));
}

async function loadPackages() {
  const list = await api('/api/wallet/packages', { auth: false });
  page.packages = list;
  const per = (p) => p.amount / p.coins;
  const base = list.length ? per(list[0]) : 1;
  $('#packages').replaceChildren(
    ...list.map((p) => {
      const saving = Math.round((1 - per(p) / base) * 100);
      return h(
        'button.package',
        { type: 'button', dataset: { package: p.id }, onclick: (e) => buy({ package: p.id }, e.currentTarget) },
        coins(p.coins, 22),
        h('span.package-price', { text: formatMoney(p.amount, p.currency) }),
        h('span.package-deal', { text: saving >= 2 ? `Save ${saving}%` : '' }),
      );
    }),
  );
  const cur = list.length ? list[0].currency : 'usd';
  const input = $('#custom-coins');
  input.addEventListener('input', () => {
    const n = Math.floor(Number(input.value));
    $('#custom-price').textContent = n >= 50 ? formatMoney(n, cur) : '';
  });
}

/** Makes a payment intent and goes to the provider's checkout. */
async function buy(body, button) {
  if (button) button.disabled = true;
  try {
    const t = await pay('/api/wallet/top-ups', body);
    if (t.checkout_url) {
      const back = `/wallet${next ? `?next=${encodeURIComponent(next)}` : ''}`;
      window.location.href = `${t.checkout_url}?return=${encodeURIComponent(back)}`;
      return;
    }
    showPayment('info', 'This server takes payments through Stripe: confirm the payment with Stripe.js (client secret in the answer).');
  } catch (err) {
    toast(describeError(err), 'error');
  } finally {
    if (button) button.disabled = false;
  }
}

function showPayment(kind, ...content) {
  const el = $('#payment-state');
  el.hidden = false;
  el.className = kind === 'ok' ? 'alert alert-ok' : kind === 'bad' ? 'alert' : 'alert info';
  el.replaceChildren(...content.filter((c) => c != null));
}

/** Back from the checkout: the coins come with the provider's webhook; the socket tells us. */
async function followPayment(intent) {
  let p;
  try {
    p = await api(`/api/wallet/top-ups/${encodeURIComponent(intent)}`);
  } catch (err) {
    showPayment('bad', describeError(err));
    return;
  }
  page.payment = p;
  const back = next ? h('a.btn.btn-live', { href: next, style: 'margin-left:auto' }, 'Back to the stream') : null;
  if (p.status === 'succeeded' && p.coins_credited > 0) {
    showPayment('ok', h('span', {}, h('strong', { text: `${formatCoins(p.coins_credited)} coins added.` }), ' Thank you!'), back);
  } else if (p.status === 'succeeded') {
    showPayment('info', h('span', { text: 'Payment received; the coins are on their way…' }));
  } else if (p.status === 'canceled') {
    showPayment('bad', 'The payment was canceled.');
  } else {
    showPayment('info', h('span', {}, h('span.spinner'), ' Waiting for the payment to be confirmed…'));
  }
  return p;
}

async function loadStatement(more = false) {
  const q = new URLSearchParams({ limit: '25' });
  if (more && cursor) q.set('cursor', cursor);
  const s = await api(`/api/me/transactions?${q}`);
  cursor = s.next_cursor;
  if (!more) page.statement = [];
  page.statement.push(...s.entries);
  const rows = s.entries.map((e) => {
    const held = e.phase === 'pending';
    const cls = held ? 'amount-held' : e.amount > 0 ? 'amount-in' : 'amount-out';
    const what = (KIND[e.kind] || e.kind) + (e.kind === 'gift' && e.reference ? ` · ${e.reference[0].toUpperCase()}${e.reference.slice(1)}` : '');
    const sign = e.amount > 0 ? '+' : '−';
    return h(
      'tr',
      { dataset: { kind: e.kind, phase: e.phase } },
      h('td', { text: formatWhen(e.at) }),
      h('td', {}, h('span.kind-tag', { text: held ? `${what} (on hold)` : e.phase === 'void' ? `${what} (released)` : what }), e.stream_id ? h('a.muted.small', { href: `/watch/${e.stream_id}`, style: 'margin-left:6px' }, `stream ${e.stream_id}`) : null),
      h('td', { text: e.account }),
      h('td.num', {}, h('span', { class: cls, text: `${sign}${formatCoins(Math.abs(e.amount))}` })),
      h('td.num', { text: held || e.phase === 'void' ? '' : formatCoins(e.balance_after) }),
    );
  });
  const body = $('#statement');
  if (more) body.append(...rows);
  else body.replaceChildren(...rows);
  $('#statement-empty').hidden = page.statement.length > 0;
  $('#more').hidden = !cursor;
}

async function loadSubscriptions() {
  const subs = await api('/api/me/subscriptions');
  $('#subs-card').hidden = subs.length === 0;
  const names = new Map();
  await Promise.all(
    [...new Set(subs.map((s) => s.host_id))].map(async (id) => {
      try {
        const u = await api(`/api/users/${id}`, { auth: false });
        names.set(id, u.username);
      } catch {
        names.set(id, String(id));
      }
    }),
  );
  $('#subs').replaceChildren(
    ...subs.map((s) =>
      h(
        'tr',
        {},
        h('td', {}, h('a', { href: `/watch/${names.get(s.host_id)}`, text: `@${names.get(s.host_id)}` })),
        h('td', { text: formatWhen(s.expires_at) }),
        h('td.num', {}, coins(s.price, 14)),
        h('td', { text: s.auto_renew ? (s.renewal_held ? 'Renews (coins on hold)' : 'Renews monthly') : 'Ends then' }),
        h(
          'td.num',
          {},
          s.auto_renew
            ? h(
                'button.btn',
                {
                  type: 'button',
                  onclick: async (e) => {
                    e.currentTarget.disabled = true;
                    try {
                      await pay(`/api/channels/${encodeURIComponent(names.get(s.host_id))}/subscriptions/cancel`, {});
                      toast('Cancelled: it runs until the end of the period', 'ok');
                      loadSubscriptions();
                    } catch (err) {
                      toast(describeError(err), 'error');
                    }
                  },
                },
                'Cancel',
              )
            : null,
        ),
      ),
    ),
  );
}

async function main() {
  renderAccount({ current: 'wallet' });
  if (!currentUser()) {
    $('#gate').hidden = false;
    $('#gate-login').href = loginUrl();
    return;
  }
  $('#wallet').hidden = false;
  const intent = params.get('intent');
  watch.onChange((w) => {
    renderBalances(w);
    // Something moved: the statement and a payment being followed are out of date.
    if (page.statement.length || w) loadStatement().catch(() => {});
    if (intent && (!page.payment || !(page.payment.coins_credited > 0))) followPayment(intent);
  });
  rt.connect();
  $('#more').addEventListener('click', () => loadStatement(true));
  $('#custom-form').addEventListener('submit', (e) => {
    e.preventDefault();
    const n = Math.floor(Number($('#custom-coins').value));
    if (n >= 50) buy({ coins: n }, $('#custom-buy'));
    else toast('At least 50 coins', 'error');
  });
  try {
    await Promise.all([loadPackages(), watch.load(), loadStatement(), loadSubscriptions()]);
  } catch (err) {
    toast(describeError(err), 'error');
  }
  if (intent) followPayment(intent);
  try {
    const cfg = await api('/api/config', { auth: false });
    const dev = cfg.payments && cfg.payments.provider === 'dev';
    $('#test-mode').hidden = !dev;
    $('#provider-note').textContent = dev
      ? 'Test payments: the built-in development provider. No real money moves; its checkout sends OnAir the same signed webhook Stripe would.'
      : 'Payments by Stripe. Coins arrive as soon as Stripe confirms the payment.';
  } catch {
    /* no note */
  }
}

main();
