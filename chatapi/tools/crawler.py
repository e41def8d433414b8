"""crawler tools: read a web page's main text, list a page's links."""
import codecs
import re
from operator import itemgetter
from urllib.parse import urldefrag, urljoin, urlsplit

import charset_normalizer
import lxml.etree
import lxml.html

from ..errors import ValidationFailed
from . import netguard
from .tool import Tool

URL_PROPERTY = {
    "type": "string", "maxLength": 2048, "pattern": "^[Hh][Tt][Tt][Pp][Ss]?://[^\\s]+$",
    "description": "Absolute http:// or https:// URL of the page"}

HTML_TYPES = ("text/html", "application/xhtml+xml", "")
TEXT_TYPES = ("application/json", "application/xml", "application/javascript",
              "application/ld+json", "application/rss+xml", "application/atom+xml")
NOISE_TAGS = ("script", "style", "noscript", "template", "svg", "nav", "footer", "aside",
              "form", "iframe", "object", "embed", "canvas", "button", "select")
HIDDEN = ("//*[@hidden] | //*[@aria-hidden='true'] | //input[@type='hidden']"
          " | //*[contains(translate(@style, ' ', ''), 'display:none')]"
          " | //*[contains(translate(@style, ' ', ''), 'visibility:hidden')]")
# A header inside an article holds that article's heading; page headers are chrome.
PAGE_HEADERS = "//header[not(ancestor::article)]"
BLOCK_TAGS = frozenset((
    "address", "article", "blockquote", "body", "caption", "dd", "details", "dialog", "div",
    "dl", "dt", "fieldset", "figcaption", "figure", "h1", "h2", "h3", "h4", "h5", "h6",
    "header", "hr", "li", "main", "ol", "p", "pre", "section", "summary", "table", "tr",
    "ul"))
CELL_TAGS = frozenset(("td", "th"))
PARAGRAPH, LINE = object(), object()
META_CHARSET = re.compile(rb"""<meta[^>]+charset\s*=\s*["']?\s*([A-Za-z0-9_.:-]+)""", re.I)
# WHATWG's encoding labels: browsers decode these as the superset named here.
SUPERSETS = {"iso-8859-1": "cp1252", "latin1": "cp1252", "ascii": "cp1252",
             "us-ascii": "cp1252", "gb2312": "gb18030", "gbk": "gb18030"}
LINK_TEXT_CHARS = 200


def is_textual(content_type):
    return (content_type in HTML_TYPES or content_type.startswith("text/")
            or content_type in TEXT_TYPES or content_type.endswith(("+json", "+xml")))


def refuse_binary(content_type):
    if not is_textual(content_type):
        raise ValidationFailed(text_key="binary_content", details={"url": [
            f"the response is {content_type}, not text or HTML"]})


def fetch_and_parse_seconds(config):
    return config["FETCH_TIMEOUT"] + config["COMPUTE_TIMEOUT"]


def fetched(url, config):
    return netguard.fetch(url, config=config, max_bytes=config["FETCH_MAX_BYTES"],
                          timeout=config["FETCH_TIMEOUT"], accept=refuse_binary)


def codec_for(label):
    if not label:
        return None
    label = label.strip().lower()
    try:
        return codecs.lookup(SUPERSETS.get(label, label)).name
    except LookupError:
        return None


def decoded(body, charset, content_type):
    """The body as text: the header's charset, else a <meta> charset, else UTF-8 when it
    decodes, else charset_normalizer's guess."""
    declared = codec_for(charset)
    if declared is None and content_type in HTML_TYPES:
        match = META_CHARSET.search(body[:4096])
        declared = codec_for(match.group(1).decode("ascii") if match else None)
    if declared is not None:
        return body.decode(declared, errors="replace")
    try:
        return body.decode("utf-8")
    except UnicodeDecodeError:
        guess = charset_normalizer.from_bytes(body).best()
        return str(guess) if guess is not None else body.decode("utf-8", errors="replace")


def parsed_html(text):
    """The document, or None when there is no markup at all. Re-encoded as UTF-8 and parsed as
    such, so a <meta> or XML declaration cannot make lxml decode it a second time."""
    if not text.strip():
        return None
    parser = lxml.html.HTMLParser(encoding="utf-8", remove_comments=True, remove_pis=True)
    return lxml.html.document_fromstring(text.encode("utf-8"), parser=parser)


def collapsed(text):
    return " ".join(text.split())


def main_content(document):
    """<main>, else role=main, else the only <article>, else <body>."""
    for query in ("//main", "//*[@role='main']"):
        found = document.xpath(query)
        if found:
            return found[0]
    articles = document.xpath("//article")
    if len(articles) == 1:
        return articles[0]
    body = document.find("body")
    return body if body is not None else document


def without_noise(document):
    for element in document.xpath(
            " | ".join(f"//{tag}" for tag in NOISE_TAGS) + " | " + HIDDEN + " | " + PAGE_HEADERS):
        if element.getparent() is not None:
            element.drop_tree()
    return document


def pieces(root):
    """Text in document order, with PARAGRAPH around block elements and LINE for <br>."""
    for event, element in lxml.etree.iterwalk(root, events=("start", "end")):
        block = element.tag in BLOCK_TAGS
        if event == "start":
            if block:
                yield PARAGRAPH
            if element.tag == "br":
                yield LINE
            if element.tag in CELL_TAGS:
                yield " "
            if element.text:
                yield element.text
        else:
            if block:
                yield PARAGRAPH
            if element.tail and element is not root:
                yield element.tail


def readable_text(root):
    paragraphs, lines, fragments = [], [], []
    for piece in [*pieces(root), PARAGRAPH]:
        if piece is LINE or piece is PARAGRAPH:
            if fragments:
                lines.append(collapsed("".join(fragments)))
                fragments = []
            if piece is PARAGRAPH and lines:
                paragraphs.append("\n".join(line for line in lines if line))
                lines = []
        else:
            fragments.append(piece)
    return "\n\n".join(paragraph for paragraph in paragraphs if paragraph)


def page_title(document):
    title = document.find(".//title")
    text = collapsed(title.text_content()) if title is not None else ""
    return text or None


def fetch_webpage(arguments, context):
    page = fetched(arguments["url"], context.config)
    content = context.compute(page_content, page.body, page.charset, page.content_type,
                              arguments["max_chars"])
    return {"url": page.url, "status": page.status, "content_type": page.content_type or None,
            "title": content["title"], "text": content["text"],
            "truncated": page.truncated or content["truncated"]}


def page_content(body, charset, content_type, max_chars):
    """Run in the compute pool (decoding, parsing and walking megabytes of markup take
    seconds of CPU): the title and the first max_chars of the readable text."""
    text, title = decoded(body, charset, content_type), None
    if content_type in HTML_TYPES:
        document = parsed_html(text)
        title = page_title(document) if document is not None else None
        text = readable_text(main_content(without_noise(document))) if document is not None else ""
    return {"title": title, "text": text[:max_chars], "truncated": len(text) > max_chars}


def link_text(anchor):
    text = collapsed(anchor.text_content()) or anchor.get("title", "").strip()
    if not text:
        text = next((img.get("alt", "").strip() for img in anchor.iter("img")
                     if img.get("alt", "").strip()), "")
    return text[:LINK_TEXT_CHARS]


def page_links(document, page_url):
    """(absolute url, text) per http(s) link, fragment dropped, first occurrence first."""
    base = page_url
    base_href = document.xpath("//base[@href]/@href")
    if base_href:
        base = urljoin(page_url, base_href[0].strip())
    for anchor in document.xpath("//a[@href] | //area[@href]"):
        # Browsers strip surrounding whitespace and ignore tabs and newlines inside URLs.
        href = re.sub(r"[\t\n\r]", "", anchor.get("href").strip())
        url = urldefrag(urljoin(base, href)).url
        if urlsplit(url).scheme in ("http", "https") and urlsplit(url).hostname:
            yield url, link_text(anchor)


def extract_links(arguments, context):
    page = fetched(arguments["url"], context.config)
    links = context.compute(page_link_list, page.body, page.charset, page.content_type,
                            page.url, arguments["same_domain"], arguments["limit"])
    return {"url": page.url, **links}


def page_link_list(body, charset, content_type, page_url, same_domain, limit):
    """Run in the compute pool: the page's first `limit` links, and how many it has."""
    document = (parsed_html(decoded(body, charset, content_type))
                if content_type in HTML_TYPES else None)
    host = (urlsplit(page_url).hostname or "").lower()
    texts = {}
    for url, text in (page_links(document, page_url) if document is not None else ()):
        if same_domain and (urlsplit(url).hostname or "").lower() != host:
            continue
        if not texts.get(url):
            texts[url] = text
    links = [{"url": url, "text": text} for url, text in texts.items()]
    return {"links": links[:limit], "total": len(links)}


FETCH_WEBPAGE = Tool(
    name="fetch_webpage",
    category="crawler",
    description=(
        "Fetch a web page and return its title and main readable text (navigation, scripts "
        "and other page chrome removed), cut to max_chars. Plain text, JSON and XML are "
        "returned as they are; binary files (images, PDF, ...) are refused."),
    parameters={
        "type": "object",
        "properties": {
            "url": URL_PROPERTY,
            "max_chars": {"type": "integer", "minimum": 100, "maximum": 100000, "default": 20000,
                          "description": "Return at most this many characters of text"},
        },
        "required": ["url"],
    },
    handler=fetch_webpage,
    time_limit=fetch_and_parse_seconds,
)

EXTRACT_LINKS = Tool(
    name="extract_links",
    category="crawler",
    description=(
        "Fetch a web page and list its http(s) links as absolute URLs with their link text, "
        "in page order, without duplicates or #fragments."),
    parameters={
        "type": "object",
        "properties": {
            "url": URL_PROPERTY,
            "same_domain": {"type": "boolean", "default": False,
                            "description": "Only links to the page's own host (exact host match)"},
            "limit": {"type": "integer", "minimum": 1, "maximum": 500, "default": 100,
                      "description": "Return at most this many links"},
        },
        "required": ["url"],
    },
    handler=extract_links,
    time_limit=fetch_and_parse_seconds,
)


def search_web(arguments, context):
    return {"results": context.glm.web_search(arguments["query"], arguments["count"],
                                              timeout=context.config["WEB_SEARCH_TIMEOUT"])}


WEB_SEARCH = Tool(
    name="web_search", category="crawler",
    description="Search the web (Zhipu web search) and return results with title, url, "
                "snippet and publication date.",
    parameters={
        "type": "object",
        "properties": {
            "query": {"type": "string", "minLength": 1, "maxLength": 500,
                      "description": "What to search for"},
            "count": {"type": "integer", "minimum": 1, "maximum": 20, "default": 10,
                      "description": "How many results to return (1-20)"},
        },
        "required": ["query"],
    },
    handler=search_web, time_limit=itemgetter("WEB_SEARCH_TIMEOUT"))

TOOLS = [WEB_SEARCH, FETCH_WEBPAGE, EXTRACT_LINKS]
