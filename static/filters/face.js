// Face effects from the face mesh's landmarks (vision.js `FaceTracker`):
//   makeup:  lips, blush, brows and liner painted as a tint layer (a 2D
//            canvas the shader blends over the skin, keeping its shading);
//   sticker: an image that follows the face (anchored on the forehead or
//            the eyes, sized by the face and turned with the eye line);
//   warps:   face slimming and eye enlargement, as uniforms of the shader's
//            mesh warp (gl.js `warp()`).
// Landmarks are fractions of the frame, so all of this is size-free.

import { FACE } from './vision.js';

const num = (v, d = 0) => (Number.isFinite(Number(v)) ? Number(v) : d);

function colour(s) {
  return /^#[0-9a-f]{6}$/i.test(String(s || '')) ? s : null;
}

function path(ctx, face, ids, w, h) {
  ids.forEach((i, n) => {
    const [x, y] = face.at(i);
    if (n === 0) ctx.moveTo(x * w, y * h);
    else ctx.lineTo(x * w, y * h);
  });
  ctx.closePath();
}

const dist = (a, b) => Math.hypot(a[0] - b[0], a[1] - b[1]);
const mid = (a, b) => [(a[0] + b[0]) / 2, (a[1] + b[1]) / 2];

/** Paints the makeup tint layer on `canvas` (cleared first); `k` 0..1. */
export function drawMakeup(canvas, face, params, k) {
  const ctx = canvas.getContext('2d');
  const w = canvas.width;
  const h = canvas.height;
  ctx.clearRect(0, 0, w, h);
  if (!face.points || k <= 0) return;
  const p = params || {};
  const alpha = Math.min(1, (num(p.strength, 50) / 100) * k);
  const faceWidth = dist(face.at(FACE.rightFace), face.at(FACE.leftFace)) * w;
  ctx.save();
  // A soft edge: tints fade into the skin rather than ending on a line.
  ctx.filter = `blur(${Math.max(1, faceWidth / 120).toFixed(1)}px)`;
  if (colour(p.lips)) {
    ctx.globalAlpha = alpha;
    ctx.fillStyle = p.lips;
    ctx.beginPath();
    path(ctx, face, FACE.lipsOuter, w, h);
    path(ctx, face, FACE.lipsInner, w, h);
    ctx.fill('evenodd');
  }
  if (colour(p.brows)) {
    ctx.globalAlpha = alpha * 0.8;
    ctx.fillStyle = p.brows;
    for (const brow of [FACE.rightBrow, FACE.leftBrow]) {
      ctx.beginPath();
      path(ctx, face, brow, w, h);
      ctx.fill();
    }
  }
  if (colour(p.liner)) {
    ctx.globalAlpha = alpha;
    ctx.strokeStyle = p.liner;
    ctx.lineWidth = Math.max(1, faceWidth / 90);
    ctx.lineCap = 'round';
    for (const line of [FACE.rightLiner, FACE.leftLiner]) {
      ctx.beginPath();
      line.forEach((i, n) => {
        const [x, y] = face.at(i);
        if (n === 0) ctx.moveTo(x * w, y * h);
        else ctx.lineTo(x * w, y * h);
      });
      ctx.stroke();
    }
  }
  ctx.restore();
  if (colour(p.cheeks)) {
    // Blush: a round gradient on each cheek.
    const r = faceWidth * 0.13;
    for (const i of [FACE.rightCheek, FACE.leftCheek]) {
      const [x, y] = face.at(i);
      const g = ctx.createRadialGradient(x * w, y * h, 0, x * w, y * h, r);
      g.addColorStop(0, p.cheeks);
      g.addColorStop(1, `${p.cheeks}00`);
      ctx.globalAlpha = alpha * 0.7;
      ctx.fillStyle = g;
      ctx.beginPath();
      ctx.arc(x * w, y * h, r, 0, Math.PI * 2);
      ctx.fill();
    }
    ctx.globalAlpha = 1;
  }
}

/**
 * Draws `img` on the face in `ctx` (`w` x `h`): anchor `eyes` (centred on
 * the eyes, as wide as the face) or `forehead` (above it, wider).
 */
export function drawFaceSticker(ctx, face, img, params, k, w, h) {
  if (!face.points || !img || k <= 0) return;
  const p = params || {};
  const re = mid(face.at(FACE.rightEye[0]), face.at(FACE.rightEye[1]));
  const le = mid(face.at(FACE.leftEye[0]), face.at(FACE.leftEye[1]));
  // Pixel space: the eye line's angle and the face's width.
  const angle = Math.atan2((le[1] - re[1]) * h, (le[0] - re[0]) * w);
  const faceWidth = dist([face.at(FACE.rightFace)[0] * w, face.at(FACE.rightFace)[1] * h], [face.at(FACE.leftFace)[0] * w, face.at(FACE.leftFace)[1] * h]);
  const scale = num(p.scale, 100) / 100;
  const iw = img.width || img.naturalWidth || 1;
  const ih = img.height || img.naturalHeight || 1;
  let cx;
  let cy;
  let sw;
  if (p.anchor === 'forehead') {
    const top = face.at(FACE.forehead);
    const eyes = mid(re, le);
    // Above the hairline by over half the hairline-to-eyes height.
    cx = (top[0] + (top[0] - eyes[0]) * 0.6) * w;
    cy = (top[1] + (top[1] - eyes[1]) * 0.6) * h;
    sw = faceWidth * 1.5 * scale;
  } else {
    const eyes = mid(re, le);
    cx = eyes[0] * w;
    cy = eyes[1] * h;
    sw = faceWidth * 1.05 * scale;
  }
  const sh = (sw * ih) / iw;
  ctx.save();
  ctx.globalAlpha = Math.min(1, k);
  ctx.translate(cx, cy);
  ctx.rotate(angle);
  ctx.drawImage(img, -sw / 2, p.anchor === 'forehead' ? -sh * 0.75 : -sh / 2, sw, sh);
  ctx.restore();
}

/**
 * The shader's warp from the landmarks: eye centres and radius (eye
 * enlargement) and the jaw points and face centre (slimming); amounts 0..1;
 * `aspect` is the frame's width / height.
 */
export function warpOf(face, params, k, aspect) {
  if (!face.points || k <= 0) return null;
  // Radii in frame heights (the shader measures with x scaled by the aspect).
  const far = (a, b) => Math.hypot((a[0] - b[0]) * aspect, a[1] - b[1]);
  const p = params || {};
  const eye = (ids) => {
    const [o, i, t, b] = ids.map((n) => face.at(n));
    return [(o[0] + i[0] + t[0] + b[0]) / 4, (o[1] + i[1] + t[1] + b[1]) / 4];
  };
  const re = eye(FACE.rightEye);
  const le = eye(FACE.leftEye);
  const eyeSpan = far(face.at(FACE.rightEye[0]), face.at(FACE.rightEye[1]));
  const centre = mid(face.at(FACE.nose), face.at(FACE.chin));
  return {
    eyes: Math.min(0.4, (num(p.eyes) / 100) * k),
    slim: Math.min(0.6, (num(p.slim) / 100) * k),
    rightEye: re,
    leftEye: le,
    eyeRadius: eyeSpan * 1.1,
    rightJaw: face.at(FACE.rightJaw),
    leftJaw: face.at(FACE.leftJaw),
    centre,
    jawRadius: far(face.at(FACE.rightJaw), face.at(FACE.leftJaw)) * 0.45,
  };
}
