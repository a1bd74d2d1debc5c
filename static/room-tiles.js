// OnAir co-host rooms: the hosts' tiles, arranged as the room's layout says
// (grid: 2x2 up to four hosts, 3x3 beyond; spotlight; sidebar; pip), with
// names, a muted badge, a ring on whoever speaks and a mark on the active
// speaker. Shared by the watch page (one tile per WHEP slot) and the studio
// (one tile per other host). The page hands it the media; this only shows it.
import { h, initial } from './common.js';

/** Columns of a grid of `n` tiles. */
export function gridColumns(n) {
  return n <= 1 ? 1 : n <= 4 ? 2 : 3;
}

export class RoomTiles {
  /**
   * @param {HTMLElement} root where the tiles go (becomes `.room-tiles`)
   * @param {{audio?: boolean}} opts audio: the tiles' videos play sound
   */
  constructor(root, { audio = true } = {}) {
    this.root = root;
    this.root.classList.add('room-tiles');
    this.audio = audio;
    this.tiles = new Map(); // key -> {el, video, name, badge, stream}
    this.layout = { kind: 'grid', focus: null };
    this.activeSpeaker = null;
    this.speaking = new Set();
    this.hosts = new Map(); // username -> {display_name, audio_muted, video_muted}
    this.order = []; // [{key, host}]
    this.muted = true; // the page's mute (the watch page's sound button)
    this.volume = 1;
  }

  /** What a host is called on its tile. */
  nameOf(user) {
    const info = this.hosts.get(user);
    return (info && info.display_name) || user || '';
  }

  setHost(user, info) {
    this.hosts.set(user, { ...(this.hosts.get(user) || {}), ...info });
    this.render();
  }

  setHosts(list) {
    for (const x of list || []) this.hosts.set(x.user, { ...(this.hosts.get(x.user) || {}), ...x });
    this.render();
  }

  setLayout(layout) {
    this.layout = { kind: (layout && layout.kind) || 'grid', focus: (layout && layout.focus) || null };
    this.render();
  }

  setActiveSpeaker(user) {
    this.activeSpeaker = user || null;
    this.render();
  }

  setSpeaking(user, on) {
    if (on) this.speaking.add(user);
    else this.speaking.delete(user);
    this.render();
  }

  setSound(muted, volume) {
    this.muted = muted;
    this.volume = volume;
    for (const t of this.tiles.values()) {
      t.video.muted = !this.audio || muted;
      t.video.volume = volume;
      if (!t.video.muted) t.video.play().catch(() => {});
    }
  }

  /**
   * The tiles now: `entries` is [{key, host, stream}] in the room's order
   * (key: the slot or the host; host: null for an empty slot).
   */
  setEntries(entries) {
    const keep = new Set(entries.map((e) => String(e.key)));
    for (const [k, t] of this.tiles) {
      if (!keep.has(k)) {
        t.video.srcObject = null;
        t.el.remove();
        this.tiles.delete(k);
      }
    }
    for (const e of entries) {
      const k = String(e.key);
      let t = this.tiles.get(k);
      if (!t) {
        const video = h('video', { autoplay: true, playsinline: true });
        video.muted = !this.audio || this.muted;
        const name = h('span.room-tile-name');
        const badge = h('span.room-tile-muted', { hidden: true, title: 'Muted' }, 'Muted');
        const avatar = h('span.room-tile-avatar', { 'aria-hidden': 'true' });
        const el = h('div.room-tile', { dataset: { key: k } }, avatar, video, h('div.room-tile-label', {}, name, badge));
        t = { el, video, name, badge, avatar, stream: null };
        this.tiles.set(k, t);
      }
      if (e.stream && t.stream !== e.stream) {
        t.stream = e.stream;
        t.video.srcObject = e.stream;
        t.video.play().catch(() => {});
      }
    }
    this.order = entries.map((e) => ({ key: String(e.key), host: e.host || null }));
    this.render();
  }

  /** The host shown large: the layout's focus if present, else the active speaker, else the first. */
  focusHost() {
    const present = this.order.filter((o) => o.host).map((o) => o.host);
    if (this.layout.focus && present.includes(this.layout.focus)) return this.layout.focus;
    if (this.layout.kind !== 'grid' && this.activeSpeaker && present.includes(this.activeSpeaker)) return this.activeSpeaker;
    return present[0] || null;
  }

  render() {
    const shown = this.order.filter((o) => o.host);
    const kind = this.layout.kind || 'grid';
    const focus = this.focusHost();
    this.root.dataset.layout = kind;
    this.root.dataset.count = String(shown.length);
    this.root.style.setProperty('--room-cols', String(gridColumns(shown.length)));
    this.root.style.setProperty('--room-side', String(Math.max(1, shown.length - 1)));
    // Focus first, then the others in the room's order (pip shows the next one inset).
    const arranged = kind === 'grid' ? shown : [...shown.filter((o) => o.host === focus), ...shown.filter((o) => o.host !== focus)];
    arranged.forEach((o, i) => {
      const t = this.tiles.get(o.key);
      if (!t) return;
      const info = this.hosts.get(o.host) || {};
      t.el.hidden = false;
      t.el.dataset.host = o.host;
      t.el.dataset.role = kind === 'grid' ? 'tile' : i === 0 ? 'focus' : kind === 'pip' && i === 1 ? 'inset' : kind === 'sidebar' ? 'side' : 'off';
      t.el.dataset.speaking = String(this.speaking.has(o.host));
      t.el.dataset.active = String(this.activeSpeaker === o.host);
      t.el.dataset.videoMuted = String(Boolean(info.video_muted));
      t.el.dataset.audioMuted = String(Boolean(info.audio_muted));
      t.name.textContent = this.nameOf(o.host);
      t.avatar.textContent = initial(this.nameOf(o.host));
      const muted = [info.audio_muted && 'mic', info.video_muted && 'camera'].filter(Boolean);
      t.badge.hidden = muted.length === 0;
      t.badge.textContent = muted.length === 2 ? 'Muted' : muted[0] === 'mic' ? 'Mic off' : 'Camera off';
      if (this.root.children[i] !== t.el) this.root.insertBefore(t.el, this.root.children[i] || null);
    });
    for (const o of this.order.filter((x) => !x.host)) {
      const t = this.tiles.get(o.key);
      if (t) {
        t.el.hidden = true;
        delete t.el.dataset.host;
        if (t.el.parentNode !== this.root) this.root.append(t.el);
      }
    }
  }

  /** Each shown tile: host, its role in the layout, its box, and whether its video has frames. */
  snapshot() {
    return [...this.tiles.values()]
      .filter((t) => !t.el.hidden)
      .map((t) => {
        const r = t.el.getBoundingClientRect();
        const q = t.video.getVideoPlaybackQuality ? t.video.getVideoPlaybackQuality() : null;
        return {
          key: t.el.dataset.key,
          host: t.el.dataset.host,
          role: t.el.dataset.role,
          speaking: t.el.dataset.speaking === 'true',
          active: t.el.dataset.active === 'true',
          mutedBadge: !t.badge.hidden,
          name: t.name.textContent,
          box: { x: Math.round(r.x), y: Math.round(r.y), w: Math.round(r.width), h: Math.round(r.height) },
          videoWidth: t.video.videoWidth,
          framesDecoded: q ? q.totalVideoFrames : null,
        };
      });
  }
}
