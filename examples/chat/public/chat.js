// The chat page: rooms are topics (/topic/chat.<room>), private messages are
// stompbus user destinations (SEND /user/<name>/queue/private, SUBSCRIBE
// /user/queue/private), and /topic/prices shows what a Kafka producer
// publishes (examples/kafka-producer). One @stomp/stompjs client does it all
// and reconnects by itself (reconnectDelay) when the broker goes away.
//
// Token mode (config.tokenURL set): the page logs in with a JWT that it fetches
// before every (re)connect (stompjs beforeConnect), since the broker ends a
// session when its token expires; after a reconnect it resumes the room with
// x-resume-after, so that nothing said meanwhile is missed.
//
// ?name=alice&room=lobby joins at once (what the specs use).
/* global StompJs */

const $ = (selector) => document.querySelector(selector);
const state = {
  name: '',
  room: '',
  rooms: ['lobby', 'random'],
  client: null,
  roomSub: null,
  // Token mode: the x-position of the last message seen per room topic.
  positions: new Map(),
};

function setStatus(name, text = name) {
  const status = $('#status');
  status.dataset.state = name;
  status.textContent = text;
}

/** Appends one line to the log; `kind` is room, private-in, private-out or system. */
function show(kind, from, text, extra = '') {
  const item = document.createElement('li');
  item.dataset.kind = kind;
  if (from) {
    const who = document.createElement('b');
    who.className = 'from';
    who.textContent = from;
    // A click on a name makes the next message private to that person.
    who.addEventListener('click', () => {
      if (from !== state.name) $('#to').value = from;
      $('#text').focus();
    });
    item.append(who, extra ? ` ${extra}: ` : ': ');
  }
  const body = document.createElement('span');
  body.className = 'text';
  body.textContent = text;
  item.append(body);
  const log = $('#log');
  log.append(item);
  log.scrollTop = log.scrollHeight;
}

function parse(message) {
  try {
    return JSON.parse(message.body);
  } catch {
    return { from: '?', text: message.body };
  }
}

function renderRooms() {
  const list = $('#rooms');
  list.replaceChildren(
    ...state.rooms.map((room) => {
      const item = document.createElement('li');
      const link = document.createElement('a');
      link.href = `#${room}`;
      link.textContent = `#${room}`;
      link.dataset.room = room;
      if (room === state.room) link.className = 'current';
      link.addEventListener('click', (event) => {
        event.preventDefault();
        joinRoom(room);
      });
      item.append(link);
      return item;
    }),
  );
}

/** Leaves the current room's topic and subscribes to another one. */
function joinRoom(room) {
  if (!state.rooms.includes(room)) state.rooms.push(room);
  state.room = room;
  // A room joined anew starts from now: only a reconnect resumes.
  state.positions.delete(`/topic/chat.${room}`);
  $('#room-title').textContent = `#${room}`;
  renderRooms();
  if (state.client?.connected) subscribeRoom();
}

/** Subscribes to the current room; `resume`: from the last message seen (x-resume-after). */
function subscribeRoom(resume = false) {
  state.roomSub?.unsubscribe();
  const room = state.room;
  const destination = `/topic/chat.${room}`;
  const after = resume ? state.positions.get(destination) : undefined;
  const headers = after ? { 'x-resume-after': after } : {};
  state.roomSub = state.client.subscribe(
    destination,
    (message) => {
      const position = message.headers['x-position'];
      if (position) state.positions.set(destination, position);
      const { from, text } = parse(message);
      show('room', from, text);
    },
    headers,
  );
  show('system', '', after ? `back in #${room}` : `you are in #${room}`);
}

/** Token mode: a fresh token for every (re)connect, as the passcode (the login is ignored). */
async function fetchToken(client, config) {
  try {
    const response = await fetch(`${config.tokenURL}?user=${encodeURIComponent(state.name)}`);
    if (!response.ok) throw new Error(`HTTP ${response.status}`);
    const { token } = await response.json();
    client.connectHeaders = { passcode: token };
  } catch (error) {
    // The CONNECT goes out with the old token; the broker's ERROR says why.
    show('system', '', `could not fetch a token: ${error.message}`);
  }
}

/** One row per symbol in the prices table, updated in place. */
function showPrice(message) {
  const { symbol, price } = parse(message);
  if (typeof symbol !== 'string') return;
  $('#no-prices').hidden = true;
  let row = [...$('#prices tbody').rows].find((r) => r.dataset.symbol === symbol);
  if (!row) {
    row = $('#prices tbody').insertRow();
    row.dataset.symbol = symbol;
    row.dataset.updates = '0';
    for (const name of ['symbol', 'price', 'updates']) row.insertCell().className = name;
    row.cells[0].textContent = symbol;
  }
  const before = Number(row.cells[1].textContent);
  const now = Number(price);
  row.cells[1].textContent = now.toFixed(2);
  row.dataset.trend = now > before ? 'up' : now < before ? 'down' : 'same';
  row.dataset.updates = String(Number(row.dataset.updates) + 1);
  row.cells[2].textContent = row.dataset.updates;
}

function send(event) {
  event.preventDefault();
  const text = $('#text').value.trim();
  const to = $('#to').value.trim();
  if (!text || !state.client?.connected) return;
  const body = JSON.stringify({ from: state.name, text, sentAt: new Date().toISOString() });
  const headers = { 'content-type': 'application/json' };
  if (to) {
    // stompbus user destinations: every session whose login is `to` gets it.
    state.client.publish({ destination: `/user/${to}/queue/private`, body, headers });
    show('private-out', state.name, text, `→ ${to}`);
  } else {
    state.client.publish({ destination: `/topic/chat.${state.room}`, body, headers });
  }
  $('#text').value = '';
}

function connect(config, passcode) {
  const client = new StompJs.Client({
    brokerURL: config.brokerURL,
    connectHeaders: { login: state.name, passcode },
    reconnectDelay: config.reconnectDelay,
    heartbeatIncoming: 10000,
    heartbeatOutgoing: 10000,
  });
  if (config.tokenURL) client.beforeConnect = () => fetchToken(client, config);
  let sessions = 0;
  client.onConnect = (frame) => {
    sessions += 1;
    setStatus(
      'connected',
      `connected to ${frame.headers.server ?? 'a broker'} at ${config.brokerURL}`,
    );
    // A reconnect starts a new session: everything is subscribed again (the old
    // subscription ids mean nothing to it).
    state.roomSub = null;
    subscribeRoom(Boolean(config.tokenURL) && sessions > 1);
    client.subscribe('/topic/prices', showPrice);
    if (config.privateMessages) {
      client.subscribe('/user/queue/private', (message) => {
        const { from, text } = parse(message);
        show('private-in', from, text, '(private)');
      });
    }
  };
  client.onStompError = (frame) => {
    show('system', '', `broker: ${frame.headers.message ?? 'ERROR'} ${frame.body ?? ''}`.trim());
  };
  client.onWebSocketClose = () => {
    if (client.active) setStatus('reconnecting', `reconnecting to ${config.brokerURL}…`);
  };
  setStatus('connecting', `connecting to ${config.brokerURL}…`);
  client.activate();
  state.client = client;
}

async function start(name, passcode, room) {
  const config = await (await fetch('config.json')).json();
  state.name = name;
  $('#me').textContent = name;
  $('#join').hidden = true;
  $('#chat').hidden = false;
  $('#to').hidden = !config.privateMessages;
  joinRoom(room);
  connect(config, passcode);
}

$('#join').addEventListener('submit', (event) => {
  event.preventDefault();
  const form = new FormData(event.target);
  start(String(form.get('name')), String(form.get('passcode')), String(form.get('room')));
});
$('#new-room').addEventListener('submit', (event) => {
  event.preventDefault();
  const input = event.target.elements.room;
  joinRoom(input.value.trim());
  input.value = '';
});
$('#send').addEventListener('submit', send);

const params = new URLSearchParams(location.search);
if (params.get('name')) {
  start(params.get('name'), params.get('passcode') ?? '', params.get('room') ?? 'lobby');
}
