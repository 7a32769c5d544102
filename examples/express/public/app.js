// The page: one @stomp/stompjs client over WebSocket to /stomp on the page's
// own host and port (the Express app serves both). ?name=alice logs in as
// alice and shows what `POST /api/users/alice/notify` sends her.
/* global StompJs */

const $ = (selector) => document.querySelector(selector);
const name = new URLSearchParams(location.search).get('name');

function show(list, text) {
  const item = document.createElement('li');
  item.textContent = `${new Date().toLocaleTimeString()}  ${text}`;
  $(list).prepend(item);
}

const client = new StompJs.Client({
  brokerURL: `${location.protocol === 'https:' ? 'wss' : 'ws'}://${location.host}/stomp`,
  connectHeaders: name ? { login: name } : {},
  reconnectDelay: 2000,
  onConnect: () => {
    $('#status').textContent = 'live';
    client.subscribe('/topic/announcements', (message) => show('#announcements', message.body));
    if (name) {
      $('#me').textContent = name;
      $('#notifications-title').hidden = false;
      client.subscribe('/user/queue/notifications', (message) =>
        show('#notifications', message.body),
      );
    }
  },
  onWebSocketClose: () => {
    $('#status').textContent = 'reconnecting…';
  },
});
client.activate();

// The form goes through the REST API, not STOMP: any backend code can announce.
$('#announce').addEventListener('submit', async (event) => {
  event.preventDefault();
  const input = event.target.elements.text;
  const response = await fetch('/api/announcements', {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ text: input.value }),
  });
  if (response.ok) input.value = '';
  else show('#announcements', `(not sent: ${(await response.json()).error})`);
});
