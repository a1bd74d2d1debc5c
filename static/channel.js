// A host's channel page (/c/{username}): who they are (avatar, bio,
// followers), Follow / Unfollow, what is live now, upcoming and their saved
// past streams. The directory events of the page's WebSocket keep it current.

import { $, h, formatNumber, formatStartsIn, formatWhen, describeError, toast } from './common.js';
import { api, currentUser, loginUrl, onLoginChange, renderAccount } from './session.js';
import { Realtime, showReminders } from './realtime.js';
import { thumb, placeholder, categoryChip, visibilityChip } from './cards.js';

const username = decodeURIComponent(window.location.pathname.split('/').filter(Boolean)[1] || '').toLowerCase();

const els = {
  conn: $('#conn'),
  hero: $('#hero'),
  avatar: $('#channel-avatar'),
  name: $('#channel-name'),
  username: $('#channel-username'),
  bio: $('#channel-bio'),
  followers: $('#followers'),
  followersLabel: $('#followers-label'),
  follow: $('#follow'),
  followLogin: $('#follow-login'),
  missing: $('#missing'),
  missingText: $('#missing-text'),
  liveSection: $('#live-section'),
  liveGrid: $('#live-grid'),
  upcomingGrid: $('#upcoming-grid'),
  upcomingCount: $('#upcoming-count'),
  upcomingEmpty: $('#upcoming-empty'),
  pastGrid: $('#past-grid'),
  pastCount: $('#past-count'),
  pastEmpty: $('#past-empty'),
};

const onair = {
  page: 'channel',
  username,
  loaded: false,
  connected: false,
  profile: null,
  followers: null,
  following: false,
  live: null, // the live stream's id
  upcoming: [],
  past: [],
};
window.onair = onair;

const rt = new Realtime({ name: 'channel' });

function card(s, section) {
  const sub =
    section === 'live'
      ? s.live_since
        ? `Live since ${formatWhen(s.live_since)}`
        : 'Starting: waiting for video'
      : section === 'upcoming'
        ? formatStartsIn(s.starts_in_seconds ?? 0, s.scheduled_at)
        : `Ended ${formatWhen(s.ended_at)}`;
  return h(
    'article.stream-card',
    { dataset: { streamId: s.id, section } },
    thumb(s, section),
    h(
      'div.stream-meta',
      {},
      h('div.stream-text', {}, h('a.stream-title', { href: s.watch_url || `/watch/${s.id}` }, s.title), h('span.stream-sub', {}, sub, categoryChip(s), visibilityChip(s))),
    ),
  );
}

function renderProfile(p) {
  onair.profile = p;
  onair.followers = p.followers;
  onair.following = p.following;
  document.title = `${p.display_name} · OnAir`;
  els.name.textContent = p.display_name || p.username;
  els.username.textContent = `@${p.username}`;
  els.bio.textContent = p.bio || '';
  els.bio.hidden = !p.bio;
  els.avatar.replaceChildren();
  els.avatar.removeAttribute('style');
  if (p.avatar_url) els.avatar.append(h('img', { src: p.avatar_url, alt: '' }));
  else placeholder(els.avatar, p.display_name, p.username);
  els.avatar.classList.toggle('is-live', !!p.live);
  renderFollow();
}

function renderFollow() {
  const me = currentUser();
  const p = onair.profile;
  if (!p) return;
  els.followers.textContent = formatNumber(onair.followers ?? 0);
  els.followersLabel.textContent = onair.followers === 1 ? 'follower' : 'followers';
  const own = me && me.id === p.id;
  els.follow.hidden = !me || own;
  els.followLogin.hidden = !!me;
  els.followLogin.href = loginUrl();
  els.follow.textContent = onair.following ? 'Following' : 'Follow';
  els.follow.setAttribute('aria-pressed', String(onair.following));
  els.follow.classList.toggle('is-on', onair.following);
  els.follow.title = onair.following ? 'Stop following' : `Follow ${p.display_name}`;
}

async function toggleFollow() {
  const p = onair.profile;
  if (!p) return;
  els.follow.disabled = true;
  try {
    await api(`/api/users/${encodeURIComponent(p.username)}/follow`, { method: onair.following ? 'DELETE' : 'POST' });
    // The real figures, from the server.
    renderProfile(await api(`/api/users/${encodeURIComponent(p.username)}`));
    toast(onair.following ? `You follow ${p.display_name}` : `You no longer follow ${p.display_name}`, 'ok');
  } catch (err) {
    toast(`Couldn’t ${onair.following ? 'unfollow' : 'follow'}: ${describeError(err)}`, 'error');
  } finally {
    els.follow.disabled = false;
  }
}

function fill(grid, list, section, count, empty) {
  grid.replaceChildren(...list.map((s) => card(s, section)));
  if (count) count.textContent = formatNumber(list.length);
  if (empty) empty.hidden = list.length > 0;
}

async function load() {
  const u = encodeURIComponent(username);
  try {
    const [profile, upcoming, past] = await Promise.all([
      api(`/api/users/${u}`),
      api(`/api/streams?host=${u}&type=scheduled&limit=24`, { auth: false }),
      api(`/api/streams?host=${u}&type=recent&limit=24`, { auth: false }),
    ]);
    renderProfile(profile);
    const live = profile.live;
    onair.live = live ? live.id : null;
    els.liveSection.hidden = !live;
    fill(els.liveGrid, live ? [live] : [], 'live');
    fill(els.upcomingGrid, upcoming.streams, 'upcoming', els.upcomingCount, els.upcomingEmpty);
    // Saved streams only: one ended without saving is not shown publicly.
    fill(els.pastGrid, past.streams, 'recent', els.pastCount, els.pastEmpty);
    onair.upcoming = upcoming.streams.map((s) => s.id);
    onair.past = past.streams.map((s) => s.id);
    onair.loaded = true;
  } catch (err) {
    if (err.status === 404) {
      els.hero.hidden = true;
      els.missing.hidden = false;
      els.missingText.textContent = `Nobody is called “${username}” here.`;
      onair.loaded = true;
      onair.missing = true;
      return;
    }
    toast(`Couldn’t load the channel: ${describeError(err)}`, 'error', 6000);
  }
}

function setConn(state) {
  onair.connected = state === 'open';
  els.conn.dataset.state = state;
}

rt.on('open', () => {
  setConn('open');
  rt.directory();
  load();
});
rt.on('close', () => setConn('closed'));
rt.on('stream_status', (msg) => {
  const s = msg.stream;
  if (s && s.host && s.host.username === username) load();
});
showReminders(rt);

els.follow.addEventListener('click', () => toggleFollow());
renderAccount();
onLoginChange(() => load());
setConn('connecting');
rt.connect();
