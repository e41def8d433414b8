"""The network guard: refused addresses in every spelling cause zero connections; allowed
hosts are exempt exactly; redirects are re-checked; the body is capped; the clock is kept."""
import ipaddress
import time
from urllib.parse import parse_qs, quote, urlsplit

import pytest

from chatapi.errors import UpstreamError, UpstreamTimeout, ValidationFailed
from chatapi.tools import netguard


SPELLINGS = [
    "http://127.0.0.1:{port}/",
    "http://127.1:{port}/",
    "http://2130706433:{port}/",
    "http://0x7f000001:{port}/",
    "http://017700000001:{port}/",
    "http://0:{port}/",
    "http://0.0.0.0:{port}/",
    "http://[::1]:{port}/",
    "http://[::]:{port}/",
    "http://[::ffff:127.0.0.1]:{port}/",
    "http://[0:0:0:0:0:ffff:7f00:1]:{port}/",
    "http://[::127.0.0.1]:{port}/",
    "http://localhost:{port}/",
    "http://LocalHost:{port}/",
    "https://127.0.0.1:{port}/",
    "http://user:secret@127.0.0.1:{port}/",
]


def fetch_through_the_api(execute, url):
    return execute("fetch_webpage", {"url": url})


def assert_refused(response, listener):
    body = response.get_json()
    assert response.status_code == 422, body
    assert body["error"]["code"] == "validation_error"
    assert body["error"]["details"]["url"]
    assert listener.connections == 0


def test_counting_listener_counts_a_fetch_it_is_allowed_to_receive(execute, listener):
    response = execute("fetch_webpage", {"url": f"http://127.0.0.1:{listener.port}/"},
                       allowed=[f"127.0.0.1:{listener.port}"])
    assert response.status_code == 502
    assert listener.connections == 1


@pytest.mark.parametrize("spelling", SPELLINGS)
def test_loopback_in_any_spelling_is_refused_without_connecting(execute, listener, spelling):
    assert_refused(fetch_through_the_api(execute, spelling.format(port=listener.port)), listener)


@pytest.mark.parametrize("spelling", SPELLINGS[:3] + SPELLINGS[7:8])
def test_redirect_from_allowed_site_to_refused_address_is_refused_without_connecting(
        execute, site, listener, spelling):
    target = spelling.format(port=listener.port)
    response = fetch_through_the_api(execute, site.url(f"/to?location={quote(target, safe='')}"))
    assert_refused(response, listener)
    assert parse_qs(urlsplit(site.requests[-1]).query)["location"] == [target]


@pytest.mark.parametrize("url", [
    "file:///etc/passwd", "ftp://127.0.0.1:{port}/", "gopher://127.0.0.1:{port}/_GET",
    "dict://127.0.0.1:{port}/", "//127.0.0.1:{port}/", "127.0.0.1:{port}"])
def test_non_http_schemes_are_refused_without_connecting(execute, listener, url):
    assert_refused(fetch_through_the_api(execute, url.format(port=listener.port)), listener)


def test_redirect_to_a_non_http_scheme_is_refused(execute, site):
    response = fetch_through_the_api(execute, site.url("/to?location=file:///etc/passwd"))
    assert response.status_code == 422
    assert "file" in response.get_json()["error"]["details"]["url"][0]


def test_allowed_host_entry_with_port_does_not_exempt_other_ports(make_app, auth_headers,
                                                                  listener, site):
    app = make_app(FETCH_ALLOWED_HOSTS=[site.host, f"localhost:{listener.port}"])
    response = app.test_client().post(
        "/api/tools/fetch_webpage/execute", json={"url": f"http://127.0.0.1:{listener.port}/"},
        headers=auth_headers)
    assert_refused(response, listener)


def test_refusal_message_is_chinese_by_default_and_english_on_request(make_app, auth_headers,
                                                                      listener):
    client = make_app().test_client()
    arguments = {"url": f"http://127.0.0.1:{listener.port}/"}
    chinese = client.post("/api/tools/fetch_webpage/execute", json=arguments,
                          headers=auth_headers)
    english = client.post("/api/tools/fetch_webpage/execute", json=arguments,
                          headers={**auth_headers, "Accept-Language": "en"})
    assert chinese.get_json()["message"] == "该网址指向不允许访问的地址"
    assert english.get_json()["message"] == "The URL points to an address that may not be fetched"
    assert "loopback" in english.get_json()["error"]["details"]["url"][0]
    assert listener.connections == 0


@pytest.mark.parametrize("address, reason", [
    ("127.0.0.1", "loopback"), ("10.1.2.3", "private"), ("172.16.0.1", "private"),
    ("192.168.1.1", "private"), ("169.254.169.254", "link-local"),
    ("100.64.0.1", "special-purpose"), ("224.0.0.1", "multicast"), ("240.0.0.1", "reserved"),
    ("0.0.0.0", "unspecified"), ("255.255.255.255", "reserved"),
    ("192.0.0.8", "special-purpose"), ("198.18.0.1", "private"), ("::1", "loopback"),
    ("::", "unspecified"), ("fe80::1", "link-local"), ("fc00::1", "private"),
    ("ff02::1", "multicast"), ("::7f00:1", "reserved"), ("2002:7f00:1::", "special-purpose"),
    ("64:ff9b::7f00:1", "reserved"), ("2001:db8::1", "private")])
def test_non_public_addresses_have_a_refusal_reason(address, reason):
    assert netguard.refusal_reason(ipaddress.ip_address(address)) == f"{reason} address"


@pytest.mark.parametrize("address", ["93.184.215.14", "1.1.1.1", "2606:4700:4700::1111"])
def test_public_addresses_have_no_refusal_reason(address):
    assert netguard.refusal_reason(ipaddress.ip_address(address)) is None


@pytest.mark.parametrize("url, allowed, expected", [
    ("http://127.0.0.1:8080/x", ["127.0.0.1:8080"], True),
    ("http://127.0.0.1:8081/x", ["127.0.0.1:8080"], False),
    ("http://127.1:8080/x", ["127.0.0.1:8080"], False),
    ("http://LOCALHOST:9000/", ["localhost"], True),
    ("https://example.test/", ["example.test:443"], True),
    ("http://example.test/", ["example.test:443"], False),
    ("http://[::1]:8080/", ["[::1]:8080"], True),
    ("http://127.0.0.1:8080/", [], False)])
def test_allowed_hosts_exempt_exactly_their_host_and_port(url, allowed, expected):
    assert netguard.is_allowed(url, allowed) is expected


def fetch(site, path, **options):
    settings = {"max_bytes": 5_000_000, "timeout": 5.0, **options}
    return netguard.fetch(site.url(path), config={"FETCH_ALLOWED_HOSTS": [site.host]},
                          **settings)


def test_fetch_follows_five_redirects_and_reports_the_final_url(site):
    result = fetch(site, "/hops/5")
    assert (result.status, result.url) == (200, site.url("/hops/0"))
    assert result.content_type == "text/html" and result.charset == "utf-8"


def test_fetch_gives_up_after_five_redirects(site):
    with pytest.raises(UpstreamError) as raised:
        fetch(site, "/hops/6")
    assert raised.value.text_key == "too_many_redirects"


def test_fetch_stops_reading_at_the_byte_cap(site):
    result = fetch(site, "/huge", max_bytes=100_000)
    assert len(result.body) == 100_000 and result.truncated


def test_fetch_of_a_body_exactly_at_the_cap_is_not_truncated(site):
    whole = fetch(site, "/data.json").body
    result = fetch(site, "/data.json", max_bytes=len(whole))
    assert result.body == whole and not result.truncated


def test_fetch_of_a_trickling_body_ends_at_the_deadline(site):
    started = time.perf_counter()
    with pytest.raises(UpstreamTimeout):
        fetch(site, "/forever", timeout=0.5)
    # /forever never ends: anything under 10 s is the deadline at work, on a loaded machine too.
    assert time.perf_counter() - started < 10


def test_fetch_can_refuse_a_content_type_before_reading_the_body(site):
    def refuse_pdf(content_type):
        if content_type == "application/pdf":
            raise ValidationFailed(details={"url": ["pdf"]})
    with pytest.raises(ValidationFailed):
        fetch(site, "/report.pdf", accept=refuse_pdf)


def test_a_trusted_base_url_exempts_its_own_host_and_port(site):
    result = netguard.fetch(site.url("/notes.txt"), config={}, max_bytes=1000, timeout=5,
                            trusted=(site.url("/v1"),))
    assert result.body.startswith(b"Line one")


def test_a_trusted_base_url_exempts_no_redirect_elsewhere(site, listener):
    target = f"http://127.0.0.1:{listener.port}/"
    with pytest.raises(ValidationFailed) as raised:
        netguard.fetch(site.url(f"/to?location={quote(target, safe='')}"), config={},
                       max_bytes=1000, timeout=5, trusted=(site.url("/v1"),))
    assert raised.value.text_key == "url_refused"
    assert listener.connections == 0


def test_guarded_fetch_without_allowed_hosts_refuses_loopback(site):
    with pytest.raises(ValidationFailed):
        netguard.fetch(site.url("/notes.txt"), config={}, max_bytes=1000, timeout=5)
