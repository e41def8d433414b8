"""The interactive docs at /api/docs: Swagger UI on the service's own OpenAPI document, served
from the installed flask-swagger-ui files (no CDN), under a Content-Security-Policy of its own
that allows no inline script; every other answer keeps `default-src 'none'`. The last test
drives the page in a real Chromium against gunicorn and the GLM simulator."""
import os
import re
import time

import pytest
import requests

from chatapi.apidocs import POLICY, SWAGGER_VERSION
from chatapi.security_headers import HEADERS

from .chromium import chromium, needs_chromium, new_page
from .conftest import PASSWORD, gunicorn_env
from .servers import gunicorn

ASSETS = f"/api/docs/assets/swagger-ui-{SWAGGER_VERSION}"
DEFAULT_POLICY = HEADERS["Content-Security-Policy"]


def referenced_urls(html):
    return re.findall(r'(?:src|href)="([^"]+)"', html)


def test_the_docs_page_has_its_own_policy_and_no_inline_script(client):
    response = client.get("/api/docs")
    assert response.status_code == 200
    assert response.mimetype == "text/html"
    policy = response.headers["Content-Security-Policy"]
    assert policy == POLICY
    directives = dict(part.strip().split(" ", 1) for part in policy.split(";"))
    assert directives["default-src"] == "'none'"
    assert directives["script-src"] == "'self'"
    assert directives["style-src"] == "'self'"
    assert directives["connect-src"] == "'self'"
    assert directives["frame-ancestors"] == "'none'"
    assert "unsafe-inline" not in policy and "unsafe-eval" not in policy
    html = response.get_data(as_text=True)
    assert re.findall(r"<script(?![^>]*\bsrc=)[^>]*>", html) == []
    assert 'data-openapi-url="/api/openapi.json"' in html
    assert response.headers["X-Frame-Options"] == "DENY"
    assert response.headers["X-Content-Type-Options"] == "nosniff"


def test_every_file_the_page_loads_is_served_here_with_its_type_and_caching(client):
    html = client.get("/api/docs").get_data(as_text=True)
    urls = referenced_urls(html)
    assert all(url.startswith("/api/docs/assets/") for url in urls), urls
    types = {".js": "text/javascript", ".css": "text/css", ".png": "image/png"}
    for url in urls:
        response = client.get(url)
        assert response.status_code == 200, url
        assert response.mimetype == types[os.path.splitext(url)[1]], url
        assert response.headers["Content-Security-Policy"] == POLICY
        assert response.headers["X-Content-Type-Options"] == "nosniff"
        assert response.headers["ETag"]
        if url.startswith(ASSETS):
            assert response.headers["Cache-Control"] == "public, max-age=31536000, immutable"
        else:
            assert response.headers["Cache-Control"] == "no-cache", url
        revalidated = client.get(url, headers={"If-None-Match": response.headers["ETag"]})
        assert revalidated.status_code == 304, url
    assert {url.rsplit("/", 1)[1] for url in urls} >= {
        "swagger-ui-bundle.js", "swagger-ui.css", "api-docs.js"}


def test_the_swagger_ui_files_are_the_installed_version(client):
    bundle = client.get(f"{ASSETS}/swagger-ui-bundle.js")
    assert bundle.status_code == 200 and len(bundle.data) > 500_000
    assert client.get("/api/docs/assets/swagger-ui-0.0.1/swagger-ui-bundle.js").status_code == 404


def test_other_answers_keep_default_src_none(client, auth_headers):
    answers = [client.get("/api/health"), client.get("/api/openapi.json"),
               client.get("/api/conversations/", headers=auth_headers),
               client.get("/api/conversations/"), client.get(f"{ASSETS}/no-such-file.js"),
               client.get("/api/docsx")]
    for response in answers:
        assert response.headers["Content-Security-Policy"] == DEFAULT_POLICY, response.request.path
        assert response.headers["Cache-Control"] == "no-store"


def test_the_document_declares_the_bearer_scheme_the_authorize_button_uses(client):
    document = client.get("/api/openapi.json").get_json()
    assert document["components"]["securitySchemes"]["bearerAuth"] == {
        "type": "http", "scheme": "bearer", "bearerFormat": "JWT"}


@pytest.fixture
def served_with_simulator(app, database_url, glm_simulator, tmp_path):
    """gunicorn (one gevent worker) on the session database, its model the GLM simulator."""
    glm_simulator.reset()
    env = gunicorn_env(database_url, glm_simulator)
    with gunicorn(env, workers=1, log_path=tmp_path / "gunicorn.log") as base:
        yield base


@pytest.mark.slow
@needs_chromium
def test_swagger_ui_in_chromium_authorizes_and_executes_a_call(served_with_simulator, user):
    base = served_with_simulator
    login = requests.post(f"{base}/api/auth/login", timeout=10,
                          json={"username": "alice", "password": PASSWORD})
    token = login.json()["data"]["access_token"]
    created = requests.post(f"{base}/api/conversations/", json={"title": "From the docs test"},
                            headers={"Authorization": f"Bearer {token}"}, timeout=10)
    assert created.status_code == 201

    console, page_errors, elsewhere = [], [], []
    started = time.monotonic()
    with chromium() as (_playwright, browser, expect):
        page = new_page(browser)
        # Nothing may come from anywhere but the service: the page must work offline.
        page.route(re.compile(r"^(?!" + re.escape(base) + r"/)"),
                   lambda route: (elsewhere.append(route.request.url), route.abort()))
        page.on("console", lambda message: console.append((message.type, message.text)))
        page.on("pageerror", lambda error: page_errors.append(str(error)))

        page.goto(f"{base}/api/docs")
        for tag in ("auth", "conversations", "messages", "tools"):
            expect(page.locator(f'.opblock-tag[data-tag="{tag}"]')).to_be_visible()
        operation = page.locator(
            '.opblock-get:has(.opblock-summary-path[data-path="/api/conversations/"])')
        expect(operation).to_have_count(1)
        loaded = time.monotonic() - started

        page.locator("button.authorize").first.click()
        dialog = page.locator(".dialog-ux .modal-ux")
        dialog.locator("input").fill(token)
        dialog.locator("button.authorize").click()
        expect(dialog.locator("button.authorize")).to_have_count(0)  # now "Logout"
        dialog.locator("button.btn-done").click()

        operation.locator(".opblock-summary-control").click()
        operation.locator("button.try-out__btn").click()
        operation.locator("button.execute").click()
        live = operation.locator(".live-responses-table .response")
        expect(live.locator(".response-col_status")).to_have_text(re.compile(r"^\s*200"))
        expect(live.locator(".response-col_description")).to_contain_text(
            "From the docs test")
        curl = operation.locator(".curl-command").inner_text()
        assert f"Authorization: Bearer {token}" in curl
    print(f"\ndocs page rendered in {loaded:.1f}s, whole browser run "
          f"{time.monotonic() - started:.1f}s")
    assert page_errors == []
    assert elsewhere == []
    violations = [text for kind, text in console
                  if "Content Security Policy" in text or "Refused to" in text]
    assert violations == []
    assert [text for kind, text in console if kind == "error"] == []
