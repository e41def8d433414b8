// The account page: who, quota, usage by model and by day, password change, deletion.
import { api, changePassword, deleteAccount } from './api.js';
import { h, replace } from './dom.js';
import { formatNumber, formatTime, t } from './i18n.js';
import { describeError } from './errors.js';

function usageTable(caption, usage, keyLabel) {
  const row = (key, figures, cell = 'td') => h('tr', {}, h(cell, {}, key),
    ...['prompt_tokens', 'completion_tokens', 'total_tokens', 'messages'].map(
      (name) => h('td', { class: 'number' }, formatNumber(figures[name]))));
  return h('table', { class: 'usage' }, h('caption', {}, caption),
    h('thead', {}, h('tr', {}, ...[keyLabel, t('promptTokens'), t('completionTokens'),
      t('totalTokens'), t('answers')].map((name) => h('th', { scope: 'col' }, name)))),
    h('tbody', {}, usage.groups.map((group) => row(group.key, group))),
    h('tfoot', {}, row(t('total'), usage.total, 'th')));
}

export function quotaLine(me) {
  if (!me.quota) return null;
  const { used, limit, period } = me.quota;
  return t('quotaLine', { used: formatNumber(used), limit: formatNumber(limit), period: t(period) });
}

export async function accountView(container, shell) {
  const [me, byModel, byDay] = await Promise.all([api.get('/api/auth/me'),
    api.get('/api/usage?group_by=model'), api.get('/api/usage?group_by=day')]);
  const passwordStatus = h('p', { class: 'form-status', role: 'status' });
  const deleteStatus = h('p', { class: 'form-status', role: 'status' });
  const passwordForm = h('form', { class: 'stacked', onsubmit: async (event) => {
    event.preventDefault();
    const form = event.target.elements;
    try {
      await changePassword(form.current_password.value, form.new_password.value);
      event.target.reset();
      passwordStatus.className = 'form-status ok';
      passwordStatus.textContent = t('passwordChanged');
    } catch (error) {
      passwordStatus.className = 'form-status error';
      passwordStatus.textContent = describeError(error);
    }
  } },
  h('h2', {}, t('changePassword')),
  h('label', {}, t('currentPassword'), h('input', { type: 'password', name: 'current_password',
    autocomplete: 'current-password', required: true })),
  h('label', {}, t('newPassword'), h('input', { type: 'password', name: 'new_password',
    autocomplete: 'new-password', minlength: 8, maxlength: 128, required: true })),
  h('button', { type: 'submit', class: 'primary' }, t('changePassword')), passwordStatus);
  const deleteForm = h('form', { class: 'stacked danger-zone', onsubmit: async (event) => {
    event.preventDefault();
    if (!confirm(t('confirmDeleteAccount'))) return;
    try {
      await deleteAccount(event.target.elements.password.value);
      shell.loggedOut();
    } catch (error) {
      deleteStatus.className = 'form-status error';
      deleteStatus.textContent = describeError(error);
    }
  } },
  h('h2', {}, t('deleteAccount')), h('p', {}, t('deleteAccountHelp')),
  h('label', {}, t('password'), h('input', { type: 'password', name: 'password',
    autocomplete: 'current-password', required: true })),
  h('button', { type: 'submit', class: 'danger' }, t('deleteAccount')), deleteStatus);

  replace(container,
    h('header', { class: 'chat-header' }, shell.menuButton(), h('h1', { class: 'title' }, t('account'))),
    h('div', { class: 'account' },
      h('section', { class: 'card' },
        h('h2', {}, me.username),
        h('p', {}, me.email),
        h('p', {}, `${t('memberSince')} ${formatTime(me.created_at)}`),
        h('h2', {}, t('quota')),
        h('p', { class: 'quota' }, quotaLine(me) || t('noQuota')),
        me.quota ? h('p', {}, t('resets', { when: formatTime(me.quota.resets_at) })) : null),
      h('section', { class: 'card' }, usageTable(t('usageByModel'), byModel, t('model')),
        usageTable(t('usageByDay'), byDay, t('key'))),
      h('section', { class: 'card' }, passwordForm),
      h('section', { class: 'card' }, deleteForm)));
}
