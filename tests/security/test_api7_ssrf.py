"""OWASP API7:2023 Server Side Request Forgery, through the HTTP API.

`POST /api/tools/fetch_webpage/execute` and `.../extract_links/execute` must refuse, with the
422 envelope and `details.url`, every URL that reaches a non-public address — loopback in any
spelling, private ranges, link-local and the cloud metadata services, IPv6 unique-local and
IPv4-mapped forms, the unspecified address — and any scheme but http(s), including when an
allowed site redirects there; and FETCH_ALLOWED_HOSTS exempts exactly what it names. The
refusal comes before any connection: a counting listener on loopback sees none, and the
`connections` guard (conftest.py) records every socket connect of the process and refuses,
and fails the test on, any outside 127.0.0.0/8 and ::1 — nothing here leaves the host.
The network guard itself (each address class, the pinning of the checked address, byte and
time caps) is unit-tested in tests/test_netguard.py; the model choosing such a URL is in the
API10 file."""
from urllib.parse import quote

import pytest

from .conftest import assert_error

TOOLS = ["fetch_webpage", "extract_links"]
LOOPBACK = [
    "http://127.0.0.1:{port}/", "http://127.0.0.2:{port}/", "http://localhost:{port}/",
    "http://LOCALHOST:{port}/", "http://[::1]:{port}/", "http://[::ffff:127.0.0.1]:{port}/",
    "http://[::ffff:7f00:1]:{port}/", "http://2130706433:{port}/", "http://0x7f.1:{port}/",
    "http://0x7f000001:{port}/", "http://0177.0.0.1:{port}/", "http://127.1:{port}/",
    "http://0.0.0.0:{port}/", "http://0:{port}/", "http://[::]:{port}/",
    "https://127.0.0.1:{port}/", "http://trusted.example@127.0.0.1:{port}/",
    "http://127.0.0.1:{port}#@trusted.example/", "http://127.0.0.1:{port}/?@trusted.example",
]
NON_PUBLIC = [
    "http://10.0.0.1/", "http://10.255.255.254:8080/", "http://172.16.0.1/",
    "http://172.31.255.254/", "http://192.168.0.1/", "http://192.168.255.254:8443/",
    "http://169.254.169.254/latest/meta-data/iam/security-credentials/",
    "http://0xa9fea9fe/latest/meta-data/", "http://2852039166/latest/meta-data/",
    "http://0251.0376.0251.0376/latest/meta-data/", "http://[::ffff:169.254.169.254]/",
    "http://[fd00:ec2::254]/latest/meta-data/", "http://100.100.100.200/latest/meta-data/",
    "http://[fc00::1]/", "http://[fdff:ffff:ffff::1]/", "http://[fe80::1]/",
    "http://[::ffff:10.0.0.1]/", "http://[::ffff:192.168.0.1]/", "http://[64:ff9b::a9fe:a9fe]/",
    "http://[2002:a9fe:a9fe::]/", "http://224.0.0.1/", "http://255.255.255.255/",
]
SCHEMES = [
    "file:///etc/passwd", "FILE:///etc/passwd", "gopher://127.0.0.1:{port}/_GET%20/",
    "ftp://127.0.0.1:{port}/", "dict://127.0.0.1:{port}/info", "ldap://127.0.0.1:{port}/",
    "jar:http://127.0.0.1:{port}/!/", "data:text/html,<a href=/x>x</a>", "//127.0.0.1:{port}/",
    "127.0.0.1:{port}/",
]
REDIRECT_TARGETS = [
    "http://169.254.169.254/latest/meta-data/", "http://127.0.0.1:{port}/",
    "http://[::1]:{port}/", "http://localhost:{port}/", "http://10.0.0.1/",
    "http://[::ffff:127.0.0.1]:{port}/", "file:///etc/passwd", "gopher://127.0.0.1:{port}/_x",
]


def problems_refusing(execute, tool, urls, listener, connections):
    """url -> what went wrong, for each URL that is not refused with 422 `details.url` before
    any connection to the listener or outside loopback."""
    problems = {}
    for url in urls:
        accepted = listener.connections
        response = execute(tool, {"url": url})
        body = response.get_json() or {}
        details = body.get("error", {}).get("details", {})
        reached = listener.connections - accepted
        if response.status_code != 422 or not details.get("url") or reached:
            problems[url] = (response.status_code, body, f"{reached} connection(s)")
    tried = [address for address in connections.loopback if address[1] == listener.port]
    if tried or connections.refused:
        problems["connect() calls"] = tried + connections.refused
    return problems


def test_the_listener_and_the_guard_see_a_connection_that_is_allowed(execute, listener,
                                                                     connections):
    """The control: when the listener's host is allowed, the same request does reach it."""
    accepted = listener.connections
    url = f"http://127.0.0.1:{listener.port}/"
    response = execute("fetch_webpage", {"url": url}, allowed=[f"127.0.0.1:{listener.port}"])
    assert_error(response, 502, "upstream_error")
    assert listener.connections == accepted + 1
    assert ("127.0.0.1", listener.port) in connections.loopback
    assert problems_refusing(execute, "fetch_webpage", [url], listener, connections)


@pytest.mark.parametrize("tool", TOOLS)
def test_loopback_in_any_spelling_is_refused_before_connecting(execute, listener, connections,
                                                               tool):
    urls = [url.format(port=listener.port) for url in LOOPBACK]
    assert problems_refusing(execute, tool, urls, listener, connections) == {}


@pytest.mark.parametrize("tool", TOOLS)
def test_private_link_local_metadata_and_reserved_addresses_are_refused_before_connecting(
        execute, listener, connections, tool):
    assert problems_refusing(execute, tool, NON_PUBLIC, listener, connections) == {}


@pytest.mark.parametrize("tool", TOOLS)
def test_schemes_other_than_http_are_refused(execute, listener, connections, tool):
    urls = [url.format(port=listener.port) for url in SCHEMES]
    assert problems_refusing(execute, tool, urls, listener, connections) == {}


@pytest.mark.parametrize("tool", TOOLS)
def test_an_allowed_site_redirecting_to_a_refused_url_is_refused_before_connecting(
        execute, site, listener, connections, tool):
    targets = [target.format(port=listener.port) for target in REDIRECT_TARGETS]
    hops_before = len(site.requests)
    urls = [site.url(f"/to?location={quote(target, safe='')}") for target in targets]
    assert problems_refusing(execute, tool, urls, listener, connections) == {}
    assert site.requests[hops_before:] == [url.removeprefix(f"http://{site.host}")
                                           for url in urls]


def test_an_allowed_site_redirecting_to_itself_is_followed(execute, site, connections):
    """The control for the redirect refusals: redirects as such are followed."""
    response = execute("fetch_webpage", {"url": site.url("/hops/2")})
    assert response.status_code == 200, response.get_json()
    assert response.get_json()["data"]["result"]["url"] == site.url("/hops/0")


def test_fetch_allowed_hosts_exempts_exactly_the_host_and_port_it_names(
        execute, site, listener, connections):
    hops_before = len(site.requests)
    urls = [spelling.format(site=site.port, listener=listener.port) for spelling in [
        "http://127.1:{site}/article", "http://localhost:{site}/article",
        "http://[::ffff:127.0.0.1]:{site}/article", "http://2130706433:{site}/article",
        "http://127.0.0.1:{listener}/"]]
    assert problems_refusing(execute, "fetch_webpage", urls, listener, connections) == {}
    assert len(site.requests) == hops_before
    allowed = execute("fetch_webpage", {"url": site.url("/article")})
    assert allowed.status_code == 200, allowed.get_json()
