// OnAir studio: the co-host room. Invitations (send, and answer the ones
// you get), requests to join (the primary host approves), the hosts with
// their controls (mute, remove, permissions), the layout, and the other
// hosts' video and audio.
//
// How a host sees the others follows the server's `room_topology`:
// - `mesh` (small rooms): one RTCPeerConnection per pair of hosts, set up
//   through `room_signal` over /api/ws (the host with the smaller username
//   offers). A pair not connected within 5 s falls back to the SFU.
// - `sfu`: one host WHEP session (`POST /whep/{stream}` with the access
//   token: the room without oneself) with 8 video + 8 audio slots, mapped to
//   hosts by `room_slots` (its order, oneself left out).
// Publishing to the SFU for the viewers (WHIP) is the studio's, unchanged.
import { $, h, toast, describeError, getIceServers, waitForIceGathering, resolveLocation, deleteSession, errorFromResponse } from './common.js';
import { api, currentUser, freshAccessToken } from './session.js';
import { RoomTiles } from './room-tiles.js';

/** A direct pair not connected by then goes through the SFU. */
export const MESH_FALLBACK_MS = 5000;
/** Slots of the host WHEP session (the eight others of a full room). */
export const HOST_SLOTS = 8;
/** Candidates are sent in batches this often (fewer relayed messages). */
const CANDIDATE_BATCH_MS = 100;
/** What a host sends each other host directly: small, the SFU carries the quality. */
const MESH_ENCODING = { maxBitrate: 300000, scaleResolutionDownBy: 2, maxFramerate: 15 };

const PERMISSIONS = [
  ['invite', 'Invite'],
  ['mute_others', 'Mute others'],
  ['layout', 'Layout'],
];

/** One direct connection to another host. */
class MeshPeer {
  constructor(room, other) {
    this.room = room;
    this.other = other;
    this.offerer = room.me < other;
    this.session = null; // the offer's id: answers and candidates name it
    this.pc = null;
    this.stream = new MediaStream();
    this.state = 'new';
    this.fallback = false;
    this.queued = []; // candidates before the remote description
    this.outbox = [];
    this.flushTimer = null;
    this.fallbackTimer = null;
  }

  async open(session) {
    this.close();
    this.session = session;
    this.fallback = false;
    this.state = 'connecting';
    this.openedAt = Date.now();
    const pc = new RTCPeerConnection({ iceServers: this.room.iceServers || [] });
    this.pc = pc;
    this.stream = new MediaStream();
    if (this.offerer) {
      for (const track of this.room.localTracks()) pc.addTransceiver(track, { direction: 'sendrecv' });
      // Receive even with no camera of one's own.
      for (const kind of ['video', 'audio']) {
        if (!pc.getTransceivers().some((t) => t.receiver.track && t.receiver.track.kind === kind)) pc.addTransceiver(kind, { direction: 'recvonly' });
      }
    }
    pc.addEventListener('track', (ev) => {
      if (pc !== this.pc) return;
      this.stream.addTrack(ev.track);
      this.room.renderMedia();
    });
    pc.addEventListener('icecandidate', (ev) => {
      if (pc !== this.pc || !ev.candidate) return;
      this.outbox.push(ev.candidate.toJSON());
      if (!this.flushTimer) this.flushTimer = setTimeout(() => this.flush(), CANDIDATE_BATCH_MS);
    });
    pc.addEventListener('connectionstatechange', () => {
      if (pc !== this.pc) return;
      this.state = pc.connectionState;
      if (this.state === 'connected') {
        clearTimeout(this.fallbackTimer);
        this.fallback = false;
        this.room.directAgain();
      } else if (this.state === 'failed') {
        this.fallBack();
      }
      this.room.renderMedia();
    });
    this.fallbackTimer = setTimeout(() => {
      if (pc === this.pc && pc.connectionState !== 'connected') this.fallBack();
    }, MESH_FALLBACK_MS);
    return pc;
  }

  /**
   * Not connected: the SFU carries the other host meanwhile, and the pair
   * tries again (a fresh offer, or asking for one) until it connects or the
   * room leaves the mesh: a lost signal or a slow start must not leave the
   * pair on the SFU for good.
   */
  retryLater() {
    clearTimeout(this.retryTimer);
    this.retryTimer = setTimeout(() => {
      if (this.closed || this.connected() || this.room.topology !== 'mesh') return;
      if (this.offerer) this.offer().catch((err) => console.warn('[onair] mesh offer:', err));
      else this.room.signal(this.other, { request: 'offer' });
      this.retryLater();
    }, 2 * MESH_FALLBACK_MS);
  }

  fallBack() {
    this.retryLater();
    if (this.fallback) return;
    this.fallback = true;
    console.warn(`[onair] direct connection to ${this.other} not up: through the SFU`);
    this.room.needSfu();
    this.room.renderMedia();
  }

  flush() {
    this.flushTimer = null;
    if (!this.outbox.length) return;
    const candidates = this.outbox.splice(0);
    this.room.signal(this.other, { session: this.session, candidates });
  }

  /** The offerer starts (or restarts) the pair. */
  async offer() {
    const pc = await this.open(Math.random().toString(36).slice(2));
    const offer = await pc.createOffer();
    await pc.setLocalDescription(offer);
    this.limitVideo();
    this.room.signal(this.other, { session: this.session, description: pc.localDescription.toJSON() });
  }

  /** The direct copy is small: the SFU carries the quality to viewers. */
  limitVideo() {
    for (const sender of this.pc ? this.pc.getSenders() : []) {
      if (!sender.track || sender.track.kind !== 'video') continue;
      const p = sender.getParameters();
      if (!p.encodings || !p.encodings.length) continue;
      p.encodings = p.encodings.map((e) => ({ ...e, ...MESH_ENCODING }));
      sender.setParameters(p).catch((err) => console.warn('[onair] mesh encoding:', err));
    }
  }

  async onSignal(data) {
    if (data.request === 'offer') {
      // The other page (re)loaded and waits for us (an offer of ours just
      // made is on its way already).
      const fresh = this.pc && Date.now() - this.openedAt < 3000;
      if (this.offerer && !fresh && !this.connected()) await this.offer();
      return;
    }
    const d = data.description;
    if (d && d.type === 'offer' && !this.offerer) {
      const pc = await this.open(data.session);
      await pc.setRemoteDescription(d);
      // Send back on the offer's own m-lines (a transceiver added before the
      // offer would be an m-line of its own, needing another negotiation).
      const local = this.room.localTracks();
      for (const t of pc.getTransceivers()) {
        const kind = t.receiver.track && t.receiver.track.kind;
        const i = local.findIndex((x) => x.kind === kind);
        if (i < 0) continue;
        await t.sender.replaceTrack(local.splice(i, 1)[0]);
        t.direction = 'sendrecv';
      }
      const answer = await pc.createAnswer();
      await pc.setLocalDescription(answer);
      this.limitVideo();
      this.room.signal(this.other, { session: this.session, description: pc.localDescription.toJSON() });
      await this.drain();
      return;
    }
    if (!this.pc || data.session !== this.session) return; // an older attempt's
    if (d && d.type === 'answer' && this.offerer) {
      await this.pc.setRemoteDescription(d);
      await this.drain();
    }
    for (const c of data.candidates || []) {
      if (this.pc.remoteDescription) await this.pc.addIceCandidate(c).catch((err) => console.warn('[onair] candidate refused:', err));
      else this.queued.push(c);
    }
  }

  async drain() {
    for (const c of this.queued.splice(0)) await this.pc.addIceCandidate(c).catch(() => {});
  }

  connected() {
    return Boolean(this.pc) && this.pc.connectionState === 'connected';
  }

  close() {
    this.closed = true;
    clearTimeout(this.retryTimer);
    clearTimeout(this.fallbackTimer);
    clearTimeout(this.flushTimer);
    this.flushTimer = null;
    this.outbox = [];
    this.queued = [];
    if (this.pc) this.pc.close();
    this.pc = null;
    this.state = 'closed';
  }
}

export class RoomStudio {
  /**
   * @param {object} o
   * @param {HTMLElement} o.panel the room card (controls)
   * @param {HTMLElement} o.stage the other hosts' tiles
   * @param {import('./realtime.js').Realtime} o.rt
   * @param {() => MediaStreamTrack[]} o.localTracks what the studio publishes
   */
  constructor({ panel, stage, rt, localTracks }) {
    this.panel = panel;
    this.stageCard = stage;
    this.rt = rt;
    this.localTracks = () => (localTracks() || []).filter((t) => t && t.readyState === 'live');
    this.me = (currentUser() || {}).username || null;
    this.stream = null; // the room's stream id (while live in it)
    this.info = null; // the Stream object
    this.hosts = []; // GET /hosts
    this.requests = [];
    this.invitation = null; // one waiting for my answer
    this.layout = { kind: 'grid', focus: null, order: [] };
    this.topology = null; // 'mesh' | 'sfu'
    this.topologyHosts = [];
    this.slots = []; // room_slots.slots (all hosts)
    this.peers = new Map(); // username -> MeshPeer
    this.whep = null; // {pc, location, token, slots: [MediaStream]}
    this.whepPending = null;
    this.iceServers = null;
    this.signalErrors = 0;
    this.tiles = new RoomTiles(h('div'), { audio: true });
    this.tiles.setSound(false, 1);
    this.build();
    this.listen();
  }

  // ------------------------------------------------------------ DOM

  build() {
    this.els = {
      invitation: h('div.room-invitation', { hidden: true }),
      inviteForm: h('form.room-invite', { autocomplete: 'off' }),
      inviteInput: h('input.input', { type: 'text', placeholder: 'Username', 'aria-label': 'Invite a host by username', spellcheck: 'false', autocapitalize: 'off' }),
      requests: h('ul.room-requests', { 'aria-label': 'Requests to join' }),
      hosts: h('ul.room-hosts', { 'aria-label': 'Hosts' }),
      layoutKind: h('select.select', { 'aria-label': 'Layout' }, ...['grid', 'spotlight', 'sidebar', 'pip'].map((k) => h('option', { value: k }, k[0].toUpperCase() + k.slice(1)))),
      layoutFocus: h('select.select', { 'aria-label': 'Focus host' }),
      topology: h('span.chip.room-topology', { hidden: true }),
      body: h('div.card-body.room-body', { hidden: true }),
    };
    const e = this.els;
    e.inviteForm.append(h('div.input-group', {}, e.inviteInput, h('button.btn', { type: 'submit' }, 'Invite')));
    e.inviteForm.addEventListener('submit', (ev) => {
      ev.preventDefault();
      this.invite(e.inviteInput.value.trim());
    });
    const change = () => this.putLayout({ kind: e.layoutKind.value, focus: e.layoutFocus.value || null });
    e.layoutKind.addEventListener('change', change);
    e.layoutFocus.addEventListener('change', change);
    e.layoutRow = h('div.room-layout', {}, h('label', {}, 'Layout'), e.layoutKind, e.layoutFocus);
    e.requestsHead = h('h3.room-sub', { hidden: true }, 'Requests to join');
    e.body.append(e.inviteForm, e.requestsHead, e.requests, h('h3.room-sub', {}, 'Hosts'), e.hosts, e.layoutRow);
    this.panel.append(h('div.card-head', {}, h('h2', {}, 'Co-hosts'), h('span.spacer'), e.topology), e.invitation, e.body);
    this.panel.hidden = false;
    this.stageCard.append(h('div.card-head', {}, h('h2', {}, 'In the room'), h('span.spacer'), h('span.card-note.room-count')), this.tiles.root);
    this.stageCard.hidden = true;
  }

  // ------------------------------------------------------------ events

  listen() {
    const rt = this.rt;
    rt.on('hello', (m) => {
      this.me = (m.user && m.user.username) || (currentUser() || {}).username || null;
    });
    rt.on('cohost_invitation', (m) => this.onInvitation(m.invitation));
    rt.on('cohost_request', (m) => this.onRequest(m.request));
    rt.on('subscribed', (m) => {
      if (m.stream && m.stream.id === this.stream) {
        this.info = m.stream;
        this.refresh();
      }
    });
    const mine = (m) => this.stream != null && m.stream_id === this.stream;
    rt.on('host_joined', (m) => mine(m) && this.refresh());
    rt.on('host_left', (m) => {
      if (!mine(m)) return;
      if (m.user === this.me && m.reason === 'removed') toast('You were removed from the room', 'error');
      this.refresh();
    });
    rt.on('host_updated', (m) => {
      if (!mine(m)) return;
      const i = this.hosts.findIndex((x) => x.user === m.host.user);
      if (i >= 0) this.hosts[i] = m.host;
      else this.hosts.push(m.host);
      this.tiles.setHost(m.host.user, m.host);
      this.renderHosts();
    });
    rt.on('host_speaking', (m) => mine(m) && this.tiles.setSpeaking(m.user, m.speaking));
    rt.on('active_speaker', (m) => mine(m) && this.tiles.setActiveSpeaker(m.user));
    rt.on('room_layout', (m) => {
      if (!mine(m)) return;
      this.layout = m.layout;
      this.tiles.setLayout(m.layout);
      this.renderLayout();
    });
    rt.on('room_slots', (m) => {
      if (!mine(m)) return;
      this.slots = m.slots || [];
      this.renderMedia();
    });
    rt.on('room_topology', (m) => mine(m) && this.onTopology(m));
    rt.on('room_signal', (m) => mine(m) && this.onSignal(m));
    rt.on('room_ended', (m) => mine(m) && this.leaveRoom());
    rt.on('error', (m) => {
      if (m && m.error && String(m.id || '').startsWith('sig-')) {
        this.signalErrors += 1;
        console.warn('[onair] room signal refused:', m.error.code, m.error.message);
      }
    });
  }

  // ------------------------------------------------------------ invitations and requests

  onInvitation(inv) {
    if (!inv) return;
    const me = (currentUser() || {}).username;
    if (inv.user === me && inv.state === 'pending') {
      this.invitation = inv;
      this.renderInvitation();
      toast(`${inv.invited_by} invites you to co-host`, 'info');
    } else if (inv.user === me) {
      this.invitation = null;
      this.renderInvitation();
    } else if (inv.state === 'accepted') {
      toast(`${inv.user} accepted your invitation`, 'ok');
    } else if (inv.state === 'declined') {
      toast(`${inv.user} declined your invitation`, 'info');
    }
  }

  renderInvitation() {
    const e = this.els.invitation;
    e.replaceChildren();
    const inv = this.invitation;
    e.hidden = !inv;
    if (!inv) return;
    const answer = async (verb) => {
      try {
        await api(`/api/streams/${inv.stream_id}/invitations/${verb}`, { method: 'POST', body: {} });
        this.invitation = null;
        this.renderInvitation();
        toast(verb === 'accept' ? 'Accepted: go live to join the room' : 'Declined', verb === 'accept' ? 'ok' : 'info');
      } catch (err) {
        toast(`Couldn’t ${verb}: ${describeError(err)}`, 'error');
      }
    };
    e.append(
      h('p', {}, h('strong', {}, inv.invited_by), ' invites you to co-host ', h('strong', {}, inv.stream_title || `stream ${inv.stream_id}`)),
      h('div.room-actions', {}, h('button.btn.btn-primary.room-accept', { type: 'button', onclick: () => answer('accept') }, 'Accept'), h('button.btn.room-decline', { type: 'button', onclick: () => answer('decline') }, 'Decline')),
    );
  }

  onRequest(req) {
    if (!req || this.stream == null || req.stream_id !== this.stream) return;
    this.requests = this.requests.filter((r) => r.user !== req.user);
    if (req.state === 'pending') {
      this.requests.push(req);
      if (this.isPrimary()) toast(`${req.display_name || req.user} asks to join the room`, 'info');
    }
    this.renderRequests();
  }

  async invite(user) {
    if (!user || this.stream == null) return;
    try {
      await api(`/api/streams/${this.stream}/invitations`, { method: 'POST', body: { user } });
      this.els.inviteInput.value = '';
      toast(`Invited ${user}`, 'ok');
    } catch (err) {
      toast(`Couldn’t invite ${user}: ${describeError(err)}`, 'error');
    }
  }

  renderRequests() {
    const e = this.els.requests;
    e.replaceChildren();
    const primary = this.isPrimary();
    this.els.requestsHead.hidden = !primary || !this.requests.length;
    if (!primary) return;
    for (const r of this.requests) {
      const decide = async (verb) => {
        try {
          await api(`/api/streams/${this.stream}/join-requests/${encodeURIComponent(r.user)}/${verb}`, { method: 'POST', body: {} });
          this.requests = this.requests.filter((x) => x.user !== r.user);
          this.renderRequests();
        } catch (err) {
          toast(`Couldn’t ${verb}: ${describeError(err)}`, 'error');
        }
      };
      e.append(
        h('li.room-request', { dataset: { user: r.user } }, h('span.grow', {}, h('strong', {}, r.display_name || r.user), ' ', h('span.muted', {}, `@${r.user}`)), h('button.btn.btn-sm.btn-primary', { type: 'button', onclick: () => decide('approve') }, 'Approve'), h('button.btn.btn-sm', { type: 'button', onclick: () => decide('reject') }, 'Reject')),
      );
    }
  }

  // ------------------------------------------------------------ the room

  /** The studio is live in stream `id` (its own or a room it joined). */
  setStream(id) {
    const n = id == null ? null : Number(id);
    if (n === this.stream) return;
    this.leaveRoom();
    this.stream = n;
    if (n == null) return;
    this.els.body.hidden = false;
    this.refresh();
  }

  isPrimary() {
    return Boolean(this.info && this.me && this.info.host && this.info.host.username === this.me);
  }

  myPerms() {
    if (this.isPrimary()) return ['invite', 'mute_others', 'layout'];
    const mine = this.hosts.find((x) => x.user === this.me);
    return (mine && mine.permissions) || [];
  }

  async refresh() {
    const id = this.stream;
    if (id == null) return;
    try {
      const [hosts, layout] = await Promise.all([api(`/api/streams/${id}/hosts`, { auth: false }), api(`/api/streams/${id}/layout`, { auth: false }).catch(() => null)]);
      if (id !== this.stream) return;
      this.hosts = hosts || [];
      if (layout) this.layout = layout;
      // The room's order now (room_slots may have come before we listened).
      const bySlot = [];
      for (const x of this.hosts) if (x.slot != null) bySlot[x.slot] = x.user;
      this.slots = Array.from(bySlot, (x) => x || null);
      if (this.isPrimary()) this.requests = (await api(`/api/streams/${id}/join-requests`).catch(() => [])).filter((r) => r.state === 'pending');
    } catch (err) {
      console.warn('[onair] room hosts:', err);
      return;
    }
    this.tiles.setHosts(this.hosts);
    this.tiles.setLayout(this.layout);
    const active = this.hosts.find((x) => x.active_speaker);
    if (active) this.tiles.setActiveSpeaker(active.user);
    for (const x of this.hosts) this.tiles.setSpeaking(x.user, x.speaking);
    this.renderHosts();
    this.renderRequests();
    this.renderLayout();
    this.renderMedia();
  }

  renderHosts() {
    const e = this.els.hosts;
    e.replaceChildren();
    const perms = this.myPerms();
    const primary = this.isPrimary();
    for (const x of this.hosts) {
      const self = x.user === this.me;
      const canMute = self || (x.role !== 'primary' && perms.includes('mute_others')) || primary;
      const patch = async (body) => {
        try {
          await api(`/api/streams/${this.stream}/hosts/${encodeURIComponent(x.user)}`, { method: 'PATCH', body });
        } catch (err) {
          toast(`Couldn’t change ${x.user}: ${describeError(err)}`, 'error');
        }
      };
      const row = h(
        'li.room-host',
        { dataset: { user: x.user, role: x.role, connected: String(x.connected) } },
        h('span.room-host-dot', { title: x.connected ? 'Connected' : 'Not connected' }),
        h('span.grow', {}, h('strong', {}, x.display_name || x.user), ' ', h('span.muted', {}, x.role === 'primary' ? 'primary' : `@${x.user}`), self ? h('span.muted', {}, ' (you)') : null),
      );
      if (canMute) {
        row.append(
          h('button.btn.btn-sm.room-mute-audio', { type: 'button', 'aria-pressed': String(x.audio_muted), title: x.audio_muted ? 'Unmute microphone' : 'Mute microphone', onclick: () => patch({ audio_muted: !x.audio_muted }) }, x.audio_muted ? 'Unmute mic' : 'Mute mic'),
          h('button.btn.btn-sm.room-mute-video', { type: 'button', 'aria-pressed': String(x.video_muted), title: x.video_muted ? 'Turn camera on' : 'Turn camera off', onclick: () => patch({ video_muted: !x.video_muted }) }, x.video_muted ? 'Camera on' : 'Camera off'),
        );
      } else if (x.audio_muted || x.video_muted) {
        row.append(h('span.chip', {}, 'Muted'));
      }
      if (primary && !self) {
        row.append(
          h('button.btn.btn-sm.btn-danger.room-kick', {
            type: 'button',
            onclick: async () => {
              if (!window.confirm(`Remove ${x.user} from the room? They cannot come back into this stream.`)) return;
              try {
                await api(`/api/streams/${this.stream}/hosts/${encodeURIComponent(x.user)}`, { method: 'DELETE' });
              } catch (err) {
                toast(`Couldn’t remove ${x.user}: ${describeError(err)}`, 'error');
              }
            },
          }, 'Remove'),
        );
        if (x.role === 'cohost') {
          const boxes = h('div.room-perms', { 'aria-label': `Permissions of ${x.user}` });
          for (const [p, label] of PERMISSIONS) {
            const cb = h('input', { type: 'checkbox', checked: (x.permissions || []).includes(p), dataset: { perm: p } });
            cb.addEventListener('change', () => {
              const set = [...boxes.querySelectorAll('input:checked')].map((i) => i.dataset.perm);
              patch({ permissions: set });
            });
            boxes.append(h('label.room-perm', {}, cb, label));
          }
          row.append(boxes);
        }
      } else if (self && x.role === 'cohost') {
        row.append(
          h('button.btn.btn-sm.room-leave', {
            type: 'button',
            onclick: async () => {
              if (!window.confirm('Leave the room? You cannot come back into this stream.')) return;
              try {
                await api(`/api/streams/${this.stream}/hosts/${encodeURIComponent(x.user)}`, { method: 'DELETE' });
              } catch (err) {
                toast(`Couldn’t leave: ${describeError(err)}`, 'error');
              }
            },
          }, 'Leave'),
        );
      }
      e.append(row);
    }
    this.els.inviteForm.hidden = !perms.includes('invite');
    setCount(this.stageCard, this.hosts.length);
  }

  renderLayout() {
    const e = this.els;
    const may = this.myPerms().includes('layout');
    e.layoutRow.hidden = !may;
    e.layoutKind.value = this.layout.kind || 'grid';
    e.layoutFocus.replaceChildren(h('option', { value: '' }, 'Focus: automatic'), ...this.hosts.map((x) => h('option', { value: x.user }, `Focus: ${x.display_name || x.user}`)));
    e.layoutFocus.value = this.layout.focus || '';
  }

  /**
   * One layout change at a time, in the order they were made: two quick
   * changes (a kind, then a focus) sent at once could reach the server in
   * the other order and leave the first one in place.
   */
  putLayout(layout) {
    this.layoutSending = (this.layoutSending || Promise.resolve()).then(() => this.sendLayout(layout));
    return this.layoutSending;
  }

  async sendLayout(layout) {
    try {
      this.layout = await api(`/api/streams/${this.stream}/layout`, { method: 'PUT', body: { ...layout, order: this.layout.order || [] } });
    } catch (err) {
      toast(`Couldn’t change the layout: ${describeError(err)}`, 'error');
      this.renderLayout();
    }
  }

  // ------------------------------------------------------------ media of the other hosts

  onTopology(m) {
    const before = this.topology;
    this.topology = m.topology;
    this.topologyHosts = m.hosts || [];
    const chip = this.els.topology;
    chip.hidden = false;
    chip.textContent = m.topology === 'mesh' ? 'Direct' : 'Via server';
    chip.title = m.topology === 'mesh' ? 'Hosts connect to each other directly' : 'Hosts see each other through the server';
    chip.dataset.topology = m.topology;
    if (m.topology === 'mesh') {
      const others = this.topologyHosts.filter((u) => u !== this.me);
      for (const [u, p] of this.peers) {
        if (!others.includes(u)) {
          p.close();
          this.peers.delete(u);
        }
      }
      for (const u of others) this.meet(u);
      this.directAgain();
    } else {
      for (const p of this.peers.values()) p.close();
      this.peers.clear();
      this.needSfu();
    }
    this.renderMedia();
  }

  /** Starts the direct pair with `other` if there is none. */
  async meet(other) {
    if (this.peers.has(other) || !this.me) return;
    const p = new MeshPeer(this, other);
    this.peers.set(other, p);
    if (!this.iceServers) this.iceServers = await getIceServers().catch(() => []);
    if (p.offerer) {
      await p.offer().catch((err) => console.warn('[onair] mesh offer:', err));
    } else {
      // Ask for an offer (the other page may have sent one before we listened).
      this.signal(other, { request: 'offer' });
      p.fallbackTimer = setTimeout(() => {
        if (!p.pc || p.pc.connectionState !== 'connected') p.fallBack();
      }, MESH_FALLBACK_MS);
    }
  }

  async onSignal(m) {
    // Before the first room_topology only an offer or answer can start a pair.
    if (this.topology === 'sfu' || (this.topology == null && !(m.data && m.data.description))) return;
    let p = this.peers.get(m.from);
    if (!p) {
      p = new MeshPeer(this, m.from);
      this.peers.set(m.from, p);
    }
    if (!this.iceServers) this.iceServers = await getIceServers().catch(() => []);
    await p.onSignal(m.data || {}).catch((err) => console.warn('[onair] mesh signal:', err));
  }

  signal(to, data) {
    this.sigN = (this.sigN || 0) + 1;
    this.rt.send({ type: 'room_signal', stream_id: this.stream, to, data, id: `sig-${this.sigN}` });
  }

  /** Opens the host WHEP session (the SFU's view of the room without oneself). */
  async needSfu() {
    if (this.whep || this.whepPending || this.stream == null) return;
    const id = this.stream;
    this.whepPending = (async () => {
      const token = await freshAccessToken();
      if (!this.iceServers) this.iceServers = await getIceServers().catch(() => []);
      const pc = new RTCPeerConnection({ iceServers: this.iceServers, bundlePolicy: 'max-bundle' });
      const slots = [];
      for (let i = 0; i < HOST_SLOTS; i++) slots.push(new MediaStream());
      const video = [];
      const audio = [];
      for (let i = 0; i < HOST_SLOTS; i++) video.push(pc.addTransceiver('video', { direction: 'recvonly' }));
      for (let i = 0; i < HOST_SLOTS; i++) audio.push(pc.addTransceiver('audio', { direction: 'recvonly' }));
      pc.addEventListener('track', (ev) => {
        const i = Math.max(video.indexOf(ev.transceiver), audio.indexOf(ev.transceiver));
        if (i >= 0) slots[i].addTrack(ev.track);
        this.renderMedia();
      });
      pc.addEventListener('connectionstatechange', () => this.renderMedia());
      await pc.setLocalDescription(await pc.createOffer());
      await waitForIceGathering(pc, 1000);
      const resp = await fetch(`/whep/${id}`, { method: 'POST', headers: { 'Content-Type': 'application/sdp', Authorization: `Bearer ${token}` }, body: pc.localDescription.sdp });
      if (!resp.ok) {
        pc.close();
        throw await errorFromResponse(resp);
      }
      const location = resolveLocation(resp.headers.get('Location') || '');
      await pc.setRemoteDescription({ type: 'answer', sdp: await resp.text() });
      if (id !== this.stream) {
        pc.close();
        deleteSession(location, token);
        return;
      }
      this.whep = { pc, location, token, slots };
    })()
      .catch((err) => {
        console.warn('[onair] host WHEP:', err);
        toast(`Couldn’t see the other hosts: ${describeError(err)}`, 'error');
      })
      .finally(() => {
        this.whepPending = null;
        this.directAgain();
        this.renderMedia();
      });
  }

  /** Every pair of a mesh is direct (again): the SFU view is not needed. */
  directAgain() {
    if (this.topology !== 'mesh' || !this.whep) return;
    const others = this.topologyHosts.filter((u) => u !== this.me);
    if (others.every((u) => this.peers.get(u) && this.peers.get(u).connected())) this.closeWhep();
  }

  closeWhep() {
    if (!this.whep) return;
    this.whep.pc.close();
    deleteSession(this.whep.location, this.whep.token);
    this.whep = null;
  }

  /** Who shows in which tile, from the direct pairs and the host WHEP slots. */
  renderMedia() {
    if (this.stream == null) return;
    const mine = this.slots.filter((u) => u && u !== this.me);
    const others = this.hosts.filter((x) => x.user !== this.me).map((x) => x.user);
    const entries = others.map((u) => {
      const p = this.peers.get(u);
      let stream = null;
      let via = 'none';
      if (p && p.connected() && p.stream.getTracks().length) {
        stream = p.stream;
        via = 'mesh';
      } else if (this.whep) {
        const i = mine.indexOf(u);
        if (i >= 0 && i < this.whep.slots.length) {
          stream = this.whep.slots[i];
          via = 'sfu';
        }
      }
      return { key: u, host: u, stream, via };
    });
    this.via = Object.fromEntries(entries.map((e) => [e.host, e.via]));
    this.tiles.setEntries(entries);
    this.stageCard.hidden = entries.length === 0;
  }

  leaveRoom() {
    for (const p of this.peers.values()) p.close();
    this.peers.clear();
    this.closeWhep();
    this.topology = null;
    this.els.topology.hidden = true;
    this.stream = null;
    this.hosts = [];
    this.requests = [];
    this.slots = [];
    this.tiles.setEntries([]);
    this.stageCard.hidden = true;
    this.els.body.hidden = true;
  }

  /** What the tests read: the topology, each pair's state, and the tiles. */
  async snapshot() {
    const pairs = {};
    for (const [u, p] of this.peers) {
      let framesReceived = 0;
      let bytesReceived = 0;
      const pc = p.pc; // (it may be closed while its stats are read)
      if (pc) {
        const stats = await pc.getStats().catch(() => null);
        stats &&
          stats.forEach((s) => {
            if (s.type === 'inbound-rtp' && s.kind === 'video') {
              framesReceived += s.framesDecoded || 0;
              bytesReceived += s.bytesReceived || 0;
            }
          });
      }
      pairs[u] = { state: pc ? pc.connectionState : 'none', offerer: p.offerer, fallback: p.fallback, framesReceived, bytesReceived };
    }
    let whep = null;
    const w = this.whep;
    if (w) {
      const frames = new Array(HOST_SLOTS).fill(0);
      const stats = await w.pc.getStats().catch(() => null);
      const mids = w.pc.getTransceivers().map((t) => t.mid);
      stats &&
        stats.forEach((s) => {
          if (s.type === 'inbound-rtp' && s.kind === 'video') {
            const i = mids.indexOf(s.mid);
            if (i >= 0 && i < HOST_SLOTS) frames[i] = s.framesDecoded || 0;
          }
        });
      whep = { state: w.pc.connectionState, framesBySlot: frames };
    }
    return { me: this.me, stream: this.stream, topology: this.topology, topologyHosts: this.topologyHosts, slots: this.slots, via: this.via || {}, pairs, whep, tiles: this.tiles.snapshot(), signalErrors: this.signalErrors };
  }
}

function setCount(card, n) {
  const el = $('.room-count', card);
  if (el) el.textContent = `${n} host${n === 1 ? '' : 's'}`;
}
