"""Headers on every response that make a browser treat it as inert data (OWASP API8): never
sniffed into HTML, framed, sent as a referrer, run as a page or kept in a cache. The pages the
service serves, the API docs (chatapi/apidocs) and the web client (chatapi/web), set a
Content-Security-Policy and Cache-Control of their own; every other response gets
`default-src 'none'` and `no-store`. Applied to each answer's header list by
chatapi/http.RequestPlumbing."""

HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    "Content-Security-Policy": "default-src 'none'; frame-ancestors 'none'",
}
# Set whatever the view said; the others only where the view said nothing.
FORCED = tuple((name, value) for name, value in HEADERS.items()
               if name != "Content-Security-Policy")
FORCED_NAMES = frozenset(name.lower() for name, _value in FORCED)
DEFAULTS = (("Content-Security-Policy", HEADERS["Content-Security-Policy"]),
            # Answers carry one user's data. The event stream keeps its `Cache-Control:
            # no-cache` (docs/API.md §4), which already forbids serving it from a cache.
            ("Cache-Control", "no-store"))


def secured(headers):
    """A WSGI header list with the security headers in it (a new list)."""
    names = {name.lower() for name, _value in headers}
    kept = [(name, value) for name, value in headers if name.lower() not in FORCED_NAMES]
    kept.extend(FORCED)
    kept.extend((name, value) for name, value in DEFAULTS if name.lower() not in names)
    return kept
