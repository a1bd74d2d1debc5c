// Stream cards' shared parts (the directory and channel pages): the
// thumbnail with its badges, and the chips under the title.

import { h, formatNumber, formatWhen, initial, VISIBILITY_LABEL } from './common.js';

function hue(text) {
  let x = 0;
  for (const c of String(text)) x = (x * 31 + c.codePointAt(0)) >>> 0;
  return x % 360;
}

const EYE = () => {
  const s = document.createElementNS('http://www.w3.org/2000/svg', 'svg');
  s.setAttribute('viewBox', '0 0 24 24');
  s.setAttribute('fill', 'none');
  s.setAttribute('stroke', 'currentColor');
  s.setAttribute('stroke-width', '2');
  s.innerHTML = '<path d="M2 12s3.5-7 10-7 10 7 10 7-3.5 7-10 7S2 12 2 12z"/><circle cx="12" cy="12" r="3"/>';
  return s;
};

/** A gradient with the host's initial, for streams and channels without a picture. */
export function placeholder(el, name, username) {
  const hh = hue(username || name);
  el.style.background = `radial-gradient(120% 90% at 20% 10%, hsl(${hh} 70% 45% / 0.55), transparent 60%), linear-gradient(135deg, hsl(${(hh + 40) % 360} 45% 18%), #0b0d13)`;
  el.append(h('span.thumb-initial', {}, initial(name || username)));
}

/**
 * The card's picture: the stream's thumbnail (uploaded, a studio snapshot,
 * or the channel's default), else a placeholder; with its state's badges.
 * A stream started but still waiting for video is "Starting", not "LIVE".
 */
export function thumb(s, section) {
  const a = h('a.thumb', { href: s.watch_url || `/watch/${s.id}`, tabindex: '-1', 'aria-hidden': 'true' });
  if (s.thumbnail_url) {
    a.append(h('img', { src: s.thumbnail_url, alt: '', loading: 'lazy' }));
  } else {
    placeholder(a, s.host.display_name, s.host.username);
  }
  const badges = h('span.thumb-badges');
  if (section === 'live') {
    if (s.media_state === 'waiting') {
      badges.append(h('span.badge.badge-warn', {}, 'Starting'));
    } else {
      badges.append(h('span.badge.badge-live', {}, 'LIVE'));
      const n = h('span.viewers-n', {}, formatNumber(s.viewers || 0));
      badges.append(h('span.badge.viewers', { title: 'Watching now' }, EYE(), n));
      if (s.media_state === 'reconnecting') badges.append(h('span.badge.badge-warn', {}, 'Reconnecting'));
    }
  } else if (section === 'upcoming') {
    badges.append(h('span.badge', {}, formatWhen(s.scheduled_at)));
  } else if (section === 'recent') {
    badges.append(h('span.badge', {}, s.saved ? 'Saved' : 'Ended'));
  }
  a.append(badges);
  return a;
}

export function visibilityChip(s) {
  return s.visibility !== 'public' ? h('span.chip.chip-lock', {}, VISIBILITY_LABEL[s.visibility] || s.visibility) : null;
}

export function categoryChip(s) {
  return s.category ? h('span.chip.chip-category', {}, s.category) : null;
}
