"""Headers on every response that make a browser treat it as inert data (OWASP API8): never
sniffed into HTML, framed, sent as a referrer, run as a page or kept in a cache. The pages the
service serves, the API docs (chatapi/apidocs) and the web client (chatapi/web), set a
Content-Security-Policy and Cache-Control of their own; every other response gets
`default-src 'none'` and `no-store`."""

HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    "Content-Security-Policy": "default-src 'none'; frame-ancestors 'none'",
}


def add_security_headers(response):
    policy = response.headers.get("Content-Security-Policy")
    response.headers.update(HEADERS)
    if policy:
        response.headers["Content-Security-Policy"] = policy
    # Answers carry one user's data. The event stream keeps its `Cache-Control: no-cache`
    # (docs/API.md §4), which already forbids serving it from a cache.
    response.headers.setdefault("Cache-Control", "no-store")
    return response


def init_app(app):
    app.after_request(add_security_headers)
