// Model text shown as Markdown: marked turns it into HTML (HTML written in the text itself is
// escaped: shown as text), then DOMPurify keeps only inert HTML (no script, no event handler,
// no javascript: or other non-web URL, no form, no style). Everything else is set as text.
import { Marked } from '../vendor/marked-18.3.0/marked.esm.js';
import DOMPurify from '../vendor/dompurify-3.5.0/purify.es.js';

function escapeHtml(text) {
  return text.replace(/[&<>"']/g, (char) => `&#${char.charCodeAt(0)};`);
}

// HTML the model writes is shown as the text it is, never as markup: only Markdown formats.
const marked = new Marked({ gfm: true, breaks: false, async: false,
  renderer: { html: ({ text }) => escapeHtml(text) } });

const POLICY = {
  FORBID_TAGS: ['style', 'form', 'input', 'button', 'textarea', 'select', 'iframe', 'object',
    'embed', 'svg', 'math'],
  FORBID_ATTR: ['style', 'id', 'srcset'],
  ALLOWED_URI_REGEXP: /^(?:https?:|mailto:|#|\/(?!\/))/i,
  ALLOW_DATA_ATTR: false,
};

DOMPurify.addHook('afterSanitizeAttributes', (node) => {
  // The model's classes could dress its text as the page's own controls: only a code block's
  // language (marked's `language-*`) is kept.
  if (node.hasAttribute('class')) {
    const language = [...node.classList].find((name) => /^language-[\w+#.-]+$/.test(name));
    if (language && node.tagName === 'CODE') node.className = language;
    else node.removeAttribute('class');
  }
  if (node.tagName === 'A' && node.hasAttribute('href')) {
    node.setAttribute('target', '_blank');
    node.setAttribute('rel', 'noopener noreferrer nofollow');
  }
});

export function renderMarkdown(element, text) {
  const html = marked.parse(text || '');
  element.replaceChildren(DOMPurify.sanitize(html, { ...POLICY, RETURN_DOM_FRAGMENT: true }));
  for (const block of element.querySelectorAll('pre > code')) {
    const language = [...block.classList].find((name) => name.startsWith('language-'));
    if (language) block.parentElement.dataset.language = language.slice('language-'.length);
  }
}

// A search snippet: the API escapes everything but its <mark> elements; only those are kept.
export function renderSnippet(element, html) {
  element.replaceChildren(DOMPurify.sanitize(html, {
    ALLOWED_TAGS: ['mark'], ALLOWED_ATTR: [], RETURN_DOM_FRAGMENT: true }));
}
