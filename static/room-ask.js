// OnAir watch page: "Ask to join" a live room, for a logged-in host who is
// not one of its hosts (`POST /api/streams/{id}/join-requests`). The primary
// host's studio lists the request (its `cohost_request` event) and approves or
// rejects it; the answer comes back here as a `cohost_request` event for the
// asker. Approved: the asker goes live from their studio, which publishes
// into the room.
//
// Left out: the state of a request made before the page (re)loaded (the API
// lets only the primary host list requests); asking again renews it.
import { h, toast, describeError } from './common.js';
import { api, currentUser, isHost } from './session.js';

export class RoomAsk {
  /**
   * @param {object} o
   * @param {HTMLElement | null} o.where where the button goes (first)
   * @param {import('./realtime.js').Realtime} o.rt
   */
  constructor({ where, rt }) {
    this.stream = null; // the Stream object
    this.hosts = []; // GET /hosts
    this.state = 'idle'; // idle | sending | pending | approved | rejected
    this.el = h('button.btn.btn-sm.room-ask', { type: 'button', hidden: true, onclick: () => this.ask() });
    this.link = h('a.btn.btn-sm.btn-primary.room-ask-go', { href: '/publish', hidden: true }, 'Go live to join');
    if (where) where.prepend(this.el, this.link);
    rt.on('cohost_request', (m) => this.onAnswer(m.request));
    // The stream goes live (or ends) while the page is open.
    rt.on('stream_status', (m) => m.stream && this.stream && m.stream.id === this.stream.id && this.update(m.stream, null));
  }

  /** The stream (from `subscribed`) and its hosts now. */
  update(stream, hosts) {
    if (stream) {
      if (this.stream && this.stream.id !== stream.id) this.state = 'idle';
      this.stream = stream;
    }
    if (hosts) this.hosts = hosts;
    this.render();
  }

  /** Who may ask: a host (role) who is not in the room, of a live room with room for one more. */
  mayAsk() {
    const me = currentUser();
    const s = this.stream;
    if (!me || !isHost(me) || !s || s.state !== 'live') return false;
    if (s.host && s.host.username === me.username) return false;
    const mine = this.hosts.find((x) => x.user === me.username);
    // Approved: a host of the room, not on the air in it yet.
    if (this.state === 'approved') return !(mine && mine.connected);
    if (mine) return false;
    return this.hosts.length < (Number(s.max_hosts) || 9) || this.state !== 'idle';
  }

  async ask() {
    if (!this.stream || this.state === 'sending' || this.state === 'pending') return;
    this.state = 'sending';
    this.render();
    try {
      await api(`/api/streams/${this.stream.id}/join-requests`, { method: 'POST', body: {} });
      this.state = 'pending';
      toast('Request sent: the host will answer', 'ok');
    } catch (err) {
      this.state = 'idle';
      toast(`Couldn’t ask to join: ${describeError(err)}`, 'error');
    }
    this.render();
  }

  onAnswer(req) {
    const me = currentUser();
    if (!req || !me || req.user !== me.username || !this.stream || req.stream_id !== this.stream.id) return;
    if (req.state === 'approved') {
      this.state = 'approved';
      toast('You’re in: go live from your studio to join the room', 'ok', 6000);
    } else if (req.state === 'rejected') {
      this.state = 'rejected';
      toast('Your request to join was declined', 'info');
    }
    this.render();
  }

  render() {
    const show = this.mayAsk();
    const label = { idle: 'Ask to join', sending: 'Asking…', pending: 'Request sent', approved: 'Approved', rejected: 'Request declined' }[this.state];
    this.el.hidden = !show || this.state === 'approved';
    this.el.textContent = label;
    this.el.disabled = this.state !== 'idle';
    this.el.dataset.state = this.state;
    this.el.title = this.state === 'pending' ? 'Waiting for the host to answer' : this.state === 'idle' ? 'Ask the host to bring you into this room as a co-host' : label;
    this.link.hidden = !show || this.state !== 'approved';
  }
}
