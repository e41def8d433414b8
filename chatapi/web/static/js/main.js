// The page: the login and register forms, or the shell (conversation list, usage corner) with
// a chat or the account page, chosen by the URL's hash: #/c/<conversation>[/<message>],
// #/account, #/.
import { api, currentSession, login, logout, onSessionEnded, register } from './api.js';
import { accountView, quotaLine } from './account.js';
import { chatView } from './chat.js';
import { describeError } from './errors.js';
import { h, replace } from './dom.js';
import { formatNumber, lang, setLanguage, t } from './i18n.js';
import { listView } from './list.js';

const root = document.getElementById('app');
let models = null;
let currentView = null;

function languageSwitch() {
  return h('button', { type: 'button', class: 'link language', 'aria-label': t('language'),
    onclick: () => setLanguage(lang === 'zh' ? 'en' : 'zh') }, lang === 'zh' ? 'English' : '中文');
}

function authView(notice = '') {
  let registering = false;
  const status = h('p', { class: 'form-status', role: 'alert' }, notice);
  const form = h('form', { class: 'stacked auth-form', onsubmit: submit });
  const render = () => {
    replace(form,
      h('h1', {}, registering ? t('register') : t('login')),
      h('label', {}, registering ? t('username') : t('usernameOrEmail'),
        h('input', { name: 'username', autocomplete: 'username', required: true })),
      registering ? h('label', {}, t('email'),
        h('input', { name: 'email', type: 'email', autocomplete: 'email', required: true })) : null,
      h('label', {}, t('password'), h('input', { name: 'password', type: 'password', required: true,
        autocomplete: registering ? 'new-password' : 'current-password' })),
      h('button', { type: 'submit', class: 'primary' }, registering ? t('register') : t('login')),
      status,
      h('button', { type: 'button', class: 'link switch', onclick: () => {
        registering = !registering;
        status.textContent = '';
        render();
      } }, registering ? t('haveAccount') : t('needAccount')));
    form.elements.username.focus();
  };
  async function submit(event) {
    event.preventDefault();
    const { username, email, password } = form.elements;
    status.className = 'form-status error';
    try {
      if (registering) {
        await register(username.value, email.value, password.value);
        registering = false;
        render();
        form.elements.username.value = username.value;
        status.className = 'form-status ok';
        status.textContent = t('registered');
        form.elements.password.focus();
      } else {
        await login(username.value, password.value);
        shell();
      }
    } catch (error) {
      const fields = Object.entries(error.details || {})
        .map(([field, messages]) => `${field}: ${[].concat(messages).join(' ')}`);
      status.textContent = [describeError(error), ...fields].join(' — ');
    }
  }
  replace(root, h('main', { class: 'auth' }, h('div', { class: 'brand' }, t('appName')), form,
    languageSwitch()));
  root.className = 'app auth-page';
  render();
}

function shell() {
  const sidebar = h('aside', { class: 'sidebar', 'aria-label': t('conversations') });
  const listPane = h('div', { class: 'list-pane' });
  const usage = h('p', { class: 'usage-corner', role: 'status' });
  const main = h('main', { class: 'main' });
  const session = currentSession();
  sidebar.append(
    h('div', { class: 'brand' }, t('appName')),
    listPane,
    h('footer', { class: 'corner' },
      h('div', { class: 'who' }, session.user.username),
      usage,
      h('div', { class: 'corner-links' },
        h('a', { href: '#/account', class: 'account-link' }, t('account')),
        h('button', { type: 'button', class: 'link logout', onclick: async () => {
          await logout().catch(() => {});
          loggedOut();
        } }, t('logout')),
        languageSwitch())));
  replace(root, sidebar, main);
  root.className = 'app';

  const context = {
    navigate: (hash) => { location.hash = hash; },
    models: async () => {
      models ??= (await api.get('/api/models/')).models;
      return models;
    },
    conversationsChanged: () => list.refresh().catch(() => {}),
    usageChanged: showUsage,
    loggedOut,
    menuButton: () => h('button', { type: 'button', class: 'menu-button', 'aria-label': t('menu'),
      onclick: () => root.classList.toggle('menu-open') }, '☰'),
  };
  const list = listView(listPane, context);

  async function showUsage() {
    try {
      const me = await api.get('/api/auth/me');
      const line = quotaLine(me);
      if (line) {
        usage.textContent = line;
      } else {
        const spent = await api.get('/api/usage');
        usage.textContent = t('usageLine', { total: formatNumber(spent.total.total_tokens) });
      }
    } catch {
      usage.textContent = '';
    }
  }

  async function route() {
    root.classList.remove('menu-open');
    currentView?.close();
    const [, kind, id, messageId] = location.hash.split('/');
    currentView = null;
    if (kind === 'c' && id) {
      list.setActive(id);
      currentView = chatView(main, id, context);
      await currentView.open(messageId);
    } else if (kind === 'account') {
      list.setActive(null);
      await accountView(main, context).catch((error) => {
        replace(main, h('div', { class: 'notice error', role: 'alert' }, describeError(error)));
      });
    } else {
      list.setActive(null);
      replace(main, h('header', { class: 'chat-header' }, context.menuButton()),
        h('p', { class: 'empty' }, t('empty')));
    }
  }

  window.onhashchange = route;
  list.refresh().catch(() => {});
  showUsage();
  route();
}

function loggedOut(notice = '') {
  window.onhashchange = null;
  currentView?.close();
  sessionStorage.removeItem('chatapi.answer');
  history.replaceState(null, '', location.pathname);
  authView(notice);
}

onSessionEnded(() => loggedOut(t('sessionEnded')));
document.addEventListener('keydown', (event) => {
  if (event.key === 'Escape') root.classList.remove('menu-open');
});

if (currentSession()) shell();
else authView();
