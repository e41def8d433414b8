// The conversation list: new chat, search (titles with `q=`, messages with GET /api/search),
// active or archived conversations, pinned first as the API orders them.
import { api, authorizedFetch, failure } from './api.js';
import { describeError } from './errors.js';
import { h, replace } from './dom.js';
import { t } from './i18n.js';
import { renderSnippet } from './markdown.js';

const SEARCH_DELAY_MS = 250;

export function listView(container, shell) {
  let archived = false;
  let activeId = null;
  let searchTimer = null;
  let searchRun = 0;

  const search = h('input', { type: 'search', class: 'search', placeholder: t('search'),
    'aria-label': t('search') });
  const archiveToggle = h('button', { type: 'button', class: 'link', onclick: () => {
    archived = !archived;
    archiveToggle.textContent = archived ? t('showActive') : t('showArchived');
    refresh();
  } }, t('showArchived'));
  const items = h('nav', { class: 'conversation-list', 'aria-label': t('conversations') });
  const importStatus = h('p', { class: 'form-status', role: 'status' });
  const importFile = h('input', { type: 'file', class: 'import-file',
    accept: '.json,application/json', 'aria-label': t('importHelp'), onchange: importChosen });

  replace(container,
    h('button', { type: 'button', class: 'primary new-chat', onclick: newChat }, t('newChat')),
    search, items,
    h('div', { class: 'list-links' }, archiveToggle,
      h('label', { class: 'import' }, t('import'), importFile)),
    importStatus);

  // Our export (one or a list) or a ChatGPT conversations.json, sent as it is.
  async function importChosen() {
    const [file] = importFile.files;
    if (!file) return;
    importStatus.className = 'form-status';
    importStatus.textContent = t('importing');
    try {
      const response = await authorizedFetch('/api/conversations/import', {
        method: 'POST', headers: { 'Content-Type': 'application/json' }, body: file });
      if (!response.ok) throw await failure(response);
      const { data } = await response.json();
      importStatus.className = 'form-status ok';
      importStatus.textContent = t('imported', { count: data.conversations.length });
      await refresh();
      if (data.conversations.length) shell.navigate(`#/c/${data.conversations[0]}`);
    } catch (error) {
      importStatus.className = 'form-status error';
      const places = Object.entries(error.details || {}).slice(0, 3)
        .map(([place, messages]) => `${place}: ${[].concat(messages).join(' ')}`);
      importStatus.textContent = [describeError(error), ...places].join(' — ');
    } finally {
      importFile.value = '';
    }
  }

  search.addEventListener('input', () => {
    clearTimeout(searchTimer);
    searchTimer = setTimeout(refresh, SEARCH_DELAY_MS);
  });
  search.addEventListener('keydown', (event) => {
    if (event.key === 'Escape') {
      search.value = '';
      refresh();
    }
  });

  async function newChat() {
    const conversation = await api.post('/api/conversations/', {});
    search.value = '';
    await refresh();
    shell.navigate(`#/c/${conversation.id}`);
  }

  function conversationLink(conversation) {
    return h('a', { href: `#/c/${conversation.id}`, class: 'conversation',
      'data-id': conversation.id, 'aria-current': conversation.id === activeId ? 'page' : false },
    conversation.pinned ? h('span', { class: 'pin', role: 'img', title: t('pinned'),
      'aria-label': t('pinned') }) : null,
    h('span', { class: 'conversation-title' }, conversation.title));
  }

  function hitLink(hit) {
    const snippet = h('span', { class: 'snippet' });
    renderSnippet(snippet, hit.snippet);
    return h('a', { href: `#/c/${hit.conversation_id}/${hit.message_id}`, class: 'hit',
      'data-id': hit.message_id },
    h('span', { class: 'conversation-title' }, hit.conversation_title), snippet);
  }

  // Message hits of GET /api/search (title hits are the Conversations section's already), a
  // page at a time: `next` is the cursor of the following page.
  function searchHits(query, before) {
    const params = new URLSearchParams({ q: query });
    if (before) params.set('before', before);
    // A service without message search still filters titles.
    return api.get(`/api/search?${params}`).catch(() => null);
  }

  function hitSection(query, page, run) {
    const section = h('div', { class: 'hits' });
    const show = (found) => {
      section.append(...found.items.filter((hit) => hit.message_id).map(hitLink));
      if (found.next) {
        const more = h('button', { type: 'button', class: 'link more', onclick: async () => {
          more.disabled = true;
          const next = await searchHits(query, found.next);
          if (run !== searchRun || !next) return;
          more.remove();
          show(next);
        } }, t('more'));
        section.append(more);
      }
    };
    show(page);
    if (!section.childElementCount) section.append(h('p', { class: 'empty' }, t('noResults')));
    return section;
  }

  async function refresh() {
    const run = ++searchRun;
    const query = search.value.trim();
    const params = new URLSearchParams({ page_size: '100', archived: String(archived) });
    if (query) params.set('q', query);
    const listed = api.get(`/api/conversations/?${params}`);
    const found = query ? searchHits(query) : Promise.resolve(null);
    const [conversations, hits] = await Promise.all([listed, found]);
    if (run !== searchRun) return;
    const sections = [];
    if (query) sections.push(h('h2', {}, t('conversations')));
    sections.push(conversations.items.length ? conversations.items.map(conversationLink)
      : h('p', { class: 'empty' }, query ? t('noResults') : t('noConversations')));
    if (hits) sections.push(h('h2', {}, t('messages')), hitSection(query, hits, run));
    replace(items, sections);
  }

  function setActive(id) {
    activeId = id;
    for (const link of items.querySelectorAll('.conversation')) {
      if (link.dataset.id === id) link.setAttribute('aria-current', 'page');
      else link.removeAttribute('aria-current');
    }
  }

  return { refresh, setActive };
}
