// The overlay layer: text and image stickers (and frames) drawn on a 2D
// canvas the renderer lays over the video. Positions are fractions of the
// frame (x, y of the centre), so they survive any published size.

export function drawOverlays(canvas, entries, images) {
  const ctx = canvas.getContext('2d');
  const w = canvas.width;
  const h = canvas.height;
  ctx.clearRect(0, 0, w, h);
  for (const { filter, params, strength } of entries) {
    const p = params || {};
    const alpha = Math.max(0, Math.min(1, strength / 100));
    ctx.globalAlpha = alpha;
    if (filter.effect === 'frame') {
      const a = filter.assets.find((x) => x.kind === 'frame');
      const img = a && images.get(a.url);
      if (img) ctx.drawImage(img, 0, 0, w, h);
    } else if (filter.effect === 'sticker') {
      const a = filter.assets.find((x) => x.kind === 'sticker');
      const img = a && images.get(a.url);
      if (!img) continue;
      const size = (h * 0.22 * (Number(p.scale) || 100)) / 100;
      const iw = img.width || img.naturalWidth || 1;
      const ih = img.height || img.naturalHeight || 1;
      const sw = (size * iw) / Math.max(iw, ih);
      const sh = (size * ih) / Math.max(iw, ih);
      ctx.drawImage(img, (Number(p.x) || 0.5) * w - sw / 2, (Number(p.y) || 0.5) * h - sh / 2, sw, sh);
    } else if (filter.effect === 'text') {
      const size = Math.round(((Number(p.size) || 48) * h) / 720);
      ctx.font = `700 ${size}px system-ui, sans-serif`;
      ctx.textAlign = 'center';
      ctx.textBaseline = 'middle';
      ctx.lineWidth = Math.max(2, size / 10);
      ctx.strokeStyle = 'rgba(0,0,0,0.7)';
      ctx.fillStyle = /^#[0-9a-f]{6}$/i.test(p.color || '') ? p.color : '#ffffff';
      const text = String(p.text || '').slice(0, 80);
      const x = (Number(p.x) || 0.5) * w;
      const y = (Number(p.y) || 0.85) * h;
      ctx.strokeText(text, x, y);
      ctx.fillText(text, x, y);
    }
  }
  ctx.globalAlpha = 1;
}

/** The overlay entry under a point (fractions of the frame), for dragging: the last drawn first. */
export function overlayAt(entries, x, y) {
  for (const e of [...entries].reverse()) {
    if (e.filter.effect !== 'sticker' && e.filter.effect !== 'text') continue;
    const p = e.params || {};
    const ex = Number(p.x) || 0.5;
    const ey = Number(p.y) || (e.filter.effect === 'text' ? 0.85 : 0.5);
    if (Math.abs(ex - x) < 0.12 && Math.abs(ey - y) < 0.12) return e;
  }
  return null;
}
