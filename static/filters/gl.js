// WebGL2 renderer of the studio's video filters: the camera frame through
// at most five shader passes into the canvas that is published.
//   1. smoothing: an edge-preserving (bilateral) blur, only when beauty
//      smoothing is on; 13 taps, or 5 in the cheap mode;
//   2-4. background blur only: the frame boxed down to a quarter of its
//      size, then a separable Gaussian blur there (cheap, and a wide blur
//      is smooth anyway; boxing first keeps fine patterns from aliasing);
//   4. the look: the face warp (eye enlargement, slimming: every frame
//      sample goes through it), sharpen, brightness, skin tone, makeup
//      tints, the background (person mask over the blurred frame or a
//      backdrop image; or the green-screen key), a 3D LUT (trilinear, mixed
//      by strength), vignette, grain, then the overlay layer (stickers,
//      text, frames, face stickers: a 2D canvas).
// Uniforms carry every setting, so switching filters changes numbers, not
// programs, and never touches the published track.

const VERT = `#version 300 es
in vec2 pos;
out vec2 uv;
// 1 in passes drawn into a texture: their row 0 is the picture's top row,
// as in the uploaded camera frame (without it every such pass turned the
// picture upside down). 0 on the canvas, whose row 0 is at the bottom.
uniform float offscreen;
void main() {
  uv = vec2((pos.x + 1.0) * 0.5, offscreen > 0.5 ? (pos.y + 1.0) * 0.5 : (1.0 - pos.y) * 0.5);
  gl_Position = vec4(pos, 0.0, 1.0);
}`;

const SMOOTH = `#version 300 es
precision highp float;
in vec2 uv;
out vec4 color;
uniform sampler2D src;
uniform vec2 texel;
uniform float amount;   // 0..1
uniform int cheap;
void main() {
  vec3 c = texture(src, uv).rgb;
  float sigmaR = mix(0.04, 0.16, amount);
  vec3 sum = c;
  float wsum = 1.0;
  float radius = mix(1.5, 4.0, amount);
  int rings = cheap == 1 ? 1 : 3;
  for (int r = 1; r <= 3; r++) {
    if (r > rings) break;
    float d = radius * float(r) / float(rings);
    for (int k = 0; k < 4; k++) {
      float a = float(k) * 1.5707963 + float(r) * 0.785398;
      vec2 o = vec2(cos(a), sin(a)) * d * texel;
      vec3 s = texture(src, uv + o).rgb;
      vec3 diff = s - c;
      float w = exp(-dot(diff, diff) / (2.0 * sigmaR * sigmaR)) * exp(-float(r * r) / float(2 * rings * rings));
      sum += s * w;
      wsum += w;
    }
  }
  color = vec4(mix(c, sum / wsum, amount), 1.0);
}`;

const BLUR = `#version 300 es
precision highp float;
in vec2 uv;
out vec4 color;
uniform sampler2D src;
uniform vec2 step;      // one tap apart, in uv
uniform int box;        // 1: a 4x4 box average (downsizing by 4), else the Gaussian
void main() {
  if (box == 1) {
    // Four bilinear taps one texel off the centre: the 4x4 texels around it.
    vec3 s = texture(src, uv + vec2(-step.x, -step.y)).rgb + texture(src, uv + vec2(step.x, -step.y)).rgb +
             texture(src, uv + vec2(-step.x, step.y)).rgb + texture(src, uv + vec2(step.x, step.y)).rgb;
    color = vec4(s * 0.25, 1.0);
    return;
  }
  // 9 taps, Gaussian weights (sigma = 2 taps).
  float w[5] = float[5](0.2042, 0.1802, 0.1238, 0.0663, 0.0276);
  vec3 sum = texture(src, uv).rgb * w[0];
  for (int i = 1; i < 5; i++) {
    sum += texture(src, uv + step * float(i)).rgb * w[i];
    sum += texture(src, uv - step * float(i)).rgb * w[i];
  }
  color = vec4(sum / (w[0] + 2.0 * (w[1] + w[2] + w[3] + w[4])), 1.0);
}`;

const LOOK = `#version 300 es
precision highp float;
precision highp sampler3D;
in vec2 uv;
out vec4 color;
uniform sampler2D src;       // the frame (smoothed or not)
uniform sampler2D raw;       // the camera frame (for sharpening detail)
uniform sampler3D lut;
uniform sampler2D overlay;
uniform sampler2D backdrop;
uniform sampler2D mask;      // the person's probability (red)
uniform sampler2D blurred;   // the frame, blurred (background blur)
uniform sampler2D tint;      // makeup: colour and amount (alpha)
uniform vec2 texel;
uniform float sharpen;       // 0..1
uniform float brightness;    // -1..1
uniform float skinTone;      // -1..1 (cool..warm)
uniform float lutAmount;     // 0..1
uniform float vignette;      // 0..1
uniform float grain;         // 0..1
uniform float time;
uniform int useOverlay;
uniform int keyOn;
uniform vec3 keyColor;
uniform float keyTolerance;  // 0..1
uniform int bgMode;          // 0 none, 1 blur, 2 replace
uniform int tintOn;
uniform float aspect;        // width / height
uniform float eyeAmount;     // 0..0.4
uniform vec2 eyeR;
uniform vec2 eyeL;
uniform float eyeRadius;     // in frame heights
uniform float slimAmount;    // 0..0.6
uniform vec2 jawR;
uniform vec2 jawL;
uniform vec2 faceCentre;
uniform float jawRadius;

float luma(vec3 c) { return dot(c, vec3(0.299, 0.587, 0.114)); }

float hash(vec2 p) {
  p = fract(p * vec2(443.897, 441.423));
  p += dot(p, p.yx + 19.19);
  return fract((p.x + p.y) * p.x);
}

// Eye enlargement: near an eye, sample closer to its centre (a bulge).
vec2 bulge(vec2 p, vec2 centre) {
  vec2 d = (p - centre) * vec2(aspect, 1.0);
  float r = length(d) / eyeRadius;
  if (r >= 1.0) return p;
  return centre + (p - centre) * (1.0 - eyeAmount * (1.0 - r * r));
}

// Slimming: near a jaw point, sample further out from the face's centre,
// so the jaw line is drawn nearer to it.
vec2 pull(vec2 p, vec2 jaw) {
  vec2 d = (p - jaw) * vec2(aspect, 1.0);
  float r = length(d) / jawRadius;
  if (r >= 1.0) return p;
  vec2 out_ = normalize((jaw - faceCentre) * vec2(aspect, 1.0)) * jawRadius * 0.35 * slimAmount;
  float f = (1.0 - r * r);
  return p + out_ / vec2(aspect, 1.0) * f * f;
}

vec2 warp(vec2 p) {
  if (eyeAmount > 0.0) p = bulge(bulge(p, eyeR), eyeL);
  if (slimAmount > 0.0) p = pull(pull(p, jawR), jawL);
  return p;
}

void main() {
  vec2 wuv = warp(uv);
  vec3 c = texture(src, wuv).rgb;
  if (sharpen > 0.0) {
    vec3 r0 = texture(raw, wuv).rgb;
    vec3 blur = (texture(raw, wuv + vec2(texel.x, 0.0)).rgb + texture(raw, wuv - vec2(texel.x, 0.0)).rgb +
                 texture(raw, wuv + vec2(0.0, texel.y)).rgb + texture(raw, wuv - vec2(0.0, texel.y)).rgb) * 0.25;
    c += (r0 - blur) * sharpen * 1.5;
  }
  c += brightness * 0.25;
  if (skinTone != 0.0) {
    // Skin-like hues (red above green above blue) get warmer or cooler.
    float skin = smoothstep(0.02, 0.12, c.r - c.g) * smoothstep(0.0, 0.08, c.g - c.b);
    c += skin * skinTone * vec3(0.06, 0.015, -0.05);
  }
  c = clamp(c, 0.0, 1.0);
  if (tintOn == 1) {
    // Makeup keeps the skin's shading: the tint's colour at the pixel's light.
    vec4 t = texture(tint, wuv);
    vec3 tinted = clamp(t.rgb * (luma(c) * 1.4 + 0.12), 0.0, 1.0);
    c = mix(c, tinted, t.a);
  }
  if (bgMode > 0) {
    // The person over the blurred frame or the backdrop; the mask's soft
    // edge (0.3-0.7) keeps hair from a hard cut.
    float m = smoothstep(0.3, 0.7, texture(mask, wuv).r);
    vec3 bg = bgMode == 1 ? texture(blurred, wuv).rgb : texture(backdrop, wuv).rgb;
    c = mix(bg, c, m);
  }
  if (keyOn == 1) {
    // Chroma distance in YCbCr: near the key colour shows the backdrop.
    vec2 cc = vec2(c.b - luma(c), c.r - luma(c));
    vec2 kc = vec2(keyColor.b - luma(keyColor), keyColor.r - luma(keyColor));
    float d = distance(cc, kc);
    float t = keyTolerance * 0.6;
    float a = smoothstep(t, t + 0.08, d);
    c = mix(texture(backdrop, uv).rgb, c, a);
  }
  if (lutAmount > 0.0) {
    vec3 graded = texture(lut, c * (31.0 / 32.0) + 0.5 / 32.0).rgb;
    c = mix(c, graded, lutAmount);
  }
  if (vignette > 0.0) {
    float d = distance(uv, vec2(0.5));
    c *= 1.0 - vignette * smoothstep(0.3, 0.8, d);
  }
  if (grain > 0.0) {
    float n = hash(uv * vec2(1280.0, 720.0) + fract(time) * 97.0) - 0.5;
    c += n * grain * 0.18;
  }
  if (useOverlay == 1) {
    vec4 o = texture(overlay, uv);
    c = mix(c, o.rgb, o.a);
  }
  color = vec4(clamp(c, 0.0, 1.0), 1.0);
}`;

function compile(gl, type, src) {
  const s = gl.createShader(type);
  gl.shaderSource(s, src);
  gl.compileShader(s);
  if (!gl.getShaderParameter(s, gl.COMPILE_STATUS)) throw new Error(gl.getShaderInfoLog(s) || 'shader');
  return s;
}

function program(gl, frag) {
  const p = gl.createProgram();
  gl.attachShader(p, compile(gl, gl.VERTEX_SHADER, VERT));
  gl.attachShader(p, compile(gl, gl.FRAGMENT_SHADER, frag));
  gl.bindAttribLocation(p, 0, 'pos');
  gl.linkProgram(p);
  if (!gl.getProgramParameter(p, gl.LINK_STATUS)) throw new Error(gl.getProgramInfoLog(p) || 'link');
  const loc = {};
  const n = gl.getProgramParameter(p, gl.ACTIVE_UNIFORMS);
  for (let i = 0; i < n; i++) {
    const u = gl.getActiveUniform(p, i);
    loc[u.name] = gl.getUniformLocation(p, u.name);
  }
  return { p, loc };
}

function texture2d(gl) {
  const t = gl.createTexture();
  gl.bindTexture(gl.TEXTURE_2D, t);
  gl.texParameteri(gl.TEXTURE_2D, gl.TEXTURE_MIN_FILTER, gl.LINEAR);
  gl.texParameteri(gl.TEXTURE_2D, gl.TEXTURE_MAG_FILTER, gl.LINEAR);
  gl.texParameteri(gl.TEXTURE_2D, gl.TEXTURE_WRAP_S, gl.CLAMP_TO_EDGE);
  gl.texParameteri(gl.TEXTURE_2D, gl.TEXTURE_WRAP_T, gl.CLAMP_TO_EDGE);
  gl.texImage2D(gl.TEXTURE_2D, 0, gl.RGBA, 1, 1, 0, gl.RGBA, gl.UNSIGNED_BYTE, new Uint8Array([0, 0, 0, 0]));
  return t;
}

/** The WebGL2 renderer; `GlRenderer.create(canvas)` is null without WebGL2. */
export class GlRenderer {
  static create(canvas) {
    const gl = canvas.getContext('webgl2', { alpha: false, antialias: false, depth: false, preserveDrawingBuffer: false, desynchronized: true });
    if (!gl) return null;
    try {
      return new GlRenderer(canvas, gl);
    } catch (err) {
      console.warn('[onair] WebGL2 filters unavailable:', err);
      return null;
    }
  }

  constructor(canvas, gl) {
    this.kind = 'webgl2';
    this.canvas = canvas;
    this.gl = gl;
    this.smooth = program(gl, SMOOTH);
    this.look = program(gl, LOOK);
    this.blur = program(gl, BLUR);
    const buf = gl.createBuffer();
    gl.bindBuffer(gl.ARRAY_BUFFER, buf);
    gl.bufferData(gl.ARRAY_BUFFER, new Float32Array([-1, -1, 1, -1, -1, 1, 1, 1]), gl.STATIC_DRAW);
    gl.enableVertexAttribArray(0);
    gl.vertexAttribPointer(0, 2, gl.FLOAT, false, 0, 0);
    this.frameTex = texture2d(gl);
    this.smoothTex = texture2d(gl);
    this.overlayTex = texture2d(gl);
    this.backdropTex = texture2d(gl);
    this.maskTex = texture2d(gl);
    this.tintTex = texture2d(gl);
    // Background blur: two quarter-size targets (horizontal, then vertical pass).
    this.blurTex = [texture2d(gl), texture2d(gl)];
    this.blurFbo = [gl.createFramebuffer(), gl.createFramebuffer()];
    this.blurSize = [0, 0];
    this.maskReady = false;
    this.fbo = gl.createFramebuffer();
    this.lutTex = gl.createTexture();
    gl.bindTexture(gl.TEXTURE_3D, this.lutTex);
    for (const p of [gl.TEXTURE_MIN_FILTER, gl.TEXTURE_MAG_FILTER]) gl.texParameteri(gl.TEXTURE_3D, p, gl.LINEAR);
    for (const p of [gl.TEXTURE_WRAP_S, gl.TEXTURE_WRAP_T, gl.TEXTURE_WRAP_R]) gl.texParameteri(gl.TEXTURE_3D, p, gl.CLAMP_TO_EDGE);
    gl.texImage3D(gl.TEXTURE_3D, 0, gl.RGBA, 1, 1, 1, 0, gl.RGBA, gl.UNSIGNED_BYTE, new Uint8Array([0, 0, 0, 255]));
    this.lutReady = false;
    this.size = [0, 0];
    // A scaled-down frame is drawn here first (the 2D canvas scales cheaply) and uploaded small.
    this.small = document.createElement('canvas');
    this.smallCtx = this.small.getContext('2d', { alpha: false });
    const dbg = gl.getExtension('WEBGL_debug_renderer_info');
    const name = dbg ? String(gl.getParameter(dbg.UNMASKED_RENDERER_WEBGL)) : '';
    /** A software rasterizer (no GPU): the pipeline starts at a smaller picture. */
    this.software = /swiftshader|llvmpipe|software|softpipe/i.test(name);
    this.gpu = name;
  }

  /** Loads a LUT image (N*N wide, N high) into the 3D texture. */
  setLut(bitmap) {
    const gl = this.gl;
    if (!bitmap) {
      this.lutReady = false;
      return;
    }
    const n = bitmap.height;
    const c = new OffscreenCanvas(bitmap.width, bitmap.height);
    const ctx = c.getContext('2d');
    ctx.drawImage(bitmap, 0, 0);
    const px = ctx.getImageData(0, 0, bitmap.width, n).data;
    // Image rows are g, each row holds b slices of r: reorder to (r, g, b) = x, y, z.
    const out = new Uint8Array(n * n * n * 4);
    for (let b = 0; b < n; b++) {
      for (let g = 0; g < n; g++) {
        for (let r = 0; r < n; r++) {
          const src = (g * n * n + b * n + r) * 4;
          const dst = ((b * n + g) * n + r) * 4;
          out[dst] = px[src];
          out[dst + 1] = px[src + 1];
          out[dst + 2] = px[src + 2];
          out[dst + 3] = 255;
        }
      }
    }
    gl.bindTexture(gl.TEXTURE_3D, this.lutTex);
    gl.texImage3D(gl.TEXTURE_3D, 0, gl.RGBA, n, n, n, 0, gl.RGBA, gl.UNSIGNED_BYTE, out);
    this.lutReady = true;
  }

  setBackdrop(source) {
    const gl = this.gl;
    gl.bindTexture(gl.TEXTURE_2D, this.backdropTex);
    gl.pixelStorei(gl.UNPACK_PREMULTIPLY_ALPHA_WEBGL, false);
    gl.texImage2D(gl.TEXTURE_2D, 0, gl.RGBA, gl.RGBA, gl.UNSIGNED_BYTE, source);
  }

  /** The person mask (an ImageBitmap or canvas, probability in red); null: none yet. */
  setMask(source) {
    const gl = this.gl;
    this.maskReady = !!source;
    if (!source) return;
    gl.bindTexture(gl.TEXTURE_2D, this.maskTex);
    gl.texImage2D(gl.TEXTURE_2D, 0, gl.RGBA, gl.RGBA, gl.UNSIGNED_BYTE, source);
  }

  /** The makeup tint layer (a 2D canvas: colour, amount in alpha). */
  setTint(canvas) {
    const gl = this.gl;
    gl.bindTexture(gl.TEXTURE_2D, this.tintTex);
    gl.pixelStorei(gl.UNPACK_PREMULTIPLY_ALPHA_WEBGL, false);
    gl.texImage2D(gl.TEXTURE_2D, 0, gl.RGBA, gl.RGBA, gl.UNSIGNED_BYTE, canvas);
  }

  /** Blurs `src` (w x h) into blurTex[0] at a quarter size; `amount` 0..1 sets the radius. */
  blurBackground(src, w, h, amount) {
    const gl = this.gl;
    const bw = Math.max(2, Math.round(w / 4));
    const bh = Math.max(2, Math.round(h / 4));
    if (this.blurSize[0] !== bw || this.blurSize[1] !== bh) {
      for (let i = 0; i < 2; i++) {
        gl.bindTexture(gl.TEXTURE_2D, this.blurTex[i]);
        gl.texImage2D(gl.TEXTURE_2D, 0, gl.RGBA, bw, bh, 0, gl.RGBA, gl.UNSIGNED_BYTE, null);
        gl.bindFramebuffer(gl.FRAMEBUFFER, this.blurFbo[i]);
        gl.framebufferTexture2D(gl.FRAMEBUFFER, gl.COLOR_ATTACHMENT0, gl.TEXTURE_2D, this.blurTex[i], 0);
      }
      this.blurSize = [bw, bh];
    }
    // The radius in frame heights (same look at any size): 1% to 5%;
    // quarter-size texels between taps (4 taps a side).
    const tap = ((0.01 + 0.04 * amount) * bh) / 4;
    const { p, loc } = this.blur;
    gl.useProgram(p);
    gl.viewport(0, 0, bw, bh);
    gl.uniform1i(loc.src, 0);
    gl.uniform1f(loc.offscreen, 1);
    gl.activeTexture(gl.TEXTURE0);
    const passes = [
      [src, 0, 1, [1 / w, 1 / h]], // box down: full size -> quarter
      [this.blurTex[0], 1, 0, [tap / bw, 0]], // horizontal
      [this.blurTex[1], 0, 0, [0, tap / bh]], // vertical
    ];
    for (const [from, to, box, step] of passes) {
      gl.bindFramebuffer(gl.FRAMEBUFFER, this.blurFbo[to]);
      gl.bindTexture(gl.TEXTURE_2D, from);
      gl.uniform1i(loc.box, box);
      gl.uniform2f(loc.step, step[0], step[1]);
      gl.drawArrays(gl.TRIANGLE_STRIP, 0, 4);
    }
    gl.bindFramebuffer(gl.FRAMEBUFFER, null);
  }

  setOverlay(canvas) {
    const gl = this.gl;
    gl.bindTexture(gl.TEXTURE_2D, this.overlayTex);
    gl.texImage2D(gl.TEXTURE_2D, 0, gl.RGBA, gl.RGBA, gl.UNSIGNED_BYTE, canvas);
  }

  resize(w, h) {
    if (this.size[0] === w && this.size[1] === h) return;
    const gl = this.gl;
    this.canvas.width = w;
    this.canvas.height = h;
    gl.bindTexture(gl.TEXTURE_2D, this.smoothTex);
    gl.texImage2D(gl.TEXTURE_2D, 0, gl.RGBA, w, h, 0, gl.RGBA, gl.UNSIGNED_BYTE, null);
    gl.bindFramebuffer(gl.FRAMEBUFFER, this.fbo);
    gl.framebufferTexture2D(gl.FRAMEBUFFER, gl.COLOR_ATTACHMENT0, gl.TEXTURE_2D, this.smoothTex, 0);
    gl.bindFramebuffer(gl.FRAMEBUFFER, null);
    this.size = [w, h];
  }

  /** Draws one frame of `video` with settings `s` (see pipeline.js `settings()`). */
  render(video, s) {
    const gl = this.gl;
    const w = Math.round((video.videoWidth * (s.scale || 1)) / 2) * 2;
    const h = Math.round((video.videoHeight * (s.scale || 1)) / 2) * 2;
    if (!w || !h) return false;
    this.resize(w, h);
    gl.activeTexture(gl.TEXTURE0);
    gl.bindTexture(gl.TEXTURE_2D, this.frameTex);
    if (w !== video.videoWidth) {
      if (this.small.width !== w || this.small.height !== h) {
        this.small.width = w;
        this.small.height = h;
      }
      this.smallCtx.drawImage(video, 0, 0, w, h);
      gl.texImage2D(gl.TEXTURE_2D, 0, gl.RGBA, gl.RGBA, gl.UNSIGNED_BYTE, this.small);
    } else {
      gl.texImage2D(gl.TEXTURE_2D, 0, gl.RGBA, gl.RGBA, gl.UNSIGNED_BYTE, video);
    }
    let src = this.frameTex;
    if (s.smoothing > 0) {
      const { p, loc } = this.smooth;
      gl.useProgram(p);
      gl.bindFramebuffer(gl.FRAMEBUFFER, this.fbo);
      gl.viewport(0, 0, w, h);
      gl.uniform1i(loc.src, 0);
      gl.uniform1f(loc.offscreen, 1);
      gl.uniform2f(loc.texel, 1 / w, 1 / h);
      gl.uniform1f(loc.amount, s.smoothing);
      gl.uniform1i(loc.cheap, s.cheap ? 1 : 0);
      gl.drawArrays(gl.TRIANGLE_STRIP, 0, 4);
      gl.bindFramebuffer(gl.FRAMEBUFFER, null);
      src = this.smoothTex;
    }
    const bgMode = s.background && this.maskReady ? (s.background.mode === 'blur' ? 1 : 2) : 0;
    if (bgMode === 1) this.blurBackground(src, w, h, s.background.amount);
    const { p, loc } = this.look;
    gl.useProgram(p);
    gl.viewport(0, 0, w, h);
    gl.activeTexture(gl.TEXTURE0);
    gl.bindTexture(gl.TEXTURE_2D, src);
    gl.activeTexture(gl.TEXTURE1);
    gl.bindTexture(gl.TEXTURE_2D, this.frameTex);
    gl.activeTexture(gl.TEXTURE2);
    gl.bindTexture(gl.TEXTURE_3D, this.lutTex);
    gl.activeTexture(gl.TEXTURE3);
    gl.bindTexture(gl.TEXTURE_2D, this.overlayTex);
    gl.activeTexture(gl.TEXTURE4);
    gl.bindTexture(gl.TEXTURE_2D, this.backdropTex);
    gl.uniform1i(loc.src, 0);
    gl.uniform1i(loc.raw, 1);
    gl.uniform1i(loc.lut, 2);
    gl.uniform1i(loc.overlay, 3);
    gl.uniform1i(loc.backdrop, 4);
    gl.uniform1f(loc.offscreen, 0);
    gl.activeTexture(gl.TEXTURE5);
    gl.bindTexture(gl.TEXTURE_2D, this.maskTex);
    gl.activeTexture(gl.TEXTURE6);
    gl.bindTexture(gl.TEXTURE_2D, this.blurTex[0]);
    gl.activeTexture(gl.TEXTURE7);
    gl.bindTexture(gl.TEXTURE_2D, this.tintTex);
    gl.uniform1i(loc.mask, 5);
    gl.uniform1i(loc.blurred, 6);
    gl.uniform1i(loc.tint, 7);
    gl.uniform1i(loc.bgMode, bgMode);
    gl.uniform1i(loc.tintOn, s.tint ? 1 : 0);
    gl.uniform1f(loc.aspect, w / h);
    const wp = s.warp;
    gl.uniform1f(loc.eyeAmount, wp ? wp.eyes : 0);
    gl.uniform1f(loc.slimAmount, wp ? wp.slim : 0);
    if (wp) {
      gl.uniform2f(loc.eyeR, wp.rightEye[0], wp.rightEye[1]);
      gl.uniform2f(loc.eyeL, wp.leftEye[0], wp.leftEye[1]);
      gl.uniform1f(loc.eyeRadius, Math.max(wp.eyeRadius, 1e-3));
      gl.uniform2f(loc.jawR, wp.rightJaw[0], wp.rightJaw[1]);
      gl.uniform2f(loc.jawL, wp.leftJaw[0], wp.leftJaw[1]);
      gl.uniform2f(loc.faceCentre, wp.centre[0], wp.centre[1]);
      gl.uniform1f(loc.jawRadius, Math.max(wp.jawRadius, 1e-3));
    }
    gl.uniform2f(loc.texel, 1 / w, 1 / h);
    gl.uniform1f(loc.sharpen, s.cheap ? 0 : s.sharpen);
    gl.uniform1f(loc.brightness, s.brightness);
    gl.uniform1f(loc.skinTone, s.skinTone);
    gl.uniform1f(loc.lutAmount, this.lutReady ? s.lut : 0);
    gl.uniform1f(loc.vignette, s.vignette);
    gl.uniform1f(loc.grain, s.grain);
    gl.uniform1f(loc.time, performance.now() / 1000);
    gl.uniform1i(loc.useOverlay, s.overlay ? 1 : 0);
    gl.uniform1i(loc.keyOn, s.key ? 1 : 0);
    if (s.key) {
      gl.uniform3f(loc.keyColor, s.key.color[0], s.key.color[1], s.key.color[2]);
      gl.uniform1f(loc.keyTolerance, s.key.tolerance);
    }
    gl.drawArrays(gl.TRIANGLE_STRIP, 0, 4);
    return true;
  }

  /** Waits for the GPU (for the render-cost figure). */
  sync() {
    const gl = this.gl;
    const px = new Uint8Array(4);
    gl.readPixels(0, 0, 1, 1, gl.RGBA, gl.UNSIGNED_BYTE, px);
  }
}
