// A failure as the page says it: the wait of a 429, the quota's figures, else the API's own
// text (in the page's language: the API was asked in it).
import { ApiError } from './api.js';
import { formatNumber, formatTime, t } from './i18n.js';

export function describeError(error) {
  if (!(error instanceof ApiError)) return `${t('errorPrefix')}: ${error.message}`;
  if (error.code === 'rate_limited' && error.retryAfter !== null) {
    return t('rateLimited', { seconds: error.retryAfter });
  }
  if (error.code === 'quota_exceeded') {
    const { used, limit, period, resets_at: resets } = error.details;
    return t('quotaExceeded', { used: formatNumber(used), limit: formatNumber(limit),
      period: t(period), resets: formatTime(resets) });
  }
  return error.message;
}

