// The API client: JSON requests with the bearer token, the envelope unwrapped, failures as
// ApiError (with the status, the envelope's code, message and details, and Retry-After).
// The session (tokens and user) is kept in sessionStorage, so a reload stays logged in and a
// closed tab forgets it; the access token is refreshed before it expires, and once more when a
// request finds it expired.
import { acceptLanguage } from './i18n.js';

const SESSION_KEY = 'chatapi.session';
// Refresh when this share of the access token's life has passed.
const REFRESH_AT = 0.8;

export class ApiError extends Error {
  constructor(status, envelope, retryAfter) {
    super(envelope?.message || `HTTP ${status}`);
    this.status = status;
    this.code = envelope?.error?.code || 'http_error';
    this.details = envelope?.error?.details || {};
    this.data = envelope?.data;
    this.retryAfter = retryAfter === null ? null : Number(retryAfter);
  }
}

let session = JSON.parse(sessionStorage.getItem(SESSION_KEY) || 'null');
let refreshTimer = null;
let refreshing = null;
const endedListeners = [];

export function currentSession() { return session; }
export function onSessionEnded(listener) { endedListeners.push(listener); }

function keep(next) {
  session = next;
  if (next) sessionStorage.setItem(SESSION_KEY, JSON.stringify(next));
  else sessionStorage.removeItem(SESSION_KEY);
  scheduleRefresh();
}

function withTokens(tokens) {
  return { ...session, ...tokens, expiresAt: Date.now() + tokens.expires_in * 1000 };
}

function scheduleRefresh() {
  clearTimeout(refreshTimer);
  if (!session) return;
  const lifetime = session.expires_in * 1000;
  const due = session.expiresAt - lifetime * (1 - REFRESH_AT) - Date.now();
  refreshTimer = setTimeout(() => refresh().catch(() => {}), Math.max(due, 0));
}

async function refresh() {
  if (!session) throw new ApiError(401, null, null);
  refreshing ??= (async () => {
    try {
      const response = await fetch('/api/auth/refresh', {
        method: 'POST',
        headers: { Authorization: `Bearer ${session.refresh_token}`, 'Accept-Language': acceptLanguage },
      });
      const envelope = await response.json().catch(() => null);
      if (!response.ok) {
        if (response.status === 401) endSession();
        throw new ApiError(response.status, envelope, response.headers.get('Retry-After'));
      }
      keep(withTokens(envelope.data));
    } finally {
      refreshing = null;
    }
  })();
  return refreshing;
}

function endSession() {
  keep(null);
  for (const listener of endedListeners) listener();
}

// fetch() with the token and language; one refresh and retry when the token was refused.
// `checksPassword`: the request carries the account's password, and its 401 says the password
// is wrong (the session is fine): neither refreshed and retried (a retry would count as a
// second failed login) nor ended.
export async function authorizedFetch(path, { checksPassword = false, ...options } = {},
  retried = false) {
  const headers = { 'Accept-Language': acceptLanguage, ...options.headers };
  if (session) headers.Authorization = `Bearer ${session.access_token}`;
  const response = await fetch(path, { ...options, headers });
  if (checksPassword && response.status === 401 && session && Date.now() < session.expiresAt) {
    return response;
  }
  if (response.status === 401 && session && !retried) {
    try {
      await refresh();
    } catch {
      return response;
    }
    return authorizedFetch(path, { checksPassword, ...options }, true);
  }
  if (response.status === 401 && session) endSession();
  return response;
}

export async function failure(response) {
  const envelope = await response.json().catch(() => null);
  return new ApiError(response.status, envelope, response.headers.get('Retry-After'));
}

async function request(method, path, body, headers = {}, checksPassword = false) {
  const options = { method, headers, checksPassword };
  if (body !== undefined) {
    options.body = JSON.stringify(body);
    headers['Content-Type'] = 'application/json';
  }
  const response = await authorizedFetch(path, options);
  if (!response.ok) throw await failure(response);
  return response.json();
}

export const api = {
  get: async (path) => (await request('GET', path)).data,
  post: async (path, body, headers) => (await request('POST', path, body, headers)).data,
  put: async (path, body) => (await request('PUT', path, body)).data,
  delete: (path, body) => request('DELETE', path, body),
  request,
};

export async function login(username, password) {
  const data = await api.post('/api/auth/login', { username, password });
  keep(withTokens(data));
  return data.user;
}

export async function register(username, email, password) {
  return api.post('/api/auth/register', { username, email, password });
}

export async function changePassword(currentPassword, newPassword) {
  const envelope = await request('POST', '/api/auth/password', {
    current_password: currentPassword, new_password: newPassword }, {}, true);
  keep(withTokens(envelope.data));
}

export async function deleteAccount(password) {
  await request('DELETE', '/api/auth/me', { password }, {}, true);
  keep(null);
}

export async function logout() {
  try {
    await api.post('/api/auth/logout', { refresh_token: session.refresh_token });
  } finally {
    keep(null);
  }
}

scheduleRefresh();
