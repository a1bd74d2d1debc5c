// The studio's filter tray: the catalogue by category (from
// /api/stream-filters), the stack in use with a strength slider each, a
// before/after toggle, the render cost, premium unlocks paid in coins,
// favourites; overlays placed by dragging them on the preview. The host's
// last stack is remembered in this browser and follows their other tabs
// (the server's `filter_applied` event).

import { h, toast, store, describeError, setText } from '../common.js';
import { api, currentUser, freshAccessToken } from '../session.js';
import { FilterPipeline, RENDERED, slotOf } from './pipeline.js';
import { overlayAt } from './overlay.js';

const STACK_STORE = 'onair.filters';
const TABS = [
  ['featured', 'Featured'],
  ['beauty', 'Beauty'],
  ['makeup', 'Makeup'],
  ['ar', 'AR'],
  ['color', 'Colour'],
  ['background', 'Background'],
  ['overlay', 'Overlays'],
  ['voice', 'Voice'],
  ['favorites', 'Favourites'],
];

function key() {
  return crypto.randomUUID ? crypto.randomUUID() : `k-${Date.now()}-${Math.random().toString(16).slice(2)}`;
}

export class FilterTray {
  /**
   * `root`: the tray's card; `preview`: the studio's <video>; `stage`: the
   * element stickers are dragged on; `onTracks(kind, track)`: the
   * published track of a kind changed (the studio replaces its sender's).
   */
  constructor({ root, preview, stage, onTracks, realtime }) {
    this.root = root;
    this.preview = preview;
    this.stage = stage;
    this.onTracks = onTracks;
    this.filters = new Map(); // id -> filter
    this.tab = 'featured';
    this.compare = false; // showing the camera as it is ("before")
    this.entries = new Map(); // slot -> {filter, params, strength}
    this.cost = null;
    this.pipeline = new FilterPipeline({
      fetchAsset: (url) => this.fetchAsset(url),
      onCost: (c) => this.showCost(c),
    });
    this.els = {
      tabs: root.querySelector('.filter-tabs'),
      grid: root.querySelector('.filter-grid'),
      stack: root.querySelector('.filter-stack'),
      cost: root.querySelector('.filter-cost'),
      compare: root.querySelector('.filter-compare'),
      clear: root.querySelector('.filter-clear'),
      search: root.querySelector('.filter-search'),
    };
    this.els.compare.addEventListener('click', () => this.toggleCompare());
    this.els.clear.addEventListener('click', () => this.clear());
    this.els.search.addEventListener('input', () => this.renderGrid());
    this.renderTabs();
    this.dragging();
    if (realtime) {
      realtime.on('filter_applied', (msg) => this.remote(msg));
    }
  }

  async fetchAsset(url) {
    const token = currentUser() ? await freshAccessToken() : null;
    const resp = await fetch(url, { headers: token ? { Authorization: `Bearer ${token}` } : {} });
    if (!resp.ok) throw new Error(`asset ${url}: ${resp.status}`);
    return resp.blob();
  }

  /** Loads the catalogue, then the remembered stack. */
  async load() {
    try {
      const page = await api('/api/stream-filters?limit=100', { auth: !!currentUser() });
      for (const f of page.filters) this.filters.set(f.id, f);
      if (currentUser()) {
        const favs = await api('/api/stream-filters/user/favorites');
        this.favorites = new Set(favs.map((f) => f.id));
        const mine = await api('/api/stream-filters/user/custom');
        for (const f of mine) this.filters.set(f.id, f);
      }
    } catch (err) {
      setText(this.els.grid, `Filters are unavailable: ${describeError(err)}`);
      return;
    }
    this.favorites = this.favorites || new Set();
    this.renderGrid();
    let saved = [];
    try {
      saved = JSON.parse(store.get(STACK_STORE, '[]')) || [];
    } catch {
      saved = [];
    }
    for (const s of saved) {
      const f = this.filters.get(s.id);
      if (f && f.unlocked && RENDERED.has(f.effect)) this.entries.set(slotOf(f), { filter: f, params: s.params || f.parameters, strength: s.strength ?? 100 });
    }
    if (this.entries.size) await this.commit({ remember: false });
    this.renderStack();
  }

  /** The camera (and microphone) changed: the pipeline follows. */
  async mediaChanged(media) {
    this.media = media;
    this.pipeline.attach(media);
    this.showPreview();
  }

  renderTabs() {
    this.els.tabs.replaceChildren(
      ...TABS.map(([id, label]) =>
        h('button.chip.filter-tab', { type: 'button', role: 'tab', 'aria-selected': String(id === this.tab), dataset: { tab: id }, onclick: () => this.selectTab(id) }, label),
      ),
    );
  }

  selectTab(id) {
    this.tab = id;
    this.renderTabs();
    this.renderGrid();
    // On a phone the tabs scroll sideways: keep the chosen one in sight.
    const tabs = this.els.tabs;
    const sel = tabs.querySelector('[aria-selected="true"]');
    if (sel && tabs.scrollWidth > tabs.clientWidth) {
      const t = tabs.getBoundingClientRect();
      const r = sel.getBoundingClientRect();
      if (r.left < t.left || r.right > t.right) tabs.scrollLeft += r.left - t.left - (t.width - r.width) / 2;
    }
  }

  visible() {
    const q = this.els.search.value.trim().toLowerCase();
    let list = [...this.filters.values()].filter((f) => f.enabled !== false);
    if (q) list = list.filter((f) => `${f.name} ${f.description} ${f.category}`.toLowerCase().includes(q));
    else if (this.tab === 'featured') list = list.filter((f) => f.featured);
    else if (this.tab === 'favorites') list = list.filter((f) => this.favorites.has(f.id));
    else list = list.filter((f) => f.category === this.tab);
    return list;
  }

  renderGrid() {
    const list = this.visible();
    const active = new Set([...this.entries.values()].map((e) => e.filter.id));
    this.els.grid.replaceChildren(
      ...list.map((f) => {
        const badge = !f.premium ? h('span.filter-badge', {}, 'Free') : f.unlocked ? h('span.filter-badge.filter-badge-owned', {}, 'Unlocked') : h('span.filter-badge.filter-badge-locked', {}, `${f.price_coins} coins`);
        const stars = f.ratings ? h('span.filter-rating', { title: `${f.rating} from ${f.ratings} ratings` }, `★ ${f.rating}`) : null;
        const fav = currentUser()
          ? h('button.filter-fav', { type: 'button', 'aria-pressed': String(this.favorites.has(f.id)), title: this.favorites.has(f.id) ? 'Remove from favourites' : 'Add to favourites', 'aria-label': 'Favourite', onclick: (ev) => { ev.stopPropagation(); this.toggleFavorite(f); } }, this.favorites.has(f.id) ? '♥' : '♡')
          : null;
        return h(
          'div.filter-tile',
          { dataset: { id: f.id, category: f.category, active: String(active.has(f.id)) }, role: 'button', tabindex: '0', 'aria-pressed': String(active.has(f.id)), onclick: () => this.pick(f), onkeydown: (ev) => { if (ev.key === 'Enter' || ev.key === ' ') { ev.preventDefault(); this.pick(f); } } },
          h('span.filter-swatch', { dataset: { effect: f.effect, category: f.category, id: f.base || f.id } }),
          h('span.filter-name', {}, f.name),
          h('span.filter-meta', {}, badge, stars, fav),
        );
      }),
    );
    if (!list.length) this.els.grid.append(h('p.filter-empty', {}, this.tab === 'favorites' ? 'No favourites yet: tap ♡ on a filter.' : 'No filters here.'));
  }

  renderStack() {
    const rows = [...this.entries.entries()].map(([slot, e]) => {
      const slider = h('input.filter-strength', { type: 'range', min: '0', max: '100', step: '1', value: String(e.strength), 'aria-label': `${e.filter.name} strength` });
      slider.addEventListener('input', () => {
        e.strength = Number(slider.value);
        this.pipeline.overlaysChanged();
        this.commit({ apply: false });
      });
      return h(
        'div.filter-row',
        { dataset: { slot, id: e.filter.id } },
        h('span.filter-row-name', {}, e.filter.name),
        slider,
        h('button.btn.btn-icon.btn-sm.filter-remove', { type: 'button', title: `Remove ${e.filter.name}`, 'aria-label': `Remove ${e.filter.name}`, onclick: () => this.remove(slot) }, '×'),
      );
    });
    this.els.stack.replaceChildren(...(rows.length ? rows : [h('p.filter-empty', {}, 'No filter on. Pick one above: they stack.')]));
    this.els.clear.hidden = !rows.length;
  }

  async pick(f) {
    const slot = slotOf(f);
    const current = this.entries.get(slot);
    if (current && current.filter.id === f.id) return this.remove(slot);
    if (!RENDERED.has(f.effect)) {
      toast('This filter cannot be rendered here yet.', 'info', 5000);
      return;
    }
    if (f.premium && !f.unlocked) {
      if (!(await this.unlock(f))) return;
      f = this.filters.get(f.id);
    }
    this.entries.set(slot, { filter: f, params: { ...f.parameters }, strength: 100 });
    await this.commit({ apply: f.id });
  }

  remove(slot) {
    this.entries.delete(slot);
    return this.commit({ apply: false });
  }

  clear() {
    this.entries.clear();
    return this.commit({ apply: false });
  }

  /** Buys a premium filter (asks first). True when it is unlocked. */
  async unlock(f) {
    if (!currentUser()) {
      toast(`Log in to unlock ${f.name}.`, 'info');
      return false;
    }
    if (!window.confirm(`Unlock “${f.name}” for ${f.price_coins} coins?`)) return false;
    try {
      await api(`/api/stream-filters/${encodeURIComponent(f.id)}/unlock`, { method: 'POST', body: {}, headers: { 'Idempotency-Key': key() } });
    } catch (err) {
      if (err.code === 'insufficient_funds') toast(`Not enough coins for ${f.name}: buy coins in your wallet (/wallet).`, 'error', 6000);
      else if (err.code !== 'already_unlocked') {
        toast(`Couldn’t unlock: ${describeError(err)}`, 'error');
        return false;
      }
      if (err.code === 'insufficient_funds') return false;
    }
    const fresh = await api(`/api/stream-filters/${encodeURIComponent(f.id)}`);
    this.filters.set(f.id, fresh);
    toast(`${f.name} is yours`, 'ok');
    return true;
  }

  async toggleFavorite(f) {
    const on = !this.favorites.has(f.id);
    try {
      await api(`/api/stream-filters/${encodeURIComponent(f.id)}/favorite`, { method: on ? 'POST' : 'DELETE' });
      if (on) this.favorites.add(f.id);
      else this.favorites.delete(f.id);
      this.renderGrid();
    } catch (err) {
      toast(`Couldn’t change favourites: ${describeError(err)}`, 'error');
    }
  }

  /** Sends the stack to the pipeline, remembers it, and records an apply. */
  async commit({ apply = false, remember = true } = {}) {
    const before = { video: this.pipeline.videoTrack(), audio: this.pipeline.audioTrack() };
    try {
      await this.pipeline.set(this.entries);
    } catch (err) {
      toast(`Couldn’t load the filter: ${describeError(err)}`, 'error');
    }
    const after = { video: this.pipeline.videoTrack(), audio: this.pipeline.audioTrack() };
    for (const kind of ['video', 'audio']) if (after[kind] && after[kind] !== before[kind]) this.onTracks(kind, after[kind]);
    this.showPreview();
    if (remember) store.set(STACK_STORE, JSON.stringify([...this.entries.values()].map((e) => ({ id: e.filter.id, params: e.params, strength: e.strength }))));
    this.renderGrid();
    this.renderStack();
    if (apply && currentUser()) {
      const e = [...this.entries.values()].find((x) => x.filter.id === apply);
      const stream = window.onair && /^\d+$/.test(String(window.onair.stream)) ? Number(window.onair.stream) : undefined;
      api(`/api/stream-filters/${encodeURIComponent(apply)}/apply`, { method: 'POST', body: { stream_id: stream, parameters: e ? e.params : undefined } }).catch(() => {});
    }
  }

  /** Another tab of this host applied a filter: follow it. */
  remote(msg) {
    const f = this.filters.get(msg.filter_id);
    if (!f || !RENDERED.has(f.effect)) return;
    const slot = slotOf(f);
    const cur = this.entries.get(slot);
    if (cur && cur.filter.id === f.id && JSON.stringify(cur.params) === JSON.stringify(msg.parameters)) return;
    this.entries.set(slot, { filter: f, params: msg.parameters || f.parameters, strength: cur ? cur.strength : 100 });
    this.commit({ apply: false });
  }

  toggleCompare() {
    this.compare = !this.compare;
    this.els.compare.setAttribute('aria-pressed', String(this.compare));
    setText(this.els.compare, this.compare ? 'After' : 'Before');
    this.els.compare.title = this.compare ? 'Show the filtered picture' : 'Show the camera without filters (viewers still see them)';
    this.showPreview();
  }

  /** The preview shows what is published (or the camera, comparing). */
  showPreview() {
    if (!this.media) return;
    const filtered = this.pipeline.output && !this.compare ? this.pipeline.output : this.media;
    const want = filtered === this.media ? this.media : filtered;
    if (this.preview.srcObject !== want) {
      this.preview.srcObject = want;
      this.preview.play().catch(() => {});
    }
    this.stage.dataset.filterView = this.compare ? 'before' : 'after';
  }

  showCost(c) {
    this.cost = c;
    const fps = Math.min(30, 1000 / Math.max(c.ms, 1));
    const lite = c.scale < 1 ? ` · lite ${Math.round(c.scale * 100)}%` : c.cheap ? ' · lite' : '';
    setText(this.els.cost, `${c.ms.toFixed(1)} ms/frame${lite}`);
    const models = [];
    const { segmenter, face } = this.pipeline;
    if (segmenter.runs) models.push(`person mask ${segmenter.ms.toFixed(0)} ms`);
    if (face.runs) models.push(`face landmarks ${face.ms.toFixed(0)} ms`);
    this.els.cost.title = `Render cost per frame (${c.renderer}); ${c.cheap ? 'cheaper passes: this browser could not keep 30 fps at full size' : `room for ${fps.toFixed(0)}+ fps`}${models.length ? `; models, every 2nd frame: ${models.join(', ')}` : ''}`;
  }

  /** Stickers and captions follow a drag on the preview. */
  dragging() {
    let held = null;
    const at = (ev) => {
      const r = this.preview.getBoundingClientRect();
      return [(ev.clientX - r.left) / r.width, (ev.clientY - r.top) / r.height];
    };
    this.stage.addEventListener('pointerdown', (ev) => {
      const [x, y] = at(ev);
      held = overlayAt([...this.entries.values()], x, y);
      if (held) {
        this.stage.setPointerCapture(ev.pointerId);
        ev.preventDefault();
      }
    });
    this.stage.addEventListener('pointermove', (ev) => {
      if (!held) return;
      const [x, y] = at(ev);
      held.params = { ...held.params, x: Math.min(1, Math.max(0, x)), y: Math.min(1, Math.max(0, y)) };
      this.pipeline.overlaysChanged();
    });
    const drop = () => {
      if (held) this.commit({ apply: false });
      held = null;
    };
    this.stage.addEventListener('pointerup', drop);
    this.stage.addEventListener('pointercancel', drop);
  }

  /** For tests and debugging. */
  state() {
    return {
      renderer: this.pipeline.renderer && this.pipeline.renderer.kind,
      stack: [...this.entries.values()].map((e) => ({ id: e.filter.id, strength: e.strength })),
      cost_ms: this.cost ? this.cost.ms : null,
      cost_reports: this.pipeline.reports || 0,
      cheap: this.pipeline.cheap,
      scale: this.pipeline.scale,
      frames: this.pipeline.frames,
      filtering: !!this.pipeline.output,
      compare: this.compare,
      catalogue: this.filters.size,
      // The models: runs so far and the last inference time.
      segmentation: { ready: this.pipeline.segmenter.ready, runs: this.pipeline.segmenter.runs, ms: this.pipeline.segmenter.ms, failed: this.pipeline.segmenter.failed },
      face: { ready: this.pipeline.face.ready, runs: this.pipeline.face.runs, ms: this.pipeline.face.ms, found: !!this.pipeline.face.points, failed: this.pipeline.face.failed },
    };
  }
}
