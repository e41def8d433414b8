// A minimal chat client, as a web client would be written: it streams an answer with
// fetch-event-source and keeps, in sessionStorage, the answer's id, the last event id it
// received and the text so far. After a reload it shows that text and attaches again with
// Last-Event-ID, so the answer goes on from where it was, neither lost nor asked again.
import { fetchEventSource } from './fetch-event-source/index';

const params = new URLSearchParams(location.hash.slice(1));
const headers = { Authorization: `Bearer ${params.get('token')}` };
const state = document.getElementById('state');
const answer = document.getElementById('answer');
const kept = JSON.parse(sessionStorage.getItem('answer') || 'null');
const seen = JSON.parse(sessionStorage.getItem('seen') || '[]');

function keep(update) {
  const now = { ...(JSON.parse(sessionStorage.getItem('answer') || '{}')), ...update };
  sessionStorage.setItem('answer', JSON.stringify(now));
}

function onmessage(message) {
  seen.push(Number(message.id));
  sessionStorage.setItem('seen', JSON.stringify(seen));
  const data = JSON.parse(message.data);
  if (message.event === 'start') {
    keep({ id: data.assistant_message_id, lastEventId: message.id, text: '' });
  } else if (message.event === 'text') {
    answer.textContent += data.delta;
    keep({ lastEventId: message.id, text: answer.textContent });
    state.textContent = `streaming ${seen.length}`;
  } else if (message.event === 'done' || message.event === 'error') {
    keep({ lastEventId: message.id, ended: message.event });
    state.textContent = message.event;
  } else {
    keep({ lastEventId: message.id });
  }
}

const options = {
  headers,
  onmessage,
  openWhenHidden: true,
  onerror(error) { state.textContent = `failed: ${error}`; throw error; },
};

if (kept && kept.id && !kept.ended) {
  answer.textContent = kept.text;
  state.textContent = 'attached again';
  fetchEventSource(`/api/messages/${kept.id}/stream`, {
    ...options,
    headers: { ...headers, 'Last-Event-ID': kept.lastEventId },
  });
} else if (!kept) {
  fetchEventSource('/api/messages/stream', {
    ...options,
    method: 'POST',
    headers: { ...headers, 'Content-Type': 'application/json' },
    body: JSON.stringify({
      conversation_id: params.get('conversation'), content: params.get('content'),
    }),
  });
}
