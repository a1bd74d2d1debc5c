// The leaderboard page: hosts by battle points (then gift coins received),
// supporters by gift coins given, for today, this week, this month or all
// time in the server's leaderboard time zone.

import { $, h, describeError } from './common.js';
import { api, renderAccount } from './session.js';

async function show() {
  const board = $('#board').value;
  const period = $('#period').value;
  try {
    const b = await api(`/api/leaderboards?board=${board}&period=${period}&limit=100`, { auth: false });
    $('#range').textContent = b.from ? `${new Date(b.from).toLocaleString()} – ${new Date(b.until).toLocaleString()} (${b.timezone})` : 'All time';
    const hosts = board === 'hosts';
    $('#head').replaceChildren(h('tr', {}, h('th', {}, '#'), h('th', {}, hosts ? 'Host' : 'Supporter'), hosts ? h('th', {}, 'Points') : null, h('th', {}, hosts ? 'Coins received' : 'Coins given'), hosts ? h('th', {}, 'Wins') : null));
    const rows = b.entries.map((e) => h('tr', {}, h('td', {}, String(e.rank)), h('td', {}, h('a', { href: `/c/${encodeURIComponent(e.user)}` }, e.display_name)), hosts ? h('td', {}, String(e.points)) : null, h('td', {}, String(e.coins)), hosts ? h('td', {}, String(e.wins)) : null));
    $('#rows').replaceChildren(...(rows.length ? rows : [h('tr', {}, h('td', { colspan: '5', class: 'muted' }, 'Nobody yet.'))]));
  } catch (e) {
    $('#rows').replaceChildren(h('tr', {}, h('td', { colspan: '5' }, describeError(e))));
  }
}

renderAccount({ current: 'leaderboards' });
$('#board').addEventListener('change', show);
$('#period').addEventListener('change', show);
show();
