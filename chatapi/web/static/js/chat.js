// One conversation: its active branch, the composer, the streamed answer, the settings.
// An answer streams over fetch() (sse.js). While it runs, what it has shown is kept in
// sessionStorage with the last event's id, so a reload shows it again at once and attaches
// with Last-Event-ID (GET /api/messages/{id}/stream) for the rest. Once it ends, the branch is
// read again from the API: what the page shows afterwards is what was stored.
import { ApiError, api, authorizedFetch, failure } from './api.js';
import { describeError } from './errors.js';
import { h, replace } from './dom.js';
import { t } from './i18n.js';
import { renderMarkdown } from './markdown.js';
import { events } from './sse.js';

const ANSWER_KEY = 'chatapi.answer';
// A stream that breaks while its answer runs is attached again, this many times in a row.
const REATTACH_ATTEMPTS = 3;

function keptAnswer() { return JSON.parse(sessionStorage.getItem(ANSWER_KEY) || 'null'); }
function keepAnswer(snapshot) {
  if (snapshot) sessionStorage.setItem(ANSWER_KEY, JSON.stringify(snapshot));
  else sessionStorage.removeItem(ANSWER_KEY);
}

function idempotencyKey() {
  const bytes = crypto.getRandomValues(new Uint8Array(16));
  return Array.from(bytes, (byte) => byte.toString(16).padStart(2, '0')).join('');
}

function toolsKey(conversationId) { return `chatapi.tools.${conversationId}`; }

function json(value) { return JSON.stringify(value, null, 2); }

function toolElement(call) {
  const result = h('pre', { class: 'tool-result' });
  const status = h('span', { class: 'tool-status' });
  const element = h('details', { class: 'tool', 'data-tool-id': call.id },
    h('summary', {}, `${t('toolCall')}: `, h('code', {}, call.name), ' ', status),
    h('div', { class: 'tool-label' }, t('arguments')),
    h('pre', { class: 'tool-arguments' }, json(call.arguments)),
    h('div', { class: 'tool-label' }, t('result')), result);
  const show = (outcome) => {
    if (!outcome) {
      status.textContent = t('running');
      return;
    }
    status.textContent = outcome.status;
    element.classList.add(`tool-${outcome.status}`);
    result.textContent = typeof outcome.result === 'string' ? outcome.result : json(outcome.result);
  };
  show(call.status ? call : null);
  return { element, show };
}

// The parts of an answer, filled from a stored message or event by event.
function answerParts() {
  const thinkingText = h('div', { class: 'thinking-text' });
  const thinking = h('details', { class: 'thinking', hidden: true },
    h('summary', {}, t('thinkingLabel')), thinkingText);
  const tools = h('div', { class: 'tools' });
  const text = h('div', { class: 'markdown' });
  const note = h('div', { class: 'note', role: 'status' });
  const toolViews = new Map();
  let content = '';
  let rendering = false;
  const parts = {
    body: [thinking, tools, text, note],
    addThinking(delta) {
      thinking.hidden = false;
      thinkingText.textContent += delta;
    },
    setThinking(value) {
      thinking.hidden = !value;
      thinkingText.textContent = value || '';
    },
    addText(delta) {
      content += delta;
      if (rendering) return;
      rendering = true;
      requestAnimationFrame(() => {
        rendering = false;
        renderMarkdown(text, content);
      });
    },
    setText(value) {
      content = value || '';
      renderMarkdown(text, content);
    },
    toolCall(call) {
      const view = toolElement(call);
      toolViews.set(call.id, view);
      tools.append(view.element);
    },
    toolResult(outcome) {
      if (!toolViews.has(outcome.id)) parts.toolCall(outcome);
      toolViews.get(outcome.id).show(outcome);
    },
    note(message, kind = '') {
      note.className = `note ${kind}`;
      note.textContent = message || '';
    },
  };
  return parts;
}

export function chatView(container, conversationId, shell) {
  let conversation = null;
  let messages = [];
  let live = null;
  let closed = false;
  let reattached = 0;

  const title = h('h1', { class: 'title', id: 'conversation-title' });
  const actions = h('div', { class: 'actions' });
  const settings = h('form', { class: 'settings', hidden: true, novalidate: true });
  const list = h('div', { class: 'messages', role: 'log', 'aria-live': 'polite',
    'aria-labelledby': 'conversation-title' });
  // Disabled until the branch is read: a question sent before would be drawn over.
  const input = h('textarea', { name: 'content', rows: 3, placeholder: t('placeholder'),
    'aria-label': t('placeholder'), required: true, disabled: true });
  const sendButton = h('button', { type: 'submit', class: 'primary' }, t('send'));
  const stopButton = h('button', { type: 'button', class: 'stop', hidden: true, onclick: stop },
    t('stop'));
  const composer = h('form', { class: 'composer', onsubmit: submit }, input,
    h('div', { class: 'composer-buttons' }, sendButton, stopButton));

  input.addEventListener('keydown', (event) => {
    // Enter sends; Shift+Enter is a new line; Enter that ends an IME composition is neither.
    if (event.key === 'Enter' && !event.shiftKey && !event.isComposing) {
      event.preventDefault();
      composer.requestSubmit();
    }
  });

  replace(container,
    h('header', { class: 'chat-header' }, shell.menuButton(), title, actions),
    settings, list, composer);

  function toolsEnabled() { return localStorage.getItem(toolsKey(conversationId)) !== 'off'; }

  function renderHeader() {
    replace(title, conversation.title);
    const toggle = (field, on, off) => h('button', { type: 'button', 'aria-pressed': String(conversation[field]),
      onclick: () => update({ [field]: !conversation[field] }) }, conversation[field] ? on : off);
    replace(actions,
      toggle('pinned', t('unpin'), t('pin')),
      toggle('archived', t('unarchive'), t('archive')),
      h('button', { type: 'button', onclick: startRename }, t('rename')),
      h('button', { type: 'button', 'aria-expanded': String(!settings.hidden),
        onclick: toggleSettings }, t('settings')),
      h('button', { type: 'button', class: 'export-json', onclick: () => exportAs('json') },
        t('exportJson')),
      h('button', { type: 'button', class: 'export-markdown',
        onclick: () => exportAs('markdown') }, t('exportMarkdown')),
      h('button', { type: 'button', class: 'danger', onclick: remove }, t('delete')));
  }

  async function update(fields) {
    try {
      conversation = await api.put(`/api/conversations/${conversationId}`, fields);
      renderHeader();
      shell.conversationsChanged();
    } catch (error) {
      showNotice(describeError(error));
    }
  }

  function startRename() {
    const field = h('input', { type: 'text', value: conversation.title, maxlength: 200,
      'aria-label': t('rename'), class: 'rename' });
    const form = h('form', { class: 'rename-form', onsubmit: async (event) => {
      event.preventDefault();
      const value = field.value.trim();
      if (value && value !== conversation.title) await update({ title: value });
      else renderHeader();
    } }, field, h('button', { type: 'submit' }, t('save')),
    h('button', { type: 'button', onclick: renderHeader }, t('cancel')));
    field.addEventListener('keydown', (event) => { if (event.key === 'Escape') renderHeader(); });
    replace(title, form);
    field.focus();
    field.select();
  }

  // The export is a file behind the bearer token: fetched, then saved from a blob: URL.
  async function exportAs(format) {
    try {
      const response = await authorizedFetch(
        `/api/conversations/${conversationId}/export?format=${format}`);
      if (!response.ok) throw await failure(response);
      const name = response.headers.get('Content-Disposition')
        ?.match(/filename\*=UTF-8''([^;]+)/)?.[1];
      const url = URL.createObjectURL(await response.blob());
      const link = h('a', { href: url, download: name ? decodeURIComponent(name)
        : `${conversation.title}.${format === 'json' ? 'json' : 'md'}` });
      document.body.append(link);
      link.click();
      link.remove();
      setTimeout(() => URL.revokeObjectURL(url), 60_000);
    } catch (error) {
      showNotice(describeError(error));
    }
  }

  async function remove() {
    if (!confirm(t('confirmDelete'))) return;
    await api.delete(`/api/conversations/${conversationId}`);
    shell.conversationsChanged();
    shell.navigate('#/');
  }

  async function toggleSettings() {
    settings.hidden = !settings.hidden;
    if (!settings.hidden) await renderSettings();
    renderHeader();
  }

  async function renderSettings() {
    const models = await shell.models();
    const model = h('select', { name: 'model' }, models.map((item) =>
      h('option', { value: item.id, selected: item.id === conversation.model }, item.id)));
    const thinking = h('input', { type: 'checkbox', name: 'thinking_enabled',
      checked: conversation.thinking_enabled });
    const syncThinking = () => {
      const chosen = models.find((item) => item.id === model.value);
      thinking.disabled = chosen ? !chosen.supports_thinking : false;
    };
    model.addEventListener('change', syncThinking);
    syncThinking();
    const status = h('span', { class: 'saved', role: 'status' });
    const field = (label, control) => h('label', {}, h('span', {}, label), control);
    replace(settings,
      field(t('model'), model),
      field(t('temperature'), h('input', { type: 'number', name: 'temperature', min: 0, max: 1,
        step: 0.05, value: conversation.temperature })),
      field(t('maxTokens'), h('input', { type: 'number', name: 'max_tokens', min: 1,
        max: 131072, step: 1, value: conversation.max_tokens })),
      h('label', { class: 'check' }, thinking, t('thinking')),
      h('label', { class: 'check' }, h('input', { type: 'checkbox', name: 'tools',
        checked: toolsEnabled() }), t('toolsOn')),
      h('label', { class: 'wide' }, h('span', {}, t('systemPrompt')),
        h('textarea', { name: 'system_prompt', rows: 3, maxlength: 20000,
          value: conversation.system_prompt || '' })),
      h('div', { class: 'wide' }, h('button', { type: 'submit', class: 'primary' }, t('save')),
        ' ', status));
    settings.onsubmit = async (event) => {
      event.preventDefault();
      const form = settings.elements;
      localStorage.setItem(toolsKey(conversationId), form.tools.checked ? 'on' : 'off');
      try {
        conversation = await api.put(`/api/conversations/${conversationId}`, {
          model: form.model.value,
          temperature: Number(form.temperature.value),
          max_tokens: Number(form.max_tokens.value),
          thinking_enabled: form.thinking_enabled.checked,
          system_prompt: form.system_prompt.value.trim() || null,
        });
        status.textContent = t('saved');
        renderHeader();
      } catch (error) {
        status.textContent = describeError(error);
      }
    };
  }

  function showNotice(text) {
    list.append(h('div', { class: 'notice error', role: 'alert' }, text));
    list.lastElementChild.scrollIntoView({ block: 'end' });
  }

  function branchNav(message) {
    const ids = message.sibling_ids || [];
    if (ids.length < 2) return null;
    const index = ids.indexOf(message.id);
    const go = (step) => () => switchBranch(ids[index + step]);
    return h('nav', { class: 'branches', 'aria-label': t('messages') },
      h('button', { type: 'button', class: 'branch-previous', disabled: index === 0 || !!live,
        'aria-label': t('previous'), onclick: go(-1) }, '<'),
      h('span', { class: 'branch-position' }, `${index + 1}/${ids.length}`),
      h('button', { type: 'button', class: 'branch-next', disabled: index === ids.length - 1 || !!live,
        'aria-label': t('next'), onclick: go(1) }, '>'));
  }

  function messageElement(message) {
    const article = h('article', { class: `message ${message.role} status-${message.status}`,
      'data-id': message.id || '', 'data-role': message.role });
    const head = h('div', { class: 'message-head' },
      h('span', { class: 'role' }, t(`role_${message.role}`)), branchNav(message));
    const buttons = h('div', { class: 'message-actions' });
    if (message.role === 'user') {
      article.append(head, h('div', { class: 'text' }, message.content), buttons);
      if (message.id) {
        buttons.append(h('button', { type: 'button', class: 'edit', disabled: !!live,
          onclick: () => startEdit(article, message) }, t('edit')));
      }
      return article;
    }
    const parts = answerParts();
    parts.setThinking(message.reasoning_content);
    for (const call of message.tool_calls || []) parts.toolCall(call);
    parts.setText(message.content);
    if (message.status === 'error') parts.note(message.error, 'error');
    else if (message.finish_reason === 'stopped') parts.note(t('stopped'));
    else if (message.status === 'incomplete') parts.note(t('incomplete'));
    article.append(head, ...parts.body, buttons);
    if (message.id && message.status !== 'in_progress') {
      buttons.append(h('button', { type: 'button', class: 'regenerate', disabled: !!live,
        onclick: () => regenerate(message) }, t('regenerate')));
    }
    return article;
  }

  function render(focusId) {
    replace(list, messages.length ? messages.map(messageElement)
      : h('p', { class: 'empty' }, t('emptyChat')));
    const target = focusId && list.querySelector(`[data-id="${CSS.escape(focusId)}"]`);
    if (target) {
      target.classList.add('found');
      target.scrollIntoView({ block: 'center' });
    } else {
      list.scrollTop = list.scrollHeight;
    }
  }

  async function loadMessages() {
    const data = await api.get(`/api/messages/${conversationId}?limit=1000`);
    messages = data.items;
  }

  async function reload() {
    [conversation] = await Promise.all([
      api.get(`/api/conversations/${conversationId}`), loadMessages()]);
    renderHeader();
    render();
  }

  async function switchBranch(messageId) {
    try {
      conversation = await api.put(`/api/conversations/${conversationId}`,
        { current_message_id: messageId });
      await loadMessages();
      render();
    } catch (error) {
      showNotice(describeError(error));
    }
  }

  function startEdit(article, message) {
    const field = h('textarea', { rows: 3, value: message.content, 'aria-label': t('edit') });
    const form = h('form', { class: 'edit-form', onsubmit: (event) => {
      event.preventDefault();
      if (field.value.trim()) send(field.value, message.parent_id, message.id);
    } }, field, h('div', {}, h('button', { type: 'submit', class: 'primary' }, t('send')),
      h('button', { type: 'button', onclick: () => render() }, t('cancel'))));
    field.addEventListener('keydown', (event) => {
      if (event.key === 'Escape') render();
      if (event.key === 'Enter' && !event.shiftKey && !event.isComposing) {
        event.preventDefault();
        form.requestSubmit();
      }
    });
    article.querySelector('.text').replaceWith(form);
    field.focus();
  }

  // Messages shown up to (not including) `id`, as a send or a regeneration replaces the rest.
  function cutFrom(id) {
    const index = messages.findIndex((message) => message.id === id);
    if (index >= 0) messages = messages.slice(0, index);
    render();
  }

  function submit(event) {
    event.preventDefault();
    const content = input.value;
    if (!content.trim() || live) return;
    input.value = '';
    send(content);
  }

  function send(content, parentId, replacing) {
    if (live) return;
    const body = { conversation_id: conversationId, content, tools_enabled: toolsEnabled() };
    if (parentId !== undefined) body.parent_id = parentId;
    if (replacing) cutFrom(replacing);
    if (!messages.length) list.replaceChildren();
    const question = messageElement({ role: 'user', content, id: null, status: 'pending' });
    list.append(question);
    return runAnswer('/api/messages/stream', { method: 'POST', body,
      headers: { 'Idempotency-Key': idempotencyKey() } }, { question, content });
  }

  function regenerate(message) {
    if (live) return;
    cutFrom(message.id);
    return runAnswer(`/api/messages/${message.id}/regenerate/stream`, { method: 'POST',
      body: { tools_enabled: toolsEnabled() }, headers: { 'Idempotency-Key': idempotencyKey() } }, {});
  }

  function streaming(on) {
    sendButton.hidden = on;
    stopButton.hidden = !on;
    stopButton.disabled = true;
    for (const button of list.querySelectorAll('.message-actions button, .branches button')) {
      button.disabled = on;
    }
  }

  // Streams an answer into a new element: a send, a regeneration, or (attach) one already
  // running, shown from `snapshot` and followed after its last event.
  async function runAnswer(path, request, { question, content, snapshot } = {}) {
    const parts = answerParts();
    const article = h('article', { class: 'message assistant status-in_progress live',
      'data-role': 'assistant', 'aria-busy': 'true' },
    h('div', { class: 'message-head' }, h('span', { class: 'role' }, t('role_assistant'))),
    ...parts.body);
    list.append(article);
    const state = snapshot || { conversationId, answerId: null, lastEventId: null, content: '',
      reasoning: '', tools: [] };
    if (snapshot) {
      parts.setThinking(snapshot.reasoning);
      for (const call of snapshot.tools) parts.toolCall(call);
      parts.setText(snapshot.content);
      parts.note(t('reattached'));
      article.dataset.id = snapshot.answerId;
    } else {
      parts.note(t('writing'));
    }
    live = { state, controller: new AbortController() };
    streaming(true);
    stopButton.disabled = !state.answerId;
    article.scrollIntoView({ block: 'end' });
    let ended = false;
    try {
      const headers = { Accept: 'text/event-stream', ...request.headers };
      if (request.body) headers['Content-Type'] = 'application/json';
      if (state.lastEventId) headers['Last-Event-ID'] = state.lastEventId;
      const response = await authorizedFetch(path, { method: request.method || 'GET', headers,
        body: request.body && JSON.stringify(request.body), signal: live.controller.signal });
      if (!response.ok) throw await failure(response);
      for await (const event of events(response)) {
        if (event.id) state.lastEventId = event.id;
        ended = handle(event, state, parts, article, question);
        keepAnswer(ended ? null : state);
        if (ended) break;
      }
      if (!ended) throw new Error('the stream ended before the answer');
    } catch (error) {
      // Another view took the page: the answer goes on, and is attached again on return.
      if (closed) return;
      article.remove();
      if (!state.answerId) {
        // Refused before anything was stored (429, quota, validation): the text goes back.
        question?.remove();
        if (content && !input.value) input.value = content;
        keepAnswer(null);
      }
      live = null;
      streaming(false);
      if (state.answerId && !(error instanceof ApiError) && reattached < REATTACH_ATTEMPTS) {
        // The connection broke, not the answer: it runs on; follow it from the last event.
        reattached += 1;
        await open();
        return;
      }
      showNotice(describeError(error));
      if (error.code === 'quota_exceeded') shell.usageChanged();
      return;
    }
    reattached = 0;
    live = null;
    streaming(false);
    await reload();
    shell.conversationsChanged();
    shell.usageChanged();
  }

  function handle(event, state, parts, article, question) {
    const { data } = event;
    switch (event.event) {
      case 'start':
        state.answerId = data.assistant_message_id;
        article.dataset.id = state.answerId;
        stopButton.disabled = false;
        if (question) question.replaceWith(messageElement(data.user_message));
        parts.note(t('writing'));
        return false;
      case 'thinking':
        state.reasoning += data.delta;
        parts.addThinking(data.delta);
        return false;
      case 'text':
        state.content += data.delta;
        parts.addText(data.delta);
        return false;
      case 'tool_call':
        state.tools.push({ ...data });
        parts.toolCall(data);
        return false;
      case 'tool_result':
        Object.assign(state.tools.find((call) => call.id === data.id) || {}, data);
        parts.toolResult(data);
        return false;
      case 'title':
        conversation.title = data.title;
        renderHeader();
        shell.conversationsChanged();
        return false;
      case 'done':
      case 'error':
        return true;
      default:
        return false;
    }
  }

  async function stop() {
    if (!live?.state.answerId) return;
    stopButton.disabled = true;
    try {
      await api.post(`/api/messages/${live.state.answerId}/stop`);
    } catch (error) {
      showNotice(describeError(error));
    }
  }

  async function open(focusId) {
    input.disabled = true;
    list.replaceChildren(h('p', { class: 'empty' }, t('loading')));
    try {
      await reload();
    } catch (error) {
      replace(list, h('div', { class: 'notice error', role: 'alert' }, describeError(error)));
      return;
    }
    if (focusId && !messages.some((message) => message.id === focusId)) {
      // A search hit on another branch: that branch becomes the active one, as `< >` would.
      await switchBranch(focusId);
    }
    input.disabled = false;
    render(focusId);
    // An answer still being written (this page was reloaded, or another tab asked): attach.
    const running = messages.findLast((message) => message.role === 'assistant'
      && message.status === 'in_progress');
    if (running) {
      const kept = keptAnswer();
      const snapshot = kept?.answerId === running.id ? kept : null;
      messages = messages.filter((message) => message !== running);
      render();
      runAnswer(`/api/messages/${running.id}/stream`, {}, { snapshot: snapshot || {
        conversationId, answerId: running.id, lastEventId: null, content: '', reasoning: '',
        tools: [] } });
    } else if (keptAnswer()?.conversationId === conversationId) {
      keepAnswer(null);
    }
    if (!live) input.focus();
  }

  function close() {
    closed = true;
    live?.controller.abort();
  }

  return { open, close };
}
