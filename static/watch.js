// OnAir player: WHEP playback with layer selection and live stats, the
// stream's status, chat, likes and viewer count. Everything live comes from
// the page's WebSocket: `stream_status` says when to play (and when to join
// WHEP again after the host's video came back), `viewer_count` and `likes`
// carry the real numbers, `chat_message` / `chat_deleted` the chat.
import {
  $,
  OnAirError,
  errorFromResponse,
  errorFromBody,
  describeError,
  getIceServers,
  waitForIceGathering,
  resolveLocation,
  sessionFromLocation,
  deleteSession,
  formatBitrate,
  formatNumber,
  formatStartsIn,
  formatWhen,
  initial,
  toast,
  setText,
  showEl,
  layerName,
  h,
} from './common.js';
import { accessToken, api, currentUser, freshAccessToken, loginUrl, renderAccount, viewerKey } from './session.js';
import { Realtime, showReminders } from './realtime.js';
import { ChatView, ChatComposer, describeSettings, refusalText } from './chat.js';
import { SupportPanel } from './gifts.js';
import { formatCoins } from './money.js';
import { PollView, QaView, onInteractEvents } from './interact.js';
import { ShopView } from './shop.js';
import { RoomView } from './room-view.js';

const ERROR_RETRY_MS = [2000, 4000, 8000, 15000];
const CONNECT_TIMEOUT_MS = 15000;
const DISCONNECT_GRACE_MS = 2000;
const LAYERS = ['auto', 'f', 'h', 'q'];

const svg = (body) =>
  `<svg viewBox="0 0 24 24" fill="none" stroke="currentColor" stroke-width="2" stroke-linecap="round" stroke-linejoin="round">${body}</svg>`;
const ICONS = {
  broadcast: svg(
    '<circle cx="12" cy="12" r="2"/><path d="M16.2 7.8a6 6 0 0 1 0 8.4M7.8 16.2a6 6 0 0 1 0-8.4M19.1 4.9a10 10 0 0 1 0 14.2M4.9 19.1a10 10 0 0 1 0-14.2"/>',
  ),
  offline: svg(
    '<circle cx="12" cy="12" r="2"/><path d="M16.2 7.8a6 6 0 0 1 1.3 6.4M7.8 16.2a6 6 0 0 1 0-8.4M19.1 4.9a10 10 0 0 1 2 10.8M4.9 19.1a10 10 0 0 1 0-14.2M3 3l18 18"/>',
  ),
  clock: svg('<circle cx="12" cy="12" r="9"/><path d="M12 7v5l3 2"/>'),
  lock: svg('<rect x="4" y="11" width="16" height="10" rx="2"/><path d="M8 11V7a4 4 0 0 1 8 0v4"/>'),
  ended: svg('<rect x="2" y="4" width="20" height="14" rx="2"/><path d="M8 21h8M12 18v3M10 9l4 4M14 9l-4 4"/>'),
  error: svg('<circle cx="12" cy="12" r="10"/><path d="M12 8v5M12 16h.01"/>'),
};

const els = {
  body: document.body,
  status: $('#status'),
  statusText: $('#status-text'),
  streamTitle: $('#stream-title'),
  channelName: $('#channel-name'),
  hostName: $('#host-name'),
  description: $('#stream-description'),
  avatar: $('#avatar'),
  statusLine: $('#status-line'),
  stage: $('#stage'),
  video: $('#video'),
  overlay: $('#overlay'),
  overlayTitle: $('#overlay-title'),
  overlayText: $('#overlay-text'),
  overlaySub: $('#overlay-sub'),
  overlaySpinner: $('#overlay-spinner'),
  overlayGlyph: $('#overlay-glyph'),
  overlayIcon: $('#overlay-icon'),
  retry: $('#retry'),
  overlayAction: $('#overlay-action'),
  play: $('#play'),
  unmute: $('#unmute'),
  muteToggle: $('#mute-toggle'),
  volume: $('#volume'),
  pip: $('#pip'),
  fullscreen: $('#fullscreen'),
  badgeLive: $('#badge-live'),
  badgeViewers: $('#badge-viewers'),
  badgeViewersN: $('#badge-viewers-n'),
  badgeLayer: $('#badge-layer'),
  layerSingle: $('#layer-single'),
  layer: $('#layer'),
  layerInfo: $('#layer-info'),
  targetLayer: $('#target-layer'),
  viewerCount: $('#viewer-count'),
  viewerCountWrap: $('#viewer-count-wrap'),
  like: $('#like'),
  follow: $('#follow'),
  likeCount: $('#like-count'),
  quality: $('#quality'),
  statResolution: $('#stat-resolution'),
  statFps: $('#stat-fps'),
  statBitrate: $('#stat-bitrate'),
  statLost: $('#stat-lost'),
  statJitter: $('#stat-jitter'),
  statLayer: $('#stat-layer'),
  statRtt: $('#stat-rtt'),
  statFrames: $('#stat-frames'),
  connState: $('#conn-state'),
  sessionId: $('#session-id'),
  chatModes: $('#chat-modes'),
};

function streamFromPath() {
  const parts = window.location.pathname.split('/').filter(Boolean);
  const i = parts.indexOf('watch');
  if (i >= 0 && parts[i + 1]) {
    try {
      return decodeURIComponent(parts[i + 1]);
    } catch {
      return parts[i + 1];
    }
  }
  return new URLSearchParams(window.location.search).get('stream') || '';
}

const ref = streamFromPath();
/** Opened by the host's username (follows their next stream) rather than a stream id. */
const byChannel = ref !== '' && !/^\d+$/.test(ref);

/** State exposed for tests and debugging. */
const onair = {
  page: 'watch',
  // 'idle' | 'connecting' | 'live' | 'ended' | 'error'. While the stream is
  // not playing yet (scheduled, starting, offline), state is 'connecting' and
  // waiting=true; while the host's video is gone for a moment, phase is
  // 'reconnecting' (state 'connecting').
  state: 'idle',
  phase: 'idle', // 'idle'|'connecting'|'waiting'|'reconnecting'|'live'|'ended'|'error'
  waiting: false,
  // What the server says: 'loading'|'scheduled'|'starting'|'live'|'reconnecting'|
  // 'ended'|'cancelled'|'failed'|'offline'|'login_required'|'subscription_required'|'ticket_required'
  status: 'loading',
  pc: null,
  session: null, // WHEP session id (last segment of Location)
  location: null, // absolute URL of the WHEP session resource
  authed: false, // the WHEP session was opened with an access token (its DELETE/layer calls send one)
  stream: ref, // as in the URL: a stream id or the host's username
  streamId: null, // the stream's id once the server named it
  info: null, // the Stream object (from `subscribed` / `stream_status`)
  viewerKey: null,
  maxLayer: 'auto', // the cap chosen in the picker
  layer: null, // last /layer response {max_layer,current_layer,target_layer}
  // From the server's `layers` events (WHEP .../events): what is received
  // and what can be picked. Labels come from these and the decoded video.
  layers: [], // [{layer, width, height, bitrate_bps}], low to high
  currentLayer: null, // the layer forwarded to this viewer now
  targetLayer: null,
  layerEvents: 0,
  layerHistory: [], // the layers received, in order (the last 20 changes)
  qualityLabel: null, // the badge: the decoded picture's height ("720p")
  viewer: null, // (per-viewer health is for the host only now; always null)
  get chatRefusal() {
    // The code of the last message the server refused (`too_long`, `followers_only`, ...).
    try {
      return composer.lastCode;
    } catch {
      return null; // before the chat box exists
    }
  },
  host: null, // the stream's host ({id, username, display_name})
  following: false, // whether the viewer follows the host (from the server)
  followingSince: null,
  followers: null,
  viewerCount: null, // real viewers now, from the server
  viewerCountSource: null, // 'subscribed' | 'stream_status' | 'viewer_count'
  likes: null, // likes so far, from the server
  likesSource: null, // 'subscribed' | 'stream_status' | 'likes'
  chatSettings: null,
  connected: false, // the WebSocket
  stats: null, // { framesDecoded, width, height, fps, bitrate_bps, packetsLost, jitter_ms }
  error: null,
  attempts: 0,
  whepJoins: 0,
  get chat() {
    return chat ? chat.snapshot() : [];
  },
  setLayer: (l) => setLayer(l),
  retry: () => retryNow(),
  stop: () => stop(),
};
window.onair = onair;

let attemptId = 0;
let retryTimer = null;
let connectTimer = null;
let disconnectTimer = null;
let statsTimer = null;
let countdownTimer = null;
let prevIn = new Map();
let errorStreak = 0;
let firstFrameSeen = false;
let userMuted = true;
let cachedIce = null;
let sentLayer = 'auto'; // max_layer sent with the last WHEP POST
let layerEvents = null; // the EventSource of the WHEP session's `layers` events
let sawReconnecting = false; // the host's video dropped since we joined
let statusAt = 0; // when `info` arrived (for the countdown)
let watchPending = false; // a `watch` is out, not answered yet
let stopped = false;
let inFlight = false; // a WHEP offer is on its way

const rt = new Realtime({ name: 'watch' });
const roomView = new RoomView({
  stage: els.stage,
  video: els.video,
  rt,
  reconnect: () => {
    if (shouldPlay()) connect();
  },
});
onair.roomView = roomView;
/** The gift tray, tips, supporters, tickets and subscriptions. */
const support = new SupportPanel({ rt, stage: $('#stage'), root: $('#support'), subscribeButton: $('#subscribe') });

// On a phone the gift tray is a sheet over the video, opened by a round
// button above the like button (see onair.css); it exists while the tray does.
{
  const open = $('#gift-open');
  const tray = $('#support');
  const sync = () => {
    open.hidden = tray.hidden;
    if (tray.hidden) document.body.classList.remove('sheet-open');
  };
  new MutationObserver(sync).observe(tray, { attributes: true, attributeFilter: ['hidden'] });
  sync();
  open.addEventListener('click', () => open.setAttribute('aria-expanded', String(document.body.classList.toggle('sheet-open'))));
  // The sheet covers the button: a tap outside it or Escape closes it.
  const close = () => {
    document.body.classList.remove('sheet-open');
    open.setAttribute('aria-expanded', 'false');
  };
  document.addEventListener('click', (e) => {
    if (document.body.classList.contains('sheet-open') && !tray.contains(e.target) && !open.contains(e.target)) close();
  });
  document.addEventListener('keydown', (e) => {
    if (e.key === 'Escape' && document.body.classList.contains('sheet-open')) close();
  });
}
/** What the overlay's action button does (buy a ticket, subscribe). */
let overlayAction = null;

// ---------------------------------------------------------------- state & UI

const STATUS_LABEL = {
  idle: 'Loading',
  connecting: 'Connecting…',
  waiting: 'Offline',
  reconnecting: 'Reconnecting',
  live: 'LIVE',
  ended: 'Ended',
  error: 'Error',
};

function setPhase(phase) {
  onair.phase = phase;
  onair.waiting = phase === 'waiting';
  onair.state = phase === 'waiting' || phase === 'reconnecting' ? 'connecting' : phase;
  els.body.dataset.state = onair.state;
  els.body.dataset.phase = phase;
  els.status.dataset.state = phase === 'reconnecting' ? 'connecting' : phase;
  let label = STATUS_LABEL[phase] || phase;
  if (phase === 'waiting') label = { scheduled: 'Upcoming', starting: 'Starting' }[onair.status] || 'Offline';
  setText(els.statusText, label);
  const live = phase === 'live';
  els.badgeLive.hidden = !live;
  renderViewerCount();
  els.avatar.classList.toggle('is-live', live || phase === 'reconnecting');
  renderStatusLine();
  const name = (onair.info && onair.info.title) || onair.stream || 'Stream';
  document.title = live ? `🔴 ${name} · OnAir` : `${name} · OnAir`;
  if (!live) {
    els.unmute.hidden = true;
    els.play.hidden = true;
  }
}

function renderStatusLine() {
  const phase = onair.phase;
  let text = {
    idle: 'Loading…',
    connecting: 'Connecting…',
    waiting: 'Offline',
    reconnecting: 'Reconnecting…',
    live: 'Live now',
    ended: 'Stream ended',
    error: 'Unavailable',
  }[phase];
  if (phase === 'waiting' && onair.status === 'scheduled') text = onair.info && onair.info.scheduled_at ? `Starts ${formatWhen(onair.info.scheduled_at)}` : 'Not scheduled yet';
  if (phase === 'waiting' && onair.status === 'starting') text = 'Starting soon';
  if (phase === 'ended' && onair.status === 'cancelled') text = 'Cancelled';
  setText(els.statusLine, text || '');
}

function showOverlay({ title, text = '', sub = '', spinner = false, retry = null, icon = 'broadcast', link = null, action = null }) {
  els.overlayAction.hidden = !action;
  overlayAction = action;
  if (action) setText(els.overlayAction, action.text);
  setText(els.overlayTitle, title);
  setText(els.overlayText, text);
  setText(els.overlaySub, sub);
  els.overlaySpinner.hidden = !spinner;
  els.overlayGlyph.hidden = spinner;
  if (!spinner && els.overlayGlyph.dataset.icon !== icon) {
    els.overlayGlyph.innerHTML = ICONS[icon] || ICONS.broadcast;
    els.overlayGlyph.dataset.icon = icon;
  }
  els.overlayIcon.dataset.icon = icon;
  els.retry.hidden = !retry && !link;
  if (link) {
    setText(els.retry, link.text);
    els.retry.dataset.href = link.href;
  } else if (retry) {
    setText(els.retry, retry);
    delete els.retry.dataset.href;
  }
  els.overlay.hidden = false;
}

function hideOverlay() {
  els.overlay.hidden = true;
}

function renderViewerCount() {
  const n = onair.viewerCount;
  const shown = n != null && (onair.phase === 'live' || onair.phase === 'reconnecting');
  if (n != null) {
    setText(els.viewerCount, formatNumber(n));
    setText(els.badgeViewersN, formatNumber(n));
  }
  els.viewerCountWrap.hidden = !shown;
  els.badgeViewers.hidden = !shown || onair.phase !== 'live';
}

function renderLikes() {
  setText(els.likeCount, onair.likes == null ? '—' : formatNumber(onair.likes));
}

/** The countdown of a scheduled stream, from the server's starts_in_seconds (ticks locally). */
function startCountdown() {
  clearInterval(countdownTimer);
  const tick = () => {
    if (onair.status !== 'scheduled' || !onair.info) {
      clearInterval(countdownTimer);
      countdownTimer = null;
      return;
    }
    const s = onair.info;
    if (!s.scheduled_at) {
      setText(els.overlaySub, '');
      return;
    }
    const left = (s.starts_in_seconds ?? 0) - (Date.now() - statusAt) / 1000;
    setText(els.overlaySub, formatStartsIn(left, s.scheduled_at));
    onair.countdown = Math.max(0, Math.round(left));
  };
  tick();
  countdownTimer = setInterval(tick, 1000);
}

// ---------------------------------------------------------------- the stream's status

function applyInfo(s, source) {
  onair.info = s;
  onair.streamId = s.id;
  statusAt = Date.now();
  setText(els.streamTitle, s.title);
  setText(els.channelName, s.title);
  setText(els.hostName, s.host ? s.host.display_name || s.host.username : '');
  els.hostName.title = s.host ? `@${s.host.username}` : '';
  if (s.host) {
    const channel = `/c/${encodeURIComponent(s.host.username)}`;
    els.hostName.href = channel;
    els.avatar.href = channel;
    if (!onair.host || onair.host.id !== s.host.id) {
      onair.host = s.host;
      loadFollow();
    }
  }
  if (!els.avatar.querySelector('img')) setText(els.avatar, initial(s.host ? s.host.display_name || s.host.username : ref));
  els.description.hidden = !s.description;
  setText(els.description, s.description || '');
  support.setStream(s);
  if (source !== 'stream_status' || onair.viewerCountSource !== 'viewer_count') {
    if (s.state === 'live') {
      onair.viewerCount = s.viewers ?? 0;
      onair.viewerCountSource = source;
    }
  }
  if (source !== 'stream_status' || onair.likesSource !== 'likes') {
    onair.likes = s.likes ?? 0;
    onair.likesSource = source;
  }
  renderLikes();
  qa.setOver(['ended', 'archived', 'cancelled', 'failed'].includes(s.state));
  renderViewerCount();
  composer.setClosed(!['scheduled', 'live'].includes(s.state), s.state === 'cancelled' ? 'This stream was cancelled; its chat is closed.' : 'The stream is over; its chat is closed.');
  applyStatus(s);
}

function applyStatus(s) {
  if (stopped) return;
  const media = s.media_state;
  if (s.state === 'live' && media === 'receiving') {
    onair.status = 'live';
    const back = sawReconnecting;
    sawReconnecting = false;
    if (back && onair.pc && connectionState(onair.pc) === 'connected') {
      // The server kept our connection while the host was away: their new
      // video arrives on it (from their next keyframe), no need to join again.
      console.info('[onair] the stream is receiving again on the same connection');
      setPhase('live');
      hideOverlay();
      return;
    }
    const rejoin = back;
    if (rejoin || (!onair.pc && !inFlight)) {
      // First time, or the host's video is back after a drop: join (again).
      if (rejoin) console.info('[onair] the stream is receiving again: joining again');
      errorStreak = 0;
      connect();
    }
    return;
  }
  if (s.state === 'live' && media === 'reconnecting') {
    onair.status = 'reconnecting';
    sawReconnecting = true;
    clearTimeout(retryTimer);
    setPhase('reconnecting');
    showOverlay({ title: 'Reconnecting…', text: 'The host’s video dropped. Playback resumes here when it comes back.', spinner: true });
    return;
  }
  if (s.state === 'live') {
    onair.status = 'starting';
    cancelPeer();
    setPhase('waiting');
    showOverlay({ title: 'Starting soon', text: `${hostName(s)} is getting ready. Playback starts here by itself.`, icon: 'clock', spinner: false });
    return;
  }
  if (s.state === 'scheduled') {
    onair.status = 'scheduled';
    cancelPeer();
    setPhase('waiting');
    showOverlay({
      title: s.scheduled_at ? `Live ${formatWhen(s.scheduled_at)}` : 'Coming up',
      text: `${hostName(s)} hasn’t started yet. Playback starts here by itself when they go live.`,
      icon: 'clock',
    });
    startCountdown();
    return;
  }
  if (s.state === 'cancelled') {
    onair.status = 'cancelled';
    streamEnded('cancelled', { title: 'This stream was cancelled', text: `${hostName(s)} called it off.` });
    return;
  }
  if (s.state === 'error') {
    onair.status = 'failed';
    streamEnded('error', { title: 'This stream didn’t start', text: s.error || 'The host’s video never arrived.' });
    return;
  }
  onair.status = 'ended';
  streamEnded('status', {
    title: 'The stream has ended',
    text: `Thanks for watching${s.host ? ` ${hostName(s)}` : ''}.${s.saved ? ' The host saved it.' : ''}${byChannel ? ' Their next stream plays here by itself.' : ''}`,
  });
}

function hostName(s) {
  return (s && s.host && (s.host.display_name || s.host.username)) || onair.stream;
}

/** The server refused to let us follow the stream (no id in the error: it answers our `watch`). */
function watchRefused(err) {
  onair.error = { code: err.code, status: err.status, message: err.message };
  cancelPeer();
  if (err.status === 404) {
    onair.status = 'offline';
    setPhase('waiting');
    showOverlay({
      title: byChannel ? `${onair.stream} is offline` : 'No such stream',
      text: byChannel ? 'Nothing is live or scheduled on this channel right now. Playback starts here by itself when it goes live.' : 'This stream does not exist (any more).',
      icon: 'offline',
    });
    setText(els.connState, 'Waiting for stream');
    chat.clear();
    composer.setClosed(true, 'No stream to chat in.');
  } else if (err.code === 'login_required' || err.status === 401) {
    onair.status = 'login_required';
    setPhase('error');
    showOverlay({ title: 'Log in to watch', text: refusalText(err), icon: 'lock', link: { text: 'Log in', href: loginUrl() } });
    composer.setClosed(true, 'Log in to see the chat.');
  } else if (err.code === 'subscription_required' || err.code === 'ticket_required') {
    onair.status = err.code;
    setPhase('error');
    const ticket = err.code === 'ticket_required';
    showOverlay({ title: ticket ? 'Ticket required' : 'Subscribers only', text: refusalText(err), icon: 'lock', action: { text: ticket ? 'Buy a ticket' : 'Subscribe', run: () => unlock(ticket) } });
    composer.setClosed(true, 'Only viewers who may watch can chat.');
    // Show what it costs: the stream's public details.
    lookUpStream().then((s) => {
      if (!s || onair.status !== err.code) return;
      support.setStream(s);
      // Say what is behind the lock: the stream's title and host.
      setText(els.streamTitle, s.title);
      setText(els.channelName, s.title);
      setText(els.hostName, hostName(s));
      setText(els.avatar, initial(hostName(s)));
      if (ticket && s.ticket_price) setText(els.overlayAction, `Buy a ticket · ${formatCoins(s.ticket_price)} coins`);
    });
  } else {
    setPhase('error');
    showOverlay({ title: 'Can’t open this stream', text: describeError(err), icon: 'error', retry: 'Try again' });
  }
}

/** The stream this page names, from the public API (when the socket refused to say). */
async function lookUpStream() {
  try {
    if (/^\d+$/.test(ref)) return await api(`/api/streams/${ref}`, { auth: false });
    const page = await api(`/api/streams?type=live&host=${encodeURIComponent(ref)}&limit=1`, { auth: false });
    return page.streams[0] || null;
  } catch {
    return null;
  }
}

/** Buys a ticket (or subscribes) from the overlay, then asks to watch again. */
async function unlock(ticket) {
  els.overlayAction.disabled = true;
  try {
    const ok = ticket ? await support.buyTicket() : await support.subscribe();
    if (ok) {
      showOverlay({ title: 'Opening the stream…', text: '', spinner: true });
      rejoinWatch();
    }
  } finally {
    els.overlayAction.disabled = false;
  }
}

// ---------------------------------------------------------------- connecting (WHEP)

function connectionState(pc) {
  if (pc.connectionState) return pc.connectionState;
  const map = { checking: 'connecting', completed: 'connected', new: 'new' };
  return map[pc.iceConnectionState] || pc.iceConnectionState;
}

/** One WHEP attempt (only when the server says the stream is receiving). */
async function connect() {
  const target = onair.streamId != null ? String(onair.streamId) : onair.stream;
  if (!target) {
    setPhase('error');
    showOverlay({ title: 'No stream selected', text: 'Open a link of the form /watch/<stream>.', icon: 'error' });
    return;
  }
  const attempt = ++attemptId;
  clearTimeout(retryTimer);
  closePeer({ notifyServer: true });
  onair.attempts += 1;
  inFlight = true;
  setPhase('connecting');
  showOverlay({ title: 'Connecting…', text: `Joining ${(onair.info && onair.info.title) || onair.stream}.`, spinner: true });

  let pc = null;
  try {
    if (!cachedIce) cachedIce = await getIceServers();
    if (attempt !== attemptId) return;
    pc = new RTCPeerConnection({ iceServers: cachedIce, bundlePolicy: 'max-bundle' });
    const remote = new MediaStream();
    // A co-host room: K video + K audio slots (the first slot's video also
    // drives the page's own player, so its stats and first frame stay as they are).
    const k = roomView.slotsWanted();
    roomView.begin(k);
    const videos = [];
    const audios = [];
    for (let i = 0; i < k; i++) videos.push(pc.addTransceiver('video', { direction: 'recvonly' }));
    for (let i = 0; i < k; i++) audios.push(pc.addTransceiver('audio', { direction: 'recvonly' }));
    pc.addEventListener('track', (ev) => {
      if (pc !== onair.pc) return;
      if (k > 1) {
        const vi = videos.indexOf(ev.transceiver);
        roomView.addTrack(vi >= 0 ? vi : audios.indexOf(ev.transceiver), ev.track);
        if (vi !== 0) return;
      }
      remote.addTrack(ev.track);
      if (els.video.srcObject !== remote) els.video.srcObject = remote;
      startPlayback();
    });
    const onConn = () => onConnectionChange(pc);
    pc.addEventListener('connectionstatechange', onConn);
    pc.addEventListener('iceconnectionstatechange', onConn);

    const offer = await pc.createOffer();
    await pc.setLocalDescription(offer);
    await waitForIceGathering(pc, 1000);
    if (attempt !== attemptId) {
      pc.close();
      return;
    }

    let url = `/whep/${encodeURIComponent(target)}`;
    sentLayer = onair.maxLayer;
    if (onair.maxLayer !== 'auto') url += `?max_layer=${encodeURIComponent(onair.maxLayer)}`;
    // The same viewer key as the WebSocket's `watch` (and the same login):
    // this page and its WebRTC session count as one viewer.
    const headers = { 'Content-Type': 'application/sdp', 'X-OnAir-Viewer': onair.viewerKey };
    const token = await freshAccessToken().catch(() => null);
    if (token) headers.Authorization = `Bearer ${token}`;
    const resp = await fetch(url, { method: 'POST', headers, body: pc.localDescription.sdp });
    if (attempt !== attemptId) {
      pc.close();
      if (resp.ok && resp.headers.get('Location')) deleteSession(resolveLocation(resp.headers.get('Location')), token);
      return;
    }
    if (!resp.ok) throw await errorFromResponse(resp);
    const loc = resp.headers.get('Location');
    if (!loc) throw new OnAirError('The server did not return a session URL.', { code: 'no_location' });
    const answer = await resp.text();

    onair.pc = pc;
    onair.authed = Boolean(token);
    onair.location = resolveLocation(loc);
    onair.session = sessionFromLocation(loc);
    onair.whepJoins += 1;
    prevIn = new Map();
    firstFrameSeen = false;
    setText(els.sessionId, onair.session || '—');
    await pc.setRemoteDescription({ type: 'answer', sdp: answer });
    followLayers(onair.location);
    startStats();
    clearTimeout(connectTimer);
    connectTimer = setTimeout(() => {
      if (onair.pc === pc && onair.state === 'connecting') {
        failed(new OnAirError('Could not establish the media connection. UDP traffic to the server may be blocked.', { code: 'ice_timeout' }));
      }
    }, CONNECT_TIMEOUT_MS);
    if (attempt === attemptId) inFlight = false;
    onConnectionChange(pc);
  } catch (err) {
    if (attempt !== attemptId) return;
    inFlight = false;
    if (pc && pc !== onair.pc) pc.close();
    failed(err);
  }
}

/** True while the server says the stream's video is arriving. */
function shouldPlay() {
  return !stopped && onair.info && onair.info.state === 'live' && onair.info.media_state === 'receiving';
}

function failed(err) {
  const expected = err && err.status >= 400 && err.status < 500;
  (expected ? console.warn : console.error)('[onair] playback failed:', err);
  onair.error = { code: (err && err.code) || 'error', status: (err && err.status) || 0, message: describeError(err) };
  closePeer({ notifyServer: true });
  if (err && (err.code === 'login_required' || err.code === 'subscription_required' || err.code === 'ticket_required')) {
    watchRefused(err);
    return;
  }
  if (!shouldPlay()) {
    // The status moved on meanwhile; its event decides what comes next.
    if (onair.info) applyStatus(onair.info);
    return;
  }
  if (err && err.code === 'unsupported_codec') {
    // Trying again cannot help: this browser cannot take the stream's video
    // as the encoder sends it (an H.264 profile Firefox does not offer, say).
    onair.status = 'unsupported';
    setPhase('error');
    showOverlay({ title: 'This browser can’t play this stream', text: 'Its video format isn’t one this browser accepts. Try another browser (Chrome, Edge or Safari).', icon: 'error', retry: 'Try again' });
    setText(els.connState, 'Unsupported');
    return;
  }
  setPhase('error');
  showOverlay({ title: 'Can’t play this stream', text: onair.error.message, retry: 'Try again', icon: 'error' });
  setText(els.connState, 'Error');
  // The stream is live (the server says so): try again, waiting longer each time.
  const delay = ERROR_RETRY_MS[Math.min(errorStreak, ERROR_RETRY_MS.length - 1)];
  errorStreak += 1;
  const due = Date.now() + delay;
  const tick = () => {
    const left = Math.max(0, Math.ceil((due - Date.now()) / 1000));
    if (onair.phase === 'error') setText(els.overlaySub, left > 0 ? `Trying again in ${left} s…` : 'Trying again…');
  };
  tick();
  clearInterval(countdownTimer);
  countdownTimer = setInterval(tick, 500);
  retryTimer = setTimeout(() => {
    clearInterval(countdownTimer);
    countdownTimer = null;
    if (shouldPlay()) connect();
  }, delay);
}

function retryNow() {
  if (els.retry.dataset.href) {
    window.location.href = els.retry.dataset.href;
    return;
  }
  stopped = false;
  if (shouldPlay()) {
    errorStreak = 0;
    connect();
  } else {
    // Ask the server again where the stream is.
    rejoinWatch();
  }
}

function onConnectionChange(pc) {
  if (pc !== onair.pc) return;
  const s = connectionState(pc);
  setText(els.connState, { new: 'New', connecting: 'Connecting…', connected: 'Connected', disconnected: 'Interrupted', failed: 'Failed', closed: 'Closed' }[s] || s);
  if (s === 'connected') {
    clearTimeout(disconnectTimer);
    disconnectTimer = null;
    if (onair.phase === 'connecting') wentLive();
  } else if (s === 'failed' || s === 'closed') {
    if (onair.phase === 'live' || onair.phase === 'connecting') mediaLost();
  } else if (s === 'disconnected' && onair.phase === 'live' && !disconnectTimer) {
    disconnectTimer = setTimeout(() => {
      disconnectTimer = null;
      if (onair.pc === pc && connectionState(pc) !== 'connected' && onair.phase === 'live') mediaLost();
    }, DISCONNECT_GRACE_MS);
  }
}

/** Our media connection broke: join again if the stream still receives, else wait for its status. */
function mediaLost() {
  closePeer({ notifyServer: true });
  if (shouldPlay()) {
    failed(new OnAirError('The media connection was lost.', { code: 'connection_lost' }));
  } else if (onair.info) {
    applyStatus(onair.info);
  }
}

function wentLive() {
  clearTimeout(connectTimer);
  errorStreak = 0;
  onair.error = null;
  setPhase('live');
  if (firstFrameSeen) hideOverlay();
  else showOverlay({ title: 'Starting playback…', text: '', spinner: true });
  // A cap chosen while connecting (after the POST went out) is applied now.
  if (onair.maxLayer !== sentLayer) {
    setLayer(onair.maxLayer, { silent: true });
  }
  setTimeout(() => {
    // Audio-only or slow first frame: do not keep the spinner forever.
    if (onair.phase === 'live' && !els.overlay.hidden) hideOverlay();
  }, 5000);
}

function streamEnded(reason, { title, text }) {
  console.info(`[onair] stream over (${reason})`);
  clearTimeout(retryTimer);
  // The server ends its viewers' sessions with the stream: a DELETE now
  // would only get a 404.
  attemptId++;
  inFlight = false;
  closePeer({ notifyServer: false });
  setPhase('ended');
  setText(els.connState, 'Closed');
  showOverlay({ title, text, icon: 'ended' });
}

/**
 * The credential of the WHEP session's requests: a session opened while
 * logged in is changed or ended only by the same login (any of its tokens:
 * the latest one, since the page refreshes them).
 */
function sessionBearer() {
  return onair.authed ? accessToken() : null;
}

/** Leaves the stream (no automatic rejoin); resolves once the server has seen the DELETE. */
function stop() {
  attemptId++;
  inFlight = false;
  stopped = true;
  clearTimeout(retryTimer);
  clearInterval(countdownTimer);
  const deleted = onair.location ? deleteSession(onair.location, sessionBearer()) : Promise.resolve();
  closePeer({ notifyServer: false });
  setPhase('idle');
  setText(els.statusLine, 'Stopped');
  showOverlay({ title: 'Playback stopped', text: '', retry: 'Watch again', icon: 'broadcast' });
  setText(els.connState, 'Closed');
  return deleted;
}

/** Stops any WHEP attempt under way and closes the connection. */
function cancelPeer() {
  attemptId++;
  inFlight = false;
  closePeer({ notifyServer: true });
}

function closePeer({ notifyServer }) {
  clearTimeout(connectTimer);
  clearTimeout(disconnectTimer);
  disconnectTimer = null;
  stopStats();
  if (notifyServer && onair.location) deleteSession(onair.location, sessionBearer());
  if (onair.pc) {
    try {
      onair.pc.close();
    } catch {
      /* ignore */
    }
  }
  onair.pc = null;
  onair.location = null;
  onair.layer = null;
  if (layerEvents) layerEvents.close();
  layerEvents = null;
  onair.currentLayer = null;
  onair.targetLayer = null;
  resetStats();
}

function resetStats() {
  for (const el of [els.statResolution, els.statFps, els.statBitrate, els.statLost, els.statJitter, els.statLayer, els.targetLayer, els.statRtt]) {
    setText(el, '—');
  }
  els.quality.dataset.quality = 'unknown';
  setText(els.quality, '—');
  els.badgeLayer.hidden = true;
}

// ---------------------------------------------------------------- playback

function startPlayback() {
  const v = els.video;
  v.muted = userMuted;
  v.volume = Number(els.volume.value);
  const p = v.play();
  if (p && p.catch) {
    p.then(() => {
      els.play.hidden = true;
      renderMute();
    }).catch((err) => {
      if (err && err.name === 'AbortError') return; // superseded by a newer play()
      if (!v.muted) {
        // Autoplay with sound was refused: fall back to muted playback.
        userMuted = true;
        v.muted = true;
        v.play().then(renderMute, () => {
          els.play.hidden = false;
        });
      } else {
        els.play.hidden = false;
      }
    });
  }
  renderMute();
}

function renderMute() {
  const muted = els.video.muted;
  showEl(els.muteToggle.querySelector('.icon-muted'), muted);
  showEl(els.muteToggle.querySelector('.icon-sound'), !muted);
  els.muteToggle.title = muted ? 'Unmute' : 'Mute';
  els.muteToggle.setAttribute('aria-label', els.muteToggle.title);
  const hasAudio = els.video.srcObject && els.video.srcObject.getAudioTracks && els.video.srcObject.getAudioTracks().length > 0;
  els.unmute.hidden = !(muted && hasAudio && onair.phase === 'live' && els.play.hidden);
}

function setMuted(muted) {
  userMuted = muted;
  els.video.muted = muted;
  if (!muted && Number(els.volume.value) === 0) els.volume.value = '0.8';
  els.video.volume = Number(els.volume.value);
  if (!muted) els.video.play().catch(() => {});
  renderMute();
}

// ---------------------------------------------------------------- layers

async function setLayer(layer, { silent = false } = {}) {
  if (!LAYERS.includes(layer)) throw new Error(`unknown layer ${layer}`);
  onair.maxLayer = layer;
  if (els.layer.value !== layer) els.layer.value = layer;
  setText(els.layerInfo, layerName(layer));
  if (!onair.location || onair.state !== 'live') return null;
  const u = new URL(onair.location);
  u.pathname = `${u.pathname.replace(/\/$/, '')}/layer`;
  try {
    const headers = { 'Content-Type': 'application/json' };
    const bearer = sessionBearer();
    if (bearer) headers.Authorization = `Bearer ${bearer}`;
    const resp = await fetch(u.toString(), {
      method: 'POST',
      headers,
      body: JSON.stringify({ max_layer: layer }),
    });
    if (!resp.ok) throw await errorFromResponse(resp);
    // What this says is the layer *before* the switch: the labels wait for
    // the `layers` event and the decoded picture.
    onair.layer = await resp.json().catch(() => ({}));
    return onair.layer;
  } catch (err) {
    console.error('[onair] layer change failed:', err);
    if (!silent) toast(`Couldn’t change quality: ${describeError(err)}`, 'error');
    return null;
  }
}

/** Follows the WHEP session's server-sent `layers` events. */
function followLayers(location) {
  if (layerEvents) layerEvents.close();
  if (typeof EventSource !== 'function') return;
  const es = new EventSource(`${location.replace(/\/$/, '')}/events`);
  layerEvents = es;
  es.addEventListener('layers', (ev) => {
    if (es !== layerEvents) return;
    let msg;
    try {
      msg = JSON.parse(ev.data);
    } catch {
      return;
    }
    onair.layerEvents += 1;
    onair.layers = Array.isArray(msg.layers) ? msg.layers : [];
    if (msg.current_layer && msg.current_layer !== onair.currentLayer) {
      onair.layerHistory.push(msg.current_layer);
      if (onair.layerHistory.length > 20) onair.layerHistory.shift();
    }
    onair.currentLayer = msg.current_layer || null;
    onair.targetLayer = msg.target_layer || null;
    renderPicker();
    renderLayer();
  });
  // The session ended (or never existed): the stream's status decides what next.
  es.addEventListener('error', () => {
    if (es === layerEvents && es.readyState === EventSource.CLOSED) layerEvents = null;
  });
}

function sizeOf(l) {
  return l && l.width && l.height ? `${l.width}×${l.height}` : '';
}

function layerLabel(id) {
  const l = onair.layers.find((x) => x.layer === id);
  const size = sizeOf(l);
  return size ? `${layerName(id)} · ${size}` : layerName(id);
}

/**
 * The quality picker offers the layers the stream has, with their size;
 * a stream with one layer (OBS, FFmpeg) gets no picker, just its size.
 */
function renderPicker() {
  const ids = onair.layers.map((l) => l.layer);
  const single = ids.length <= 1;
  els.layer.hidden = single;
  els.layerSingle.hidden = !single || !ids.length;
  if (single) {
    setText(els.layerSingle, sizeOf(onair.layers[0]) || (els.video.videoHeight ? `${els.video.videoWidth}×${els.video.videoHeight}` : ''));
    return;
  }
  const want = ['auto', ...['f', 'h', 'q'].filter((id) => ids.includes(id))];
  const have = [...els.layer.options].map((o) => o.value);
  const labels = want.map((id) => (id === 'auto' ? 'Auto' : layerLabel(id)));
  if (want.join() !== have.join() || labels.some((t, i) => els.layer.options[i].textContent !== t)) {
    els.layer.replaceChildren(...want.map((id, i) => h('option', { value: id }, labels[i])));
  }
  els.layer.value = want.includes(onair.maxLayer) ? onair.maxLayer : 'auto';
}

/**
 * What is actually received: the server's current layer (Playback details)
 * and the decoded picture's height (the badge), never the request.
 */
function renderLayer() {
  const current = onair.currentLayer;
  setText(els.statLayer, current ? layerLabel(current) : '—');
  setText(els.targetLayer, onair.targetLayer ? layerName(onair.targetLayer) : '—');
  const v = els.video;
  const label = v.videoHeight ? `${v.videoHeight}p` : null;
  onair.qualityLabel = label;
  setText(els.badgeLayer, label || '');
  els.badgeLayer.title = current ? `Receiving ${layerLabel(current)}` : '';
  els.badgeLayer.hidden = !label || onair.phase !== 'live';
  if (els.layer.hidden && onair.layers.length === 1 && !sizeOf(onair.layers[0]) && v.videoHeight) renderPicker();
}

// ---------------------------------------------------------------- stats (the browser's own, no server polling)

function startStats() {
  stopStats();
  statsTimer = setInterval(readStats, 1000);
  readStats();
}

function stopStats() {
  clearInterval(statsTimer);
  statsTimer = null;
}

async function readStats() {
  const pc = onair.pc;
  if (!pc) return;
  let report;
  try {
    report = await pc.getStats();
  } catch {
    return;
  }
  if (pc !== onair.pc) return;
  let video = null;
  let audioBps = null;
  let videoBps = null;
  let lost = 0;
  let rtt = null;
  report.forEach((s) => {
    if (s.type === 'candidate-pair' && s.nominated && typeof s.currentRoundTripTime === 'number') rtt = s.currentRoundTripTime * 1000;
    if (s.type !== 'inbound-rtp' || s.isRemote) return;
    const kind = s.kind || s.mediaType;
    const bps = inRate(s);
    if (typeof s.packetsLost === 'number') lost += Math.max(0, s.packetsLost);
    if (kind === 'video') {
      if (!video || (s.framesDecoded || 0) > (video.framesDecoded || 0)) video = s;
      if (bps != null) videoBps = (videoBps || 0) + bps;
    } else if (kind === 'audio' && bps != null) {
      audioBps = (audioBps || 0) + bps;
    }
  });
  const v = els.video;
  const fpsFallback = video ? frameRate(video) : null;
  const stats = {
    framesDecoded: video ? video.framesDecoded || 0 : 0,
    width: (video && video.frameWidth) || v.videoWidth || null,
    height: (video && video.frameHeight) || v.videoHeight || null,
    video_width: v.videoWidth || 0,
    video_height: v.videoHeight || 0,
    fps: video && typeof video.framesPerSecond === 'number' ? video.framesPerSecond : fpsFallback,
    bitrate_bps: videoBps == null && audioBps == null ? null : (videoBps || 0) + (audioBps || 0),
    video_bitrate_bps: videoBps,
    packetsLost: lost,
    jitter_ms: video && typeof video.jitter === 'number' ? video.jitter * 1000 : null,
    rtt_ms: rtt,
    connection_state: connectionState(pc),
  };
  onair.stats = stats;
  if (onair.qualityLabel !== (v.videoHeight ? `${v.videoHeight}p` : null)) renderLayer();
  if (!firstFrameSeen && (stats.framesDecoded > 0 || v.videoWidth > 0)) onFirstFrame();
  setText(els.statResolution, stats.width ? `${stats.width}×${stats.height}` : '—');
  setText(els.statFps, stats.fps != null ? `${Math.round(stats.fps)} fps` : '—');
  setText(els.statBitrate, formatBitrate(stats.bitrate_bps));
  setText(els.statLost, formatNumber(stats.packetsLost));
  setText(els.statJitter, stats.jitter_ms != null ? `${stats.jitter_ms.toFixed(1)} ms` : '—');
  setText(els.statRtt, rtt != null ? `${Math.round(rtt)} ms` : '—');
  setText(els.statFrames, formatNumber(stats.framesDecoded));
}

function inRate(s) {
  const bytes = s.bytesReceived;
  if (bytes == null) return null;
  const prev = prevIn.get(s.id);
  const entry = { bytes, ts: s.timestamp, frames: s.framesDecoded || 0 };
  prevIn.set(s.id, { ...entry, prevFrames: prev ? prev.frames : null, prevTs: prev ? prev.ts : null });
  if (!prev || s.timestamp <= prev.ts) return null;
  return Math.max(0, ((bytes - prev.bytes) * 8) / ((s.timestamp - prev.ts) / 1000));
}

function frameRate(s) {
  const e = prevIn.get(s.id);
  if (!e || e.prevFrames == null || e.ts <= e.prevTs) return null;
  return ((e.frames - e.prevFrames) * 1000) / (e.ts - e.prevTs);
}

function onFirstFrame() {
  firstFrameSeen = true;
  if (onair.phase === 'live') hideOverlay();
  renderMute();
}

// ---------------------------------------------------------------- following

/** Whether the viewer follows the host (from the server), and the host's picture. */
async function loadFollow() {
  const host = onair.host;
  if (!host) return;
  try {
    const p = await api(`/api/users/${encodeURIComponent(host.username)}`);
    if (!onair.host || onair.host.id !== p.id) return;
    onair.following = p.following;
    onair.followingSince = p.following_since;
    onair.followers = p.followers;
    if (p.avatar_url) els.avatar.replaceChildren(h('img', { src: p.avatar_url, alt: '' }));
  } catch (err) {
    console.warn('[onair] host profile:', err);
  }
  renderFollow();
}

function renderFollow() {
  const me = currentUser();
  const own = me && onair.host && me.id === onair.host.id;
  els.follow.hidden = !onair.host || own;
  els.follow.textContent = onair.following ? 'Following' : 'Follow';
  els.follow.setAttribute('aria-pressed', String(!!onair.following));
  els.follow.classList.toggle('is-on', !!onair.following);
  els.follow.title = onair.following ? 'Stop following' : `Follow ${hostName(onair.info)}`;
}

/**
 * Follows (or unfollows) the host. In followers-only chat a new follower may
 * chat at once, or once they have followed for the channel's follow age.
 */
async function toggleFollow() {
  if (!currentUser()) {
    window.location.href = loginUrl();
    return;
  }
  const host = onair.host;
  if (!host || followBusy) return;
  followBusy = true;
  els.follow.disabled = true;
  try {
    await api(`/api/users/${encodeURIComponent(host.username)}/follow`, { method: onair.following ? 'DELETE' : 'POST' });
    await loadFollow();
    applyFollowRule();
    toast(onair.following ? `You follow ${hostName(onair.info)}` : `You no longer follow ${hostName(onair.info)}`, 'ok');
  } catch (err) {
    toast(`Couldn’t ${onair.following ? 'unfollow' : 'follow'}: ${describeError(err)}`, 'error');
  } finally {
    followBusy = false;
    els.follow.disabled = false;
  }
}

/** What followers-only chat means for this viewer now. */
function applyFollowRule() {
  const minutes = onair.chatSettings ? onair.chatSettings.followers_only_minutes : null;
  if (minutes == null) return;
  if (!onair.following) {
    composer.lastError = refusalText({ code: 'followers_only', message: minutes > 0 ? `Chat is in followers-only mode: follow the host for ${minutes} minutes to chat.` : '' });
    composer.renderState();
    return;
  }
  const since = onair.followingSince ? new Date(onair.followingSince).getTime() : Date.now();
  const left = since + minutes * 60000 - Date.now();
  composer.lastError = null;
  if (left > 1000) composer.wait(left, `Followers-only chat: you can chat once you have followed for ${minutes} min.`);
  else composer.renderState();
}

// ---------------------------------------------------------------- chat & likes

const chat = new ChatView($('#chat-list'));
const composer = new ChatComposer({
  form: $('#chat-form'),
  input: $('#chat-input'),
  button: $('#chat-send'),
  hint: $('#chat-hint'),
  counter: $('#chat-counter'),
  loginBox: $('#chat-login'),
  send: async (text) => {
    if (onair.streamId == null) throw new OnAirError('The chat is not open yet.', { code: 'not_ready' });
    const m = await rt.request({ type: 'chat', stream: onair.streamId, text });
    chat.add(m);
    return m;
  },
});

let likeBusy = false;
let followBusy = false;
async function like() {
  if (!currentUser()) {
    window.location.href = loginUrl();
    return;
  }
  if (onair.streamId == null || likeBusy) return;
  likeBusy = true;
  els.like.classList.remove('pop');
  void els.like.offsetWidth; // restart the animation
  els.like.classList.add('pop');
  try {
    await rt.request({ type: 'react', stream: onair.streamId, emoji: '❤️' });
    els.like.setAttribute('aria-pressed', 'true');
    // The count itself comes with the next `likes` event (the real total).
  } catch (err) {
    toast(refusalText(err), 'error');
  } finally {
    likeBusy = false;
  }
}

// ---------------------------------------------------------------- polls and Q&A

const pollView = new PollView($('#poll-card'));
const shop = new ShopView({ rt, stage: $('#stage'), root: $('#shop') });
const answering = { box: $('#answering'), text: $('#answering-text'), by: $('#answering-by') };
const qa = new QaView({
  list: $('#qa-list'),
  empty: $('#qa-empty'),
  sortButtons: [...document.querySelectorAll('#qa-panel .seg-btn')],
  form: $('#qa-form'),
  input: $('#qa-input'),
  hint: $('#qa-hint'),
  loginBox: $('#qa-login'),
  count: $('#qa-count'),
  onAnswering: (q) => {
    // The question the host answers now, over the video for everyone.
    answering.box.hidden = !q;
    onair.answering = q ? q.id : null;
    setText(answering.text, q ? q.text : '');
    setText(answering.by, q && q.user ? `asked by ${q.user.display_name || q.user.username}` : '');
    setText($('#qa-toggle-count'), $('#qa-count').textContent);
  },
});

/** Chat or Q&A in the side panel (on a phone: the Q&A button over the video). */
function showTab(tab) {
  $('#chat-panel').dataset.tab = tab;
  onair.tab = tab;
  $('#tab-chat').setAttribute('aria-selected', String(tab === 'chat'));
  $('#tab-qa').setAttribute('aria-selected', String(tab === 'qa'));
  $('#qa-toggle').setAttribute('aria-pressed', String(tab === 'qa'));
}
$('#tab-chat').addEventListener('click', () => showTab('chat'));
$('#tab-qa').addEventListener('click', () => showTab('qa'));
$('#qa-toggle').addEventListener('click', () => showTab($('#chat-panel').dataset.tab === 'qa' ? 'chat' : 'qa'));
onInteractEvents(rt, (msg) => (msg.poll ? pollView.event(msg) : qa.event(msg)));

// ---------------------------------------------------------------- the WebSocket

function sendWatch() {
  watchPending = true;
  rt.watch(onair.streamId != null ? String(onair.streamId) : ref, onair.viewerKey);
}

/** Asks the server again which stream this page shows (the channel's next one, say). */
function rejoinWatch(nextId = null) {
  const old = onair.streamId;
  if (old != null) rt.unsubscribe(String(old));
  rt.unsubscribe(ref);
  if (nextId != null && nextId !== old) {
    onair.streamId = nextId;
    chat.clear();
    pollView.clear();
    qa.clear();
    shop.clear();
    onair.viewerCount = null;
    onair.likes = null;
    sawReconnecting = false;
  } else if (byChannel) {
    onair.streamId = null;
  }
  sendWatch();
}

rt.on('open', () => {
  onair.connected = true;
  // `watch` is sent again by the client after each reconnect; answers follow.
  watchPending = true;
  if (byChannel) rt.directory();
});
rt.on('close', () => {
  onair.connected = false;
});

rt.on('subscribed', (msg) => {
  const s = msg.stream;
  if (!s) return;
  const ours = onair.streamId != null ? s.id === onair.streamId : String(s.id) === ref || (s.host && s.host.username === ref.toLowerCase());
  if (!ours) return;
  watchPending = false;
  if (onair.streamId == null || String(s.id) !== ref) {
    // Opened by channel: from now on follow this stream by its id.
    if (rt.streams.has(ref) && ref !== String(s.id)) {
      const entry = rt.streams.get(ref);
      rt.streams.delete(ref);
      rt.streams.set(String(s.id), entry);
    }
  }
  onair.streamId = s.id;
  onair.chatSettings = msg.chat || null;
  composer.setSettings(msg.chat || null);
  setText(els.chatModes, describeSettings(msg.chat));
  chat.load(s.id);
  pollView.load(s.id);
  qa.load(s.id);
  shop.load(s.id);
  applyInfo(s, 'subscribed');
});

rt.on('error', (msg) => {
  if (msg.id != null) return;
  const err = errorFromBody(msg.error, msg.status || 0);
  // Errors of a watch carry no id: while ours is unanswered, this is its answer.
  if (watchPending && [401, 403, 404].includes(err.status)) {
    watchPending = false;
    watchRefused(err);
  } else {
    console.warn('[onair] server:', msg.error);
  }
});

rt.on('stream_status', (msg) => {
  const s = msg.stream;
  if (!s) return;
  if (s.id === onair.streamId) {
    applyInfo(s, 'stream_status');
    return;
  }
  // Directory events (pages opened by channel): the host's next stream.
  if (byChannel && s.host && s.host.username === ref.toLowerCase()) {
    const cur = onair.info;
    const curOver = !cur || onair.streamId == null || !['scheduled', 'live'].includes(cur.state) || onair.status === 'offline';
    const better = s.state === 'live' || (s.state === 'scheduled' && curOver);
    if (better && (curOver || (cur.state === 'scheduled' && s.state === 'live'))) {
      rejoinWatch(s.id);
    }
  }
});

rt.on('viewer_count', (msg) => {
  if (msg.stream_id !== onair.streamId) return;
  onair.viewerCount = msg.viewers;
  onair.viewerCountSource = 'viewer_count';
  renderViewerCount();
});

rt.on('likes', (msg) => {
  if (msg.stream_id !== onair.streamId) return;
  onair.likes = msg.likes;
  onair.likesSource = 'likes';
  renderLikes();
});

rt.on('chat_message', (msg) => {
  if (msg.message && msg.message.stream_id === onair.streamId) chat.add(msg.message);
});

rt.on('chat_deleted', (msg) => {
  if (msg.stream_id === onair.streamId) chat.remove(msg.message_id);
});

rt.on('chat_settings', (msg) => {
  if (!msg.settings || !onair.info || msg.settings.host_id !== onair.info.host.id) return;
  onair.chatSettings = msg.settings;
  composer.setSettings(msg.settings);
  setText(els.chatModes, describeSettings(msg.settings));
});

rt.on('moderation', (msg) => {
  const me = currentUser();
  if (!me || msg.user_id !== me.id) return;
  if (msg.action === 'timeout') {
    const ms = msg.until ? new Date(msg.until).getTime() - Date.now() : 0;
    if (ms > 0) composer.wait(ms, 'A moderator timed you out.');
  } else if (msg.action === 'ban') {
    composer.lastError = 'You are banned from this channel’s chat.';
    composer.renderState();
  } else if (msg.action === 'untimeout' || msg.action === 'unban') {
    composer.waitUntil = 0;
    composer.lastError = null;
    composer.renderState();
    toast('You may chat again', 'ok');
  }
});

showReminders(rt);

// ---------------------------------------------------------------- wiring

function init() {
  const name = onair.stream || 'Stream';
  setText(els.streamTitle, name);
  setText(els.channelName, name);
  setText(els.avatar, initial(name));
  onair.viewerKey = viewerKey();
  renderAccount();

  const q = new URLSearchParams(window.location.search).get('layer');
  if (q && LAYERS.includes(q)) {
    onair.maxLayer = q;
    els.layer.value = q;
    setText(els.layerInfo, layerName(q));
  }

  els.layer.addEventListener('change', () => setLayer(els.layer.value));
  els.retry.addEventListener('click', () => retryNow());
  els.overlayAction.addEventListener('click', () => overlayAction && overlayAction.run());
  els.like.addEventListener('click', () => like());
  els.follow.addEventListener('click', () => toggleFollow());
  els.unmute.addEventListener('click', () => setMuted(false));
  els.muteToggle.addEventListener('click', () => setMuted(!els.video.muted));
  els.play.addEventListener('click', () => {
    els.play.hidden = true;
    startPlayback();
  });
  els.volume.addEventListener('input', () => {
    els.video.volume = Number(els.volume.value);
    if (Number(els.volume.value) > 0 && els.video.muted) setMuted(false);
    else if (Number(els.volume.value) === 0 && !els.video.muted) setMuted(true);
  });
  els.video.addEventListener('volumechange', renderMute);
  els.video.addEventListener('playing', () => {
    if (onair.phase === 'live' && !firstFrameSeen && els.video.videoWidth > 0) onFirstFrame();
  });
  els.video.addEventListener('resize', () => {
    renderLayer();
    if (onair.phase === 'live' && !firstFrameSeen && els.video.videoWidth > 0) onFirstFrame();
  });
  els.video.addEventListener('dblclick', toggleFullscreen);
  els.fullscreen.addEventListener('click', toggleFullscreen);

  if (document.pictureInPictureEnabled && typeof els.video.requestPictureInPicture === 'function') {
    els.pip.hidden = false;
    els.pip.addEventListener('click', async () => {
      try {
        if (document.pictureInPictureElement) await document.exitPictureInPicture();
        else await els.video.requestPictureInPicture();
      } catch (err) {
        toast(`Picture in picture unavailable: ${describeError(err)}`, 'error');
      }
    });
  }
  if (!document.fullscreenEnabled && !els.stage.requestFullscreen) els.fullscreen.hidden = true;

  // Keyboard: m = mute, f = fullscreen (outside form fields).
  document.addEventListener('keydown', (ev) => {
    if (ev.target && /^(INPUT|SELECT|TEXTAREA)$/.test(ev.target.tagName)) return;
    if (ev.key === 'm') setMuted(!els.video.muted);
    else if (ev.key === 'f') toggleFullscreen();
  });

  // Show controls briefly on touch / mouse move.
  let hideTimer = null;
  const poke = () => {
    els.stage.classList.add('show-controls');
    clearTimeout(hideTimer);
    hideTimer = setTimeout(() => els.stage.classList.remove('show-controls'), 2500);
  };
  els.stage.addEventListener('mousemove', poke);
  els.stage.addEventListener('touchstart', poke, { passive: true });

  window.addEventListener('pagehide', () => {
    if (onair.location) deleteSession(onair.location, sessionBearer());
  });

  renderMute();
  renderLikes();
  setPhase('idle');
  if (!ref) {
    setPhase('error');
    showOverlay({ title: 'No stream selected', text: 'Open a link of the form /watch/<stream>.', icon: 'error' });
    return;
  }
  showOverlay({ title: 'Connecting…', text: `Looking up ${name}.`, spinner: true });
  setPhase('connecting');
  sendWatch();
  rt.connect();
}

function toggleFullscreen() {
  if (document.fullscreenElement) {
    document.exitFullscreen().catch(() => {});
  } else if (els.stage.requestFullscreen) {
    els.stage.requestFullscreen().catch((err) => toast(`Full screen unavailable: ${describeError(err)}`, 'error'));
  }
}

init();

// PK battles: the battle bar under the player (static/battle.js).
import { mountBattle } from './battle.js';
onair.battle = mountBattle({
  rt,
  host: document.querySelector('#stage').parentElement,
  stream: () => onair.streamId,
  stage: document.querySelector('#stage'),
  onSides: (sides) => {
    for (const s of sides) if (s.display_name) roomView.tiles.setHost(s.host, { user: s.host, display_name: s.display_name });
  },
});
