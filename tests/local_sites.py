"""Real servers on loopback for the network tools' tests: a small web site with the awkward
pages a crawler meets, and a listener that only counts the connections it accepts."""
import socket
import socketserver
import threading
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

HUGE_BYTES = 20_000_000
CHUNK = b"<p>" + b"x" * 65_529 + b"</p>"

ARTICLE = b"""<!doctype html>
<html><head><title>  Local
  Article </title>
<style>.banner { color: red }</style><script>var secret = "script text";</script></head>
<body><header><h1>Site banner</h1></header>
<nav><a href="/">Home nav link</a></nav>
<main><article>
  <header><h2>Article heading</h2></header>
  <p>First   paragraph
     with <b>bold</b> words.</p>
  <p>Second paragraph.<br>Its second line.</p>
  <div hidden>Hidden div text</div>
  <p style="display: none">Invisible paragraph</p>
  <span aria-hidden="true">Decorative</span>
  <noscript>Enable JavaScript</noscript>
  <template><p>Template text</p></template>
  <svg><text>Vector text</text></svg>
  <form><label>Search form</label></form>
</article></main>
<aside>Aside text</aside>
<footer>Footer text</footer>
<script>document.write("late script")</script>
</body></html>"""

BODY_ONLY = b"""<html><head><title>No main</title></head><body>
<nav>Menu</nav><div>Body one</div><div>Body <i>two</i></div></body></html>"""

LINKS = b"""<html><head><title>Links</title><base href="/docs/"></head><body>
<a href="/about"></a>
<a href="page1.html">Page one</a>
<a href="page1.html#section">Page one again</a>
<a href="/about">About us</a>
<a href="  sub/page2.html ">  Page
   two </a>
<a href="#top">Top of page</a>
<a href="http://example.com/elsewhere">Elsewhere</a>
<a href="javascript:alert(1)">Script</a>
<a href="mailto:someone@example.com">Mail</a>
<a href="tel:+861234">Phone</a>
<a href="data:text/html,hi">Data</a>
<a href="ftp://files.example.com/f">FTP</a>
<a href="/logo"><img src="/logo.png" alt="Logo image"></a>
<a name="no-href">Anchor without href</a>
</body></html>"""

RELATIVE_LINKS = b"""<html><body><a href="child">Child</a><a href="../up">Up</a></body></html>"""


def page(content_type, body, status=200):
    def serve(handler):
        handler.send_response(status)
        handler.send_header("Content-Type", content_type)
        handler.send_header("Content-Length", str(len(body)))
        handler.end_headers()
        handler.wfile.write(body)
    return serve


def redirect(handler, location, status=302):
    handler.send_response(status)
    handler.send_header("Location", location)
    handler.send_header("Content-Length", "0")
    handler.end_headers()


def hops(handler):
    """/hops/<n> redirects n times, then serves the article."""
    left = int(handler.path.rsplit("/", 1)[1])
    if left == 0:
        page("text/html; charset=utf-8", ARTICLE)(handler)
    else:
        redirect(handler, f"/hops/{left - 1}")


def redirect_to_query(handler):
    redirect(handler, parse_qs(urlsplit(handler.path).query)["location"][0])


def huge(handler):
    handler.send_response(200)
    handler.send_header("Content-Type", "text/html")
    handler.send_header("Content-Length", str(HUGE_BYTES))
    handler.end_headers()
    sent = 0
    try:
        while sent < HUGE_BYTES:
            handler.wfile.write(CHUNK)
            sent += len(CHUNK)
    except OSError:
        pass
    handler.server.site.huge_bytes_sent = sent
    handler.server.site.huge_finished.set()


def forever(handler):
    """Headers, then a paragraph every 50 ms until the client goes away or the site stops."""
    handler.send_response(200)
    handler.send_header("Content-Type", "text/html")
    handler.end_headers()
    try:
        while not handler.server.site.stopping.wait(0.05):
            handler.wfile.write(b"<p>tick</p>\n")
            handler.wfile.flush()
    except OSError:
        pass


def silent(handler):
    handler.send_response(200)
    handler.send_header("Content-Type", "text/html")
    handler.end_headers()
    handler.wfile.flush()
    handler.server.site.stopping.wait()


def no_answer(handler):
    handler.server.site.stopping.wait()


ROUTES = {
    "/article": page("text/html; charset=utf-8", ARTICLE),
    "/body-only": page("text/html", BODY_ONLY),
    "/gbk": page("text/html; charset=GBK",
                 "<title>中文标题</title><p>你好，世界</p>".encode("gbk")),
    "/meta-charset": page("text/html", (
        '<html><head><meta http-equiv="Content-Type" content="text/html; charset=gb2312">'
        "</head><body><p>网页正文</p></body></html>").encode("gb2312")),
    "/header-beats-meta": page("text/html; charset=utf-8", (
        '<html><head><meta charset="gbk"></head><body><p>统一码</p></body></html>')
        .encode("utf-8")),
    "/undeclared": page("text/html", "<p>Crème brûlée</p>".encode("utf-8")),
    "/xhtml": page("application/xhtml+xml", (
        '<?xml version="1.0" encoding="utf-8"?><html xmlns="http://www.w3.org/1999/xhtml">'
        "<head><title>XHTML</title></head><body><p>Strict ünïcode</p></body></html>")
        .encode("utf-8")),
    "/notes.txt": page("text/plain; charset=utf-8", "Line one\n\n   indented  line\n".encode()),
    "/long.txt": page("text/plain", b"word " * 1000),
    "/data.json": page("application/json", b'{"answer": 42, "items": [1, 2]}'),
    "/feed.xml": page("application/rss+xml", b"<rss><channel><title>T</title></channel></rss>"),
    "/report.pdf": page("application/pdf", b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n1 0 obj\n"),
    "/photo.png": page("image/png", b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR"),
    "/blob": page("application/octet-stream", b"\x00\x01\x02\x03"),
    "/empty": page("text/html", b""),
    "/missing": page("text/html", b"<title>Not here</title><p>No such page</p>", status=404),
    "/error": page("text/html", b"<p>boom</p>", status=500),
    "/links": page("text/html", LINKS),
    "/nested/links": page("text/html", RELATIVE_LINKS),
    "/huge": huge,
    "/forever": forever,
    "/silent": silent,
    "/no-answer": no_answer,
    "/loop": lambda handler: redirect(handler, "/loop"),
    "/to": redirect_to_query,
}


class SiteHandler(BaseHTTPRequestHandler):
    def do_GET(self):
        route = ROUTES.get(urlsplit(self.path).path)
        if route is None and self.path.startswith("/hops/"):
            route = hops
        self.server.site.requests.append(self.path)
        (route or page("text/html", b"<p>not found</p>", status=404))(self)

    def log_message(self, format, *args):
        pass


class LocalSite:
    def __init__(self, server):
        self.server = server
        self.port = server.server_address[1]
        self.host = f"127.0.0.1:{self.port}"
        self.stopping = threading.Event()
        self.requests = []
        self.huge_bytes_sent = None
        self.huge_finished = threading.Event()

    def url(self, path):
        return f"http://{self.host}{path}"


def serving(server):
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05},
                              daemon=True)
    thread.start()
    return thread


@contextmanager
def local_site():
    server = ThreadingHTTPServer(("127.0.0.1", 0), SiteHandler)
    server.daemon_threads = True
    site = server.site = LocalSite(server)
    thread = serving(server)
    try:
        yield site
    finally:
        site.stopping.set()
        server.shutdown()
        server.server_close()
        thread.join()


class CountingHandler(socketserver.BaseRequestHandler):
    def handle(self):
        with self.server.lock:
            self.server.counter.connections += 1


class CountingServer(socketserver.ThreadingTCPServer):
    daemon_threads = True


class CountingServer6(CountingServer):
    address_family = socket.AF_INET6

    def server_bind(self):
        self.socket.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
        super().server_bind()


class Counter:
    def __init__(self, port):
        self.port = port
        self.connections = 0


def listeners_on_one_port():
    """A TCP server on 127.0.0.1:<port> and one on [::1]:<same port>."""
    for _attempt in range(20):
        v4 = CountingServer(("127.0.0.1", 0), CountingHandler)
        try:
            return [v4, CountingServer6(("::1", v4.server_address[1]), CountingHandler)]
        except OSError:
            v4.server_close()
    raise RuntimeError("no port free on both 127.0.0.1 and ::1")


@contextmanager
def counting_listener():
    """Accepts on 127.0.0.1:<port> and [::1]:<port>, counts each connection and closes it
    without a word."""
    servers = listeners_on_one_port()
    counter = Counter(servers[0].server_address[1])
    lock = threading.Lock()
    threads = []
    for server in servers:
        server.counter, server.lock = counter, lock
        threads.append(serving(server))
    try:
        yield counter
    finally:
        for server, thread in zip(servers, threads):
            server.shutdown()
            server.server_close()
            thread.join()
