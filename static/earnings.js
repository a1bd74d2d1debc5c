// A creator's earnings: balances, a hand-drawn SVG chart of coins per day
// (bars, with the running total as a line), by stream and by kind, and
// payouts. Balances follow the server's `wallet` events. ES module.

import { $, h, describeError, formatWhen, toast } from './common.js';
import { api, currentUser, loginUrl, renderAccount } from './session.js';
import { Realtime } from './realtime.js';
import { WalletWatch, coins, formatCoins, pay } from './money.js';

const KIND = { tip: 'Tips', gift: 'Gifts', ticket: 'Tickets', subscription: 'Subscriptions' };
const SVG = 'http://www.w3.org/2000/svg';
const rt = new Realtime({ name: 'earnings' });
const watch = new WalletWatch(rt);
const page = { earnings: null, payouts: [] };
window.onairEarnings = page;

function s(tag, attrs = {}, ...children) {
  const el = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs)) el.setAttribute(k, String(v));
  for (const c of children) el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  return el;
}

/** A round step for the y axis: 1, 2, 5 × 10^n. */
function niceStep(max, ticks = 4) {
  const raw = Math.max(1, max) / ticks;
  const mag = 10 ** Math.floor(Math.log10(raw));
  return [1, 2, 5, 10].map((m) => m * mag).find((st) => st >= raw);
}

/** Bars per day, gridlines, axes and the running total, drawn by hand. */
export function drawChart(svg, days) {
  // Drawn at the size it is shown, so its text stays readable on a phone.
  const W = Math.max(300, Math.round(svg.clientWidth || svg.parentElement.clientWidth || 800));
  const H = W < 500 ? 200 : 260;
  svg.setAttribute('viewBox', `0 0 ${W} ${H}`);
  const pad = { l: W < 500 ? 40 : 52, r: W < 500 ? 40 : 52, t: 14, b: 30 };
  const iw = W - pad.l - pad.r;
  const ih = H - pad.t - pad.b;
  const max = Math.max(1, ...days.map((d) => d.coins));
  const step = niceStep(max);
  const top = Math.ceil(max / step) * step;
  const total = days.reduce((a, d) => a + d.coins, 0);
  const kids = [s('defs', {}, s('linearGradient', { id: 'bar-fill', x1: 0, y1: 0, x2: 0, y2: 1 }, s('stop', { offset: 0, 'stop-color': '#ff6b7c' }), s('stop', { offset: 1, 'stop-color': '#7c6cff' })))];
  for (let v = 0; v <= top; v += step) {
    const y = pad.t + ih - (v / top) * ih;
    kids.push(s('line', { class: v === 0 ? 'axis' : 'grid', x1: pad.l, x2: W - pad.r, y1: y, y2: y }));
    kids.push(s('text', { x: pad.l - 8, y: y + 4, 'text-anchor': 'end' }, formatCoins(v)));
  }
  const slot = iw / days.length;
  const bw = Math.max(2, Math.min(28, slot * 0.7));
  const labelEvery = Math.ceil(days.length / (W < 500 ? 4 : 8));
  let run = 0;
  const line = [];
  days.forEach((d, i) => {
    const x = pad.l + i * slot + (slot - bw) / 2;
    const bh = (d.coins / top) * ih;
    if (d.coins > 0) {
      const r = Math.min(4, bw / 3, bh / 2);
      kids.push(s('rect', { class: 'bar', x, y: pad.t + ih - bh, width: bw, height: Math.max(1, bh), rx: r }, s('title', {}, `${d.day}: ${formatCoins(d.coins)} coins`)));
    }
    const last = i === days.length - 1;
    if ((i % labelEvery === 0 && (last || days.length - 1 - i >= labelEvery / 2)) || last) {
      const label = new Date(`${d.day}T12:00:00`).toLocaleDateString(undefined, { day: 'numeric', month: 'short' });
      kids.push(s('text', { x: pad.l + i * slot + slot / 2, y: H - 10, 'text-anchor': 'middle' }, label));
    }
    run += d.coins;
    line.push([pad.l + i * slot + slot / 2, pad.t + ih - (total ? (run / total) * ih : 0)]);
  });
  if (total > 0) {
    kids.push(s('path', { class: 'line', d: line.map(([x, y], i) => `${i ? 'L' : 'M'}${x.toFixed(1)} ${y.toFixed(1)}`).join(' ') }));
    kids.push(s('text', { x: W - pad.r + 6, y: pad.t + 4, 'text-anchor': 'start', fill: '#ffd76a' }, formatCoins(total)));
  }
  svg.replaceChildren(...kids);
}

async function load() {
  const days = $('#period').value;
  const tz = Intl.DateTimeFormat().resolvedOptions().timeZone || 'UTC';
  let e;
  try {
    e = await api(`/api/me/earnings?days=${days}&tz=${encodeURIComponent(tz)}`);
  } catch (err) {
    e = await api(`/api/me/earnings?days=${days}`).catch(() => null);
    if (!e) {
      toast(describeError(err), 'error');
      return;
    }
  }
  page.earnings = e;
  page.bars = e.by_day.filter((d) => d.coins > 0).length;
  $('#e-available').replaceChildren(coins(e.available, 24));
  $('#e-pending').replaceChildren(coins(e.pending, 24));
  $('#e-payouts').replaceChildren(coins(e.payouts_pending, 24));
  $('#e-paid').replaceChildren(coins(e.paid_out, 24));
  $('#e-total').replaceChildren(coins(e.total, 16));
  drawChart($('#chart'), e.by_day);
  $('#by-stream').replaceChildren(
    ...e.by_stream.map((r) =>
      h('tr', {}, h('td', {}, r.stream_id ? h('a', { href: `/watch/${r.stream_id}`, text: r.title || `Stream ${r.stream_id}` }) : h('span.muted', { text: 'Subscriptions (no stream)' })), h('td.num', {}, coins(r.coins, 14))),
    ),
  );
  $('#by-stream-empty').hidden = e.by_stream.length > 0;
  const max = Math.max(1, ...e.by_kind.map((k) => k.coins));
  $('#by-kind').replaceChildren(
    ...(e.by_kind.length
      ? e.by_kind.map((k) => h('div.breakdown-row', {}, h('span', { text: KIND[k.kind] || k.kind }), h('div.breakdown-bar', {}, h('span', { style: `width:${(100 * k.coins) / max}%` })), coins(k.coins, 14)))
      : [h('p.muted', { text: 'Nothing earned in this period.' })]),
  );
}

async function loadPayouts() {
  page.payouts = await api('/api/me/payouts');
  $('#payouts').replaceChildren(
    ...page.payouts.map((p) => h('tr', {}, h('td', { text: formatWhen(p.created_at) }), h('td.num', {}, coins(p.amount, 14)), h('td', { class: `status-${p.status}`, text: p.status }), h('td.muted', { text: p.note || '' }))),
  );
}

async function main() {
  renderAccount({ current: 'earnings' });
  if (!currentUser()) {
    $('#gate').hidden = false;
    $('#gate-login').href = loginUrl();
    return;
  }
  $('#earnings').hidden = false;
  try {
    const cfg = await api('/api/config', { auth: false });
    if (cfg.payments && typeof cfg.payments.creator_share === 'number') $('#e-platform').textContent = String(100 - cfg.payments.creator_share);
  } catch {
    /* keep the default */
  }
  $('#period').addEventListener('change', load);
  let resize = null;
  window.addEventListener('resize', () => {
    clearTimeout(resize);
    resize = setTimeout(() => page.earnings && drawChart($('#chart'), page.earnings.by_day), 150);
  });
  $('#payout-form').addEventListener('submit', async (ev) => {
    ev.preventDefault();
    const n = Math.floor(Number($('#payout-amount').value));
    if (!(n >= 100)) {
      toast('A payout is at least 100 coins', 'error');
      return;
    }
    $('#payout-send').disabled = true;
    try {
      await pay('/api/me/payouts', { amount: n });
      toast('Payout requested', 'ok');
      $('#payout-amount').value = '';
      await Promise.all([load(), loadPayouts()]);
    } catch (err) {
      toast(err.code === 'insufficient_funds' ? 'You have fewer coins of earnings available.' : describeError(err), 'error');
    } finally {
      $('#payout-send').disabled = false;
    }
  });
  // Every change of balance (a gift arrived, a payout was decided) redraws.
  watch.onChange(() => load().catch(() => {}));
  rt.connect();
  await Promise.all([load(), loadPayouts()]).catch((err) => toast(describeError(err), 'error'));
}

main();
