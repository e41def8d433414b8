"""A page reloaded in the middle of an answer shows the whole answer: a web client written as
web clients are (tests/browser/reattach.js, on @microsoft/fetch-event-source) keeps the
answer's id and the last event id it received, and after the reload attaches again with
Last-Event-ID. Real Chromium, gunicorn with two gevent workers, the GLM simulator."""
import re
from pathlib import Path
from urllib.parse import quote

import pytest
import requests

from .chromium import chromium, needs_chromium, new_page
from .conftest import PASSWORD, gunicorn_env
from .servers import gunicorn

pytestmark = [pytest.mark.slow, needs_chromium]

CLIENT = Path(__file__).parent / "browser"
TYPES = {".html": "text/html", ".js": "text/javascript"}


def serve_client(route):
    """The test client's files, as if the service's origin served them (no CORS involved)."""
    name = route.request.url.split("/client/", 1)[1].split("#")[0]
    path = (CLIENT / name).resolve()
    if path.suffix not in TYPES:
        path = path.with_name(path.name + ".js")
    if CLIENT not in path.parents or not path.is_file():
        return route.fulfill(status=404, body="")
    return route.fulfill(status=200, body=path.read_bytes(),
                         headers={"Content-Type": TYPES[path.suffix]})


def test_a_page_reloaded_mid_answer_shows_the_whole_answer(app, user, database_url,
                                                           glm_simulator, tmp_path):
    glm_simulator.reset()
    env = gunicorn_env(database_url, glm_simulator)
    with gunicorn(env, workers=2, log_path=tmp_path / "gunicorn.log") as base:
        token = requests.post(f"{base}/api/auth/login", timeout=10, json={
            "username": "alice", "password": PASSWORD}).json()["data"]["access_token"]
        headers = {"Authorization": f"Bearer {token}"}
        conversation_id = requests.post(f"{base}/api/conversations/", json={},
                                        headers=headers, timeout=10).json()["data"]["id"]
        content = "[[chunks:40]][[delay:150]]"
        page_errors = []
        with chromium() as (_playwright, browser, expect):
            page = new_page(browser)
            page.route(re.compile(re.escape(base) + r"/client/.*"), serve_client)
            page.on("pageerror", lambda error: page_errors.append(str(error)))
            page.goto(f"{base}/client/reattach.html#token={token}"
                      f"&conversation={conversation_id}&content={quote(content)}")
            expect(page.locator("#state")).to_have_text(re.compile(r"^streaming ([5-9]|\d\d)"))
            before = page.locator("#answer").text_content()
            page.reload()
            expect(page.locator("#state")).to_have_text("done")
            shown = page.locator("#answer").text_content()
            seen = page.evaluate("JSON.parse(sessionStorage.getItem('seen'))")
            answer_id = page.evaluate("JSON.parse(sessionStorage.getItem('answer')).id")

        stored = requests.get(f"{base}/api/messages/{conversation_id}", headers=headers,
                              timeout=10).json()["data"]["items"]
    assert page_errors == []
    # One question, one answer: the reload attached again, it did not send again.
    assert [message["role"] for message in stored] == ["user", "assistant"]
    assert len(glm_simulator.requests()) == 1
    answer = stored[1]
    assert (answer["id"], answer["status"]) == (answer_id, "completed")
    assert before and shown.startswith(before)
    assert shown == answer["content"]
    # Every event once, in order, across the reload: start, 40 texts, done.
    assert seen == list(range(1, 43))
