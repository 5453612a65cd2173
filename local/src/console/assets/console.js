// The activelog console. Talks only to the local stack's own endpoints: the public API (as the
// user typed in "User") and the operator endpoints under /_local/ (with the operator token when
// the stack has one). Live updates come from /_local/journal/stream, read with fetch so that the
// token travels in a header, as it does with curl, and never in a URL.
'use strict';

const TOKEN_HEADER = 'x-activelog-local-token';
const TOKEN_KEY = 'activelog-operator-token';
const FEED_LENGTH = 60;
const CONSUMERS = { StatsQueue: 'update-stats', AchievementsQueue: 'record-achievements' };
const STORES = { StatsQueue: 'statistics', AchievementsQueue: 'achievements' };
const SVG = 'http://www.w3.org/2000/svg';

const state = {
  snapshot: null,
  followed: '',
  followedIds: new Set(),
  deadLettered: '',
};

const $ = (id) => document.getElementById(id);

// ---- the token: from the URL fragment (never sent to a server), else asked for -------------

function takeTokenFromFragment() {
  const match = /(?:^#|&)token=([^&]+)/.exec(location.hash);
  if (match) {
    sessionStorage.setItem(TOKEN_KEY, decodeURIComponent(match[1]));
    history.replaceState(null, '', location.pathname + location.search);
  }
}

function operatorHeaders() {
  const token = sessionStorage.getItem(TOKEN_KEY);
  return token ? { [TOKEN_HEADER]: token } : {};
}

function askForToken() {
  $('token-panel').hidden = false;
  setStatus('operator token needed', 'error');
}

// ---- HTTP ------------------------------------------------------------------------------------

async function operator(path, options = {}) {
  const headers = { ...operatorHeaders() };
  if (options.method === 'POST') headers['content-type'] = 'application/json';
  const response = await fetch('/_local' + path, { ...options, headers });
  if (response.status === 401) askForToken();
  const text = await response.text();
  let body = null;
  try { body = JSON.parse(text); } catch (_) { body = text; }
  return { status: response.status, body };
}

async function userApi(path, options = {}) {
  const headers = { 'x-user-id': currentUser() };
  if (options.body) headers['content-type'] = 'application/json';
  const response = await fetch(path, { ...options, headers });
  const text = await response.text();
  let body = null;
  try { body = JSON.parse(text); } catch (_) { body = text; }
  return { status: response.status, body };
}

function currentUser() {
  return $('user').value.trim() || 'console-user';
}

// ---- small DOM helpers ---------------------------------------------------------------------

function el(tag, attributes = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attributes)) {
    if (key === 'class') node.className = value; else node.setAttribute(key, value);
  }
  for (const child of children) {
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

function svg(tag, attributes = {}, text) {
  const node = document.createElementNS(SVG, tag);
  for (const [key, value] of Object.entries(attributes)) node.setAttribute(key, value);
  if (text !== undefined) node.textContent = text;
  return node;
}

function setStatus(text, kind) {
  const status = $('status');
  status.textContent = text;
  status.className = 'status ' + (kind || '');
}

function showResult(id, ok, text) {
  const node = $(id);
  node.textContent = text;
  node.className = 'result ' + (ok ? 'ok' : 'bad');
}

// ---- the pipeline picture --------------------------------------------------------------------

function drawPipeline(snapshot) {
  const counters = snapshot.counters || {};
  const queues = snapshot.queues && !snapshot.queues.error ? snapshot.queues : {};
  const names = Object.keys(queues).length ? Object.keys(queues) : Object.keys(counters.queues || {});
  const rowHeight = 104;
  const height = Math.max(1, names.length) * rowHeight + 16;
  const picture = svg('svg', { viewBox: `0 0 1160 ${height}`, width: '100%', role: 'img',
    'aria-label': 'the event pipeline with live counts' });
  const defs = svg('defs');
  const marker = svg('marker', { id: 'arrow', viewBox: '0 0 10 10', refX: '9', refY: '5',
    markerWidth: '7', markerHeight: '7', orient: 'auto-start-reverse' });
  marker.append(svg('path', { d: 'M 0 0 L 10 5 L 0 10 z', fill: '#8892a6' }));
  defs.append(marker);
  picture.append(defs);

  const middle = height / 2;
  const box = (x, y, w, h, kind, title, lines) => {
    picture.append(svg('rect', { x, y, width: w, height: h, rx: 6, class: 'box ' + kind }));
    picture.append(svg('text', { x: x + 8, y: y + 17, class: 'title' }, title));
    lines.forEach(([id, label, value, bad], i) => {
      const text = svg('text', { x: x + 8, y: y + 34 + i * 14, class: 'count' + (bad ? ' bad' : '') });
      text.append(document.createTextNode(label + ' '));
      text.append(svg('tspan', { id: 'n-' + id }, String(value)));
      picture.append(text);
    });
  };
  const edge = (x1, y1, x2, y2) => {
    const bend = (x1 + x2) / 2;
    picture.append(svg('path', { d: `M ${x1} ${y1} C ${bend} ${y1}, ${bend} ${y2}, ${x2} ${y2}`, class: 'edge' }));
  };

  box(8, middle - 40, 130, 80, '', 'HTTP API', [['requests', 'changes', counters.requests || 0]]);
  edge(138, middle, 168, middle);
  box(168, middle - 40, 130, 80, 'store', 'Outbox', [['outbox_written', 'written', counters.outbox_written || 0]]);
  edge(298, middle, 328, middle);
  box(328, middle - 40, 160, 80, '', snapshot.adapters ? 'Bus: ' + snapshot.adapters : 'Bus', [
    ['published', 'published', counters.published || 0],
    ['publish_failed', 'refused', counters.publish_failed || 0, (counters.publish_failed || 0) > 0],
  ]);
  names.forEach((name, row) => {
    const top = 8 + row * rowHeight;
    const depth = queues[name] || {};
    const edgeCounts = (counters.queues || {})[name] || {};
    edge(488, middle, 540, top + 44);
    const depthLines = Object.entries(depth).map(([key, value]) =>
      [name + '-' + key, key.replace(/_/g, ' '), value, key === 'dead_lettered' && value > 0]);
    box(540, top, 190, Math.max(88, 30 + depthLines.length * 14), 'queue', name, depthLines);
    edge(730, top + 44, 780, top + 44);
    box(780, top, 190, 88, '', 'consumer ' + (CONSUMERS[name] || ''), [
      [name + '-delivered', 'delivered', edgeCounts.delivered || 0],
      [name + '-settled', 'applied / duplicate', `${edgeCounts.applied || 0} / ${edgeCounts.duplicate || 0}`],
      [name + '-failed', 'retry / poison', `${edgeCounts.retry || 0} / ${edgeCounts.poison || 0}`,
        (edgeCounts.poison || 0) + (edgeCounts.retry || 0) > 0],
    ]);
    edge(970, top + 44, 1010, top + 44);
    const store = STORES[name] || 'store';
    const lines = store === 'statistics'
      ? [['stats_applied', 'changes applied', counters.stats_applied || 0],
         ['stats_duplicate', 'found done', counters.stats_duplicate || 0]]
      : [];
    box(1010, top, 140, 88, 'store', store, lines);
  });
  const holder = $('pipeline');
  holder.replaceChildren(picture);
  if (snapshot.queues && snapshot.queues.error) {
    holder.append(el('p', { class: 'result bad' }, 'depths unavailable: ' + snapshot.queues.error));
  }
}

function applySnapshot(snapshot) {
  state.snapshot = snapshot;
  $('adapters').textContent = snapshot.adapters || '?';
  drawPipeline(snapshot);
  const select = $('send-queue');
  const names = Object.keys(snapshot.queues && !snapshot.queues.error ? snapshot.queues : {});
  if (select.options.length !== names.length) {
    select.replaceChildren(...names.map((name) => el('option', { value: name }, name)));
  }
  // Dead letters are listed again whenever a queue's dead-letter count moves.
  const deadLettered = JSON.stringify(names.map((n) => snapshot.queues[n].dead_lettered));
  if (deadLettered !== state.deadLettered) {
    state.deadLettered = deadLettered;
    loadDeadLetters();
  }
}

// ---- journal entries -------------------------------------------------------------------------

const STEP_NAMES = {
  request: 'HTTP request', outbox: 'outbox record', publish: 'publish', delivery: 'delivery',
  verdict: 'verdict', stats_change: 'stats change',
};

function describeDetail(entry) {
  const detail = entry.detail || {};
  const parts = [];
  if (detail.user_id) parts.push('user ' + detail.user_id);
  if (detail.reason) parts.push(detail.reason);
  if (detail.deltas) {
    for (const delta of detail.deltas) {
      for (const change of delta.changes || []) {
        const t = change.totals;
        parts.push(`${change.period} ${change.type}: ${sign(t.activities)} activity, ${sign(t.minutes)} min, ${sign(t.distance_m)} m`);
      }
    }
  }
  return parts.join(' · ');
}

function sign(n) { return (n > 0 ? '+' : '') + n; }

function entryItem(entry) {
  const time = entry.at.slice(11, 23);
  const ids = [
    entry.activity_id && 'activity ' + entry.activity_id,
    entry.event_type && entry.event_type,
    entry.event_id && 'event ' + entry.event_id,
    entry.message_id && 'message ' + entry.message_id,
  ].filter(Boolean).join(' · ');
  const item = el('li', { 'data-step': entry.step, 'data-outcome': entry.outcome },
    el('span', { class: 'time' }, time), ' ',
    el('span', { class: 'step' }, STEP_NAMES[entry.step] || entry.step), ' ',
    entry.place, ' → ',
    el('strong', { class: entry.ok ? 'ok' : 'bad' }, entry.outcome));
  const detail = describeDetail(entry);
  if (detail) item.append(' ', el('span', {}, detail));
  if (ids) item.append(el('br'), el('span', { class: 'ids' }, ids));
  return item;
}

function addToFeed(entry) {
  const feed = $('feed');
  feed.prepend(entryItem(entry));
  while (feed.children.length > FEED_LENGTH) feed.lastChild.remove();
}

function concernsFollowed(entry) {
  if (!state.followed) return false;
  return [entry.activity_id, entry.event_id, entry.correlation_id, entry.message_id]
    .some((id) => id && (id === state.followed || state.followedIds.has(id)));
}

async function follow(id) {
  state.followed = id.trim();
  $('follow-id').value = state.followed;
  if (!state.followed) return;
  const { status, body } = await operator('/journal?id=' + encodeURIComponent(state.followed));
  const list = $('journey');
  if (status !== 200) {
    list.replaceChildren(el('li', { class: 'bad' }, 'search failed: ' + status));
    return;
  }
  state.followedIds = new Set();
  for (const entry of body.entries) {
    for (const key of ['event_id', 'correlation_id']) if (entry[key]) state.followedIds.add(entry[key]);
  }
  list.replaceChildren(...(body.entries.length
    ? body.entries.map(entryItem)
    : [el('li', { class: 'empty' }, 'nothing recorded for this id (yet)')]));
}

// ---- dead letters ----------------------------------------------------------------------------

async function loadDeadLetters() {
  const snapshot = state.snapshot;
  if (!snapshot || !snapshot.queues || snapshot.queues.error) return;
  const holder = $('dead-letters');
  const parts = [];
  for (const name of Object.keys(snapshot.queues)) {
    const { status, body } = await operator('/journal/dead-letters/' + encodeURIComponent(name));
    const redrive = el('button', { id: 'redrive-' + name, type: 'button' }, 'Redrive all');
    redrive.addEventListener('click', () => redriveAll(name));
    const result = el('span', { id: 'redrive-result-' + name, class: 'result' }, state['redriven-' + name] || '');
    parts.push(el('div', { class: 'queue-head' }, el('h3', {}, name), redrive, result));
    const messages = status === 200 ? body.messages : [];
    if (status !== 200) {
      parts.push(el('p', { class: 'result bad' }, `listing failed (${status}): ${JSON.stringify(body)}`));
    } else if (!messages.length) {
      parts.push(el('p', { class: 'empty' }, 'no dead letters'));
    } else {
      const rows = messages.map((m) => {
        const one = el('button', { class: 'redrive-one', type: 'button' }, 'Redrive');
        one.addEventListener('click', () => redriveOne(name, m.message_id));
        return el('tr', { class: 'dead-letter', 'data-message-id': m.message_id },
          el('td', {}, el('code', {}, m.message_id)),
          el('td', {}, el('code', {}, m.body)),
          el('td', {}, m.verdict || '—'),
          el('td', { class: 'why' }, m.why || m.reason || '—'),
          el('td', {}, m.receive_count ?? '—'),
          el('td', {}, one));
      });
      parts.push(el('table', {},
        el('thead', {}, el('tr', {}, ...['message', 'body', 'verdict', 'why it failed', 'receives', ''].map((h) => el('th', {}, h)))),
        el('tbody', {}, ...rows)));
    }
  }
  holder.replaceChildren(...parts);
}

async function redriveAll(queue) {
  const { status, body } = await operator('/queues/' + encodeURIComponent(queue) + '/redrive',
    { method: 'POST', body: '{}' });
  const text = status === 200
    ? (body.redriven !== undefined ? `redriven ${body.redriven}` : `move task started: ${body.move_task}`)
    : `redrive failed (${status}): ${body && body.message ? body.message : JSON.stringify(body)}`;
  await showRedriveResult(queue, status, text);
}

// One dead letter by the message id its row shows; one gone meanwhile answers 404, shown as is.
async function redriveOne(queue, messageId) {
  const { status, body } = await operator('/queues/' + encodeURIComponent(queue) + '/dead-letters/'
    + encodeURIComponent(messageId) + '/redrive', { method: 'POST', body: '{}' });
  const text = status === 200
    ? `redriven ${messageId}`
    : `redrive of ${messageId} failed (${status}): ${body && body.message ? body.message : JSON.stringify(body)}`;
  await showRedriveResult(queue, status, text);
}

async function showRedriveResult(queue, status, text) {
  state['redriven-' + queue] = text;
  const node = $('redrive-result-' + queue);
  if (node) {
    node.textContent = text;
    node.className = 'result ' + (status === 200 ? 'ok' : 'bad');
  }
  await refreshCounters();
  await loadDeadLetters();
}

// ---- statistics and achievements -------------------------------------------------------------

async function loadUser() {
  const user = currentUser();
  $('stats-user').textContent = user;
  const [stats, achievements] = await Promise.all([userApi('/stats'), userApi('/achievements')]);
  const statsHolder = $('stats');
  if (stats.status !== 200) {
    statsHolder.replaceChildren(el('p', { class: 'result bad' }, `GET /stats: ${stats.status}`));
  } else {
    const rows = [['all types', stats.body.totals], ...Object.entries(stats.body.by_type || {})];
    statsHolder.replaceChildren(el('table', { id: 'stats-table' },
      el('thead', {}, el('tr', {}, ...['all time', 'activities', 'minutes', 'km', 'calories'].map((h) => el('th', {}, h)))),
      el('tbody', {}, ...rows.map(([type, t]) => el('tr', { 'data-type': type },
        el('td', {}, type), el('td', { class: 'activities' }, t.activities), el('td', {}, t.duration_minutes),
        el('td', {}, t.distance_km), el('td', {}, t.calories_burned))))));
  }
  const achievementsHolder = $('achievements');
  if (achievements.status !== 200) {
    achievementsHolder.replaceChildren(el('p', { class: 'result bad' }, `GET /achievements: ${achievements.status}`));
  } else {
    const unlocked = achievements.body.achievements || [];
    achievementsHolder.replaceChildren(
      el('p', {}, 'Achievements: ', unlocked.length ? '' : el('span', { class: 'empty' }, 'none yet')),
      el('ul', { id: 'achievement-list' }, ...unlocked.map((a) =>
        el('li', {}, el('strong', {}, a.achievement), ' — ', a.description, ' ', el('span', { class: 'time' }, a.unlocked_at)))));
  }
}

// ---- actions ---------------------------------------------------------------------------------

async function createActivity(event) {
  event.preventDefault();
  const body = {
    type: $('activity-type').value,
    title: 'from the console',
    duration_minutes: Number($('minutes').value),
    distance_km: Number($('distance').value),
    activity_date: new Date().toISOString().slice(0, 10),
  };
  const { status, body: answer } = await userApi('/activities', { method: 'POST', body: JSON.stringify(body) });
  if (status === 201) {
    showResult('create-result', true, `201 created activity ${answer.id}`);
    await follow(answer.id);
  } else {
    showResult('create-result', false, `${status}: ${answer && answer.detail ? answer.detail : JSON.stringify(answer)}`);
  }
  loadUser();
}

async function sendMessage(event) {
  event.preventDefault();
  const queue = $('send-queue').value;
  const { status, body } = await operator('/queues/' + encodeURIComponent(queue) + '/messages',
    { method: 'POST', body: $('send-body').value });
  if (status === 200) {
    showResult('send-result', true, `sent message ${body.message_id} to ${queue}`);
    await follow(body.message_id);
  } else {
    showResult('send-result', false, `${status}: ${body && body.message ? body.message : JSON.stringify(body)}`);
  }
}

async function refreshCounters() {
  const { status, body } = await operator('/journal/counters');
  if (status === 200) applySnapshot(body);
}

// ---- the live stream -------------------------------------------------------------------------

function handleServerEvent(block) {
  let name = 'message';
  const data = [];
  for (const line of block.split('\n')) {
    if (line.startsWith('event:')) name = line.slice(6).trim();
    else if (line.startsWith('data:')) data.push(line.slice(5).replace(/^ /, ''));
  }
  if (!data.length) return;
  const payload = data.join('\n');
  if (name === 'counters') {
    applySnapshot(JSON.parse(payload));
  } else if (name === 'entry') {
    const entry = JSON.parse(payload);
    addToFeed(entry);
    if (concernsFollowed(entry)) follow(state.followed);
    if (entry.step === 'stats_change' || (entry.step === 'verdict' && entry.place !== 'StatsQueue')) loadUser();
  } else if (name === 'lagged') {
    if (state.followed) follow(state.followed);
  }
}

async function followStream() {
  for (;;) {
    try {
      const response = await fetch('/_local/journal/stream', { headers: operatorHeaders() });
      if (response.status === 401) { askForToken(); return; }
      if (!response.ok) throw new Error('stream answered ' + response.status);
      setStatus('live', 'live');
      const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
      let buffer = '';
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        buffer += value.replace(/\r\n/g, '\n');
        let cut;
        while ((cut = buffer.indexOf('\n\n')) >= 0) {
          handleServerEvent(buffer.slice(0, cut));
          buffer = buffer.slice(cut + 2);
        }
      }
    } catch (_) {
      // The stack restarted or the network dropped: try again shortly.
    }
    setStatus('reconnecting', 'error');
    await new Promise((resolve) => setTimeout(resolve, 1000));
  }
}

async function start() {
  takeTokenFromFragment();
  $('token-form').onsubmit = (event) => {
    event.preventDefault();
    sessionStorage.setItem(TOKEN_KEY, $('token').value.trim());
    $('token-panel').hidden = true;
    start();
  };
  $('create-form').onsubmit = createActivity;
  $('send-form').onsubmit = sendMessage;
  $('follow-form').onsubmit = (event) => { event.preventDefault(); follow($('follow-id').value); };
  $('user').onchange = loadUser;
  const latest = await operator('/journal?limit=' + FEED_LENGTH);
  if (latest.status === 401) return;
  if (latest.status === 200) latest.body.entries.forEach(addToFeed);
  await refreshCounters();
  loadUser();
  followStream();
}

start();
