// The 2D-canvas fallback renderer, for browsers without WebGL2: the
// canvas's CSS filter functions stand in for the shader passes (blur for
// smoothing, brightness, sepia/saturation for skin tone), colour looks are
// approximated by filter functions named by the LUT, and the overlay layer
// is drawn on top. Cheaper and coarser than WebGL2; never a LUT per pixel.
// Background blur/replacement composite the person through the mask's
// alpha; makeup tints blend with the `color` mode; no face warps here.

const LOOK_FILTERS = {
  'lut_vintage.png': 'sepia(0.65) contrast(0.9) brightness(1.05)',
  'lut_warm.png': 'sepia(0.25) saturate(1.25)',
  'lut_cool.png': 'hue-rotate(-12deg) saturate(0.9) brightness(1.03)',
  'lut_mono.png': 'grayscale(1) contrast(1.1)',
  'lut_cinematic.png': 'contrast(1.15) saturate(0.85) sepia(0.15)',
  'lut_teal_orange.png': 'contrast(1.2) saturate(1.2) sepia(0.2)',
  'lut_noir.png': 'grayscale(1) contrast(1.6)',
};

export class Canvas2dRenderer {
  static create(canvas) {
    const ctx = canvas.getContext('2d', { alpha: false });
    return ctx ? new Canvas2dRenderer(canvas, ctx) : null;
  }

  constructor(canvas, ctx) {
    this.kind = '2d';
    this.canvas = canvas;
    this.ctx = ctx;
    this.lutName = null;
    this.overlay = null;
    this.backdrop = null;
    this.mask = null;
    this.tint = null;
    this.person = document.createElement('canvas');
  }

  setMask(source) {
    this.mask = source;
  }

  setTint(canvas) {
    this.tint = canvas;
  }

  setLut(bitmap, name) {
    this.lutName = bitmap ? name : null;
  }

  setBackdrop(source) {
    this.backdrop = source;
  }

  setOverlay(canvas) {
    this.overlay = canvas;
  }

  render(video, s) {
    const w = Math.round((video.videoWidth * (s.scale || 1)) / 2) * 2;
    const h = Math.round((video.videoHeight * (s.scale || 1)) / 2) * 2;
    if (!w || !h) return false;
    if (this.canvas.width !== w || this.canvas.height !== h) {
      this.canvas.width = w;
      this.canvas.height = h;
    }
    const f = [];
    if (s.smoothing > 0 && !s.cheap) f.push(`blur(${(s.smoothing * 1.5).toFixed(2)}px)`);
    if (s.brightness) f.push(`brightness(${(1 + s.brightness * 0.25).toFixed(3)})`);
    if (s.skinTone > 0) f.push(`sepia(${(s.skinTone * 0.2).toFixed(3)})`);
    if (s.skinTone < 0) f.push(`hue-rotate(${(s.skinTone * 8).toFixed(1)}deg)`);
    if (this.lutName && s.lut > 0 && LOOK_FILTERS[this.lutName]) f.push(LOOK_FILTERS[this.lutName]);
    const ctx = this.ctx;
    ctx.filter = f.length ? f.join(' ') : 'none';
    ctx.drawImage(video, 0, 0, w, h);
    ctx.filter = 'none';
    if (s.tint && this.tint) {
      ctx.globalCompositeOperation = 'color';
      ctx.drawImage(this.tint, 0, 0, w, h);
      ctx.globalCompositeOperation = 'source-over';
    }
    if (s.background && this.mask) {
      // The person (the picture so far, through the mask's alpha) over the background.
      const pc = this.person;
      if (pc.width !== w || pc.height !== h) [pc.width, pc.height] = [w, h];
      const px = pc.getContext('2d');
      px.globalCompositeOperation = 'copy';
      px.drawImage(this.mask, 0, 0, w, h);
      px.globalCompositeOperation = 'source-in';
      px.drawImage(this.canvas, 0, 0);
      if (s.background.mode === 'blur') {
        // Drawn larger by twice the radius: the blur fades its own edges
        // (it sees transparency beyond them), which must fall off the canvas.
        const r = Math.round((0.01 + 0.04 * s.background.amount) * h);
        ctx.filter = `blur(${r}px)`;
        ctx.drawImage(video, -2 * r, -2 * r, w + 4 * r, h + 4 * r);
        ctx.filter = 'none';
      } else if (this.backdrop) {
        ctx.drawImage(this.backdrop, 0, 0, w, h);
      }
      ctx.drawImage(pc, 0, 0);
    }
    if (s.vignette > 0) {
      const g = ctx.createRadialGradient(w / 2, h / 2, h * 0.3, w / 2, h / 2, Math.hypot(w, h) / 2);
      g.addColorStop(0, 'rgba(0,0,0,0)');
      g.addColorStop(1, `rgba(0,0,0,${s.vignette.toFixed(3)})`);
      ctx.fillStyle = g;
      ctx.fillRect(0, 0, w, h);
    }
    if (s.overlay && this.overlay) ctx.drawImage(this.overlay, 0, 0, w, h);
    return true;
  }

  sync() {
    this.ctx.getImageData(0, 0, 1, 1);
  }
}
