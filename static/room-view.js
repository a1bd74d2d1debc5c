// OnAir watch page: a co-host room. WHEP forbids renegotiation, so the page
// decides before it connects how many hosts it can show: a room with two
// hosts or more gets an offer of K video + K audio slots (K = the stream's
// max_hosts); a solo stream keeps today's single player, and switches to
// slots (a new WHEP session) when a second host joins. Which host is in which
// slot comes from `room_slots`; the tiles follow `room_layout`,
// `host_updated` (muted badges), `active_speaker` and `host_speaking`.
import { api, currentUser } from './session.js';
import { RoomTiles } from './room-tiles.js';
import { RoomAsk } from './room-ask.js';

export class RoomView {
  /**
   * @param {object} o
   * @param {HTMLElement} o.stage the player's stage (the tiles go over its video)
   * @param {HTMLVideoElement} o.video the page's player (its mute and volume rule the tiles')
   * @param {import('./realtime.js').Realtime} o.rt
   * @param {() => void} o.reconnect opens a new WHEP session (with more slots)
   */
  constructor({ stage, video, rt, reconnect }) {
    this.stage = stage;
    this.video = video;
    this.rt = rt;
    this.reconnect = reconnect;
    this.streamId = null;
    this.maxHosts = 9;
    this.hostCount = 0; // hosts in the room, as last heard
    this.slots = []; // room_slots.slots
    this.sessionSlots = 1; // slots of the WHEP session now
    this.streams = []; // one MediaStream per slot of the session
    this.root = document.createElement('div');
    this.root.className = 'room-stage';
    this.root.hidden = true;
    stage.insertBefore(this.root, video.nextSibling);
    this.tiles = new RoomTiles(this.root, { audio: true });
    this.ask = new RoomAsk({ where: document.querySelector('.channel-actions'), rt });
    video.addEventListener('volumechange', () => this.tiles.setSound(video.muted, video.volume));
    this.listen();
  }

  listen() {
    const rt = this.rt;
    const mine = (m) => this.streamId != null && m.stream_id === this.streamId;
    rt.on('subscribed', (m) => {
      if (!m.stream) return;
      const first = this.streamId !== m.stream.id;
      this.streamId = m.stream.id;
      this.maxHosts = Math.min(9, Math.max(2, Number(m.stream.max_hosts) || 9));
      this.ask.update(m.stream, null);
      if (first) this.load();
    });
    rt.on('room_slots', (m) => {
      if (!mine(m)) return;
      this.slots = m.slots || [];
      this.hostCount = this.slots.filter(Boolean).length;
      this.render();
      this.upgrade();
    });
    rt.on('room_layout', (m) => mine(m) && this.tiles.setLayout(m.layout));
    rt.on('host_updated', (m) => mine(m) && this.tiles.setHost(m.host.user, m.host));
    rt.on('host_joined', (m) => mine(m) && this.load());
    rt.on('host_left', (m) => mine(m) && this.load());
    rt.on('active_speaker', (m) => mine(m) && this.tiles.setActiveSpeaker(m.user));
    rt.on('host_speaking', (m) => mine(m) && this.tiles.setSpeaking(m.user, m.speaking));
  }

  /** The room's hosts and layout (names, mutes, who speaks). */
  async load() {
    const id = this.streamId;
    try {
      const [hosts, layout] = await Promise.all([api(`/api/streams/${id}/hosts`, { auth: false }), api(`/api/streams/${id}/layout`, { auth: false }).catch(() => null)]);
      if (id !== this.streamId) return;
      this.tiles.setHosts(hosts);
      this.ask.update(null, hosts);
      if (layout) this.tiles.setLayout(layout);
      const active = hosts.find((x) => x.active_speaker);
      if (active) this.tiles.setActiveSpeaker(active.user);
      for (const x of hosts) this.tiles.setSpeaking(x.user, x.speaking);
      const bySlot = [];
      for (const x of hosts) if (x.slot != null) bySlot[x.slot] = x.user;
      // The layout's slots are the room's whole order: a linked room (a PK
      // battle) adds the other room's hosts, who are not this room's hosts.
      this.slots = layout && Array.isArray(layout.slots) ? layout.slots : Array.from(bySlot, (u) => u || null);
      this.hostCount = Math.max(this.hostCount, hosts.filter((x) => x.connected).length, this.slots.filter(Boolean).length);
      this.render();
      this.upgrade();
    } catch (err) {
      console.warn('[onair] room hosts:', err);
    }
  }

  /** Slots the next WHEP offer asks for. */
  slotsWanted() {
    return this.hostCount >= 2 ? this.maxHosts : 1;
  }

  /** A second host joined while the page shows one: reconnect with slots. */
  upgrade() {
    if (this.sessionSlots === 1 && this.slotsWanted() > 1 && this.streams.length) this.reconnect();
  }

  /** A new WHEP session with `k` slots starts (the page calls it). */
  begin(k) {
    this.sessionSlots = k;
    this.streams = Array.from({ length: k }, () => new MediaStream());
    document.body.classList.toggle('room-mode', k > 1);
    this.root.hidden = k <= 1;
    this.render();
  }

  /** A track of slot `i` arrived. */
  addTrack(i, track) {
    if (i < 0 || i >= this.streams.length) return;
    this.streams[i].addTrack(track);
    this.render();
  }

  render() {
    if (this.sessionSlots <= 1) {
      this.tiles.setEntries([]);
      return;
    }
    // A host watching its own room (logged in: WHEP as a host) is sent the
    // room without itself, one slot up.
    const me = (currentUser() || {}).username;
    const slots = me && this.slots.includes(me) ? this.slots.filter((u) => u !== me) : this.slots;
    this.tiles.setEntries(this.streams.map((stream, i) => ({ key: i, host: slots[i] || null, stream })));
    this.tiles.setSound(this.video.muted, this.video.volume);
  }

  /** What the tests read. */
  snapshot() {
    return { slots: this.slots, sessionSlots: this.sessionSlots, layout: this.tiles.layout, activeSpeaker: this.tiles.activeSpeaker, tiles: this.tiles.snapshot() };
  }
}
