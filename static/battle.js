// PK battles on the studio and watch pages: the battle bar (both hosts,
// the timer by the server's clock, the score bar, the top supporters, the
// winner banner), and in the studio the Challenge form (a live host, the
// length, the mode) and incoming invitations with Accept / Decline.
//
// Everything moves on the page's WebSocket events (`battle_invitation`,
// `battle_updated`, `battle_score`, `battle_ended`); the battle on now is
// read once when the page mounts (and after each reconnect). The page's
// own host is on the left, the opponent on the right, on either stream.
//
// The split screen itself is the room view's (room-view.js): the server
// links the two rooms and tells `room_slots`, and the watch page reopens
// WHEP with two slots. Over the stage (`stage`) this draws the gift bursts
// on the side they were sent to: the page's own gifts (`gift`) on the left,
// the opponent's points (from `battle_score`) on the right. In the studio
// it opens a host WHEP session (the SFU's view of the room without
// oneself: the opponent) and shows it beside the camera.
//
//   mountBattle({ rt, host: element, stream: () => streamId, studio: bool, stage?: element })

import { h, describeError, toast, getIceServers, waitForIceGathering, resolveLocation, deleteSession, errorFromResponse } from './common.js';
import { api, currentUser, freshAccessToken } from './session.js';

const OPEN = new Set(['invited', 'countdown', 'active']);

function ensureStyles() {
  if (document.querySelector('link[data-battle-css]')) return;
  document.head.append(h('link', { rel: 'stylesheet', href: '/static/battle.css', dataset: { battleCss: '1' } }));
}

function mmss(ms) {
  const s = Math.max(0, Math.ceil(ms / 1000));
  return `${Math.floor(s / 60)}:${String(s % 60).padStart(2, '0')}`;
}

export function mountBattle({ rt, host, stream, studio = false, stage = null, onSides = null }) {
  ensureStyles();
  const root = h('section.battle', { 'aria-label': 'PK battle', hidden: true });
  const invites = h('div.battle-invites');
  host.append(invites, root);
  const fx = stage ? h('div.battle-fx', { 'aria-hidden': 'true' }) : null;
  if (fx) stage.append(fx);
  // The watch page: the timer, the score bar and the banner over the split screen.
  const overlay = stage && !studio ? h('div.battle-overlay', { hidden: true }) : null;
  if (overlay) stage.append(overlay);
  const opponent = studio && stage ? new OpponentView(stage) : null;
  let battle = null; // the one shown
  let skew = 0; // server clock - ours
  let timer = null;

  const mine = (b) => b && b.sides.some((s) => String(s.stream) === String(stream()));
  /** [this page's side, the other], whichever challenged. */
  const ordered = (sides) => (String(sides[1].stream) === String(stream()) ? [sides[1], sides[0]] : [sides[0], sides[1]]);
  /** Linked in the media: from the accept until the end (and its punishment phase). */
  const linked = (b) => b && (b.state === 'countdown' || b.state === 'active' || (b.state === 'ended' && b.punishment_ends_at && Date.parse(b.punishment_ends_at) > Date.now() + skew));

  function take(b) {
    if (!b) return;
    if (b.server_time) skew = Date.parse(b.server_time) - Date.now();
    if (!mine(b)) return;
    battle = b;
    // The page's tiles name the opponent (not a host of this stream) as the bar does.
    if (onSides) onSides(b.sides);
    render();
    if (opponent) opponent.want(linked(b) ? stream() : null);
    document.body.classList.toggle('battle-on', OPEN.has(b.state) && b.state !== 'invited');
  }

  /** A burst over `side` ('left' or 'right') of the stage. */
  function burst(side, text, image) {
    if (!fx) return;
    const el = h('div.battle-burst', { dataset: { side } }, image ? h('img', { src: image, alt: '' }) : null, h('span', {}, text));
    el.style.setProperty('--x', `${10 + Math.random() * 30}%`);
    fx.append(el);
    setTimeout(() => el.remove(), 1600);
  }

  function render() {
    const b = battle;
    const show = b && (OPEN.has(b.state) || b.state === 'ended' || b.state === 'aborted');
    root.hidden = !show || b.state === 'invited';
    if (overlay) overlay.hidden = root.hidden;
    if (root.hidden) return;
    const [a, z] = ordered(b.sides);
    const total = a.score + z.score;
    const left = total ? (a.score / total) * 100 : 50;
    const barA = h('div.battle-bar-a');
    barA.style.width = `${left}%`;
    const supporters = (s) => h('ol.battle-top', {}, s.top_supporters.map((t) => h('li', {}, `${t.display_name} · ${t.points}`)));
    let banner = null;
    if (b.state === 'ended') {
      banner = h('div.battle-banner', { role: 'status' }, b.winner ? `${b.winner === a.host ? a.display_name : z.display_name} wins!` : 'Draw!');
    }
    if (b.state === 'aborted') banner = h('div.battle-banner', { role: 'status' }, 'Battle called off: a host left.');
    root.dataset.state = b.state;
    const head = () => h('div.battle-head', {}, h('span.battle-host', { dataset: { host: a.host } }, a.display_name), h('span.battle-clock', { 'data-clock': '1' }), h('span.battle-host.right', { dataset: { host: z.host } }, z.display_name));
    const bar = (fill) => h('div.battle-bar', { role: 'img', 'aria-label': `${a.score} to ${z.score}` }, fill, h('span.battle-score.left', {}, String(a.score)), h('span.battle-score.right', {}, String(z.score)));
    if (overlay) {
      // Over the video: the timer and the bar; below it: the supporters.
      const fill = barA.cloneNode();
      overlay.dataset.state = b.state;
      overlay.replaceChildren(...[head(), bar(fill), banner].filter(Boolean));
      root.replaceChildren(h('div.battle-sides', {}, supporters(a), supporters(z)));
    } else {
      root.replaceChildren(...[head(), bar(barA), h('div.battle-sides', {}, supporters(a), supporters(z)), banner].filter(Boolean));
    }
    tickClock();
    clearInterval(timer);
    timer = setInterval(tickClock, 250);
  }

  /**
   * A battle past its start (or end) with no event yet: the event went out
   * before this page subscribed (a page opened during the countdown).
   * Ask the server, at most once a second.
   */
  let askedAt = 0;
  function catchUp(now) {
    const b = battle;
    const overdue = (b.state === 'countdown' && now > Date.parse(b.starts_at) + 500) || (b.state === 'active' && now > Date.parse(b.ends_at) + 1500);
    if (!overdue || Date.now() - askedAt < 1000) return;
    askedAt = Date.now();
    api(`/api/battles/${b.id}`, { auth: false }).then(take).catch(() => {});
  }

  function tickClock() {
    if (battle) catchUp(Date.now() + skew);
    const el = (overlay || root).querySelector('[data-clock]');
    if (!el || !battle) return;
    const now = Date.now() + skew;
    const b = battle;
    if (b.state === 'countdown') el.textContent = `Starts in ${mmss(Date.parse(b.starts_at) - now)}`;
    else if (b.state === 'active') el.textContent = Date.parse(b.starts_at) > now ? `Starts in ${mmss(Date.parse(b.starts_at) - now)}` : mmss(Date.parse(b.ends_at) - now);
    else if (b.state === 'ended' && b.punishment_ends_at && Date.parse(b.punishment_ends_at) > now) el.textContent = `Punishment ${mmss(Date.parse(b.punishment_ends_at) - now)}`;
    else el.textContent = b.state === 'ended' ? 'Final' : b.state;
  }

  function showInvitation(b) {
    const me = currentUser();
    if (!studio || !me || b.sides[1].host !== me.username || b.state !== 'invited') return;
    const card = h('div.battle-invite.card', { dataset: { battle: String(b.id) } },
      h('p', {}, `${b.sides[0].display_name} challenges you to a ${Math.round(b.duration_s / 60)} min PK battle (${b.mode.replaceAll('_', ' ')}).`),
      h('div.row-actions', {},
        h('button.btn.btn-live', { type: 'button', onclick: () => answer(b.id, 'accept', card) }, 'Accept'),
        h('button.btn', { type: 'button', onclick: () => answer(b.id, 'decline', card) }, 'Decline')));
    invites.append(card);
    setTimeout(() => card.remove(), Math.max(0, Date.parse(b.expires_at) - (Date.now() + skew)));
  }

  async function answer(id, what, card) {
    try {
      take(await api(`/api/battles/${id}/${what}`, { method: 'POST', body: {} }));
    } catch (e) {
      toast(describeError(e), 'error');
    }
    card.remove();
  }

  async function load() {
    try {
      for (const state of ['active', 'countdown']) {
        const list = await api(`/api/battles?state=${state}&limit=100`, { auth: false });
        const b = list.find(mine);
        if (b) return take(b);
      }
    } catch {
      // The events will bring it.
    }
  }

  rt.on('battle_invitation', (m) => showInvitation(m.battle));
  rt.on('battle_updated', (m) => {
    for (const c of invites.querySelectorAll(`[data-battle="${m.battle.id}"]`)) if (m.battle.state !== 'invited') c.remove();
    take(m.battle);
  });
  rt.on('battle_ended', (m) => take(m.battle));
  rt.on('battle_score', (m) => {
    if (!battle || battle.id !== m.battle_id) return;
    skew = Date.parse(m.server_time) - Date.now();
    // The opponent's points land on the right (this page's own gifts come as `gift`).
    const [, before] = ordered(battle.sides);
    const [, after] = ordered(m.sides);
    if (after.score > before.score) burst('right', `+${after.score - before.score}`);
    battle = { ...battle, sides: m.sides };
    render();
  });
  rt.on('gift', (m) => {
    if (!battle || battle.state !== 'active' || String(m.stream_id) !== String(stream())) return;
    burst('left', `+${m.coins}`, m.gift && m.gift.animation);
  });
  rt.on('open', load);
  rt.on('subscribed', load);
  if (studio) invites.before(challengeForm(() => battle && OPEN.has(battle.state), take));
  load();
  return {
    refresh: load,
    snapshot: () => ({ battle, opponent: opponent ? opponent.snapshot() : null, text: root.hidden ? null : root.innerText }),
    opponentAudio: () => (opponent ? opponent.audio() : Promise.resolve(null)),
  };
}

/** The studio's Challenge form: a live host (from the live directory), length, mode. */
function challengeForm(busy, take) {
  const list = h('datalist', { id: 'battle-hosts' });
  const who = h('input.input', { name: 'opponent', list: 'battle-hosts', placeholder: 'A live host', autocomplete: 'off', required: true });
  const length = h('select.select', { name: 'duration_s', 'aria-label': 'Length' }, [60, 180, 300, 600].map((s) => h('option', { value: String(s), selected: s === 300 }, `${s / 60} min`)));
  const mode = h('select.select', { name: 'mode', 'aria-label': 'Scored by' }, h('option', { value: 'gifts' }, 'Gifts'), h('option', { value: 'likes' }, 'Likes'), h('option', { value: 'gifts_and_likes' }, 'Gifts and likes'));
  const punish = h('input', { type: 'checkbox', name: 'punishment' });
  who.addEventListener('focus', async () => {
    try {
      const page = await api('/api/streams?type=live&limit=50', { auth: false });
      const me = currentUser();
      list.replaceChildren(...(page.streams || []).filter((s) => !me || s.host.username !== me.username).map((s) => h('option', { value: s.host.username }, s.title)));
    } catch {
      // Typing a name still works.
    }
  });
  const form = h('form.battle-challenge', {
    onsubmit: async (ev) => {
      ev.preventDefault();
      if (busy()) return toast('You are in a battle already.', 'error');
      try {
        take(await api('/api/battles', { method: 'POST', body: { opponent: who.value.trim(), duration_s: Number(length.value), mode: mode.value, punishment: punish.checked } }));
        toast(`Challenge sent to ${who.value.trim()}: 30 s to accept.`);
      } catch (e) {
        toast(describeError(e), 'error');
      }
    },
  }, h('strong', {}, 'PK battle'), who, list, length, mode, h('label.battle-punish', {}, punish, ' Punishment'), h('button.btn.btn-live', { type: 'submit' }, 'Challenge'));
  return form;
}

/**
 * The studio's view of the opponent: a host WHEP session on one's own
 * stream (one video, one audio slot). A lone host's room has nobody else
 * to show, so the SFU sends the linked room's host: the opponent.
 */
class OpponentView {
  constructor(stage) {
    this.video = h('video.battle-opponent', { autoplay: true, playsinline: true, hidden: true });
    // Shown when the browser would not play the opponent with sound before a gesture.
    this.unmute = h('button.btn.battle-unmute', { type: 'button', hidden: true, onclick: () => this.hear() }, 'Hear opponent');
    stage.append(this.video, this.unmute);
    this.video.muted = false; // the host hears the opponent (their own camera's preview stays muted)
    this.stream = null; // the stream watched, or null
    this.session = null; // {pc, location, token}
  }

  /** Watch `stream` (null: stop). */
  want(stream) {
    const next = stream == null ? null : String(stream);
    if (next === this.stream) return;
    this.stop();
    this.stream = next;
    if (next != null) this.open(next).catch((err) => console.warn('[onair] battle opponent:', err));
  }

  async open(id) {
    const token = await freshAccessToken();
    const pc = new RTCPeerConnection({ iceServers: await getIceServers().catch(() => []), bundlePolicy: 'max-bundle' });
    const media = new MediaStream();
    pc.addTransceiver('video', { direction: 'recvonly' });
    pc.addTransceiver('audio', { direction: 'recvonly' });
    pc.addEventListener('track', (ev) => {
      media.addTrack(ev.track);
      this.video.srcObject = media;
      this.video.hidden = false;
      // Without a gesture on this page a sounding video may not autoplay: then muted.
      this.video.play().catch(() => {
        this.video.muted = true;
        this.unmute.hidden = false;
        this.video.play().catch(() => {});
      });
    });
    await pc.setLocalDescription(await pc.createOffer());
    await waitForIceGathering(pc, 1000);
    const resp = await fetch(`/whep/${id}`, { method: 'POST', headers: { 'Content-Type': 'application/sdp', Authorization: `Bearer ${token}` }, body: pc.localDescription.sdp });
    if (!resp.ok) {
      pc.close();
      throw await errorFromResponse(resp);
    }
    const location = resolveLocation(resp.headers.get('Location') || '');
    await pc.setRemoteDescription({ type: 'answer', sdp: await resp.text() });
    if (this.stream !== id) {
      pc.close();
      deleteSession(location, token);
      return;
    }
    this.session = { pc, location, token };
  }

  /** The host's gesture: the opponent with sound. */
  hear() {
    this.video.muted = false;
    this.unmute.hidden = true;
    this.video.play().catch(() => {});
  }

  stop() {
    this.stream = null;
    this.video.hidden = true;
    this.unmute.hidden = true;
    this.video.srcObject = null;
    if (!this.session) return;
    this.session.pc.close();
    deleteSession(this.session.location, this.session.token);
    this.session = null;
  }

  /** What the tests read of the opponent's audio: packets received, and whether it plays unmuted. */
  async audio() {
    let packets = 0;
    if (this.session) {
      (await this.session.pc.getStats()).forEach((r) => {
        if (r.type === 'inbound-rtp' && r.kind === 'audio') packets += r.packetsReceived || 0;
      });
    }
    return { packets, muted: this.video.muted };
  }

  /** What the tests read: frames decoded of the opponent's video. */
  snapshot() {
    const q = this.video.getVideoPlaybackQuality ? this.video.getVideoPlaybackQuality() : null;
    return { stream: this.stream, state: this.session ? this.session.pc.connectionState : null, frames: q ? q.totalVideoFrames : 0, width: this.video.videoWidth };
  }
}
