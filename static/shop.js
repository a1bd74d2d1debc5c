// Live shopping in the pages: the watch page's shop (the pinned product
// card over the video, the flash-sale banner with its countdown and a live
// "N left" bar, the shelf, buying in two taps with coins) and the studio's
// seller console (add a product to the stream, pin it, set a live price,
// start a flash sale, drop a voucher, the sales as they come). Everything
// live comes over the page's WebSocket: `product_added`, `product_removed`,
// `product_pinned`, `price_changed`, `flash_sale`, `flash_sale_stock`,
// `sold_out`, `voucher` and, for the seller, `shop_sales`. Countdowns run on
// the server's clock (each sale carries `server_time`). ES module, no build
// step.

import { h, toast, setText, describeError } from './common.js';
import { api, currentUser, loginUrl, viewerKey } from './session.js';
import { coinIcon, formatCoins, newKey, pay, describePayError } from './money.js';

const EVENTS = ['product_added', 'product_removed', 'product_pinned', 'price_changed', 'flash_sale', 'flash_sale_stock', 'sold_out', 'voucher'];
const ADDRESS_KEY = 'onair.shipping';

const ORDER_REFUSAL = {
  sold_out: 'Sold out.',
  limit_reached: 'You have bought as many as this sale allows.',
  sale_not_started: 'The sale has not started yet.',
  sale_ended: 'The sale has ended.',
  voucher_invalid: null,
  insufficient_stock: null,
  stream_not_live: 'Orders open while the stream is live.',
};

function orderRefusal(err) {
  if (err && err.code in ORDER_REFUSAL) return ORDER_REFUSAL[err.code] || err.message;
  return describePayError(err);
}

/** mm:ss of a number of milliseconds (never negative). */
function clock(ms) {
  const s = Math.max(0, Math.ceil(ms / 1000));
  return `${Math.floor(s / 60)}:${String(s % 60).padStart(2, '0')}`;
}

function price(n) {
  return h('span.shop-price', {}, coinIcon(14), ` ${formatCoins(n)}`);
}

function thumb(product, size = 56) {
  const src = product && product.images && product.images[0];
  return src ? h('img.shop-thumb', { src, alt: '', width: size, height: size }) : h('span.shop-thumb.shop-thumb-none', { 'aria-hidden': 'true' }, (product && product.title ? product.title[0] : '?').toUpperCase());
}

/** The state of a sale now, on the server's clock. */
function saleState(sale, skew) {
  if (!sale) return null;
  if (sale.state === 'sold_out' || sale.remaining === 0) return 'sold_out';
  const now = Date.now() + skew;
  if (now >= new Date(sale.ends_at).getTime()) return 'ended';
  if (now >= new Date(sale.starts_at).getTime()) return 'active';
  if (now >= new Date(sale.countdown_at).getTime()) return 'countdown';
  return 'scheduled';
}

// ------------------------------------------------------------------ the watch page

export class ShopView {
  /**
   * `rt`: the page's Realtime; `stage`: the video stage (the pinned card and
   * the sale banner go over it); `root`: the shelf card.
   */
  constructor({ rt, stage, root }) {
    this.rt = rt;
    this.root = root;
    this.streamId = null;
    this.items = new Map(); // product id -> shelf item
    this.sales = new Map(); // product id -> latest sale
    this.skew = 0; // server clock - ours
    this.busy = false;
    this.pinCard = h('div.shop-pin', { hidden: true, 'aria-live': 'polite' });
    this.banner = h('div.flash-banner', { hidden: true, 'aria-live': 'polite' });
    this.sheet = h('div.buy-sheet', { hidden: true, role: 'dialog', 'aria-modal': 'true', 'aria-label': 'Buy' });
    stage.append(this.pinCard, this.banner);
    // The sheet is the page's, not the stage's: on a phone the stage is a layer under the chat.
    document.body.append(this.sheet);
    this.list = h('ul.shelf-list', { 'aria-label': 'Products' });
    root.replaceChildren(h('div.card-head', {}, h('h2', {}, 'Shop'), h('span.spacer'), h('span.card-note.shelf-note')), h('div.card-body', {}, this.list));
    root.hidden = true;
    for (const t of EVENTS) rt.on(t, (msg) => this.event(msg));
    this.timer = setInterval(() => this.tick(), 250);
    window.onair = window.onair || {};
  }

  async load(streamId) {
    this.streamId = streamId;
    this.items.clear();
    this.sales.clear();
    try {
      const shelf = await api(`/api/streams/${streamId}/products`, { auth: !!currentUser() });
      for (const it of shelf) {
        this.items.set(it.product.id, it);
        if (it.flash_sale) this.setSale(it.flash_sale);
      }
    } catch {
      /* no shop for this stream */
    }
    this.render();
  }

  clear() {
    this.streamId = null;
    this.items.clear();
    this.sales.clear();
    this.closeSheet();
    this.render();
  }

  setSale(sale) {
    if (sale.server_time) this.skew = new Date(sale.server_time).getTime() - Date.now();
    const cur = this.sales.get(sale.product_id);
    // A sold-out sale stays sold out: a late stock push cannot undo it.
    if (cur && cur.id === sale.id && cur.state === 'sold_out') sale = { ...sale, state: 'sold_out', remaining: 0 };
    this.sales.set(sale.product_id, sale);
  }

  event(msg) {
    if (msg.stream_id != null && msg.stream_id !== this.streamId) return;
    if (msg.sale && msg.sale.stream_id !== this.streamId) return;
    if (msg.voucher && msg.voucher.stream_id !== this.streamId) return;
    switch (msg.type) {
      case 'product_added':
      case 'product_pinned':
        if (msg.type === 'product_pinned') for (const it of this.items.values()) it.pinned = false;
        if (msg.item) {
          this.items.set(msg.item.product.id, msg.item);
          if (msg.item.flash_sale) this.setSale(msg.item.flash_sale);
        }
        break;
      case 'product_removed':
        this.items.delete(msg.product_id);
        break;
      case 'price_changed': {
        const it = this.items.get(msg.product_id);
        if (it) Object.assign(it, { price: msg.price, live_price: msg.live_price });
        break;
      }
      case 'flash_sale':
        this.setSale(msg.sale);
        break;
      case 'flash_sale_stock': {
        const s = this.sales.get(msg.product_id);
        if (s && s.id === msg.flash_sale_id && s.state !== 'sold_out') s.remaining = msg.remaining;
        break;
      }
      case 'sold_out': {
        const s = this.sales.get(msg.product_id);
        if (s && s.id === msg.flash_sale_id) Object.assign(s, { state: 'sold_out', remaining: 0 });
        const it = this.items.get(msg.product_id);
        if (it && msg.product_stock != null) it.product.stock = msg.product_stock;
        break;
      }
      case 'voucher':
        toast(`Voucher ${msg.voucher.code}: ${msg.voucher.percent_off ? `${msg.voucher.percent_off}% off` : `${formatCoins(msg.voucher.amount_off)} off`}`, 'ok');
        this.voucher = msg.voucher.code;
        break;
      default:
        return;
    }
    this.render();
  }

  pinned() {
    for (const it of this.items.values()) if (it.pinned) return it;
    return null;
  }

  /** The sale shown in the banner: one counting down or open, else the pinned product's. */
  bannerSale() {
    let pick = null;
    for (const s of this.sales.values()) {
      const st = saleState(s, this.skew);
      if (st === 'countdown' || st === 'active') return s;
      if (!pick || s.id > pick.id) pick = s;
    }
    const pin = this.pinned();
    if (pick && (saleState(pick, this.skew) === 'sold_out' || (pin && pin.product.id === pick.product_id))) return pick;
    return null;
  }

  render() {
    const items = [...this.items.values()];
    this.root.hidden = items.length === 0;
    setText(this.root.querySelector('.shelf-note'), items.length ? `${items.length} ${items.length === 1 ? 'product' : 'products'}` : '');
    this.list.replaceChildren(
      ...items.map((it) => {
        const s = this.sales.get(it.product.id);
        const st = saleState(s, this.skew);
        // A sold-out sale leaves the product's own stock on sale at its price.
        const out = st !== 'active' && it.product.stock === 0;
        return h(
          'li.shelf-item',
          { dataset: { product: it.product.id, pinned: String(it.pinned) } },
          thumb(it.product, 48),
          h('div.shelf-info', {}, h('span.shelf-title', { text: it.product.title }), h('span.shelf-sub', {}, price(st === 'active' ? s.price : it.price), it.live_price != null ? h('span.chip.chip-live', { text: 'Live price' }) : null)),
          h('button.btn.btn-sm.shelf-buy', { type: 'button', disabled: out, onclick: () => this.openSheet(it.product.id) }, out ? 'Sold out' : 'Buy'),
        );
      }),
    );
    const pin = this.pinned();
    this.pinCard.hidden = !pin;
    if (pin) {
      const s = this.sales.get(pin.product.id);
      const st = saleState(s, this.skew);
      const out = st !== 'active' && pin.product.stock === 0;
      this.pinCard.replaceChildren(
        thumb(pin.product, 52),
        h('div.shop-pin-info', {}, h('span.shop-pin-title', { text: pin.product.title }), price(st === 'active' ? s.price : pin.price)),
        h('button.btn.btn-live.btn-sm.shop-pin-buy', { type: 'button', disabled: out, onclick: () => this.openSheet(pin.product.id) }, out ? 'Sold out' : 'Buy'),
      );
      if (this.viewed !== pin.product.id) {
        this.viewed = pin.product.id;
        this.interact(pin.product.id, 'view');
      }
    }
    this.tick();
    window.onair.shop = {
      pinned: pin ? pin.product.id : null,
      shelf: items.map((i) => ({ id: i.product.id, price: i.price, pinned: i.pinned })),
      sales: [...this.sales.values()].map((s) => ({ id: s.id, product: s.product_id, state: saleState(s, this.skew), remaining: s.remaining })),
    };
  }

  /** The banner's countdown and "N left" bar, four times a second. */
  tick() {
    const s = this.bannerSale();
    this.banner.hidden = !s || !this.streamId;
    if (!s) return;
    const st = saleState(s, this.skew);
    const now = Date.now() + this.skew;
    const it = this.items.get(s.product_id);
    let label;
    let time = '';
    if (st === 'countdown' || st === 'scheduled') {
      label = 'Flash sale starts in';
      time = clock(new Date(s.starts_at).getTime() - now);
    } else if (st === 'active') {
      label = 'Flash sale ends in';
      time = clock(new Date(s.ends_at).getTime() - now);
    } else if (st === 'sold_out') {
      label = 'Sold out';
    } else {
      label = 'Flash sale ended';
    }
    if (this.banner.dataset.state !== st || this.banner.dataset.sale !== String(s.id)) {
      this.banner.dataset.state = st;
      this.banner.dataset.sale = String(s.id);
      const bar = h('span.flash-bar', {}, h('span.flash-fill'));
      this.banner.replaceChildren(
        h('div.flash-top', {}, h('span.flash-label'), h('span.flash-time.mono')),
        h('div.flash-mid', {}, h('span.flash-title', { text: it ? it.product.title : 'Flash sale' }), price(s.price), h('span.flash-left')),
        bar,
        h('button.btn.btn-live.btn-sm.flash-buy', { type: 'button', onclick: () => this.openSheet(s.product_id, s.id) }, 'Buy now'),
      );
    }
    setText(this.banner.querySelector('.flash-label'), label);
    setText(this.banner.querySelector('.flash-time'), time);
    setText(this.banner.querySelector('.flash-left'), st === 'sold_out' ? 'Sold out' : `${s.remaining} left`);
    this.banner.querySelector('.flash-fill').style.width = `${Math.round((100 * s.remaining) / Math.max(1, s.quantity))}%`;
    const buy = this.banner.querySelector('.flash-buy');
    buy.disabled = st !== 'active' || this.busy;
    buy.hidden = st === 'sold_out' || st === 'ended';
    if (window.onair.shop) window.onair.shop.banner = { state: st, time, left: s.remaining, label };
  }

  interact(product, kind) {
    if (!this.streamId) return;
    api(`/api/streams/${this.streamId}/products/${product}/interactions`, { method: 'POST', body: { kind }, auth: !!currentUser(), headers: { 'X-OnAir-Viewer': viewerKey() } }).catch(() => {});
  }

  // Tap one: the sheet with the price and where it goes. Tap two: pay.
  openSheet(productId, saleId = null) {
    if (!currentUser()) {
      window.location.href = loginUrl();
      return;
    }
    const it = this.items.get(productId);
    if (!it) return;
    this.interact(productId, 'click');
    const s = this.sales.get(productId);
    const inSale = s && saleState(s, this.skew) === 'active';
    const saved = (() => {
      try {
        return JSON.parse(localStorage.getItem(ADDRESS_KEY) || 'null');
      } catch {
        return null;
      }
    })();
    const field = (name, label, value = '', attrs = {}) => h('label.field', {}, h('span.label', { text: label }), h(`input.input.ship-${name}`, { name, value, required: name !== 'postal_code', ...attrs }));
    const address = h(
      'fieldset.ship-fields',
      { hidden: !!saved },
      field('name', 'Name', saved?.name || currentUser().display_name || ''),
      field('address', 'Address', saved?.address || ''),
      h('div.ship-row', {}, field('city', 'City', saved?.city || ''), field('postal_code', 'Postal code', saved?.postal_code || ''), field('country', 'Country', saved?.country || '', { maxlength: 2, placeholder: 'PT' })),
    );
    const voucher = h('input.input.buy-voucher', { name: 'voucher', placeholder: 'Voucher code', value: this.voucher || '', maxlength: 32 });
    const error = h('p.field-error.buy-error', { hidden: true });
    const payBtn = h('button.btn.btn-live.btn-block.buy-pay', { type: 'submit' }, 'Pay ', coinIcon(16), ` ${formatCoins(inSale ? s.price : it.price)}`);
    const form = h(
      'form.buy-form',
      { autocomplete: 'on', onsubmit: (e) => (e.preventDefault(), this.buy(form, productId, inSale ? s.id : saleId, error, payBtn)) },
      h('div.buy-head', {}, thumb(it.product, 56), h('div.buy-what', {}, h('strong', { text: it.product.title }), price(inSale ? s.price : it.price), inSale ? h('span.chip.chip-live', { text: 'Flash sale' }) : null), h('button.icon-btn.buy-close', { type: 'button', 'aria-label': 'Close', onclick: () => this.closeSheet() }, '×')),
      saved ? h('p.buy-ship.muted.small', {}, `Ships to ${saved.name}, ${saved.city} (${saved.country}) `, h('button.link-btn', { type: 'button', onclick: () => (address.hidden = false) }, 'change')) : null,
      address,
      voucher,
      error,
      payBtn,
    );
    this.sheet.replaceChildren(form);
    this.sheet.hidden = false;
    this.interact(productId, 'cart');
    payBtn.focus();
  }

  closeSheet() {
    this.sheet.hidden = true;
    this.sheet.replaceChildren();
  }

  async buy(form, productId, saleId, error, btn) {
    if (this.busy) return;
    const v = (n) => form.querySelector(`[name="${n}"]`).value.trim();
    const shipping = { name: v('name'), address: v('address'), city: v('city'), country: v('country').toUpperCase() };
    if (v('postal_code')) shipping.postal_code = v('postal_code');
    if (!shipping.name || !shipping.address || !shipping.city || shipping.country.length !== 2) {
      form.querySelector('.ship-fields').hidden = false;
      error.hidden = false;
      error.textContent = 'Where should it go? Name, address, city and a two-letter country code.';
      return;
    }
    const body = { product: productId, quantity: 1, shipping };
    if (saleId) body.flash_sale = saleId;
    if (v('voucher')) body.voucher = v('voucher');
    this.busy = true;
    btn.disabled = true;
    error.hidden = true;
    try {
      const order = await pay(`/api/streams/${this.streamId}/orders`, body, { key: newKey() });
      localStorage.setItem(ADDRESS_KEY, JSON.stringify(shipping));
      window.onair.lastOrder = { id: order.id, status: order.status, total: order.total };
      this.sheet.replaceChildren(h('div.buy-done', {}, h('strong', { text: 'Order placed' }), h('p', {}, `${order.product_title}: paid `, coinIcon(14), ` ${formatCoins(order.total)}. The seller ships to ${shipping.city}.`), h('button.btn.btn-block', { type: 'button', onclick: () => this.closeSheet() }, 'Done')));
    } catch (err) {
      window.onair.lastOrderError = err.code || 'error';
      error.hidden = false;
      error.textContent = orderRefusal(err);
      if (err.code === 'sold_out') {
        const s = this.sales.get(productId);
        if (s && (!saleId || s.id === saleId)) Object.assign(s, { state: 'sold_out', remaining: 0 });
        this.render();
      }
    } finally {
      this.busy = false;
      btn.disabled = false;
      this.tick();
    }
  }
}

// ------------------------------------------------------------------ the studio

export class SellerConsole {
  constructor({ rt, root }) {
    this.rt = rt;
    this.root = root;
    this.streamId = null;
    this.products = [];
    this.shelf = new Map();
    this.sales = new Map();
    root.classList.add('seller-console');
    root.hidden = true;
    this.figures = h('div.sc-figures', {}, ...['orders', 'units', 'revenue', 'pending'].map((k) => h('div.stat', {}, h('span.stat-label', { text: k === 'pending' ? 'Awaiting payment' : k[0].toUpperCase() + k.slice(1) }), h(`span.stat-value.sc-${k}`, { text: '0' }))));
    this.list = h('ul.sc-products', { 'aria-label': 'Your products' });
    this.voucherForm = h(
      'form.sc-voucher',
      { autocomplete: 'off', onsubmit: (e) => (e.preventDefault(), this.dropVoucher()) },
      h('input.input.sc-code', { placeholder: 'CODE', maxlength: 32, 'aria-label': 'Voucher code' }),
      h('input.input.sc-pct', { type: 'number', min: 1, max: 100, value: 10, 'aria-label': 'Percent off' }),
      h('span.muted', { text: '% off, up to' }),
      h('input.input.sc-uses', { type: 'number', min: 1, value: 50, 'aria-label': 'Uses' }),
      h('button.btn.btn-sm', { type: 'submit' }, 'Drop voucher'),
    );
    root.replaceChildren(
      h('div.card-head', {}, h('h2', {}, 'Shop'), h('span.spacer'), h('a.card-note', { href: '/dashboard' }, 'Products')),
      h('div.card-body', {}, this.figures, this.list, h('h3.sc-sub', {}, 'Voucher'), this.voucherForm),
    );
    for (const t of [...EVENTS, 'shop_sales']) rt.on(t, (msg) => this.event(msg));
    window.onair = window.onair || {};
  }

  async setStream(id) {
    if (id === this.streamId) return;
    this.streamId = id;
    this.root.hidden = id == null;
    if (id == null) return;
    try {
      const [products, shelf, sales] = await Promise.all([api('/api/products'), api(`/api/streams/${id}/products`), api(`/api/streams/${id}/shop/analytics`)]);
      this.products = products;
      this.shelf = new Map(shelf.map((i) => [i.product.id, i]));
      for (const i of shelf) if (i.flash_sale) this.sales.set(i.product.id, i.flash_sale);
      this.setFigures(sales);
    } catch (err) {
      toast(`Shop: ${describeError(err)}`, 'error');
    }
    this.render();
  }

  setFigures(f) {
    for (const k of ['orders', 'units', 'revenue', 'pending']) setText(this.root.querySelector(`.sc-${k}`), k === 'revenue' ? formatCoins(f[k] || 0) : String(f[k] || 0));
    window.onair.sellerFigures = { orders: f.orders || 0, revenue: f.revenue || 0 };
  }

  event(msg) {
    if (msg.type === 'shop_sales') {
      if (msg.stream_id === this.streamId) this.setFigures(msg);
      return;
    }
    const sid = msg.stream_id ?? (msg.sale && msg.sale.stream_id);
    if (sid !== this.streamId) return;
    if (msg.item) this.shelf.set(msg.item.product.id, msg.item);
    if (msg.type === 'product_pinned') for (const [id, it] of this.shelf) it.pinned = msg.item ? id === msg.item.product.id : false;
    if (msg.type === 'product_removed') this.shelf.delete(msg.product_id);
    if (msg.type === 'price_changed' && this.shelf.has(msg.product_id)) Object.assign(this.shelf.get(msg.product_id), { price: msg.price, live_price: msg.live_price });
    if (msg.sale) this.sales.set(msg.sale.product_id, msg.sale);
    if (msg.type === 'flash_sale_stock' && this.sales.has(msg.product_id)) this.sales.get(msg.product_id).remaining = msg.remaining;
    if (msg.type === 'sold_out' && this.sales.has(msg.product_id)) Object.assign(this.sales.get(msg.product_id), { state: 'sold_out', remaining: 0 });
    if (msg.type === 'flash_sale' || msg.type === 'sold_out') {
      // The sale's quantity left the product's stock: show what is left.
      api('/api/products').then((p) => ((this.products = p), this.render())).catch(() => {});
    }
    this.render();
  }

  async act(what, fn) {
    try {
      await fn();
    } catch (err) {
      toast(`${what}: ${describeError(err)}`, 'error');
    }
  }

  render() {
    if (!this.products.length) {
      this.list.replaceChildren(h('li.muted', {}, 'No products yet: add them from your dashboard (or POST /api/products).'));
      return;
    }
    this.list.replaceChildren(
      ...this.products.map((p) => {
        const on = this.shelf.get(p.id);
        const sale = this.sales.get(p.id);
        const base = `/api/streams/${this.streamId}/products`;
        const row = h('li.sc-product', { dataset: { product: p.id, shelf: String(!!on), pinned: String(!!(on && on.pinned)) } });
        const head = h('div.sc-head', {}, thumb(p, 40), h('div.sc-info', {}, h('strong', { text: p.title }), h('span.muted.small', {}, price(on ? on.price : p.price), ` · ${p.stock} in stock`)));
        const actions = h('div.sc-actions');
        if (!on) {
          actions.append(h('button.btn.btn-sm.sc-add', { type: 'button', onclick: () => this.act('Add', () => api(base, { method: 'POST', body: { product: p.id } })) }, 'Add to stream'));
        } else {
          actions.append(
            on.pinned
              ? h('button.btn.btn-sm.btn-ghost.sc-unpin', { type: 'button', onclick: () => this.act('Unpin', () => api(`${base}/${p.id}/pin`, { method: 'DELETE' })) }, 'Unpin')
              : h('button.btn.btn-sm.sc-pin', { type: 'button', onclick: () => this.act('Pin', () => api(`${base}/${p.id}/pin`, { method: 'POST' })) }, 'Pin'),
          );
          const live = h('input.input.sc-live-price', { type: 'number', min: 0, value: on.live_price ?? '', placeholder: String(p.price), 'aria-label': 'Live price' });
          actions.append(
            h('form.sc-inline', { onsubmit: (e) => (e.preventDefault(), this.act('Live price', () => api(`${base}/${p.id}`, { method: 'PATCH', body: { live_price: live.value === '' ? null : Number(live.value) } }))) }, live, h('button.btn.btn-sm.btn-ghost', { type: 'submit' }, 'Set price')),
          );
        }
        row.append(head, actions);
        if (on) {
          const st = sale && saleState(sale, 0);
          if (sale && (st === 'countdown' || st === 'active' || st === 'sold_out')) {
            row.append(h('p.sc-sale', { dataset: { state: st } }, `Flash sale ${st.replace('_', ' ')}: ${sale.remaining} of ${sale.quantity} left at `, price(sale.price)));
          } else {
            const q = h('input.input.sc-qty', { type: 'number', min: 1, value: Math.min(10, Math.max(1, p.stock)), 'aria-label': 'Quantity' });
            const sp = h('input.input.sc-sale-price', { type: 'number', min: 0, value: Math.max(0, Math.floor(p.price * 0.7)), 'aria-label': 'Sale price' });
            const cd = h('input.input.sc-countdown', { type: 'number', min: 10, max: 300, value: 10, 'aria-label': 'Countdown seconds' });
            const du = h('input.input.sc-duration', { type: 'number', min: 10, value: 120, 'aria-label': 'Duration seconds' });
            row.append(
              h(
                'form.sc-flash',
                { onsubmit: (e) => (e.preventDefault(), this.act('Flash sale', () => api(`${base}/${p.id}/flash-sales`, { method: 'POST', body: { price: Number(sp.value), quantity: Number(q.value), per_buyer_limit: 1, countdown_s: Number(cd.value), duration_s: Number(du.value) } }))) },
                h('span.sc-flash-label', { text: 'Flash sale' }),
                q,
                h('span.muted', { text: 'at' }),
                sp,
                h('span.muted', { text: 'in' }),
                cd,
                h('span.muted', { text: 's for' }),
                du,
                h('span.muted', { text: 's' }),
                h('button.btn.btn-sm.btn-live.sc-start', { type: 'submit' }, 'Start'),
              ),
            );
          }
        }
        return row;
      }),
    );
    window.onair.seller = { shelf: [...this.shelf.keys()], pinned: [...this.shelf.values()].filter((i) => i.pinned).map((i) => i.product.id), sales: [...this.sales.values()].map((s) => ({ id: s.id, state: s.state, remaining: s.remaining })) };
  }

  async dropVoucher() {
    const f = this.voucherForm;
    const code = f.querySelector('.sc-code').value.trim();
    await this.act('Voucher', async () => {
      const v = await api(`/api/streams/${this.streamId}/vouchers`, { method: 'POST', body: { code, percent_off: Number(f.querySelector('.sc-pct').value), max_uses: Number(f.querySelector('.sc-uses').value) } });
      toast(`Voucher ${v.code} dropped in the stream`, 'ok');
      f.querySelector('.sc-code').value = '';
    });
  }
}
