// PK battles on the studio and watch pages: the battle bar (both hosts,
// the timer by the server's clock, the score bar, the top supporters, the
// winner banner), and in the studio the Challenge form (a live host, the
// length, the mode) and incoming invitations with Accept / Decline.
//
// Everything moves on the page's WebSocket events (`battle_invitation`,
// `battle_updated`, `battle_score`, `battle_ended`); the battle on now is
// read once when the page mounts (and after each reconnect).
//
//   mountBattle({ rt, host: element, stream: () => streamId, studio: bool })

import { h, describeError, toast } from './common.js';
import { api, currentUser } from './session.js';

const OPEN = new Set(['invited', 'countdown', 'active']);

function ensureStyles() {
  if (document.querySelector('link[data-battle-css]')) return;
  document.head.append(h('link', { rel: 'stylesheet', href: '/static/battle.css', dataset: { battleCss: '1' } }));
}

function mmss(ms) {
  const s = Math.max(0, Math.ceil(ms / 1000));
  return `${Math.floor(s / 60)}:${String(s % 60).padStart(2, '0')}`;
}

export function mountBattle({ rt, host, stream, studio = false }) {
  ensureStyles();
  const root = h('section.battle', { 'aria-label': 'PK battle', hidden: true });
  const invites = h('div.battle-invites');
  host.append(invites, root);
  let battle = null; // the one shown
  let skew = 0; // server clock - ours
  let timer = null;

  const mine = (b) => b && b.sides.some((s) => String(s.stream) === String(stream()));

  function take(b) {
    if (!b) return;
    if (b.server_time) skew = Date.parse(b.server_time) - Date.now();
    if (!mine(b)) return;
    battle = b;
    render();
  }

  function render() {
    const b = battle;
    const show = b && (OPEN.has(b.state) || b.state === 'ended');
    root.hidden = !show || b.state === 'invited';
    if (root.hidden) return;
    const [a, z] = b.sides;
    const total = a.score + z.score;
    const left = total ? (a.score / total) * 100 : 50;
    const barA = h('div.battle-bar-a');
    barA.style.width = `${left}%`;
    const supporters = (s) => h('ol.battle-top', {}, s.top_supporters.map((t) => h('li', {}, `${t.display_name} · ${t.points}`)));
    let banner = null;
    if (b.state === 'ended') {
      banner = h('div.battle-banner', { role: 'status' }, b.winner ? `${b.winner === a.host ? a.display_name : z.display_name} wins!` : 'Draw!');
    }
    root.replaceChildren(
      h('div.battle-head', {}, h('span.battle-host', {}, a.display_name), h('span.battle-clock', { 'data-clock': '1' }), h('span.battle-host.right', {}, z.display_name)),
      h('div.battle-bar', { role: 'img', 'aria-label': `${a.score} to ${z.score}` }, barA, h('span.battle-score.left', {}, String(a.score)), h('span.battle-score.right', {}, String(z.score))),
      h('div.battle-sides', {}, supporters(a), supporters(z)),
      banner,
    );
    tickClock();
    clearInterval(timer);
    timer = setInterval(tickClock, 250);
  }

  function tickClock() {
    const el = root.querySelector('[data-clock]');
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
    battle = { ...battle, sides: m.sides };
    render();
  });
  rt.on('open', load);
  rt.on('subscribed', load);
  if (studio) invites.before(challengeForm(() => battle && OPEN.has(battle.state), take));
  load();
  return { refresh: load };
}

/** The studio's Challenge form: a live host (from the live directory), length, mode. */
function challengeForm(busy, take) {
  const list = h('datalist', { id: 'battle-hosts' });
  const who = h('input', { name: 'opponent', list: 'battle-hosts', placeholder: 'A live host', autocomplete: 'off', required: true });
  const length = h('select', { name: 'duration_s' }, [60, 180, 300, 600].map((s) => h('option', { value: String(s), selected: s === 300 }, `${s / 60} min`)));
  const mode = h('select', { name: 'mode' }, h('option', { value: 'gifts' }, 'Gifts'), h('option', { value: 'likes' }, 'Likes'), h('option', { value: 'gifts_and_likes' }, 'Gifts and likes'));
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
  }, h('strong', {}, 'PK battle'), who, list, length, mode, h('label', {}, punish, ' Punishment'), h('button.btn.btn-live', { type: 'submit' }, 'Challenge'));
  return form;
}
