// OnAir player: WHEP playback with layer selection and live stats.
import {
  $,
  OnAirError,
  errorFromResponse,
  describeError,
  getIceServers,
  waitForIceGathering,
  resolveLocation,
  sessionFromLocation,
  deleteSession,
  formatBitrate,
  formatNumber,
  watchHealth,
  toast,
  setText,
  showEl,
  qualityClass,
  layerName,
} from './common.js';

const WAIT_RETRY_MS = 3000; // stream offline: try again this often
const ENDED_RETRY_MS = 5000; // after the stream ended: quietly check for a comeback
const ERROR_RETRY_MS = [3000, 5000, 10000, 15000];
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
  ended: svg('<rect x="2" y="4" width="20" height="14" rx="2"/><path d="M8 21h8M12 18v3M10 9l4 4M14 9l-4 4"/>'),
  error: svg('<circle cx="12" cy="12" r="10"/><path d="M12 8v5M12 16h.01"/>'),
};

const els = {
  body: document.body,
  status: $('#status'),
  statusText: $('#status-text'),
  streamTitle: $('#stream-title'),
  channelName: $('#channel-name'),
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
  layer: $('#layer'),
  layerInfo: $('#layer-info'),
  targetLayer: $('#target-layer'),
  viewerCount: $('#viewer-count'),
  viewerCountWrap: $('#viewer-count-wrap'),
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

/** State exposed for tests and debugging. */
const onair = {
  page: 'watch',
  // 'idle' | 'connecting' | 'live' | 'ended' | 'error'. While the stream is
  // offline and we are polling for it, state is 'connecting' and waiting=true.
  state: 'idle',
  phase: 'idle', // finer: 'idle'|'connecting'|'waiting'|'live'|'ended'|'error'
  waiting: false,
  pc: null,
  session: null, // WHEP session id (last segment of Location)
  location: null, // absolute URL of the WHEP session resource
  stream: streamFromPath(),
  maxLayer: 'auto', // the cap chosen in the picker
  layer: null, // last /layer response {max_layer,current_layer,target_layer}
  viewer: null, // this session's entry from the health feed
  health: null, // last health object
  viewerCount: null,
  speaking: false, // the host is talking (pushed 'speaking' events)
  stats: null, // { framesDecoded, width, height, fps, bitrate_bps, packetsLost, jitter_ms }
  error: null,
  attempts: 0,
  setLayer: (l) => setLayer(l),
  retry: () => connect(),
  stop: () => stop(),
};
window.onair = onair;

let attemptId = 0;
let retryTimer = null;
let countdownTimer = null;
let connectTimer = null;
let disconnectTimer = null;
let statsTimer = null;
let health = null;
let prevIn = new Map();
let errorStreak = 0;
let firstFrameSeen = false;
let userMuted = true;
let cachedIce = null;
let sentLayer = 'auto'; // max_layer sent with the last WHEP POST

// ---------------------------------------------------------------- state & UI

const STATUS_LABEL = {
  idle: 'Loading',
  connecting: 'Connecting…',
  waiting: 'Offline',
  live: 'LIVE',
  ended: 'Ended',
  error: 'Error',
};

function setPhase(phase) {
  onair.phase = phase;
  onair.waiting = phase === 'waiting';
  onair.state = phase === 'waiting' ? 'connecting' : phase;
  els.body.dataset.state = onair.state;
  els.body.dataset.phase = phase;
  els.status.dataset.state = phase;
  setText(els.statusText, STATUS_LABEL[phase] || phase);
  const live = phase === 'live';
  els.badgeLive.hidden = !live;
  els.badgeViewers.hidden = !live || onair.viewerCount == null;
  els.avatar.classList.toggle('is-live', live);
  setText(
    els.statusLine,
    {
      idle: 'Loading…',
      connecting: 'Connecting…',
      waiting: 'Offline',
      live: 'Live now',
      ended: 'Stream ended',
      error: 'Unavailable',
    }[phase] || '',
  );
  const name = onair.stream || 'Stream';
  document.title = live ? `🔴 ${name} · OnAir` : `${name} · OnAir`;
  if (!live) {
    els.unmute.hidden = true;
    els.play.hidden = true;
  }
}

function showOverlay({ title, text = '', sub = '', spinner = false, retry = null, icon = 'broadcast' }) {
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
  els.retry.hidden = !retry;
  if (retry) setText(els.retry, retry);
  els.overlay.hidden = false;
}

function hideOverlay() {
  els.overlay.hidden = true;
}

function clearCountdown() {
  clearInterval(countdownTimer);
  countdownTimer = null;
  clearTimeout(retryTimer);
  retryTimer = null;
}

/** Schedules connect() in `ms`, showing a countdown in the overlay's sub line. */
function scheduleRetry(ms, label) {
  clearCountdown();
  const due = Date.now() + ms;
  const tick = () => {
    const left = Math.max(0, Math.ceil((due - Date.now()) / 1000));
    if (label) setText(els.overlaySub, left > 0 ? `${label} in ${left} s…` : `${label}…`);
  };
  tick();
  countdownTimer = setInterval(tick, 500);
  retryTimer = setTimeout(() => {
    clearCountdown();
    connect({ quiet: true });
  }, ms);
}

// ---------------------------------------------------------------- connecting

function connectionState(pc) {
  if (pc.connectionState) return pc.connectionState;
  const map = { checking: 'connecting', completed: 'connected', new: 'new' };
  return map[pc.iceConnectionState] || pc.iceConnectionState;
}

/**
 * One WHEP attempt. `quiet` keeps the current offline/ended screen while
 * retrying in the background instead of flashing a "connecting" state.
 */
async function connect({ quiet = false } = {}) {
  if (!onair.stream) {
    setPhase('error');
    showOverlay({
      title: 'No stream selected',
      text: 'Open a link of the form /watch/<stream name>.',
      icon: 'error',
    });
    return;
  }
  const attempt = ++attemptId;
  clearCountdown();
  closePeer({ notifyServer: true });
  onair.attempts += 1;
  const keepScreen = quiet && (onair.phase === 'waiting' || onair.phase === 'ended' || onair.phase === 'error');
  if (!keepScreen) {
    setPhase('connecting');
    showOverlay({ title: 'Connecting…', text: `Joining ${onair.stream}.`, spinner: true });
  } else {
    setText(els.overlaySub, 'Checking…');
  }

  let pc = null;
  try {
    if (!cachedIce) cachedIce = await getIceServers();
    if (attempt !== attemptId) return;
    pc = new RTCPeerConnection({ iceServers: cachedIce, bundlePolicy: 'max-bundle' });
    const remote = new MediaStream();
    pc.addTransceiver('video', { direction: 'recvonly' });
    pc.addTransceiver('audio', { direction: 'recvonly' });
    pc.addEventListener('track', (ev) => {
      if (pc !== onair.pc) return;
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

    let url = `/whep/${encodeURIComponent(onair.stream)}`;
    sentLayer = onair.maxLayer;
    if (onair.maxLayer !== 'auto') url += `?max_layer=${encodeURIComponent(onair.maxLayer)}`;
    const resp = await fetch(url, {
      method: 'POST',
      headers: { 'Content-Type': 'application/sdp' },
      body: pc.localDescription.sdp,
    });
    if (attempt !== attemptId) {
      pc.close();
      if (resp.ok && resp.headers.get('Location')) deleteSession(resolveLocation(resp.headers.get('Location')));
      return;
    }
    if (resp.status === 404) {
      pc.close();
      const err = await errorFromResponse(resp);
      offline(err);
      return;
    }
    if (!resp.ok) throw await errorFromResponse(resp);
    const loc = resp.headers.get('Location');
    if (!loc) throw new OnAirError('The server did not return a session URL.', { code: 'no_location' });
    const answer = await resp.text();

    onair.pc = pc;
    onair.location = resolveLocation(loc);
    onair.session = sessionFromLocation(loc);
    onair.viewer = null;
    prevIn = new Map();
    firstFrameSeen = false;
    setText(els.sessionId, onair.session || '—');
    if (onair.phase !== 'connecting') {
      setPhase('connecting');
      showOverlay({ title: 'Connecting…', text: `Joining ${onair.stream}.`, spinner: true });
    }
    await pc.setRemoteDescription({ type: 'answer', sdp: answer });
    startStats();
    clearTimeout(connectTimer);
    connectTimer = setTimeout(() => {
      if (onair.pc === pc && onair.state === 'connecting') {
        failed(new OnAirError('Could not establish the media connection. UDP traffic to the server may be blocked.', { code: 'ice_timeout' }));
      }
    }, CONNECT_TIMEOUT_MS);
    onConnectionChange(pc);
  } catch (err) {
    if (attempt !== attemptId) return;
    if (pc && pc !== onair.pc) pc.close();
    failed(err);
  }
}

function offline(err) {
  onair.error = { code: err.code, status: err.status, message: err.message };
  errorStreak = 0;
  if (onair.phase === 'ended') {
    // Already showing "ended": keep that screen and look for a comeback quietly.
    scheduleRetry(ENDED_RETRY_MS, 'Checking for the stream again');
    return;
  }
  setPhase('waiting');
  showOverlay({
    title: `${onair.stream} is offline`,
    text: 'The stream will start playing here automatically as soon as it goes live.',
    retry: 'Check now',
    icon: 'offline',
  });
  setText(els.connState, 'Waiting for stream');
  scheduleRetry(WAIT_RETRY_MS, 'Checking again');
}

function failed(err) {
  const expected = err && err.status >= 400 && err.status < 500;
  (expected ? console.warn : console.error)('[onair] playback failed:', err);
  const message = describeError(err);
  onair.error = { code: (err && err.code) || 'error', status: (err && err.status) || 0, message };
  closePeer({ notifyServer: true });
  if (onair.phase === 'ended') {
    scheduleRetry(ENDED_RETRY_MS, 'Checking for the stream again');
    return;
  }
  setPhase('error');
  showOverlay({ title: 'Can’t play this stream', text: message, retry: 'Try again', icon: 'error' });
  setText(els.connState, 'Error');
  const delay = ERROR_RETRY_MS[Math.min(errorStreak, ERROR_RETRY_MS.length - 1)];
  errorStreak += 1;
  scheduleRetry(delay, 'Retrying');
}

function onConnectionChange(pc) {
  if (pc !== onair.pc) return;
  const s = connectionState(pc);
  setText(els.connState, { new: 'New', connecting: 'Connecting…', connected: 'Connected', disconnected: 'Interrupted', failed: 'Failed', closed: 'Closed' }[s] || s);
  if (s === 'connected') {
    clearTimeout(disconnectTimer);
    disconnectTimer = null;
    if (onair.state === 'connecting') wentLive();
  } else if (s === 'failed' || s === 'closed') {
    if (onair.state === 'live') streamEnded('connection');
    else if (onair.state === 'connecting') failed(new OnAirError('The media connection failed.', { code: 'connection_failed' }));
  } else if (s === 'disconnected' && onair.state === 'live' && !disconnectTimer) {
    disconnectTimer = setTimeout(() => {
      disconnectTimer = null;
      if (onair.pc === pc && connectionState(pc) !== 'connected' && onair.state === 'live') streamEnded('connection');
    }, DISCONNECT_GRACE_MS);
  }
}

function wentLive() {
  clearTimeout(connectTimer);
  errorStreak = 0;
  onair.error = null;
  setPhase('live');
  if (firstFrameSeen) hideOverlay();
  else showOverlay({ title: 'Starting playback…', text: '', spinner: true });
  startHealth();
  // A cap chosen while connecting (after the POST went out) is applied now.
  if (onair.maxLayer !== sentLayer) {
    setLayer(onair.maxLayer, { silent: true });
  }
  setTimeout(() => {
    // Audio-only or slow first frame: do not keep the spinner forever.
    if (onair.state === 'live' && !els.overlay.hidden && onair.phase === 'live') hideOverlay();
  }, 5000);
}

function streamEnded(reason) {
  if (onair.phase === 'ended') return;
  console.info(`[onair] stream ended (${reason})`);
  closePeer({ notifyServer: true });
  setPhase('ended');
  setText(els.connState, 'Closed');
  showOverlay({
    title: 'The stream has ended',
    text: `Thanks for watching${onair.stream ? ` ${onair.stream}` : ''}. Playback resumes here if it goes live again.`,
    retry: 'Check again',
    icon: 'ended',
  });
  scheduleRetry(ENDED_RETRY_MS, 'Checking for the stream again');
}

/** Leaves the stream (no automatic retry); resolves once the server has seen the DELETE. */
function stop() {
  attemptId++;
  clearCountdown();
  const deleted = onair.location ? deleteSession(onair.location) : Promise.resolve();
  closePeer({ notifyServer: false });
  if (health) {
    health.close();
    health = null;
  }
  setPhase('idle');
  setText(els.statusLine, 'Stopped');
  showOverlay({ title: 'Playback stopped', text: '', retry: 'Watch again', icon: 'broadcast' });
  setText(els.connState, 'Closed');
  return deleted;
}

function closePeer({ notifyServer }) {
  clearTimeout(connectTimer);
  clearTimeout(disconnectTimer);
  disconnectTimer = null;
  stopStats();
  if (notifyServer && onair.location) deleteSession(onair.location);
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
  onair.viewer = null;
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
    const resp = await fetch(u.toString(), {
      method: 'POST',
      headers: { 'Content-Type': 'application/json' },
      body: JSON.stringify({ max_layer: layer }),
    });
    if (!resp.ok) throw await errorFromResponse(resp);
    const body = await resp.json().catch(() => ({}));
    onair.layer = body;
    renderLayer();
    if (!silent) toast(`Quality: ${layerName(layer)}`, 'ok', 1800);
    return body;
  } catch (err) {
    console.error('[onair] layer change failed:', err);
    if (!silent) toast(`Couldn’t change quality: ${describeError(err)}`, 'error');
    return null;
  }
}

function renderLayer() {
  const viewer = onair.viewer || {};
  const l = onair.layer || {};
  const current = viewer.layer || l.current_layer;
  const target = viewer.target_layer || l.target_layer;
  setText(els.statLayer, current ? layerName(current) : '—');
  setText(els.targetLayer, target ? layerName(target) : '—');
  if (current) {
    setText(els.badgeLayer, { f: 'HD', h: 'SD', q: 'LD' }[current] || current.toUpperCase());
    els.badgeLayer.hidden = onair.phase !== 'live';
  } else {
    els.badgeLayer.hidden = true;
  }
}

// ---------------------------------------------------------------- health

function startHealth() {
  if (health) return;
  health = watchHealth(onair.stream, onHealth, { onEvent });
}

/** Stream events pushed by the server as they happen. */
function onEvent(e) {
  if (e.type === 'stream_ended' && onair.phase === 'live') {
    streamEnded('event');
  } else if (e.type === 'speaking') {
    // One host today: a ring on the channel avatar while they talk.
    onair.speaking = !!e.speaking;
    els.avatar.classList.toggle('is-speaking', onair.speaking);
  }
}

function onHealth(h) {
  onair.health = h;
  if (typeof h.viewer_count === 'number') {
    onair.viewerCount = h.viewer_count;
    setText(els.viewerCount, formatNumber(h.viewer_count));
    setText(els.badgeViewersN, formatNumber(h.viewer_count));
    els.viewerCountWrap.hidden = false;
    els.badgeViewers.hidden = onair.phase !== 'live';
  }
  const viewers = Array.isArray(h.viewers) ? h.viewers : [];
  const me = onair.session ? viewers.find((v) => v && v.session === onair.session) : null;
  onair.viewer = me || null;
  if (me) {
    const q = qualityClass(me.quality);
    els.quality.dataset.quality = q;
    setText(els.quality, q === 'unknown' ? '—' : q);
    if (typeof me.rtt_ms === 'number') setText(els.statRtt, `${Math.round(me.rtt_ms)} ms`);
    if (me.max_layer) setText(els.layerInfo, layerName(me.max_layer));
  }
  renderLayer();
  if (h.live === false && onair.phase === 'live') streamEnded('health');
}

// ---------------------------------------------------------------- stats

function startStats() {
  stopStats();
  statsTimer = setInterval(pollStats, 1000);
  pollStats();
}

function stopStats() {
  clearInterval(statsTimer);
  statsTimer = null;
}

async function pollStats() {
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
  report.forEach((s) => {
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
    connection_state: connectionState(pc),
  };
  onair.stats = stats;
  if (!firstFrameSeen && (stats.framesDecoded > 0 || v.videoWidth > 0)) onFirstFrame();
  setText(els.statResolution, stats.width ? `${stats.width}×${stats.height}` : '—');
  setText(els.statFps, stats.fps != null ? `${Math.round(stats.fps)} fps` : '—');
  setText(els.statBitrate, formatBitrate(stats.bitrate_bps));
  setText(els.statLost, formatNumber(stats.packetsLost));
  setText(els.statJitter, stats.jitter_ms != null ? `${stats.jitter_ms.toFixed(1)} ms` : '—');
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

// ---------------------------------------------------------------- wiring

function init() {
  const name = onair.stream || 'Stream';
  setText(els.streamTitle, name);
  setText(els.channelName, name);
  setText(els.avatar, (name.trim()[0] || 'S').toUpperCase());

  const q = new URLSearchParams(window.location.search).get('layer');
  if (q && LAYERS.includes(q)) {
    onair.maxLayer = q;
    els.layer.value = q;
    setText(els.layerInfo, layerName(q));
  }

  els.layer.addEventListener('change', () => setLayer(els.layer.value));
  els.retry.addEventListener('click', () => connect());
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
    if (onair.location) deleteSession(onair.location);
  });

  renderMute();
  setPhase('idle');
  connect();
}

function toggleFullscreen() {
  if (document.fullscreenElement) {
    document.exitFullscreen().catch(() => {});
  } else if (els.stage.requestFullscreen) {
    els.stage.requestFullscreen().catch((err) => toast(`Full screen unavailable: ${describeError(err)}`, 'error'));
  }
}

init();
