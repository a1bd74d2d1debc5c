// The studio's render pipeline: camera frames -> WebGL2 shader passes (or
// the 2D-canvas fallback) -> canvas.captureStream() -> the published video
// track; the microphone -> the voice changer -> the published audio track.
//
// The filtered tracks replace the camera's on the publishing connection's
// senders once (RTCRtpSender.replaceTrack): switching or stacking filters
// afterwards only changes the renderer's settings, so the WHIP session is
// never renegotiated and every simulcast layer carries the effect.
//
// Background and face effects need models (vision.js): they load on first
// use and run on small copies of the frame, one model per camera frame and
// each at most every 2nd frame; the passes use the last mask and landmarks.

import { GlRenderer } from './gl.js';
import { Canvas2dRenderer } from './canvas2d.js';
import { VoiceChanger } from './voice.js';
import { drawOverlays } from './overlay.js';
import { Segmenter, FaceTracker } from './vision.js';
import { drawMakeup, drawFaceSticker, warpOf } from './face.js';

/** Frame budget: 30 fps at the published size. */
export const BUDGET_MS = 1000 / 30;
/** The effects the studio renders. */
export const RENDERED = new Set(['beauty', 'lut', 'vignette', 'grain', 'green_screen', 'bg_blur', 'bg_replace', 'makeup', 'face_sticker', 'face_warp', 'sticker', 'text', 'frame', 'voice']);
/** Effects that need the person mask, and those that need face landmarks. */
const SEGMENTED = new Set(['bg_blur', 'bg_replace']);
const FACIAL = new Set(['makeup', 'face_sticker', 'face_warp']);

/** Where a filter sits in the stack: one per slot (overlays stack by filter). */
export function slotOf(filter) {
  if (filter.category === 'overlay') return `overlay:${filter.id}`;
  if (filter.category === 'color') return filter.effect; // a look, a vignette and grain together
  // Makeup, a face sticker and a warp stack (one of each).
  if (filter.category === 'makeup') return 'makeup';
  if (filter.category === 'ar') return filter.effect === 'face_warp' ? 'warp' : 'ar';
  return filter.category;
}

function hexColor(s) {
  const m = /^#?([0-9a-f]{2})([0-9a-f]{2})([0-9a-f]{2})$/i.exec(String(s || ''));
  return m ? [1, 2, 3].map((i) => parseInt(m[i], 16) / 255) : [0, 1, 0];
}

const num = (v, d = 0) => (Number.isFinite(Number(v)) ? Number(v) : d);

export class FilterPipeline {
  /**
   * `fetchAsset(url) -> Promise<Blob>` loads an asset (with the login);
   * `onCost({ms, fps, cheap, renderer})` reports the render cost.
   */
  constructor({ fetchAsset, onCost = () => {} } = {}) {
    this.fetchAsset = fetchAsset;
    this.onCost = onCost;
    this.stack = new Map(); // slot -> {filter, params, strength}
    this.media = null;
    this.video = document.createElement('video');
    this.video.muted = true;
    this.video.playsInline = true;
    this.canvas = document.createElement('canvas');
    this.overlayCanvas = document.createElement('canvas');
    // What is published: always the camera's size, whatever size the
    // passes ran at (a smaller simulcast top layer would change the
    // layers the encoder sends, and viewers on the top one would stall).
    this.outCanvas = document.createElement('canvas');
    this.outCtx = this.outCanvas.getContext('2d', { alpha: false });
    this.renderer = GlRenderer.create(this.canvas) || Canvas2dRenderer.create(this.canvas);
    this.output = null; // the canvas's MediaStream (made on first use)
    this.voice = new VoiceChanger();
    this.voiceTrack = null;
    // The rendered size against the camera's: 1, 0.75, 0.5. Without a GPU
    // (a software rasterizer), start small: full size costs ~10x the budget.
    this.scale = this.renderer && this.renderer.software ? 0.5 : 1;
    this.cheap = !!(this.renderer && this.renderer.software);
    this.samples = [];
    this.frames = 0;
    this.running = false;
    this.overlayDirty = true;
    this.images = new Map(); // asset url -> HTMLImageElement / ImageBitmap
    this.lutUrl = null;
    this.backdropUrl = null;
    this.segmenter = new Segmenter();
    this.face = new FaceTracker();
    this.maskVersion = 0;
    this.faceVersion = 0;
    this.faceDirty = true;
    this.tick = 0;
    this.aspect = 16 / 9;
    // The makeup tint layer (landmark-placed, blended by the shader).
    this.tintCanvas = document.createElement('canvas');
    this.tintCanvas.width = 640;
    this.tintCanvas.height = 360;
  }

  /** Which models the stack needs. */
  needs() {
    const n = { segment: false, face: false };
    for (const e of this.stack.values()) {
      if (SEGMENTED.has(e.filter.effect)) n.segment = true;
      if (FACIAL.has(e.filter.effect)) n.face = true;
    }
    return n;
  }

  /** The camera (and microphone) stream. */
  attach(media) {
    this.media = media;
    const v = media.getVideoTracks()[0];
    this.video.srcObject = v ? new MediaStream([v]) : null;
    this.video.play().catch(() => {});
    if (this.videoActive()) this.start();
  }

  /** Whether any video filter is in the stack. */
  videoActive() {
    for (const e of this.stack.values()) if (e.filter.category !== 'voice') return true;
    return false;
  }

  /** The video track to publish: the canvas once filtering began, else the camera's. */
  videoTrack() {
    if (this.output) return this.output.getVideoTracks()[0];
    return this.media && this.media.getVideoTracks()[0];
  }

  /** The audio track to publish: the voice changer's once a voice was chosen, else the microphone's. */
  audioTrack() {
    return this.voiceTrack || (this.media && this.media.getAudioTracks()[0]);
  }

  /** Sets the whole stack (slot -> {filter, params, strength 0..100}); loads assets. */
  async set(stack) {
    this.stack = new Map(stack);
    this.overlayDirty = true;
    this.faceDirty = true;
    await this.loadAssets();
    const needs = this.needs();
    try {
      await Promise.all([needs.segment && this.segmenter.load(), needs.face && this.face.load()]);
    } catch (err) {
      throw new Error(`the ${needs.segment && this.segmenter.failed ? 'person segmentation' : 'face tracking'} model did not load (${err && err.message ? err.message : err})`);
    }
    const voice = [...this.stack.values()].find((e) => e.filter.category === 'voice');
    if (voice) {
      const mic = this.media && this.media.getAudioTracks()[0];
      if (mic && !this.voiceTrack) this.voiceTrack = await this.voice.track(mic);
      const p = voice.params || {};
      const k = voice.strength / 100;
      this.voice.set({ mode: p.mode || 'pitch', semitones: num(p.semitones) * k, frequency: num(p.frequency, 50) });
    } else {
      this.voice.set({ mode: 'off' });
    }
    if (this.videoActive()) this.start();
  }

  async image(url) {
    if (this.images.has(url)) return this.images.get(url);
    const blob = await this.fetchAsset(url);
    let img;
    if (blob.type === 'image/svg+xml') {
      img = new Image();
      img.src = URL.createObjectURL(blob);
      await img.decode();
    } else {
      img = await createImageBitmap(blob);
    }
    this.images.set(url, img);
    return img;
  }

  async loadAssets() {
    const look = [...this.stack.values()].find((e) => e.filter.effect === 'lut');
    const lutAsset = look && look.filter.assets.find((a) => a.kind === 'lut');
    const lutUrl = lutAsset ? lutAsset.url : null;
    if (lutUrl !== this.lutUrl) {
      this.lutUrl = lutUrl;
      this.renderer.setLut(lutUrl ? await this.image(lutUrl) : null, lutAsset && lutAsset.name);
    }
    const key = [...this.stack.values()].find((e) => e.filter.effect === 'green_screen' || e.filter.effect === 'bg_replace');
    const bd = key && key.filter.assets.find((a) => a.kind === 'backdrop');
    if (bd && bd.url !== this.backdropUrl) {
      this.backdropUrl = bd.url;
      this.renderer.setBackdrop(await this.image(bd.url));
    }
    for (const e of this.stack.values()) {
      for (const a of e.filter.assets) if (a.kind === 'sticker' || a.kind === 'frame') await this.image(a.url);
    }
  }

  /** The renderer's settings from the stack. */
  settings() {
    const s = { smoothing: 0, brightness: 0, skinTone: 0, sharpen: 0, lut: 0, vignette: 0, grain: 0, key: null, background: null, tint: false, warp: null, overlay: false, cheap: this.cheap, scale: this.scale };
    for (const { filter, params, strength } of this.stack.values()) {
      const k = strength / 100;
      const p = params || {};
      switch (filter.effect) {
        case 'beauty':
          s.smoothing = (num(p.smoothing) / 100) * k;
          s.brightness = (num(p.brightness) / 100) * k;
          s.skinTone = (num(p.skin_tone) / 100) * k;
          s.sharpen = (num(p.sharpen) / 100) * k;
          break;
        case 'lut':
          s.lut = (num(p.strength, 100) / 100) * k;
          break;
        case 'vignette':
          s.vignette = (num(p.strength, 50) / 100) * k;
          break;
        case 'grain':
          s.grain = (num(p.strength, 30) / 100) * k;
          break;
        case 'green_screen':
          s.key = { color: hexColor(p.key_color), tolerance: (num(p.tolerance, 40) / 100) * Math.max(k, 0.05) };
          break;
        case 'bg_blur':
          s.background = { mode: 'blur', amount: Math.min(1, (num(p.strength, 60) / 100) * k) };
          break;
        case 'bg_replace':
          s.background = k > 0 ? { mode: 'replace', amount: k } : null;
          break;
        case 'makeup':
          s.tint = !!this.face.points && k > 0;
          break;
        case 'face_warp':
          s.warp = warpOf(this.face, p, k, this.aspect);
          break;
        case 'face_sticker':
        case 'sticker':
        case 'text':
        case 'frame':
          s.overlay = true;
          break;
        default:
          break;
      }
    }
    return s;
  }

  start() {
    if (!this.output) {
      this.output = this.outCanvas.captureStream(30);
    }
    if (this.running) return;
    this.running = true;
    const step = () => {
      if (!this.running) return;
      this.frame();
      if (this.video.requestVideoFrameCallback) this.video.requestVideoFrameCallback(step);
      else requestAnimationFrame(step);
    };
    if (this.video.requestVideoFrameCallback) this.video.requestVideoFrameCallback(step);
    else requestAnimationFrame(step);
  }

  stop() {
    this.running = false;
  }

  frame() {
    const v = this.video;
    if (!v.videoWidth) return;
    this.models(v);
    const t0 = performance.now();
    this.aspect = v.videoWidth / v.videoHeight;
    const entries = [...this.stack.values()];
    const faceMoved = this.face.version !== this.faceVersion || this.faceDirty;
    if (faceMoved) {
      this.faceVersion = this.face.version;
      this.faceDirty = false;
      const makeup = entries.find((e) => e.filter.effect === 'makeup');
      if (makeup) {
        drawMakeup(this.tintCanvas, this.face, makeup.params, makeup.strength / 100);
        this.renderer.setTint(this.tintCanvas);
      }
      if (entries.some((e) => e.filter.effect === 'face_sticker')) this.overlayDirty = true;
    }
    if (this.segmenter.version !== this.maskVersion) {
      this.maskVersion = this.segmenter.version;
      this.renderer.setMask(this.segmenter.mask);
    }
    const s = this.settings();
    const ow = Math.round((v.videoWidth * this.scale) / 2) * 2;
    if (s.overlay && (this.overlayDirty || this.overlayCanvas.width !== ow)) {
      this.overlayCanvas.width = ow;
      this.overlayCanvas.height = Math.round((v.videoHeight * this.scale) / 2) * 2;
      drawOverlays(this.overlayCanvas, entries, this.images);
      const ctx = this.overlayCanvas.getContext('2d');
      for (const e of entries) {
        if (e.filter.effect !== 'face_sticker') continue;
        const a = e.filter.assets.find((x) => x.kind === 'sticker');
        drawFaceSticker(ctx, this.face, a && this.images.get(a.url), e.params, e.strength / 100, this.overlayCanvas.width, this.overlayCanvas.height);
      }
      this.renderer.setOverlay(this.overlayCanvas);
      this.overlayDirty = false;
    }
    if (!this.renderer.render(v, s)) return;
    if (this.outCanvas.width !== v.videoWidth || this.outCanvas.height !== v.videoHeight) {
      this.outCanvas.width = v.videoWidth;
      this.outCanvas.height = v.videoHeight;
    }
    this.outCtx.drawImage(this.canvas, 0, 0, this.outCanvas.width, this.outCanvas.height);
    this.frames++;
    // Every 5th frame waits for the GPU, so the cost includes its work.
    if (this.frames % 5 === 0) {
      this.renderer.sync();
      this.samples.push(performance.now() - t0);
      if (this.samples.length >= 3) {
        const ms = this.samples.reduce((a, b) => a + b, 0) / this.samples.length;
        this.samples = [];
        // Over budget: cheaper passes first (fewer smoothing taps, no
        // sharpening), then a smaller picture (3/4, then 1/2 of the camera's);
        // back up a step when there is room again.
        if (ms > BUDGET_MS * 0.6) {
          if (!this.cheap) this.cheap = true;
          else if (this.scale > 0.5) this.scale = this.scale > 0.75 ? 0.75 : 0.5;
        } else if (ms < BUDGET_MS * 0.2) {
          if (this.scale < 1) this.scale = this.scale < 0.75 ? 0.75 : 1;
          else this.cheap = false;
        }
        this.lastCost = ms;
        this.reports = (this.reports || 0) + 1;
        this.onCost({ ms, cheap: this.cheap, scale: this.scale, renderer: this.renderer.kind });
      }
    }
  }

  /**
   * Runs the models the stack needs on this frame: one per frame, each at
   * most every 2nd frame, never two runs of one at once (not awaited: the
   * passes keep the last mask and landmarks meanwhile).
   */
  models(video) {
    const needs = this.needs();
    const due = [];
    if (needs.segment && this.segmenter.ready) due.push(this.segmenter);
    if (needs.face && this.face.ready) due.push(this.face);
    if (!due.length) return;
    this.tick++;
    if (due.length === 1 && this.tick % 2) return;
    const m = due[this.tick % due.length];
    if (!m.busy) m.run(video);
  }

  /**
   * The person mask drawn at `w` x `h`: the person's probability 0..255 per
   * pixel, row by row (null before the first mask). For tests and debugging.
   */
  maskSample(w, h) {
    const mask = this.segmenter.mask;
    if (!mask) return null;
    const c = document.createElement('canvas');
    c.width = w;
    c.height = h;
    const ctx = c.getContext('2d', { willReadFrequently: true });
    ctx.drawImage(mask, 0, 0, w, h);
    const d = ctx.getImageData(0, 0, w, h).data;
    const out = new Array(w * h);
    for (let i = 0; i < w * h; i++) out[i] = d[i * 4];
    return out;
  }

  /** Marks the overlays for redrawing (a sticker was dragged). */
  overlaysChanged() {
    this.overlayDirty = true;
    this.faceDirty = true;
  }
}
