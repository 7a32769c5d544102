// The stompbus live console: one snapshot per second over Server-Sent Events
// (/console/events), drawn with uPlot. With --admin-token, the token is
// exchanged once for a cookie (POST /console/login), which EventSource sends.
import uPlot from '/console/uplot.js';

/** Seconds of history the chart keeps. */
const WINDOW = 120;
const $ = (selector) => document.querySelector(selector);
const number = new Intl.NumberFormat('en');

function set(name, value) {
  for (const el of document.querySelectorAll(`[data-metric="${name}"]`)) {
    el.textContent = typeof value === 'number' ? number.format(value) : value;
  }
}

function bytes(n) {
  if (n < 1024) return `${Math.round(n)} B`;
  if (n < 1024 * 1024) return `${(n / 1024).toFixed(1)} KiB`;
  return `${(n / 1024 / 1024).toFixed(1)} MiB`;
}

function cell(text, field) {
  const td = document.createElement('td');
  td.textContent = typeof text === 'number' ? number.format(text) : text;
  if (field) td.dataset.field = field;
  return td;
}

function listItems(list, items, empty) {
  list.replaceChildren(
    ...(items.length > 0
      ? items
      : [Object.assign(document.createElement('li'), { className: 'none', textContent: empty })]),
  );
}

// ---- the chart ----

const series = [[], [], []];
let chart;

function makeChart() {
  const el = $('#chart');
  chart = new uPlot(
    {
      width: el.clientWidth || 800,
      height: 220,
      series: [
        {},
        { label: 'in /s', stroke: '#2f6fde', width: 2, fill: 'rgba(47,111,222,0.08)' },
        { label: 'out /s', stroke: '#16a34a', width: 2, fill: 'rgba(22,163,74,0.08)' },
      ],
      legend: { live: false },
      axes: [
        {
          space: 80,
          incrs: [1, 5, 10, 15, 30, 60, 120],
          values: (_u, ticks) => ticks.map((t) => new Date(t * 1000).toLocaleTimeString()),
        },
        { size: 60 },
      ],
      scales: { y: { range: (_u, _min, max) => [0, Math.max(10, max * 1.1)] } },
    },
    series,
    el,
  );
  addEventListener('resize', () => chart.setSize({ width: el.clientWidth, height: 220 }));
}

function plot(snapshot) {
  // A first snapshot has no interval to measure rates over.
  if (!snapshot.ratesKnown) return;
  series[0].push(snapshot.at / 1000);
  series[1].push(snapshot.rates.messagesIn);
  series[2].push(snapshot.rates.messagesOut);
  if (series[0].length > WINDOW) for (const s of series) s.shift();
  chart.setData(series);
}

// ---- a snapshot on the page ----

function show(s) {
  $('#mode').textContent = s.mode === 'cluster' ? 'cluster mode' : 'embedded';
  $('#version').textContent = `v${s.version}`;
  set('connections', s.connections.websocket + s.connections.tcp);
  set('connections-websocket', s.connections.websocket);
  set('connections-tcp', s.connections.tcp);
  set('sessions', s.sessions);
  set('subscriptions', s.subscriptions);
  set('destinations', s.destinationCount);
  set('queued', s.queued);
  set('mailboxes', s.mailboxes);
  set('rate-in', s.rates.messagesIn);
  set('rate-out', s.rates.messagesOut);
  set('total-in', s.totals.messagesIn);
  set('total-out', s.totals.messagesOut);
  set('rate-bytes-out', bytes(s.rates.bytesOut));
  set('rate-bytes-in', bytes(s.rates.bytesIn));
  set('slow-total', `(${number.format(s.totals.slowConsumers)} in all)`);
  set('dead-total', `(${number.format(s.totals.deadLetters)} in all)`);

  $('#destinations tbody').replaceChildren(
    ...s.destinations.map((d) => {
      const tr = document.createElement('tr');
      tr.dataset.destination = d.name;
      tr.append(
        cell(d.name, 'name'),
        cell(d.subscribers, 'subscribers'),
        cell(d.depth, 'depth'),
        cell(d.inRate, 'in'),
        cell(d.outRate, 'out'),
      );
      return tr;
    }),
  );

  listItems(
    $('#slow'),
    s.slowConsumers.map((c) =>
      Object.assign(document.createElement('li'), {
        textContent: `${new Date(c.at).toLocaleTimeString()}  ${c.user ?? '(anonymous)'}  ${c.remoteAddress} (${c.transport})`,
      }),
    ),
    'none disconnected',
  );
  listItems(
    $('#dead'),
    s.deadLetterQueues.map((q) =>
      Object.assign(document.createElement('li'), {
        textContent: `${q.name}: ${number.format(q.depth)} waiting`,
      }),
    ),
    'no dead letter waiting',
  );

  $('#cluster').hidden = !s.cluster;
  if (s.cluster) {
    $('#instances tbody').replaceChildren(
      ...s.cluster.instances.map((i) => {
        const tr = document.createElement('tr');
        tr.dataset.instance = i.id;
        tr.append(
          cell(i.self ? `${i.id} (this one)` : i.id, 'id'),
          cell(i.connections ?? '–', 'connections'),
          cell(i.users ?? '–', 'users'),
          cell(i.lag ?? '–', 'lag'),
        );
        return tr;
      }),
    );
  }
  plot(s);
}

// ---- the token and the stream ----

async function login(token) {
  const response = await fetch('/console/login', {
    method: 'POST',
    headers: { authorization: `Bearer ${token}` },
  });
  return response.ok;
}

async function open() {
  const probe = await fetch('/console/snapshot');
  if (probe.status === 401) {
    $('#login').hidden = false;
    $('#console').hidden = true;
    return;
  }
  $('#login').hidden = true;
  $('#console').hidden = false;
  if (!chart) makeChart();
  const events = new EventSource('/console/events');
  const status = $('#status');
  events.onmessage = (event) => {
    status.dataset.state = 'live';
    status.textContent = 'live';
    show(JSON.parse(event.data));
  };
  events.onerror = () => {
    status.dataset.state = 'wait';
    status.textContent = 'reconnecting…';
  };
}

$('#login').addEventListener('submit', async (event) => {
  event.preventDefault();
  const ok = await login($('#token').value);
  $('#login-error').hidden = ok;
  if (ok) await open();
});

// `/console#token=…` logs in at once; the fragment never leaves the browser.
const fromHash = new URLSearchParams(location.hash.slice(1)).get('token');
if (fromHash) {
  history.replaceState(null, '', location.pathname);
  await login(fromHash);
}
await open();
