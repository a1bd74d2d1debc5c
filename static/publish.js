// OnAir studio: camera preview + WHIP publishing with simulcast.
import {
  $,
  OnAirError,
  errorFromResponse,
  describeError,
  getConfig,
  iceServersOf,
  waitForIceGathering,
  preferCodec,
  resolveLocation,
  sessionFromLocation,
  deleteSession,
  formatBitrate,
  formatDuration,
  watchHealth,
  copyText,
  toast,
  setText,
  showEl,
  store,
  h,
  formatWhen,
  STATE_LABEL,
} from './common.js';
import { api, currentUser, isHost, renderAccount, savedKeySecrets, saveKeySecret, uploadImage } from './session.js';
import { Realtime } from './realtime.js';
import { ChatView, ChatComposer } from './chat.js';
import { HostTools, onInteractEvents } from './interact.js';
import { SellerConsole } from './shop.js';
import { FilterTray } from './filters/tray.js';
import { RoomStudio } from './room.js';

/** The simulcast ladder sent to the SFU (rids match the server's layer names). */
export const SIMULCAST_ENCODINGS = [
  { rid: 'q', scaleResolutionDownBy: 4, maxBitrate: 150000 },
  { rid: 'h', scaleResolutionDownBy: 2, maxBitrate: 500000 },
  { rid: 'f', maxBitrate: 2500000 },
];
const MAX_BITRATE = Object.fromEntries(SIMULCAST_ENCODINGS.map((e) => [e.rid, e.maxBitrate]));
const LAYER_ORDER = ['q', 'h', 'f'];

const KEY_STORE = 'onair.streamKey';
const CAM_STORE = 'onair.cameraId';
const MIC_STORE = 'onair.microphoneId';
const CONNECT_TIMEOUT_MS = 15000;
const DISCONNECT_GRACE_MS = 3000;
/**
 * A live stream whose connection died goes back on air by itself: the server
 * holds the stream and its viewers for the publisher during its reconnect
 * grace (`reconnect_grace_seconds` in /api/config), so the studio publishes
 * again after these delays while that grace lasts (less a margin).
 */
const RECONNECT_DELAYS_MS = [0, 1000, 2000, 3000];
const RECONNECT_MARGIN_MS = 2000;

const els = {
  body: document.body,
  status: $('#status'),
  statusText: $('#status-text'),
  statusTime: $('#status-time'),
  preview: $('#preview'),
  overlay: $('#preview-overlay'),
  overlayTitle: $('#preview-title'),
  overlayText: $('#preview-text'),
  overlayIcon: $('#preview-icon'),
  retryMedia: $('#retry-media'),
  badgeLive: $('#badge-live'),
  badgeTime: $('#badge-time'),
  badgeViewers: $('#badge-viewers'),
  badgeViewersN: $('#badge-viewers-n'),
  badgeRes: $('#badge-res'),
  toggleMic: $('#toggle-mic'),
  toggleCam: $('#toggle-cam'),
  previewMeta: $('#preview-meta'),
  goLive: $('#go-live'),
  goLiveLabel: $('#go-live-label'),
  goLiveSpinner: $('#go-live-spinner'),
  end: $('#end'),
  error: $('#error'),
  errorTitle: $('#error-title'),
  errorMessage: $('#error-message'),
  key: $('#stream-key'),
  keyHint: $('#key-hint'),
  toggleKey: $('#toggle-key'),
  camera: $('#camera'),
  cameraField: $('#camera-field'),
  microphone: $('#microphone'),
  microphoneField: $('#microphone-field'),
  shareEmpty: $('#share-empty'),
  share: $('#share'),
  shareLink: $('#share-link'),
  shareStream: $('#share-stream'),
  copyLink: $('#copy-link'),
  openLink: $('#open-link'),
  connState: $('#conn-state'),
  elapsed: $('#elapsed'),
  statBitrate: $('#stat-bitrate'),
  statResolution: $('#stat-resolution'),
  statFps: $('#stat-fps'),
  viewerCount: $('#viewer-count'),
  encoderNote: $('#encoder-note'),
  outCodec: $('#out-codec'),
  outSimulcast: $('#out-simulcast'),
  outSession: $('#out-session'),
  target: $('#target'),
  targetTitle: $('#target-title'),
  targetState: $('#target-state'),
  keyPicker: $('#key-picker'),
  keySelect: $('#key-select'),
  newKey: $('#new-key'),
  keyPickerHint: $('#key-picker-hint'),
  keyLabel: $('#stream-key-label'),
};

/** State exposed for tests and debugging. */
const onair = {
  page: 'publish',
  state: 'idle', // 'idle' | 'connecting' | 'live' | 'ended' | 'error'
  pc: null,
  session: null, // WHIP session id (last segment of Location)
  location: null, // absolute URL of the WHIP session resource
  bearer: null, // the stream key the session was opened with (its DELETE needs it)
  stream: null, // stream name from X-OnAir-Stream
  watchUrl: null,
  error: null, // { code, status, message } of the last failure
  media: null, // local MediaStream
  simulcast: null, // true when the 3-layer ladder was accepted by the browser
  codec: null, // negotiated video codec mime type
  startedAt: null,
  viewerCount: null,
  health: null,
  stats: null, // { layers: {q,h,f}, video_bitrate_bps, audio_bitrate_bps, ... }
  healthConnected: false, // the health socket (viewer count, server-side layers)
  endedByServer: false, // the server ended the stream while we published
  reconnects: 0, // times the studio got back on air by itself after a drop
  keys: [], // the logged-in host's keys: [{id, label, prefix, saved}]
  keyId: null, // the picked key's id
  target: null, // the stream of ?stream= (when logged in)
  endedByApi: null, // the stream ended by API when End was pressed (logged-in host)
  chatStream: null, // the stream whose chat the studio shows (logged in as its host)
  room: null, // the co-host room (RoomStudio, logged in)
  get chat() {
    try {
      return chat.snapshot();
    } catch {
      return []; // before the chat exists
    }
  },
  snapshots: 0, // thumbnails uploaded from the preview
  thumbnailUrl: null, // the last one
  snapshotError: null,
  goLive: () => goLive(),
  end: () => endStream(),
};
window.onair = onair;

let attemptId = 0;
let connectTimer = null;
let disconnectTimer = null;
let statsTimer = null;
let clockTimer = null;
let health = null;
let prevBytes = new Map();
let mediaPromise = null;
let micMuted = false;
let camOff = false;

// ---------------------------------------------------------------- state & UI

const STATUS_LABEL = {
  idle: 'Offline',
  connecting: 'Connecting…',
  reconnecting: 'Reconnecting…',
  live: 'LIVE',
  ended: 'Ended',
  error: 'Error',
};

function setState(state) {
  onair.state = state;
  els.body.dataset.state = state;
  els.status.dataset.state = state;
  setText(els.statusText, STATUS_LABEL[state] || state);
  const busy = state === 'connecting' || state === 'live' || state === 'reconnecting';
  els.statusTime.hidden = state !== 'live';
  els.badgeLive.hidden = state !== 'live';
  els.badgeTime.hidden = state !== 'live';
  els.badgeViewers.hidden = state !== 'live';

  els.goLive.hidden = state === 'live' || state === 'reconnecting';
  els.goLiveSpinner.hidden = state !== 'connecting';
  setText(els.goLiveLabel, state === 'connecting' ? 'Connecting…' : state === 'ended' ? 'Go live again' : 'Go live');
  els.end.hidden = !busy;
  setText(els.end, state === 'connecting' ? 'Cancel' : 'End stream');
  els.key.disabled = busy;
  els.keySelect.disabled = busy;
  els.newKey.disabled = busy;
  updateGoLiveEnabled();
  // Off the air: out of the room's media (the room panel keeps invitations).
  if ((state === 'idle' || state === 'ended' || state === 'error') && onair.room) onair.room.setStream(null);

  if (state !== 'live') {
    els.share.hidden = true;
    els.shareEmpty.hidden = false;
  }
  document.title = state === 'live' ? '🔴 LIVE · OnAir Studio' : 'Studio · OnAir';
}

function updateGoLiveEnabled() {
  const hasKey = els.key.value.trim().length > 0;
  els.goLive.disabled = onair.state === 'connecting' || !hasKey || (onair.media === null && mediaPromise === null);
}

function showError(title, message) {
  setText(els.errorTitle, title);
  setText(els.errorMessage, message);
  els.error.hidden = false;
}

function clearError() {
  els.error.hidden = true;
  els.key.removeAttribute('aria-invalid');
  onair.error = null;
}

function showOverlay(title, text, { retry = false, icon = 'camera' } = {}) {
  setText(els.overlayTitle, title);
  setText(els.overlayText, text || '');
  els.retryMedia.hidden = !retry;
  els.overlayIcon.classList.toggle('live', icon === 'error');
  els.overlay.hidden = false;
}

function hideOverlay() {
  els.overlay.hidden = true;
}

// ---------------------------------------------------------------- media

/** `?camera=low`: a small camera (640x360 at 15 fps) for a slow link or machine. */
const LOW_CAMERA = new URLSearchParams(window.location.search).get('camera') === 'low';

function videoConstraints(deviceId) {
  const c = LOW_CAMERA ? { width: { ideal: 640 }, height: { ideal: 360 }, frameRate: { ideal: 15 } } : { width: { ideal: 1280 }, height: { ideal: 720 }, frameRate: { ideal: 30 } };
  if (deviceId) c.deviceId = { exact: deviceId };
  return c;
}

function audioConstraints(deviceId) {
  const c = { echoCancellation: true, noiseSuppression: true, autoGainControl: true };
  if (deviceId) c.deviceId = { exact: deviceId };
  return c;
}

function mediaErrorText(err) {
  switch (err && err.name) {
    case 'NotAllowedError':
    case 'SecurityError':
      return 'Camera and microphone access was blocked. Allow access in your browser’s site settings, then try again.';
    case 'NotFoundError':
    case 'OverconstrainedError':
      return 'No camera or microphone was found. Connect one and try again.';
    case 'NotReadableError':
    case 'AbortError':
      return 'Your camera or microphone is in use by another application.';
    default:
      return describeError(err);
  }
}

async function openMedia() {
  if (!navigator.mediaDevices || !navigator.mediaDevices.getUserMedia) {
    const text = window.isSecureContext
      ? 'This browser cannot capture a camera.'
      : 'Browsers only allow camera access on HTTPS or localhost. Open the studio over HTTPS.';
    showOverlay('Camera unavailable', text, { icon: 'error' });
    throw new OnAirError(text, { code: 'media_unavailable' });
  }
  const camId = store.get(CAM_STORE);
  const micId = store.get(MIC_STORE);
  const tries = [
    { video: videoConstraints(camId), audio: audioConstraints(micId) },
    { video: videoConstraints(), audio: audioConstraints() },
    { video: videoConstraints() },
    { audio: audioConstraints() },
  ];
  let lastErr = null;
  for (const constraints of tries) {
    try {
      return await navigator.mediaDevices.getUserMedia(constraints);
    } catch (err) {
      lastErr = err;
      if (err && (err.name === 'NotAllowedError' || err.name === 'SecurityError')) break;
    }
  }
  throw lastErr;
}

function startMedia() {
  showOverlay('Starting your camera…', 'Allow access to your camera and microphone when your browser asks.');
  mediaPromise = openMedia()
    .then((media) => {
      attachMedia(media);
      refreshDevices();
      return media;
    })
    .catch((err) => {
      console.error('[onair] getUserMedia failed:', err);
      if (!onair.media) {
        showOverlay('Can’t access your camera', mediaErrorText(err), { retry: true, icon: 'error' });
      }
      mediaPromise = null;
      updateGoLiveEnabled();
      return null;
    });
  updateGoLiveEnabled();
  return mediaPromise;
}

function attachMedia(media) {
  onair.media = media;
  els.preview.srcObject = media;
  els.preview.play().catch(() => {});
  const v = media.getVideoTracks()[0];
  const a = media.getAudioTracks()[0];
  els.toggleMic.disabled = !a;
  els.toggleCam.disabled = !v;
  if (a) a.enabled = !micMuted;
  if (v) v.enabled = !camOff;
  if (v) {
    v.addEventListener('ended', () => {
      toast('The camera was disconnected.', 'error');
    });
  }
  renderPreviewState();
  updateGoLiveEnabled();
  if (filterTray) filterTray.mediaChanged(media);
}

function renderPreviewState() {
  const media = onair.media;
  if (!media) return;
  const v = media.getVideoTracks()[0];
  const a = media.getAudioTracks()[0];
  if (!v) {
    showOverlay('Audio only', 'No camera was found; you will stream audio only.');
  } else if (camOff) {
    showOverlay('Camera is off', 'Viewers see a black picture until you turn it back on.');
  } else {
    hideOverlay();
  }
  const parts = [];
  if (v) {
    const s = v.getSettings ? v.getSettings() : {};
    parts.push(shortLabel(v.label) || 'Camera');
    if (s.width && s.height) {
      setText(els.badgeRes, `${s.width}×${s.height}`);
      setText(els.statResolution, `${s.width}×${s.height}`);
      els.badgeRes.hidden = false;
    }
  }
  if (a) parts.push(shortLabel(a.label) || 'Microphone');
  setText(els.previewMeta, parts.join(' · ') || 'No devices');
  renderToggles();
}

function shortLabel(label) {
  if (!label) return '';
  return label.replace(/\s*\([0-9a-f]{4}:[0-9a-f]{4}\)\s*$/i, '').slice(0, 40);
}

function renderToggles() {
  const setToggle = (btn, off, onTitle, offTitle) => {
    btn.setAttribute('aria-pressed', String(off));
    btn.classList.toggle('toggle-off', off);
    btn.title = off ? offTitle : onTitle;
    btn.setAttribute('aria-label', btn.title);
    showEl(btn.querySelector('.icon-on'), !off);
    showEl(btn.querySelector('.icon-off'), off);
  };
  setToggle(els.toggleMic, micMuted, 'Mute microphone', 'Unmute microphone');
  setToggle(els.toggleCam, camOff, 'Turn camera off', 'Turn camera on');
}

async function refreshDevices() {
  if (!navigator.mediaDevices || !navigator.mediaDevices.enumerateDevices) return;
  let devices = [];
  try {
    devices = await navigator.mediaDevices.enumerateDevices();
  } catch {
    return;
  }
  const media = onair.media;
  const current = {
    videoinput: media && media.getVideoTracks()[0] && media.getVideoTracks()[0].getSettings().deviceId,
    audioinput: media && media.getAudioTracks()[0] && media.getAudioTracks()[0].getSettings().deviceId,
  };
  const fill = (select, field, kind, fallback) => {
    const list = devices.filter((d) => d.kind === kind && d.deviceId);
    select.replaceChildren(
      ...list.map((d, i) => {
        const o = document.createElement('option');
        o.value = d.deviceId;
        o.textContent = shortLabel(d.label) || `${fallback} ${i + 1}`;
        return o;
      }),
    );
    if (current[kind]) select.value = current[kind];
    field.hidden = list.length <= 1;
  };
  fill(els.camera, els.cameraField, 'videoinput', 'Camera');
  fill(els.microphone, els.microphoneField, 'audioinput', 'Microphone');
}

async function switchDevice(kind, deviceId) {
  const media = onair.media;
  if (!media) return;
  const old = kind === 'video' ? media.getVideoTracks()[0] : media.getAudioTracks()[0];
  let fresh;
  try {
    const constraints = kind === 'video' ? { video: videoConstraints(deviceId) } : { audio: audioConstraints(deviceId) };
    if (old) old.stop(); // some platforms cannot open two cameras at once
    const s = await navigator.mediaDevices.getUserMedia(constraints);
    fresh = kind === 'video' ? s.getVideoTracks()[0] : s.getAudioTracks()[0];
  } catch (err) {
    toast(`Could not switch ${kind === 'video' ? 'camera' : 'microphone'}: ${mediaErrorText(err)}`, 'error', 5000);
    return;
  }
  store.set(kind === 'video' ? CAM_STORE : MIC_STORE, deviceId);
  if (old) media.removeTrack(old);
  media.addTrack(fresh);
  fresh.enabled = kind === 'video' ? !camOff : !micMuted;
  els.preview.srcObject = media;
  els.preview.play().catch(() => {});
  // With filters on, the new device feeds the pipeline and the sender keeps its filtered track.
  if (filterTray) await filterTray.mediaChanged(media);
  const out = filterTray ? (kind === 'video' ? filterTray.pipeline.videoTrack() : filterTray.pipeline.audioTrack()) : fresh;
  if (onair.pc) {
    const tr = onair.pc
      .getTransceivers()
      .find((t) => t.sender.track === old || (t.receiver.track && t.receiver.track.kind === kind));
    const sender = tr && tr.sender;
    if (sender && sender.track !== out) {
      try {
        await sender.replaceTrack(out || fresh);
      } catch (err) {
        toast('The new device will be used the next time you go live.', 'info');
        console.warn('[onair] replaceTrack failed:', err);
      }
    }
  }
  renderPreviewState();
}

// ---------------------------------------------------------------- publishing

async function goLive() {
  if (onair.state === 'connecting' || onair.state === 'live') return;
  const key = els.key.value.trim();
  if (!key) {
    els.key.setAttribute('aria-invalid', 'true');
    els.key.focus();
    showError('Stream key required', 'Enter the stream key for your stream to go live.');
    return;
  }
  store.set(KEY_STORE, key);
  clearError();
  const attempt = ++attemptId;
  setState('connecting');
  setText(els.connState, 'Preparing…');

  let step = 'media';
  try {
    const media = onair.media || (await (mediaPromise || startMedia()));
    if (attempt !== attemptId) return;
    if (!media) {
      throw new OnAirError('A camera or microphone is needed to go live. Allow access and try again.', {
        code: 'no_media',
      });
    }

    step = 'setup';
    const cfg = await getConfig();
    const iceServers = iceServersOf(cfg);
    const grace = cfg && Number(cfg.reconnect_grace_seconds);
    if (Number.isFinite(grace) && grace > 0) serverGraceMs = grace * 1000;
    if (attempt !== attemptId) return;
    const pc = new RTCPeerConnection({ iceServers, bundlePolicy: 'max-bundle' });
    onair.pc = pc;
    prevBytes = new Map();
    const onConn = () => onConnectionChange(pc);
    pc.addEventListener('connectionstatechange', onConn);
    pc.addEventListener('iceconnectionstatechange', onConn);

    // What the filters make of the camera and microphone (the devices' own tracks without filters).
    const video = (filterTray && media.getVideoTracks()[0] && filterTray.pipeline.videoTrack()) || media.getVideoTracks()[0];
    const audio = (filterTray && media.getAudioTracks()[0] && filterTray.pipeline.audioTrack()) || media.getAudioTracks()[0];
    if (video) {
      let tr;
      try {
        tr = pc.addTransceiver(video, {
          direction: 'sendonly',
          streams: [media],
          sendEncodings: SIMULCAST_ENCODINGS.map((e) => ({ ...e })),
        });
        onair.simulcast = true;
      } catch (err) {
        console.warn('[onair] simulcast not supported, sending a single layer:', err);
        tr = pc.addTransceiver(video, { direction: 'sendonly', streams: [media] });
        onair.simulcast = false;
      }
      preferCodec(tr, 'video', 'video/VP8');
    }
    if (audio) {
      const tr = pc.addTransceiver(audio, { direction: 'sendonly', streams: [media] });
      preferCodec(tr, 'audio', 'audio/opus');
    }

    step = 'offer';
    const offer = await pc.createOffer();
    await pc.setLocalDescription(offer);
    await waitForIceGathering(pc, 1000);
    if (attempt !== attemptId) return;

    step = 'whip';
    setText(els.connState, 'Contacting server…');
    const resp = await fetch('/whip', {
      method: 'POST',
      headers: { 'Content-Type': 'application/sdp', Authorization: `Bearer ${key}` },
      body: pc.localDescription.sdp,
    });
    if (!resp.ok) throw await errorFromResponse(resp);
    const loc = resp.headers.get('Location');
    if (!loc) throw new OnAirError('The server accepted the stream but did not return a session URL.', { code: 'no_location' });
    onair.location = resolveLocation(loc);
    onair.bearer = key; // the session is ended only with the key that opened it
    onair.session = sessionFromLocation(loc);
    onair.stream = resp.headers.get('X-OnAir-Stream') || onair.stream;
    const answer = await resp.text();
    if (attempt !== attemptId) {
      deleteSession(onair.location, onair.bearer);
      return;
    }

    step = 'answer';
    await pc.setRemoteDescription({ type: 'answer', sdp: answer });
    setText(els.outSession, onair.session || '—');
    setText(els.connState, 'Connecting media…');
    startStats();
    clearTimeout(connectTimer);
    connectTimer = setTimeout(() => {
      if (onair.pc === pc && onair.state === 'connecting') {
        fail(
          new OnAirError(
            'The media connection could not be established. Make sure UDP traffic to the server is allowed.',
            { code: 'ice_timeout' },
          ),
          'media',
        );
      }
    }, CONNECT_TIMEOUT_MS);
    onConnectionChange(pc);
  } catch (err) {
    if (attempt !== attemptId) return;
    fail(err, step);
  }
}

function connectionState(pc) {
  if (pc.connectionState) return pc.connectionState;
  const map = { checking: 'connecting', completed: 'connected', new: 'new' };
  return map[pc.iceConnectionState] || pc.iceConnectionState;
}

const CONN_LABEL = {
  new: 'New',
  connecting: 'Connecting…',
  connected: 'Connected',
  disconnected: 'Reconnecting…',
  failed: 'Failed',
  closed: 'Closed',
};

function onConnectionChange(pc) {
  if (pc !== onair.pc) return;
  const s = connectionState(pc);
  if (onair.location) setText(els.connState, CONN_LABEL[s] || s);
  if (s === 'connected') {
    clearTimeout(disconnectTimer);
    disconnectTimer = null;
    if (onair.state === 'connecting') wentLive();
  } else if (s === 'failed') {
    if (onair.state === 'connecting' || onair.state === 'live') {
      fail(new OnAirError('The connection to the server failed.', { code: 'connection_failed' }), 'media');
    }
  } else if (s === 'disconnected') {
    if (onair.state === 'live' && !disconnectTimer) {
      disconnectTimer = setTimeout(() => {
        disconnectTimer = null;
        if (onair.pc === pc && connectionState(pc) !== 'connected') {
          fail(new OnAirError('Lost the connection to the server.', { code: 'connection_lost' }), 'media');
        }
      }, DISCONNECT_GRACE_MS);
    }
  } else if (s === 'closed' && onair.state === 'live') {
    fail(new OnAirError('The server closed the connection.', { code: 'connection_closed' }), 'media');
  }
}

function wentLive() {
  clearTimeout(connectTimer);
  const back = reconnect;
  reconnect = null;
  // Back after a drop: the same broadcast goes on (its clock too).
  onair.startedAt = back ? back.startedAt : Date.now();
  if (back) onair.reconnects += 1;
  setState('live');
  const stream = onair.stream;
  if (stream) {
    onair.watchUrl = new URL(`/watch/${encodeURIComponent(stream)}`, window.location.href).toString();
    els.shareLink.value = onair.watchUrl;
    els.openLink.href = onair.watchUrl;
    setText(els.shareStream, onair.target && String(onair.target.id) === String(stream) ? `“${onair.target.title}”` : `stream ${stream}`);
    setTargetState(stream, 'Live', 'live');
    els.share.hidden = false;
    els.shareEmpty.hidden = true;
    startHealth(stream, els.key.value.trim());
    startChat(stream);
    startSnapshots(stream);
  }
  startClock();
  if (back) toast('Back on air', 'ok');
  else toast(stream ? `You’re live on “${stream}”` : 'You’re live', 'ok');
}

/** While live, or getting back on air: `{ since, tries, startedAt, timer }`. */
let reconnect = null;
/** How long the server holds a stream for its publisher (from /api/config at go live). */
let serverGraceMs = 15000;

/** Whether `err` (while getting back on air) may pass with another try. */
function worthRetrying(err) {
  const status = (err && err.status) || 0;
  // 409: the server has not yet let go of the dead session (it does after a few silent seconds).
  return status === 0 || status >= 500 || status === 409 || status === 429;
}

/**
 * The connection of a live stream died (or a try to get back failed): publish
 * again while the server still holds the stream, else fail as before.
 */
function lostWhileLive(err, step) {
  const now = Date.now();
  if (!reconnect) reconnect = { since: now, tries: 0, startedAt: onair.startedAt, timer: null };
  const r = reconnect;
  if (!worthRetrying(err) || now - r.since >= serverGraceMs - RECONNECT_MARGIN_MS || r.tries >= 2 * RECONNECT_DELAYS_MS.length) {
    reconnect = null;
    fail(err, step, { final: true, wasLive: true });
    return;
  }
  console.warn(`[onair] ${describeError(err)} Reconnecting (try ${r.tries + 1})…`);
  if (r.tries === 0) toast('Connection lost. Reconnecting…', 'info');
  const delay = RECONNECT_DELAYS_MS[Math.min(r.tries, RECONNECT_DELAYS_MS.length - 1)];
  r.tries += 1;
  teardown(); // the DELETE lets the server hold the stream for us at once
  setState('reconnecting');
  setText(els.connState, 'Reconnecting…');
  r.timer = setTimeout(() => {
    r.timer = null;
    if (reconnect === r) goLive();
  }, delay);
}

function teardown({ notifyServer = true } = {}) {
  clearTimeout(connectTimer);
  clearTimeout(disconnectTimer);
  disconnectTimer = null;
  stopStats();
  stopClock();
  if (health) {
    health.close();
    health = null;
  }
  const deleted = notifyServer && onair.location ? deleteSession(onair.location, onair.bearer) : Promise.resolve();
  if (onair.pc) {
    try {
      onair.pc.close();
    } catch {
      /* ignore */
    }
  }
  onair.pc = null;
  onair.location = null;
  onair.viewerCount = null;
  resetLayerRows();
  return deleted;
}

const STEP_TITLE = {
  media: 'Couldn’t go live',
  setup: 'Couldn’t start the connection',
  offer: 'Your browser couldn’t prepare the stream',
  whip: 'The server refused the stream',
  answer: 'The server’s answer was not usable',
};

function fail(err, step, { final = false, wasLive = onair.state === 'live' } = {}) {
  // A live stream's connection died, or a try to get back on air failed.
  if (!final && ((onair.state === 'live' && step === 'media') || reconnect)) {
    lostWhileLive(err, step);
    return;
  }
  const expected = err && err.status >= 400 && err.status < 500;
  (expected ? console.warn : console.error)(`[onair] publish failed at ${step}:`, err);
  const message = describeError(err);
  onair.error = {
    step,
    code: (err && err.code) || 'error',
    status: (err && err.status) || 0,
    message,
  };
  teardown();
  setState('error');
  setText(els.connState, 'Offline');
  if (err && err.status === 401) {
    els.key.setAttribute('aria-invalid', 'true');
    showError('Stream key rejected', message);
  } else {
    showError(wasLive ? 'Your stream was interrupted' : STEP_TITLE[step] || 'Couldn’t go live', message);
  }
}

/** Ends the stream; resolves once the server has seen the DELETE. */
function endStream() {
  if (onair.state !== 'connecting' && onair.state !== 'live' && onair.state !== 'reconnecting') return Promise.resolve();
  stopSnapshots();
  if (reconnect) clearTimeout(reconnect.timer);
  const wasLive = onair.state === 'live' || reconnect !== null;
  reconnect = null;
  const duration = onair.startedAt ? Date.now() - onair.startedAt : 0;
  attemptId++;
  const stream = onair.stream;
  const deleted = teardown();
  setState(wasLive ? 'ended' : 'idle');
  setText(els.connState, 'Offline');
  setText(els.elapsed, wasLive ? formatDuration(duration) : '—');
  if (wasLive) toast(`Stream ended after ${formatDuration(duration)}`, 'info');
  const me = currentUser();
  if (wasLive && me && isHost(me) && stream && /^\d+$/.test(stream)) {
    // Logged in as the host: end it for viewers now (otherwise the server
    // waits a grace period for the video to come back). The stream is saved.
    return deleted.then(async () => {
      try {
        const s = await api(`/api/streams/${stream}/end`, { method: 'POST', body: { save: true } });
        onair.endedByApi = s.state;
      } catch (err) {
        // Someone else's key, or already over: the publish has stopped either way.
        if (err.status !== 403 && err.code !== 'bad_state') console.warn('[onair] ending by API failed:', err);
      }
    });
  }
  return deleted;
}

/** The stream was ended by someone else (dashboard, API): stop without a DELETE. */
function endedElsewhere() {
  stopSnapshots();
  const duration = onair.startedAt ? Date.now() - onair.startedAt : 0;
  attemptId++;
  teardown({ notifyServer: false });
  setState('ended');
  setText(els.connState, 'Offline');
  setText(els.elapsed, formatDuration(duration));
  setTargetState(onair.stream, 'Ended', 'ended');
  onair.endedByServer = true;
  toast('The stream was ended from the dashboard (or by the server).', 'info', 6000);
}

function setTargetState(stream, label, state) {
  if (!onair.target || String(onair.target.id) !== String(stream)) return;
  onair.target.state = state;
  setText(els.targetState, label);
  els.targetState.dataset.state = state;
}

// ---------------------------------------------------------------- the host's keys and target stream

/** Fills the key picker with the host's keys; those made in this browser can be used. */
async function loadKeys({ select = null } = {}) {
  const me = currentUser();
  if (!me || !isHost(me)) return;
  let keys;
  try {
    keys = await api('/api/me/stream-keys');
  } catch (err) {
    console.warn('[onair] could not list stream keys:', err);
    return;
  }
  const saved = savedKeySecrets(me);
  onair.keys = keys.filter((k) => !k.revoked_at).map((k) => ({ id: k.id, label: k.label, prefix: k.prefix, saved: !!saved[k.id] }));
  const opts = [h('option', { value: '' }, onair.keys.some((k) => k.saved) ? 'Choose a key…' : 'No key saved in this browser')];
  for (const k of onair.keys) {
    opts.push(
      h('option', { value: String(k.id), disabled: !k.saved }, `${k.label || 'Stream key'} · ${k.prefix}…${k.saved ? '' : ' (secret not in this browser)'}`),
    );
  }
  els.keySelect.replaceChildren(...opts);
  els.keyPicker.hidden = false;
  setText(els.keyLabel, 'Or paste a stream key');
  // Which key to show as picked: asked for, the one in the box, or the only one saved here.
  const current = els.key.value.trim();
  const savedHere = onair.keys.filter((k) => k.saved);
  let pick = select != null ? onair.keys.find((k) => String(k.id) === String(select) && k.saved) : null;
  if (!pick && current) pick = savedHere.find((k) => saved[k.id] === current) || null;
  if (!pick && !current && savedHere.length === 1) pick = savedHere[0];
  if (pick) pickKey(pick.id);
  else els.keySelect.value = '';
  setText(
    els.keyPickerHint,
    savedHere.length
      ? 'Keys made in this browser (here or on the dashboard) can be used directly.'
      : 'The secret of a key is shown only once, so keys made elsewhere must be pasted. Or make a new one here.',
  );
}

function pickKey(id) {
  const secret = savedKeySecrets()[id];
  if (!secret) return;
  els.keySelect.value = String(id);
  onair.keyId = Number(id);
  els.key.value = secret;
  els.key.removeAttribute('aria-invalid');
  store.set(KEY_STORE, secret);
  updateGoLiveEnabled();
}

async function makeKey() {
  els.newKey.disabled = true;
  try {
    const k = await api('/api/me/stream-keys', { method: 'POST', body: { label: 'Studio (browser)' } });
    saveKeySecret(k.id, k.key);
    await loadKeys({ select: k.id });
    toast('New key made and saved in this browser', 'ok');
  } catch (err) {
    toast(`Couldn’t make a key: ${describeError(err)}`, 'error');
  } finally {
    els.newKey.disabled = false;
  }
}

/** `?stream=ID` (from the dashboard): which of the host's streams this goes live on. */
async function loadTarget(id) {
  try {
    const s = await api(`/api/streams/${encodeURIComponent(id)}`);
    onair.target = { id: s.id, title: s.title, state: s.state, media_state: s.media_state };
    setText(els.targetTitle, s.title);
    const label = s.state === 'live' ? (s.media_state === 'receiving' ? 'Live' : 'Waiting for your video') : STATE_LABEL[s.state] || s.state;
    setText(els.targetState, s.state === 'scheduled' && s.scheduled_at ? `${label} · ${formatWhen(s.scheduled_at)}` : label);
    els.targetState.dataset.state = s.state;
    els.target.hidden = false;
  } catch (err) {
    console.warn('[onair] target stream:', err);
  }
}

// ---------------------------------------------------------------- health (viewers)

/**
 * The studio's viewer count and the server's view of the publish come from
 * the stream's health socket, which only the host may open: it takes the
 * stream key just used (no polling; it reconnects by itself).
 */
function startHealth(stream, key) {
  if (health) health.close();
  health = watchHealth(
    stream,
    () => key,
    (h) => {
      onair.health = h;
      if (typeof h.viewer_count === 'number') {
        onair.viewerCount = h.viewer_count;
        setText(els.viewerCount, String(h.viewer_count));
        setText($('#chat-viewers'), String(h.viewer_count));
        setText(els.badgeViewersN, String(h.viewer_count));
      }
      const tracks = h.publisher && Array.isArray(h.publisher.tracks) ? h.publisher.tracks : [];
      const rids = tracks.filter((t) => t && t.kind === 'video' && t.rid).map((t) => t.rid);
      if (rids.length) {
        setText(els.encoderNote, `Server receiving ${rids.length} layer${rids.length > 1 ? 's' : ''}`);
      }
    },
    {
      onState: (st) => {
        onair.healthConnected = st === 'open';
      },
      onEvent: (e) => {
        // The server ended the stream (the host pressed End on the dashboard, say).
        if (e && e.type === 'stream_ended' && onair.state === 'live' && String(e.stream) === String(onair.stream)) endedElsewhere();
      },
    },
  );
}

// ---------------------------------------------------------------- chat (logged in as the stream's host)

const rt = new Realtime({ name: 'studio' });

// ---------------------------------------------------------------- filters

/**
 * The filter tray: the render pipeline between the devices and the
 * connection. When a filter first needs the filtered track, it replaces the
 * device's on the live connection's sender (no renegotiation).
 */
const filterTray = new FilterTray({
  root: $('#filter-tray'),
  preview: els.preview,
  stage: $('#stage'),
  realtime: rt,
  onTracks: (kind, track) => {
    const pc = onair.pc;
    if (!pc) return;
    const tr = pc.getTransceivers().find((t) => (t.sender.track && t.sender.track.kind === kind) || (t.receiver.track && t.receiver.track.kind === kind));
    if (tr && tr.sender.track !== track) {
      tr.sender.replaceTrack(track).catch((err) => console.warn('[onair] replaceTrack failed:', err));
      onair.trackSwaps = (onair.trackSwaps || 0) + 1;
    }
  },
});
onair.filters = filterTray;
filterTray.load();
if (currentUser()) rt.connect();
const hostTools = new HostTools($('#host-tools'));
/** The co-host room: invitations, requests, hosts, layout, the other hosts' media. */
const room = currentUser()
  ? new RoomStudio({
      panel: $('#room-panel'),
      stage: $('#room-stage'),
      rt,
      localTracks: () => (onair.pc ? onair.pc.getSenders().map((s) => s.track) : []),
    })
  : null;
onair.room = room;
const seller = new SellerConsole({ rt, root: $('#shop-console') });
onInteractEvents(rt, (msg) => hostTools.event(msg));
const chat = new ChatView($('#chat-list'), {
  emptyText: 'No messages yet.',
  menu: true,
  moderation: {
    async onDelete(m) {
      try {
        await api(`/api/streams/${m.stream_id}/chat/${m.id}`, { method: 'DELETE' });
      } catch (err) {
        toast(`Couldn’t delete: ${describeError(err)}`, 'error');
      }
    },
    async onTimeout(m, seconds) {
      try {
        await api(`/api/channels/${encodeURIComponent(currentUser().username)}/timeouts`, { method: 'POST', body: { user: m.user.username, seconds, reason: '' } });
        toast(`@${m.user.username} is timed out`, 'ok');
      } catch (err) {
        toast(`Couldn’t time out: ${describeError(err)}`, 'error');
      }
    },
    async onBan(m) {
      try {
        await api(`/api/channels/${encodeURIComponent(currentUser().username)}/bans`, { method: 'POST', body: { user: m.user.username, reason: '' } });
        toast(`@${m.user.username} is banned from your chat`, 'ok');
      } catch (err) {
        toast(`Couldn’t ban: ${describeError(err)}`, 'error');
      }
    },
  },
});
const composer = new ChatComposer({
  form: $('#chat-form'),
  input: $('#chat-input'),
  button: $('#chat-send'),
  hint: $('#chat-hint'),
  counter: $('#chat-counter'),
  send: (text) => rt.request({ type: 'chat', stream: onair.chatStream, text }),
});

/** The stream's chat beside the preview, with the host's moderation in each message's menu. */
function startChat(stream) {
  const me = currentUser();
  if (!me || !isHost(me) || !/^\d+$/.test(String(stream))) return;
  const id = Number(stream);
  if (room) room.setStream(id);
  if (onair.chatStream === id) return;
  if (onair.chatStream != null) rt.unsubscribe(onair.chatStream);
  onair.chatStream = id;
  $('#chat-panel').hidden = false;
  hostTools.setStream(id);
  seller.setStream(id);
  rt.subscribe(id);
  rt.connect();
}

rt.on('subscribed', (msg) => {
  const s = msg.stream;
  if (!s || s.id !== onair.chatStream) return;
  if (s.host.id !== (currentUser() || {}).id) {
    // Someone else's stream (a key of theirs): their chat is theirs to run.
    $('#chat-panel').hidden = true;
    hostTools.setStream(null);
    seller.setStream(null);
    return;
  }
  composer.setSettings(msg.chat || null);
  chat.load(s.id);
});
rt.on('chat_message', (msg) => {
  if (msg.message && msg.message.stream_id === onair.chatStream) chat.add(msg.message);
});
rt.on('chat_deleted', (msg) => {
  if (msg.stream_id === onair.chatStream) chat.remove(msg.message_id);
});
rt.on('viewer_count', (msg) => {
  if (msg.stream_id === onair.chatStream) setText($('#chat-viewers'), String(msg.viewers));
});
rt.on('chat_settings', (msg) => composer.setSettings(msg.settings));

// ---------------------------------------------------------------- thumbnails from the preview

/** While live, a frame of the preview becomes the stream's thumbnail: now, then every 30 s. */
const SNAPSHOT_EVERY_MS = 30000;
let snapshotTimer = null;

function startSnapshots(stream) {
  stopSnapshots();
  const me = currentUser();
  if (!me || !isHost(me) || !/^\d+$/.test(String(stream))) return;
  const shoot = async () => {
    if (onair.state !== 'live' || camOff) return;
    const v = els.preview;
    if (!v.videoWidth) return;
    // 640 px wide at most: a card's picture, not a photo.
    const scale = Math.min(1, 640 / v.videoWidth);
    const canvas = document.createElement('canvas');
    canvas.width = Math.round(v.videoWidth * scale);
    canvas.height = Math.round(v.videoHeight * scale);
    canvas.getContext('2d').drawImage(v, 0, 0, canvas.width, canvas.height);
    const blob = await new Promise((resolve) => canvas.toBlob(resolve, 'image/jpeg', 0.8));
    if (!blob) return;
    try {
      const s = await uploadImage(`/api/streams/${stream}/thumbnail`, blob);
      onair.snapshots += 1;
      onair.thumbnailUrl = s.thumbnail_url;
      onair.snapshotError = null;
    } catch (err) {
      // Someone else's stream, or a server that refused it: the stream goes on without.
      onair.snapshotError = { code: err.code, message: err.message };
      if (err.status === 403) stopSnapshots();
    }
  };
  // The first one once the picture has settled (the encoder's first frames are soft).
  snapshotTimer = setTimeout(function next() {
    shoot();
    snapshotTimer = setTimeout(next, SNAPSHOT_EVERY_MS);
  }, 2000);
}

function stopSnapshots() {
  clearTimeout(snapshotTimer);
  snapshotTimer = null;
}

// ---------------------------------------------------------------- stats

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
  const outbound = [];
  const codecs = new Map();
  let audioBps = null;
  report.forEach((s) => {
    if (s.type === 'codec') codecs.set(s.id, s.mimeType);
    if (s.type !== 'outbound-rtp' || s.isRemote) return;
    const kind = s.kind || s.mediaType;
    const bps = rate(s);
    if (kind === 'video') outbound.push({ s, bps });
    else if (kind === 'audio' && bps != null) audioBps = (audioBps || 0) + bps;
  });

  // Assign rids. Browsers without `rid` in stats get them by ascending size.
  const withoutRid = outbound.filter((o) => !o.s.rid);
  if (withoutRid.length) {
    withoutRid.sort((a, b) => (a.s.frameWidth || 0) - (b.s.frameWidth || 0));
    const free = LAYER_ORDER.filter((r) => !outbound.some((o) => o.s.rid === r));
    withoutRid.forEach((o, i) => (o.rid = free[i + Math.max(0, free.length - withoutRid.length)] || `#${i}`));
  }
  const layers = {};
  let videoBps = null;
  let codec = null;
  for (const o of outbound) {
    const rid = o.s.rid || o.rid;
    layers[rid] = {
      rid,
      active: o.s.active !== false,
      bitrate_bps: o.bps,
      width: o.s.frameWidth || null,
      height: o.s.frameHeight || null,
      fps: o.s.framesPerSecond ?? null,
      packets: o.s.packetsSent ?? null,
      frames_encoded: o.s.framesEncoded ?? null,
      quality_limitation: o.s.qualityLimitationReason || null,
    };
    if (o.bps != null) videoBps = (videoBps || 0) + o.bps;
    if (!codec && o.s.codecId) codec = codecs.get(o.s.codecId) || null;
  }
  const track = onair.media && onair.media.getVideoTracks()[0];
  const settings = track && track.getSettings ? track.getSettings() : {};
  onair.codec = codec || onair.codec;
  onair.stats = {
    layers,
    video_bitrate_bps: videoBps,
    audio_bitrate_bps: audioBps,
    total_bitrate_bps: videoBps == null && audioBps == null ? null : (videoBps || 0) + (audioBps || 0),
    capture: { width: settings.width || null, height: settings.height || null, fps: settings.frameRate || null },
    connection_state: connectionState(pc),
  };
  renderStats(onair.stats);
}

function rate(s) {
  const bytes = s.bytesSent;
  if (bytes == null) return null;
  const prev = prevBytes.get(s.id);
  prevBytes.set(s.id, { bytes, ts: s.timestamp });
  if (!prev || s.timestamp <= prev.ts) return null;
  return Math.max(0, ((bytes - prev.bytes) * 8) / ((s.timestamp - prev.ts) / 1000));
}

function renderStats(st) {
  setText(els.statBitrate, formatBitrate(st.total_bitrate_bps));
  const cap = st.capture;
  setText(els.statResolution, cap.width ? `${cap.width}×${cap.height}` : '—');
  const top = st.layers.f || st.layers.h || st.layers.q || Object.values(st.layers)[0];
  const fps = top && top.fps != null ? top.fps : cap.fps;
  setText(els.statFps, fps != null ? `${Math.round(fps)} fps` : '—');
  if (onair.codec) setText(els.outCodec, onair.codec.replace(/^video\//i, ''));
  const count = Object.keys(st.layers).length;
  if (count) {
    setText(
      els.outSimulcast,
      onair.simulcast && count > 1 ? `${count} layers · up to 2.5 Mbps` : 'Single layer',
    );
  }
  const limits = Object.values(st.layers)
    .map((l) => l.quality_limitation)
    .filter((r) => r && r !== 'none');
  if (!onair.health) {
    setText(els.encoderNote, limits.length ? `Encoder limited by ${limits[0]}` : '');
  }
  for (const rid of LAYER_ORDER) {
    const row = document.getElementById(`layer-${rid}`);
    const l = st.layers[rid];
    const sending = l && l.active && (l.bitrate_bps || 0) > 1000;
    row.classList.toggle('inactive', !sending);
    setText(row.querySelector('.res'), l && l.width ? `${l.width}×${l.height}` : '—');
    setText(row.querySelector('.fps'), l && l.fps != null ? String(Math.round(l.fps)) : '—');
    setText(row.querySelector('.br'), l ? (l.active ? formatBitrate(l.bitrate_bps) : 'Paused') : '—');
    const pct = l && l.bitrate_bps ? Math.min(100, (l.bitrate_bps / MAX_BITRATE[rid]) * 100) : 0;
    row.querySelector('.bar > span').style.width = `${pct}%`;
  }
}

function resetLayerRows() {
  for (const rid of LAYER_ORDER) {
    const row = document.getElementById(`layer-${rid}`);
    row.classList.add('inactive');
    setText(row.querySelector('.res'), '—');
    setText(row.querySelector('.fps'), '—');
    setText(row.querySelector('.br'), '—');
    row.querySelector('.bar > span').style.width = '0%';
  }
  setText(els.statBitrate, '—');
  setText(els.statFps, '—');
  setText(els.viewerCount, '—');
  setText(els.encoderNote, '');
  setText(els.outSession, '—');
}

// ---------------------------------------------------------------- clock

function startClock() {
  stopClock();
  const tick = () => {
    const t = formatDuration(Date.now() - (onair.startedAt || Date.now()));
    setText(els.statusTime, t);
    setText(els.badgeTime, t);
    setText(els.elapsed, t);
  };
  tick();
  clockTimer = setInterval(tick, 1000);
}

function stopClock() {
  clearInterval(clockTimer);
  clockTimer = null;
}

// ---------------------------------------------------------------- wiring

// The setup form is never submitted (Enter in a field must not reload the page).
$('#setup').addEventListener('submit', (ev) => ev.preventDefault());
els.key.value = store.get(KEY_STORE, '');
els.key.addEventListener('input', () => {
  els.key.removeAttribute('aria-invalid');
  store.set(KEY_STORE, els.key.value.trim());
  updateGoLiveEnabled();
});
els.key.addEventListener('keydown', (ev) => {
  if (ev.key === 'Enter' && !els.goLive.disabled) goLive();
});
els.toggleKey.addEventListener('click', () => {
  const show = els.key.type === 'password';
  els.key.type = show ? 'text' : 'password';
  els.toggleKey.setAttribute('aria-pressed', String(show));
  els.toggleKey.title = show ? 'Hide key' : 'Show key';
});

els.goLive.addEventListener('click', () => goLive());
els.end.addEventListener('click', () => endStream());
els.retryMedia.addEventListener('click', () => startMedia());

els.toggleMic.addEventListener('click', () => {
  micMuted = !micMuted;
  const a = onair.media && onair.media.getAudioTracks()[0];
  if (a) a.enabled = !micMuted;
  renderToggles();
});
els.toggleCam.addEventListener('click', () => {
  camOff = !camOff;
  const v = onair.media && onair.media.getVideoTracks()[0];
  if (v) v.enabled = !camOff;
  renderPreviewState();
});

els.camera.addEventListener('change', () => switchDevice('video', els.camera.value));
els.microphone.addEventListener('change', () => switchDevice('audio', els.microphone.value));
if (navigator.mediaDevices && 'ondevicechange' in navigator.mediaDevices) {
  navigator.mediaDevices.addEventListener('devicechange', () => refreshDevices());
}

els.copyLink.addEventListener('click', async () => {
  const ok = await copyText(els.shareLink.value);
  toast(ok ? 'Link copied' : 'Copy failed: select the link and copy it manually', ok ? 'ok' : 'error');
});
els.shareLink.addEventListener('focus', () => els.shareLink.select());

window.addEventListener('pagehide', () => {
  if (onair.location) deleteSession(onair.location, onair.bearer);
});

els.keySelect.addEventListener('change', () => {
  if (els.keySelect.value) pickKey(els.keySelect.value);
});
els.newKey.addEventListener('click', () => makeKey());
els.key.addEventListener('input', () => {
  // A pasted key is not one of the listed ones (unless it is).
  const saved = savedKeySecrets();
  const match = onair.keys.find((k) => saved[k.id] && saved[k.id] === els.key.value.trim());
  els.keySelect.value = match ? String(match.id) : '';
  onair.keyId = match ? match.id : null;
});

renderAccount({ current: 'publish' });
const params = new URLSearchParams(window.location.search);
if (currentUser() && isHost()) {
  loadKeys({ select: params.get('key') });
  if (params.get('stream')) loadTarget(params.get('stream'));
}

setState('idle');
startMedia();

// PK battles: Challenge, invitations, the battle bar (static/battle.js).
import { mountBattle } from './battle.js';
onair.battle = mountBattle({ rt, host: document.querySelector('#stage').closest('.card'), stream: () => onair.chatStream, studio: true, stage: document.querySelector('#stage') });
