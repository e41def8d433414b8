// The page's texts in English and Chinese. The language is the visitor's choice (kept in
// localStorage), else the browser's first language; the API is asked in the same language
// (Accept-Language), so its messages and errors match the page.
const TEXTS = {
  en: {
    appName: 'ChatAPI',
    login: 'Log in', register: 'Create account', logout: 'Log out',
    username: 'Username', usernameOrEmail: 'Username or email', email: 'Email',
    password: 'Password', haveAccount: 'I have an account', needAccount: 'Create an account',
    registered: 'Account created. Log in with it.',
    newChat: 'New chat', search: 'Search conversations and messages', archived: 'Archived',
    showArchived: 'Show archived', showActive: 'Show conversations', noConversations: 'No conversations yet',
    conversations: 'Conversations', messages: 'Messages', noResults: 'Nothing found',
    pinned: 'Pinned', pin: 'Pin', unpin: 'Unpin', archive: 'Archive', unarchive: 'Unarchive',
    rename: 'Rename', delete: 'Delete', save: 'Save', cancel: 'Cancel', settings: 'Settings',
    confirmDelete: 'Delete this conversation and all its messages?',
    model: 'Model', temperature: 'Temperature', maxTokens: 'Max tokens', thinking: 'Thinking',
    systemPrompt: 'System prompt', tools: 'Tools', toolsOn: 'Let the model use tools',
    saved: 'Saved', send: 'Send', stop: 'Stop', regenerate: 'Regenerate', edit: 'Edit',
    previous: 'Previous version', next: 'Next version',
    placeholder: 'Message… (Enter to send, Shift+Enter for a new line)',
    thinkingLabel: 'Thinking', toolCall: 'Tool', arguments: 'Arguments', result: 'Result',
    running: 'running…', stopped: 'Stopped', incomplete: 'Incomplete',
    writing: 'Writing…', empty: 'Pick a conversation or start a new one.',
    emptyChat: 'Ask anything. Markdown, code, thinking and tools are shown as they come.',
    rateLimited: 'Too many requests: try again in {seconds} s.',
    quotaExceeded: 'Your token quota is spent ({used} of {limit} this {period}); it resets {resets}.',
    account: 'Account', usage: 'Usage', quota: 'Quota', noQuota: 'No quota',
    quotaLine: '{used} / {limit} tokens this {period}', usageLine: '{total} tokens in 30 days',
    resets: 'Resets {when}', day: 'day', week: 'week', month: 'month',
    usageByModel: 'Tokens by model (30 days)', usageByDay: 'Tokens by day (30 days)',
    key: 'Key', promptTokens: 'Prompt', completionTokens: 'Completion', totalTokens: 'Total',
    answers: 'Answers', total: 'Total', memberSince: 'Member since',
    changePassword: 'Change password', currentPassword: 'Current password',
    newPassword: 'New password', passwordChanged: 'Password changed.',
    deleteAccount: 'Delete account', confirmDeleteAccount: 'Delete your account and everything in it? This cannot be undone.',
    deleteAccountHelp: 'Deletes your account, conversations and messages.',
    menu: 'Conversations menu', back: 'Back', language: 'Language', sessionEnded: 'Your session has ended: log in again.',
    reattached: 'Continuing the answer…', loading: 'Loading…', errorPrefix: 'Error',
    untitled: 'New chat', role_user: 'You', role_assistant: 'Assistant',
    exportJson: 'Export JSON', exportMarkdown: 'Export Markdown', import: 'Import…',
    importHelp: 'Import conversations: a JSON export of this service, or ChatGPT\'s conversations.json',
    importing: 'Importing…', imported: 'Imported {count} conversation(s).', more: 'More',
  },
  zh: {
    appName: 'ChatAPI',
    login: '登录', register: '注册账号', logout: '退出登录',
    username: '用户名', usernameOrEmail: '用户名或邮箱', email: '邮箱',
    password: '密码', haveAccount: '已有账号', needAccount: '注册新账号',
    registered: '账号已创建，请登录。',
    newChat: '新会话', search: '搜索会话和消息', archived: '已归档',
    showArchived: '查看归档', showActive: '查看会话', noConversations: '还没有会话',
    conversations: '会话', messages: '消息', noResults: '没有找到',
    pinned: '已置顶', pin: '置顶', unpin: '取消置顶', archive: '归档', unarchive: '取消归档',
    rename: '重命名', delete: '删除', save: '保存', cancel: '取消', settings: '设置',
    confirmDelete: '删除此会话及其全部消息？',
    model: '模型', temperature: '温度', maxTokens: '最大 token 数', thinking: '深度思考',
    systemPrompt: '系统提示词', tools: '工具', toolsOn: '允许模型调用工具',
    saved: '已保存', send: '发送', stop: '停止', regenerate: '重新生成', edit: '编辑',
    previous: '上一个版本', next: '下一个版本',
    placeholder: '输入消息…（Enter 发送，Shift+Enter 换行）',
    thinkingLabel: '思考过程', toolCall: '工具', arguments: '参数', result: '结果',
    running: '运行中…', stopped: '已停止', incomplete: '未完成',
    writing: '正在生成…', empty: '选择一个会话，或开始新会话。',
    emptyChat: '随便问。Markdown、代码、思考过程和工具调用会实时显示。',
    rateLimited: '请求过于频繁：请 {seconds} 秒后再试。',
    quotaExceeded: 'token 额度已用完（本{period}已用 {used} / {limit}），{resets} 重置。',
    account: '账号', usage: '用量', quota: '额度', noQuota: '无额度限制',
    quotaLine: '本{period} {used} / {limit} tokens', usageLine: '30 天内 {total} tokens',
    resets: '{when} 重置', day: '日', week: '周', month: '月',
    usageByModel: '按模型统计的 token（30 天）', usageByDay: '按日统计的 token（30 天）',
    key: '项', promptTokens: '输入', completionTokens: '输出', totalTokens: '合计',
    answers: '回答数', total: '合计', memberSince: '注册于',
    changePassword: '修改密码', currentPassword: '当前密码',
    newPassword: '新密码', passwordChanged: '密码已修改。',
    deleteAccount: '删除账号', confirmDeleteAccount: '删除账号及其全部内容？此操作无法撤销。',
    deleteAccountHelp: '删除你的账号、会话和消息。',
    menu: '会话菜单', back: '返回', language: '语言', sessionEnded: '登录已失效，请重新登录。',
    reattached: '继续接收回答…', loading: '加载中…', errorPrefix: '错误',
    untitled: '新会话', role_user: '你', role_assistant: '助手',
    exportJson: '导出 JSON', exportMarkdown: '导出 Markdown', import: '导入…',
    importHelp: '导入会话：本服务导出的 JSON，或 ChatGPT 的 conversations.json',
    importing: '正在导入…', imported: '已导入 {count} 个会话。', more: '更多',
  },
};

function chosen() {
  const kept = localStorage.getItem('chatapi.lang');
  if (kept in TEXTS) return kept;
  return (navigator.language || 'en').toLowerCase().startsWith('zh') ? 'zh' : 'en';
}

export const lang = chosen();
export const acceptLanguage = lang === 'zh' ? 'zh-CN,zh;q=0.9' : 'en';

export function t(key, values = {}) {
  const text = TEXTS[lang][key] ?? TEXTS.en[key] ?? key;
  return text.replace(/\{(\w+)\}/g, (whole, name) => (name in values ? String(values[name]) : whole));
}

export function setLanguage(next) {
  localStorage.setItem('chatapi.lang', next);
  location.reload();
}

export function formatNumber(value) {
  return new Intl.NumberFormat(lang === 'zh' ? 'zh-CN' : 'en').format(value);
}

export function formatTime(iso) {
  return new Date(iso).toLocaleString(lang === 'zh' ? 'zh-CN' : 'en', {
    dateStyle: 'medium', timeStyle: 'short' });
}

document.documentElement.lang = lang === 'zh' ? 'zh-CN' : 'en';
