// The development payment provider's checkout: shows the intent, and Pay or
// Decline tell the provider, which sends OnAir a signed webhook (the same
// path a Stripe payment takes). ES module, no build step.

import { $, describeError, errorFromResponse } from './common.js';

const intent = decodeURIComponent(window.location.pathname.split('/').pop() || '');
const back = new URLSearchParams(window.location.search).get('return') || '/wallet';

export function formatMoney(amount, currency) {
  try {
    return new Intl.NumberFormat(undefined, { style: 'currency', currency: currency.toUpperCase() }).format(amount / 100);
  } catch {
    return `${(amount / 100).toFixed(2)} ${currency.toUpperCase()}`;
  }
}

function show(kind, text) {
  const el = $('#state');
  el.hidden = false;
  el.className = `alert alert-${kind}`;
  el.textContent = text;
}

function finish(paid) {
  $('#actions').hidden = true;
  const a = $('#back');
  a.hidden = false;
  a.href = `${back.startsWith('/') ? back : '/wallet'}${back.includes('?') ? '&' : '?'}intent=${encodeURIComponent(intent)}`;
  if (paid) a.classList.add('btn-live');
}

async function call(action) {
  const resp = await fetch(`/pay/dev/${encodeURIComponent(intent)}/${action}`, { method: 'POST' });
  if (!resp.ok) throw await errorFromResponse(resp);
  return resp.json();
}

function render(pi) {
  $('#amount').textContent = formatMoney(pi.amount, pi.currency);
  const coins = pi.metadata && pi.metadata.onair_coins;
  const what = pi.metadata && pi.metadata.onair_purpose;
  $('#description').textContent = pi.description || (coins ? `${coins} coins` : '');
  if (what && what !== 'top_up') $('#back').textContent = 'Back to OnAir';
  if (pi.status === 'succeeded') {
    show('ok', 'Paid. OnAir credits your coins as soon as it receives the payment’s webhook.');
    finish(true);
  } else if (pi.status === 'canceled') {
    show('bad', 'This payment was canceled.');
    finish(false);
  } else {
    $('#pay').disabled = false;
    $('#decline').disabled = false;
  }
}

async function main() {
  document.title = `Checkout ${intent} · OnAir`;
  try {
    const resp = await fetch(`/pay/dev/${encodeURIComponent(intent)}/intent`);
    if (!resp.ok) throw await errorFromResponse(resp);
    render(await resp.json());
  } catch (e) {
    show('bad', describeError(e));
    return;
  }
  $('#pay').addEventListener('click', async () => {
    $('#pay').disabled = true;
    $('#decline').disabled = true;
    $('#pay .spinner').hidden = false;
    try {
      render(await call('pay'));
    } catch (e) {
      show('bad', describeError(e));
    } finally {
      $('#pay .spinner').hidden = true;
    }
  });
  $('#decline').addEventListener('click', async () => {
    $('#decline').disabled = true;
    try {
      await call('decline');
      show('warn', 'Your card was declined (test). Nothing was charged; you can try again.');
      $('#decline').disabled = false;
    } catch (e) {
      show('bad', describeError(e));
    }
  });
}

main();
