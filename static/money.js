// OnAir money in the browser: calls that move coins (each with its own
// Idempotency-Key, reused if the network drops so a retry never pays
// twice), coin and price formatting, and the wallet's live balance (the
// server pushes `wallet` events to the user's own pages). ES module, no
// build step.

import { OnAirError, h } from './common.js';
import { api, currentUser } from './session.js';

/** A fresh idempotency key. */
export function newKey() {
  if (crypto.randomUUID) return crypto.randomUUID();
  const b = new Uint8Array(16);
  crypto.getRandomValues(b);
  return Array.from(b, (x) => x.toString(16).padStart(2, '0')).join('');
}

/**
 * POSTs a request that moves coins under one Idempotency-Key; a network
 * failure is retried (twice) with the same key, so the server runs it at
 * most once and the page gets its one answer.
 */
export async function pay(path, body = {}, { key = newKey() } = {}) {
  let last;
  for (let attempt = 0; attempt < 3; attempt++) {
    try {
      return await api(path, { method: 'POST', body, headers: { 'Idempotency-Key': key } });
    } catch (err) {
      last = err;
      if (!(err instanceof OnAirError) || err.code !== 'network') throw err;
      await new Promise((r) => setTimeout(r, 400 * (attempt + 1)));
    }
  }
  throw last;
}

const coinFormat = new Intl.NumberFormat();

/** 1234 -> "1,234". */
export function formatCoins(n) {
  return coinFormat.format(Number(n) || 0);
}

/** Minor units -> "$4.79". */
export function formatMoney(amount, currency = 'usd') {
  try {
    return new Intl.NumberFormat(undefined, { style: 'currency', currency: String(currency).toUpperCase() }).format((Number(amount) || 0) / 100);
  } catch {
    return `${((Number(amount) || 0) / 100).toFixed(2)} ${String(currency).toUpperCase()}`;
  }
}

/** The coin glyph. */
export function coinIcon(size = 16) {
  return h('img.coin', { src: '/static/gifts/coin.svg', alt: '', width: size, height: size, 'aria-hidden': 'true' });
}

/** "🪙 1,234" as elements. */
export function coins(n, size = 16) {
  return h('span.coins', {}, coinIcon(size), h('span.coins-n', { text: formatCoins(n) }));
}

/**
 * The user's wallet, kept current: loaded once, then updated by the
 * server's `wallet` events on the page's socket. `onChange(w)` runs for
 * every new balance (and once `null` when logged out).
 */
export class WalletWatch {
  constructor(rt) {
    this.rt = rt;
    this.wallet = null;
    this.listeners = new Set();
    if (rt) {
      rt.on('wallet', (w) => this.set(w));
      // After a reconnect the socket may have missed an event: read it again.
      rt.on('open', () => this.load());
    }
  }

  onChange(fn) {
    this.listeners.add(fn);
    if (this.wallet) fn(this.wallet);
    return () => this.listeners.delete(fn);
  }

  set(w) {
    this.wallet = w;
    for (const fn of this.listeners) fn(w);
  }

  async load() {
    if (!currentUser()) {
      this.set(null);
      return null;
    }
    try {
      this.set(await api('/api/wallet'));
    } catch {
      /* keep what we had */
    }
    return this.wallet;
  }

  /** Coins that can be spent now (promotional first). */
  spendable() {
    return this.wallet ? this.wallet.coins + this.wallet.promo_coins : 0;
  }
}

/** The purchase that needs coins: "Not enough coins" with a way to get them. */
export function describePayError(err) {
  if (err && err.code === 'insufficient_funds') return 'Not enough coins. Top up your wallet to send this.';
  if (err && err.code === 'idempotency_conflict') return 'This was already sent with other details; try again.';
  if (err && err.code === 'not_allowed') return err.message || 'Not allowed.';
  return (err && err.message) || 'Something went wrong.';
}
