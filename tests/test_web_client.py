"""The reference web client at `/` (chatapi/web), driven in real Chromium against gunicorn with
one gevent worker and the GLM simulator: a scripted session that does what a person does —
register, log in, chat with streaming, thinking and tools, stop, regenerate, edit, switch
branches, reload mid-answer, rename, pin, archive, delete, search, the account page, a quota
spent, a password changed, a phone-sized window, logout — and checks what the page shows
against what the API stored. Text from the model that looks like HTML or script is shown as
text and never runs. The screenshots of the main views are taken here: into the test's
temporary folder, or into WEB_CLIENT_SCREENSHOTS (`make screenshots`: docs/screenshots/)."""
import hashlib
import json
import os
import re
from pathlib import Path

import pytest
import requests

from chatapi.web import POLICY

from .chromium import chromium, needs_chromium, new_page
from .conftest import PASSWORD as CONFTEST_PASSWORD, gunicorn_env
from .servers import PROJECT, gunicorn

pytestmark = [pytest.mark.slow, needs_chromium]

PASSWORD = "correct horse battery"
NEW_PASSWORD = "staple battery horse"
DESKTOP = {"width": 1280, "height": 860}
PHONE = {"width": 390, "height": 844}
CHAT_QUESTION = ('Show me code and compute 6*7. [[think:3]][[reply:Here is **Python**:\n\n'
                 '```python\nprint(6 * 7)\n```\n\nand the calculator says: ]]'
                 '[[tool:calculator {"expression": "6*7"}]]')
HOSTILE_REPLY = ('<img src=x onerror="window.__ran=1"> <script>window.__ran=2</script> '
                 '[click me](javascript:window.__ran=3) <a href="javascript:window.__ran=4">a</a>')


class Api:
    """The API as the test sees it, beside the page: what was stored."""

    def __init__(self, base, username, password):
        self.base = base
        self.login(username, password)

    def login(self, username, password):
        self.credentials = {"username": username, "password": password}
        answer = requests.post(f"{self.base}/api/auth/login", timeout=10,
                               json={"username": username, "password": password})
        assert answer.status_code == 200, answer.text
        self.headers = {"Authorization": f"Bearer {answer.json()['data']['access_token']}"}

    def get(self, path):
        answer = requests.get(f"{self.base}{path}", headers=self.headers, timeout=10)
        if answer.status_code == 401:  # its own token expired (the server's are short here)
            self.login(**self.credentials)
            answer = requests.get(f"{self.base}{path}", headers=self.headers, timeout=10)
        assert answer.status_code == 200, (path, answer.text)
        return answer.json()["data"]

    def branch(self, conversation_id):
        return self.get(f"/api/messages/{conversation_id}?limit=1000")["items"]


class Watch:
    """What the page did that it must not: errors, CSP refusals, requests to other origins."""

    def __init__(self, page, base):
        self.problems = []
        page.on("pageerror", lambda error: self.problems.append(f"page error: {error}"))
        page.on("console", self.console)
        page.on("dialog", lambda dialog: dialog.accept())
        page.route(re.compile(r"^(?!" + re.escape(base) + r"/)"),
                   lambda route: (self.problems.append(f"left the origin: {route.request.url}"),
                                  route.abort()))

    def console(self, message):
        if "Content Security Policy" in message.text or "Refused to" in message.text:
            self.problems.append(f"CSP: {message.text}")


@pytest.fixture
def screenshots(tmp_path):
    folder = os.environ.get("WEB_CLIENT_SCREENSHOTS")
    folder = PROJECT / folder if folder else tmp_path / "screenshots"
    folder.mkdir(parents=True, exist_ok=True)
    return Path(folder)


@pytest.fixture
def served(app, database_url, glm_simulator, tmp_path):
    glm_simulator.reset()
    # A short access token: the page must refresh it during the session.
    env = gunicorn_env(database_url, glm_simulator, JWT_ACCESS_TOKEN_EXPIRES="20")
    with gunicorn(env, workers=1, log_path=tmp_path / "gunicorn.log") as base:
        yield base


def shown_messages(page):
    return page.locator(".messages article.message").evaluate_all(
        "items => items.map(item => [item.dataset.role, item.dataset.id])")


def expect_page_matches_branch(page, expect, api, conversation_id):
    """The page's messages are the active branch as stored, in order, each with its text."""
    stored = api.branch(conversation_id)
    expect(page.locator(".messages article.message:not(.live)")).to_have_count(len(stored))
    assert shown_messages(page) == [[message["role"], message["id"]] for message in stored]
    for message in stored:
        article = page.locator(f'article[data-id="{message["id"]}"]')
        if message["role"] == "user":
            expect(article.locator(".text")).to_have_text(message["content"])
    return stored


def send(page, text):
    composer = page.locator(".composer textarea")
    composer.fill(text)
    composer.press("Enter")


def wait_idle(page, expect):
    expect(page.locator(".messages .live")).to_have_count(0)
    expect(page.locator(".composer button[type=submit]")).to_be_visible()


def register_and_log_in(page, expect, base, username):
    page.goto(f"{base}/")
    page.get_by_role("button", name="Create an account").click()
    page.get_by_label("Username", exact=True).fill(username)
    page.get_by_label("Email").fill(f"{username}@example.com")
    page.get_by_label("Password").fill(PASSWORD)
    page.locator(".auth-form button[type=submit]").click()
    expect(page.locator(".form-status")).to_have_text("Account created. Log in with it.")
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_label("Password").press("Enter")
    expect(page.locator(".sidebar .who")).to_have_text(username)


def log_in(page, expect, base, username, password):
    page.goto(f"{base}/")
    page.get_by_label("Username or email").fill(username)
    page.get_by_label("Password").fill(password)
    page.locator(".auth-form button[type=submit]").click()
    expect(page.locator(".sidebar .who")).to_have_text(username)


def test_the_page_and_its_files_carry_a_strict_policy(client):
    page = client.get("/")
    assert page.status_code == 200 and page.mimetype == "text/html"
    assert page.headers["Content-Security-Policy"] == POLICY
    assert page.headers["Cache-Control"] == "no-cache"
    assert "<script>" not in page.get_data(as_text=True)  # no inline script
    assert 'style="' not in page.get_data(as_text=True)
    script = client.get("/web/js/main.js")
    assert script.status_code == 200 and script.mimetype == "text/javascript"
    assert script.headers["Content-Security-Policy"] == POLICY
    assert script.headers["Cache-Control"] == "no-cache" and script.headers["ETag"]
    assert client.get("/web/js/main.js", headers={
        "If-None-Match": script.headers["ETag"]}).status_code == 304
    vendored = client.get("/web/vendor/dompurify-3.5.0/purify.es.js")
    assert vendored.status_code == 200
    assert vendored.headers["Cache-Control"] == "public, max-age=31536000, immutable"
    for missing in ("/web/js/nothing.js", "/web/../config.py", "/web/vendor/marked-18.3.0/LICENSE"):
        answer = client.get(missing)
        assert answer.status_code == 404 and answer.get_json()["error"]["code"] == "not_found"
    assert client.get("/api/health").headers["Content-Security-Policy"] == (
        "default-src 'none'; frame-ancestors 'none'")


def test_web_client_off_leaves_slash_a_404(make_app):
    client = make_app(WEB_CLIENT=False).test_client()
    for path in ("/", "/web/js/main.js"):
        answer = client.get(path)
        assert answer.status_code == 404 and answer.get_json()["error"]["code"] == "not_found"


def test_a_scripted_session_in_chromium(served, glm_simulator, runner, screenshots):
    base = served
    with chromium() as (_playwright, browser, expect):
        page = new_page(browser, viewport=DESKTOP, locale="en-US")
        watch = Watch(page, base)

        # Register, log in; the session survives a reload.
        register_and_log_in(page, expect, base, "carol")
        api = Api(base, "carol", PASSWORD)
        first_token = page.evaluate("JSON.parse(sessionStorage.getItem('chatapi.session'))"
                                    ".access_token")
        page.reload()
        expect(page.locator(".sidebar .who")).to_have_text("carol")

        # A new conversation, its settings saved as the API stores them.
        page.get_by_role("button", name="New chat").click()
        expect(page).to_have_url(re.compile(r"#/c/conv_"))
        conversation_id = page.url.split("#/c/")[1]
        page.get_by_role("button", name="Settings").click()
        settings = page.locator("form.settings")
        models = [model["id"] for model in api.get("/api/models/")["models"]]
        expect(settings.locator("select[name=model] option")).to_have_count(len(models))
        settings.locator("select[name=model]").select_option(models[1])
        settings.locator("input[name=temperature]").fill("0.5")
        settings.locator("input[name=max_tokens]").fill("2048")
        settings.locator("input[name=thinking_enabled]").check()
        settings.locator("textarea[name=system_prompt]").fill("Answer briefly.")
        settings.get_by_role("button", name="Save").click()
        expect(settings.locator(".saved")).to_have_text("Saved")
        stored = api.get(f"/api/conversations/{conversation_id}")
        assert (stored["model"], stored["temperature"], stored["max_tokens"],
                stored["thinking_enabled"], stored["system_prompt"]) == (
            models[1], 0.5, 2048, True, "Answer briefly.")
        page.get_by_role("button", name="Settings").click()

        # Chat: thinking folded, the tool call and its result, Markdown with a code block.
        # Slowed down (a quarter second a chunk) to be seen as it happens: the thinking, the
        # first round's text, then the tool's call and result while the answer still runs.
        send(page, CHAT_QUESTION + "[[delay:250]][[chunks:8]]")
        streaming = page.locator(".messages .live")
        expect(streaming.locator("details.thinking .thinking-text")).to_contain_text("t0 ")
        expect(streaming.locator(".markdown pre code")).to_have_text("print(6 * 7)\n")
        expect(streaming.locator("details.tool .tool-status")).to_have_text("ok")
        wait_idle(page, expect)
        branch = expect_page_matches_branch(page, expect, api, conversation_id)
        answer = branch[-1]
        assert answer["status"] == "completed" and answer["tool_calls"][0]["result"]["result"] == 42
        shown = page.locator(f'article[data-id="{answer["id"]}"]')
        expect(shown.locator("details.thinking")).not_to_have_attribute("open", "")
        expect(shown.locator(".thinking-text")).to_have_text(answer["reasoning_content"])
        tool = shown.locator("details.tool")
        expect(tool.locator("summary")).to_contain_text("calculator")
        assert json.loads(tool.locator(".tool-result").text_content())["result"] == 42
        expect(shown.locator(".markdown pre code")).to_have_text("print(6 * 7)\n")
        expect(shown.locator(".markdown strong")).to_have_text("Python")
        tool.locator("summary").click()
        shown.locator("details.thinking summary").click()
        page.screenshot(path=screenshots / "chat.png")
        shown.locator("details.thinking summary").click()

        # Stop an answer mid-way: the page shows what was stored, stopped.
        # Long enough to be stopped on a loaded machine; its regeneration runs to the end.
        send(page, "A long one. [[chunks:200]][[delay:40]]")
        live = page.locator(".messages .live .markdown")
        expect(live).to_contain_text("w5 ")
        page.get_by_role("button", name="Stop").click()
        wait_idle(page, expect)
        branch = expect_page_matches_branch(page, expect, api, conversation_id)
        stopped = branch[-1]
        assert (stopped["status"], stopped["finish_reason"]) == ("incomplete", "stopped")
        stopped_view = page.locator(f'article[data-id="{stopped["id"]}"]')
        expect(stopped_view.locator(".note")).to_have_text("Stopped")
        expect(stopped_view.locator(".markdown")).to_have_text(stopped["content"].strip())

        # Regenerate it: a sibling answer, `< 2/2 >`; back to the first with `<`.
        stopped_view.get_by_role("button", name="Regenerate").click()
        wait_idle(page, expect)
        branch = expect_page_matches_branch(page, expect, api, conversation_id)
        regenerated = branch[-1]
        assert regenerated["sibling_ids"] == [stopped["id"], regenerated["id"]]
        regenerated_view = page.locator(f'article[data-id="{regenerated["id"]}"]')
        expect(regenerated_view.locator(".branch-position")).to_have_text("2/2")
        regenerated_view.get_by_role("button", name="Previous version").click()
        expect(page.locator(f'article[data-id="{stopped["id"]}"] .branch-position')).to_have_text(
            "1/2")
        assert api.get(f"/api/conversations/{conversation_id}")["current_message_id"] == (
            stopped["id"])
        expect_page_matches_branch(page, expect, api, conversation_id)

        # Edit the first question: a new branch from the start, `< 2/2 >` on the question.
        first_question = branch[0]
        page.locator(f'article[data-id="{first_question["id"]}"]').get_by_role(
            "button", name="Edit").click()
        editor = page.locator(".edit-form textarea")
        editor.fill("Edited question [[reply:The edited answer.]]")
        editor.press("Enter")
        wait_idle(page, expect)
        branch = expect_page_matches_branch(page, expect, api, conversation_id)
        assert [message["content"] for message in branch] == [
            "Edited question [[reply:The edited answer.]]", "The edited answer."]
        assert branch[0]["sibling_ids"] == [first_question["id"], branch[0]["id"]]
        expect(page.locator(f'article[data-id="{branch[0]["id"]}"] .branch-position')
               ).to_have_text("2/2")

        # A reload in the middle of an answer attaches again and shows all of it, once asked.
        reload_question = "Reload me. [[chunks:60]][[delay:80]]"
        send(page, reload_question)
        expect(live).to_contain_text("w8 ")
        attached = []
        page.on("request", lambda request: attached.append(request.headers) if (
            request.method == "GET" and request.url.endswith("/stream")) else None)
        page.reload()
        expect(page.locator(".messages .live")).to_have_count(1)
        wait_idle(page, expect)
        branch = expect_page_matches_branch(page, expect, api, conversation_id)
        assert branch[-2]["content"] == reload_question
        assert (branch[-1]["status"], branch[-1]["content"]) == (
            "completed", "".join(f"w{i} " for i in range(60)))
        expect(page.locator(f'article[data-id="{branch[-1]["id"]}"] .markdown')).to_have_text(
            branch[-1]["content"].strip())
        asked = [request for request in glm_simulator.requests()
                 if reload_question in json.dumps(request, ensure_ascii=False)]
        assert len(asked) == 1
        # It went on after the last event it had shown, not from the start.
        assert len(attached) == 1 and int(attached[0]["last-event-id"]) > 9

        # Tools off in the settings: the next question offers the model no tools.
        page.get_by_role("button", name="Settings").click()
        settings.locator("input[name=tools]").uncheck()
        settings.get_by_role("button", name="Save").click()
        expect(settings.locator(".saved")).to_have_text("Saved")
        page.get_by_role("button", name="Settings").click()
        send(page, "No tools now: a Reference check [[reply:Fine.]]")
        wait_idle(page, expect)
        last_request = glm_simulator.requests()[-1]["body"]
        assert "No tools now" in json.dumps(last_request) and "tools" not in last_request

        # Text from the model that looks like HTML or script is shown as text, never run.
        send(page, f"[[reply:{HOSTILE_REPLY}]]")
        wait_idle(page, expect)
        branch = expect_page_matches_branch(page, expect, api, conversation_id)
        hostile = page.locator(f'article[data-id="{branch[-1]["id"]}"] .markdown')
        expect(hostile).to_contain_text('<img src=x onerror="window.__ran=1">')
        expect(hostile).to_contain_text("<script>window.__ran=2</script>")
        assert hostile.locator("img, script").count() == 0
        link = hostile.get_by_text("click me")
        assert (link.get_attribute("href") or "").startswith("javascript") is False
        link.click()
        user_view = page.locator(f'article[data-id="{branch[-2]["id"]}"] .text')
        expect(user_view).to_have_text(f"[[reply:{HOSTILE_REPLY}]]")
        assert page.evaluate("window.__ran") is None

        # Rename (keyboard), pin; a second conversation archived, restored, deleted.
        page.get_by_role("button", name="Rename").click()
        page.locator("input.rename").fill("Reference session")
        page.locator("input.rename").press("Enter")
        expect(page.locator("h1.title")).to_have_text("Reference session")
        page.get_by_role("button", name="Pin", exact=True).click()
        expect(page.get_by_role("button", name="Unpin")).to_be_visible()
        stored = api.get(f"/api/conversations/{conversation_id}")
        assert (stored["title"], stored["pinned"]) == ("Reference session", True)
        page.get_by_role("button", name="New chat").click()
        expect(page).not_to_have_url(re.compile(conversation_id))
        other_id = page.url.split("#/c/")[1]
        # Leaving a conversation mid-answer and coming back: the answer went on, and shows whole.
        send(page, "Second chat about gardening [[chunks:40]][[delay:60]]")
        expect(live).to_contain_text("w3 ")
        page.locator(f'.conversation-list .conversation[data-id="{conversation_id}"]').click()
        expect(page.locator("h1.title")).to_have_text("Reference session")
        page.go_back()
        # Attached again (or already ended, on a slow machine): either way, shown whole.
        expect(page.locator(".messages article.assistant.status-completed")).to_have_count(1)
        wait_idle(page, expect)
        branch = expect_page_matches_branch(page, expect, api, other_id)
        assert (branch[-1]["status"], branch[-1]["content"]) == (
            "completed", "".join(f"w{i} " for i in range(40)))
        expect(page.locator(f'article[data-id="{branch[-1]["id"]}"] .markdown')).to_have_text(
            branch[-1]["content"].strip())
        titles = page.locator(".conversation-list .conversation")
        expect(titles).to_have_count(2)
        # Pinned first, as the API lists them.
        listed = api.get("/api/conversations/")["items"]
        assert [item["id"] for item in listed] == [conversation_id, other_id]
        assert titles.evaluate_all("links => links.map(link => link.dataset.id)") == [
            conversation_id, other_id]
        page.get_by_role("button", name="Archive", exact=True).click()
        expect(titles).to_have_count(1)
        assert api.get(f"/api/conversations/{other_id}")["archived"] is True
        page.get_by_role("button", name="Show archived").click()
        expect(titles).to_have_count(1)
        expect(titles.first).to_have_attribute("data-id", other_id)
        page.get_by_role("button", name="Unarchive").click()
        expect(titles).to_have_count(0)
        page.get_by_role("button", name="Show conversations").click()
        expect(titles).to_have_count(2)
        page.get_by_role("button", name="Delete", exact=True).click()
        expect(titles).to_have_count(1)
        api.login("carol", PASSWORD)
        assert requests.get(f"{base}/api/conversations/{other_id}", headers=api.headers,
                            timeout=10).status_code == 404

        titles.first.click()
        expect(page.locator("h1.title")).to_have_text("Reference session")

        # Search: titles, and message text through GET /api/search where the service has it.
        page.locator("input.search").fill("session")
        expect(page.locator(".conversation-list h2").first).to_have_text("Conversations")
        expect(titles).to_have_count(1)
        page.locator("input.search").fill("edited")
        expect(titles).to_have_count(0)
        api.login("carol", PASSWORD)
        searched = requests.get(f"{base}/api/search?q=edited", headers=api.headers, timeout=10)
        if searched.status_code == 200:
            hits = page.locator(".conversation-list .hit")
            message_hits = [hit for hit in searched.json()["data"]["items"] if hit["message_id"]]
            expect(hits).to_have_count(len(message_hits))
            assert hits.evaluate_all("links => links.map(link => link.dataset.id)") == [
                hit["message_id"] for hit in message_hits]
            expect(hits.first.locator("mark").first).to_have_text(re.compile("edited", re.I))
            hits.first.click()
            expect(page.locator(".messages .message.found")).to_contain_text(
                re.compile("edited", re.I))
        page.locator("input.search").fill("Reference")
        expect(titles).to_have_count(1)
        if searched.status_code == 200:
            expect(page.locator(".conversation-list .hit")).to_have_count(1)
        page.screenshot(path=screenshots / "search.png")
        page.locator("input.search").press("Escape")

        # Export (Markdown and JSON: the files the API gives), and the JSON imported back.
        page.locator(f'.conversation-list .conversation[data-id="{conversation_id}"]').click()
        expect(page.locator("h1.title")).to_have_text("Reference session")
        exported = {}
        for label, format in (("Export Markdown", "markdown"), ("Export JSON", "json")):
            with page.expect_download() as download:
                page.get_by_role("button", name=label).click()
            exported[format] = Path(download.value.path()).read_bytes()
            assert download.value.suggested_filename == (
                "Reference session." + ("md" if format == "markdown" else "json"))
            from_api = requests.get(f"{base}/api/conversations/{conversation_id}/export",
                                    params={"format": format}, headers=api.headers, timeout=10)
            assert exported[format] == from_api.content
        page.locator("input.import-file").set_input_files(
            files=[{"name": "export.json", "mimeType": "application/json",
                    "buffer": exported["json"]}])
        expect(page.locator(".list-pane .form-status.ok")).to_have_text(
            "Imported 1 conversation(s).")
        expect(page).not_to_have_url(re.compile(conversation_id))
        imported_id = page.url.split("#/c/")[1]
        imported = expect_page_matches_branch(page, expect, api, imported_id)
        original = api.branch(conversation_id)
        assert [(message["role"], message["content"]) for message in imported] == [
            (message["role"], message["content"]) for message in original]
        page.get_by_role("button", name="Delete", exact=True).click()
        expect(page.locator(".conversation-list .conversation")).to_have_count(1)

        # The account page: usage as the API counts it; the corner shows it too.
        page.get_by_role("link", name="Account").click()
        usage = api.get("/api/usage?group_by=model")
        total = page.locator("table.usage").first.locator("tfoot td").nth(2)
        expect(total).to_have_text(f"{usage['total']['total_tokens']:,}")
        expect(page.locator(".usage-corner")).to_have_text(
            f"{usage['total']['total_tokens']:,} tokens in 30 days")
        page.screenshot(path=screenshots / "account.png")

        # The quota spent: the next question is refused in place, with the quota's figures.
        assert runner.invoke(args=["users", "set-quota", "carol", "1 per day"]).exit_code == 0
        page.locator(".conversation-list .conversation").first.click()
        send(page, "One more?")
        expect(page.locator(".notice.error")).to_contain_text("Your token quota is spent")
        expect(page.locator(".composer textarea")).to_have_value("One more?")
        expect(page.locator(".usage-corner")).to_have_text(re.compile(r" / 1 tokens this day$"))
        assert runner.invoke(args=["users", "set-quota", "carol", "none"]).exit_code == 0

        # The access token was refreshed before it expired (20 s), and the page goes on.
        page.wait_for_function(
            "first => JSON.parse(sessionStorage.getItem('chatapi.session')).access_token"
            " !== first", arg=first_token)

        # Password change: the page's session goes on; the new password logs in.
        page.get_by_role("link", name="Account").click()
        # A wrong current password is said in place; the session stays.
        page.get_by_label("Current password").fill("not the password")
        page.get_by_label("New password").fill(NEW_PASSWORD)
        page.get_by_role("button", name="Change password").click()
        expect(page.locator(".account .form-status.error")).to_have_text("Wrong password")
        expect(page.locator(".sidebar .who")).to_have_text("carol")
        page.get_by_label("Current password").fill(PASSWORD)
        page.get_by_label("New password").fill(NEW_PASSWORD)
        page.get_by_role("button", name="Change password").click()
        expect(page.locator(".account .form-status.ok")).to_have_text("Password changed.")
        api.login("carol", NEW_PASSWORD)

        # A phone-sized window: the list behind a menu button, the chat readable.
        phone = new_page(browser, viewport=PHONE, locale="en-US", is_mobile=True, has_touch=True)
        phone_watch = Watch(phone, base)
        log_in(phone, expect, base, "carol", NEW_PASSWORD)
        expect(phone.locator(".sidebar")).not_to_be_in_viewport()
        phone.locator(".menu-button").click()
        expect(phone.locator(".sidebar")).to_be_in_viewport()
        phone.keyboard.press("Escape")
        expect(phone.locator(".sidebar")).not_to_be_in_viewport()
        phone.locator(".menu-button").click()
        expect(phone.locator(".sidebar")).to_be_in_viewport()
        phone.locator(".conversation-list .conversation").first.click()
        expect(phone.locator(".sidebar")).not_to_be_in_viewport()
        expect(phone.locator("h1.title")).to_have_text("Reference session")
        phone.locator(".menu-button").click()
        phone.get_by_role("button", name="New chat").click()
        expect(phone.locator(".sidebar")).not_to_be_in_viewport()
        send(phone, CHAT_QUESTION)
        wait_idle(phone, expect)
        phone_id = phone.url.split("#/c/")[1]
        expect_page_matches_branch(phone, expect, api, phone_id)
        phone.locator(".messages").evaluate("list => { list.scrollTop = list.scrollHeight; }")
        phone.screenshot(path=screenshots / "phone.png")

        # Logout revokes the token; then the account is deleted from its page.
        page.get_by_role("button", name="Log out").click()
        expect(page.get_by_label("Username or email")).to_be_visible()
        log_in(page, expect, base, "carol", NEW_PASSWORD)
        page.get_by_role("link", name="Account").click()
        page.locator(".danger-zone").get_by_label("Password").fill(NEW_PASSWORD)
        page.get_by_role("button", name="Delete account").click()
        expect(page.get_by_label("Username or email")).to_be_visible()
        assert requests.post(f"{base}/api/auth/login", timeout=10, json={
            "username": "carol", "password": NEW_PASSWORD}).status_code == 401
        problems = watch.problems + phone_watch.problems
    assert problems == []


@pytest.fixture
def served_without_key(app, database_url, tmp_path):
    # The limit counted in the worker's memory, not Redis: gunicorn's key prefix is the same in
    # every run, and a user id of an earlier run's database could have spent the hour's one.
    env = gunicorn_env(database_url, MESSAGE_RATE_LIMIT="1 per hour", REDIS_URL=None)
    with gunicorn(env, workers=1, log_path=tmp_path / "gunicorn.log") as base:
        yield base


def test_errors_are_shown_in_place_in_chinese(served_without_key, user, screenshots):
    """No GLM key: the answer fails with the API's 503 text where the answer would be; the next
    question is over MESSAGE_RATE_LIMIT: refused with its wait, the text kept to send again. The
    browser asks for Chinese, and the page and the API's texts are Chinese."""
    base = served_without_key
    api = Api(base, "alice", CONFTEST_PASSWORD)
    with chromium() as (_playwright, browser, expect):
        page = new_page(browser, viewport=DESKTOP, locale="zh-CN")
        watch = Watch(page, base)
        page.goto(f"{base}/")
        page.get_by_label("用户名或邮箱").fill("alice")
        page.get_by_label("密码").fill(CONFTEST_PASSWORD)
        page.get_by_role("button", name="登录").click()
        page.get_by_role("button", name="新会话").click()
        expect(page).to_have_url(re.compile(r"#/c/conv_"))
        conversation_id = page.url.split("#/c/")[1]

        send(page, "你好")
        wait_idle(page, expect)
        branch = expect_page_matches_branch(page, expect, api, conversation_id)
        failed = branch[-1]
        assert (failed["status"], failed["error_code"]) == ("error", "upstream_unavailable")
        assert failed["error"].startswith("上游服务不可用")
        expect(page.locator(f'article[data-id="{failed["id"]}"] .note.error')).to_have_text(
            failed["error"])

        send(page, "再来一次")
        notice = page.locator(".notice.error")
        expect(notice).to_have_text(re.compile(r"^请求过于频繁：请 \d+ 秒后再试。$"))
        wait = int(re.search(r"\d+", notice.text_content()).group())
        assert 0 < wait <= 3600
        expect(page.locator(".composer textarea")).to_have_value("再来一次")
        assert len(api.branch(conversation_id)) == 2
        page.screenshot(path=screenshots / "errors-zh.png")
        problems = watch.problems
    assert problems == []


def test_the_vendored_libraries_are_the_published_files():
    """The hashes in chatapi/web/static/vendor/README.md are those of the files served."""
    vendor = PROJECT / "chatapi" / "web" / "static" / "vendor"
    listed = re.findall(r"\| `([\w.-]+/)` \| `([\w.-]+)` \|.*\| `([0-9a-f]{64})` \|",
                        (vendor / "README.md").read_text())
    served = sorted(path.relative_to(vendor).as_posix() for path in vendor.rglob("*.js"))
    assert sorted(folder + name for folder, name, _ in listed) == served
    for folder, name, digest in listed:
        assert hashlib.sha256((vendor / folder / name).read_bytes()).hexdigest() == digest
        assert (vendor / folder / "LICENSE").is_file()
