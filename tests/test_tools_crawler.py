"""fetch_webpage and extract_links through POST /api/tools/<name>/execute, against a real
local site on 127.0.0.1."""
import time

import pytest

from .local_sites import HUGE_BYTES, local_site


def result_of(response):
    body = response.get_json()
    assert response.status_code == 200, body
    return body["data"]["result"]


def test_fetch_webpage_returns_the_main_text_without_page_chrome(execute, site):
    result = result_of(execute("fetch_webpage", {"url": site.url("/article")}))
    assert result == {
        "url": site.url("/article"), "status": 200, "content_type": "text/html",
        "title": "Local Article",
        "text": "Article heading\n\nFirst paragraph with bold words.\n\n"
                "Second paragraph.\nIts second line.",
        "truncated": False}


def test_fetch_webpage_without_main_reads_the_body(execute, site):
    result = result_of(execute("fetch_webpage", {"url": site.url("/body-only")}))
    assert (result["title"], result["text"]) == ("No main", "Body one\n\nBody two")


@pytest.mark.parametrize("path, title, text", [
    ("/gbk", "中文标题", "你好，世界"),
    ("/meta-charset", None, "网页正文"),
    ("/header-beats-meta", None, "统一码"),
    ("/undeclared", None, "Crème brûlée"),
    ("/xhtml", "XHTML", "Strict ünïcode")])
def test_fetch_webpage_decodes_by_the_declared_charset(execute, site, path, title, text):
    result = result_of(execute("fetch_webpage", {"url": site.url(path)}))
    assert (result["title"], result["text"]) == (title, text)


@pytest.mark.parametrize("path, content_type, text", [
    ("/notes.txt", "text/plain", "Line one\n\n   indented  line\n"),
    ("/data.json", "application/json", '{"answer": 42, "items": [1, 2]}'),
    ("/feed.xml", "application/rss+xml", "<rss><channel><title>T</title></channel></rss>")])
def test_fetch_webpage_passes_text_json_and_xml_through(execute, site, path, content_type,
                                                        text):
    result = result_of(execute("fetch_webpage", {"url": site.url(path)}))
    assert (result["content_type"], result["text"], result["title"]) == (content_type, text, None)


@pytest.mark.parametrize("path, content_type", [
    ("/report.pdf", "application/pdf"), ("/photo.png", "image/png"),
    ("/blob", "application/octet-stream")])
def test_fetch_webpage_refuses_binary_content(execute, site, path, content_type):
    response = execute("fetch_webpage", {"url": site.url(path)})
    body = response.get_json()
    assert response.status_code == 422
    assert body["message"] == "该网址返回的是二进制内容，无法作为文本读取"
    assert content_type in body["error"]["details"]["url"][0]


def test_fetch_webpage_of_an_empty_page_gives_empty_text(execute, site):
    result = result_of(execute("fetch_webpage", {"url": site.url("/empty")}))
    assert (result["title"], result["text"], result["truncated"]) == (None, "", False)


def test_fetch_webpage_cuts_the_text_at_max_chars(execute, site):
    cut = result_of(execute("fetch_webpage", {"url": site.url("/long.txt"), "max_chars": 100}))
    whole = result_of(execute("fetch_webpage", {"url": site.url("/long.txt")}))
    assert (cut["text"], cut["truncated"]) == ("word " * 20, True)
    assert (whole["text"], whole["truncated"]) == ("word " * 1000, False)


def test_fetch_webpage_follows_a_redirect_chain_to_the_final_url(execute, site):
    result = result_of(execute("fetch_webpage", {"url": site.url("/hops/3")}))
    assert (result["url"], result["title"]) == (site.url("/hops/0"), "Local Article")


@pytest.mark.parametrize("path", ["/hops/6", "/loop"])
def test_fetch_webpage_gives_up_after_five_redirects_with_502(execute, site, path):
    response = execute("fetch_webpage", {"url": site.url(path)})
    assert response.status_code == 502
    assert response.get_json()["error"]["code"] == "upstream_error"
    assert response.get_json()["message"] == "重定向次数过多"


def test_fetch_webpage_caps_a_20_mb_page_at_fetch_max_bytes(execute, site):
    result = result_of(execute("fetch_webpage", {"url": site.url("/huge")}))
    assert result["truncated"] and len(result["text"]) == 20000
    assert site.huge_finished.wait(5)
    assert site.huge_bytes_sent < HUGE_BYTES


def test_fetch_webpage_reports_truncation_at_a_small_byte_cap(execute, site):
    result = result_of(execute("fetch_webpage", {"url": site.url("/notes.txt")},
                               FETCH_MAX_BYTES=8))
    assert (result["text"], result["truncated"]) == ("Line one", True)


@pytest.mark.parametrize("path", ["/forever", "/silent", "/no-answer"])
def test_fetch_webpage_that_never_finishes_ends_with_504_within_the_timeout(execute, site,
                                                                            path):
    started = time.perf_counter()
    response = execute("fetch_webpage", {"url": site.url(path)}, FETCH_TIMEOUT=1.0)
    elapsed = time.perf_counter() - started
    assert response.status_code == 504
    assert response.get_json()["error"]["code"] == "upstream_timeout"
    # Not much past it: the bound is wide enough for a loaded machine, far short of a hang.
    assert 1.0 <= elapsed < 10.0


def test_fetch_webpage_upstream_500_is_502(execute, site):
    response = execute("fetch_webpage", {"url": site.url("/error")})
    assert response.status_code == 502
    assert response.get_json()["error"]["details"] == {"status": 500}


def test_fetch_webpage_passes_a_404_page_through_with_its_status(execute, site):
    result = result_of(execute("fetch_webpage", {"url": site.url("/missing")}))
    assert (result["status"], result["title"], result["text"]) == (404, "Not here", "No such page")


def test_fetch_webpage_connection_refused_is_502(execute):
    with local_site() as stopped:
        closed_port = stopped.port
    response = execute("fetch_webpage", {"url": f"http://127.0.0.1:{closed_port}/"},
                       allowed=[f"127.0.0.1:{closed_port}"])
    assert response.status_code == 502


@pytest.mark.parametrize("arguments, field", [
    ({}, "url"),
    ({"url": "ftp://example.test/file"}, "url"),
    ({"url": "example.test/page"}, "url"),
    ({"url": "http://example.test/" + "a" * 2048}, "url"),
    ({"url": "http://example.test/", "max_chars": 99}, "max_chars"),
    ({"url": "http://example.test/", "max_chars": 100001}, "max_chars"),
    ({"url": "http://example.test/", "max_chars": "many"}, "max_chars")])
def test_fetch_webpage_rejects_bad_arguments_with_422(execute, arguments, field):
    response = execute("fetch_webpage", arguments)
    assert response.status_code == 422
    assert field in response.get_json()["error"]["details"]


def test_extract_links_resolves_dedups_and_keeps_only_http_links(execute, site):
    result = result_of(execute("extract_links", {"url": site.url("/links")}))
    assert result == {"url": site.url("/links"), "total": 6, "links": [
        {"url": site.url("/about"), "text": "About us"},
        {"url": site.url("/docs/page1.html"), "text": "Page one"},
        {"url": site.url("/docs/sub/page2.html"), "text": "Page two"},
        {"url": site.url("/docs/"), "text": "Top of page"},
        {"url": "http://example.com/elsewhere", "text": "Elsewhere"},
        {"url": site.url("/logo"), "text": "Logo image"}]}


def test_extract_links_same_domain_keeps_only_the_pages_own_host(execute, site):
    result = result_of(execute("extract_links", {"url": site.url("/links"),
                                                 "same_domain": True}))
    assert result["total"] == 5
    assert all(link["url"].startswith(site.url("/")) for link in result["links"])


def test_extract_links_limit_cuts_the_list_but_not_the_total(execute, site):
    result = result_of(execute("extract_links", {"url": site.url("/links"), "limit": 2}))
    assert [link["text"] for link in result["links"]] == ["About us", "Page one"]
    assert result["total"] == 6


def test_extract_links_resolves_against_the_final_url_after_redirects(execute, site):
    result = result_of(execute("extract_links",
                               {"url": site.url("/to?location=/nested/links")}))
    assert result["url"] == site.url("/nested/links")
    assert [link["url"] for link in result["links"]] == [site.url("/nested/child"),
                                                         site.url("/up")]


def test_extract_links_of_a_non_html_page_is_empty(execute, site):
    result = result_of(execute("extract_links", {"url": site.url("/data.json")}))
    assert (result["links"], result["total"]) == ([], 0)


@pytest.mark.parametrize("arguments, field", [
    ({"url": "http://example.test/", "limit": 0}, "limit"),
    ({"url": "http://example.test/", "limit": 501}, "limit"),
    ({"url": "http://example.test/", "same_domain": "yes"}, "same_domain"),
    ({"url": "javascript:alert(1)"}, "url")])
def test_extract_links_rejects_bad_arguments_with_422(execute, arguments, field):
    response = execute("extract_links", arguments)
    assert response.status_code == 422
    assert field in response.get_json()["error"]["details"]


def test_crawler_tools_are_listed_with_their_schemas(execute, make_app, auth_headers):
    response = make_app().test_client().get("/api/tools/?category=crawler",
                                            headers=auth_headers)
    tools = {tool["name"]: tool for tool in response.get_json()["data"]["tools"]}
    assert {"fetch_webpage", "extract_links"} <= set(tools)
    assert tools["fetch_webpage"]["parameters"]["required"] == ["url"]
    assert all(spec.get("description")
               for tool in ("fetch_webpage", "extract_links")
               for spec in tools[tool]["parameters"]["properties"].values())
