"""Search (docs/API.md §3.1): the caller's messages and conversation titles containing a text,
case-insensitive in any script, newest first, paged by an opaque cursor; never another user's;
snippets HTML-escaped with the match marked; the indexes kept in step by the database on every
insert, edit and delete (SQLite's triggers, PostgreSQL's indexes), an answer indexed once it
ends."""
import base64
import sys
import unicodedata
from datetime import timedelta

import pytest
from sqlalchemy import func, insert, select, text, update

from chatapi.extensions import db
from chatapi.models import Conversation, Message
from chatapi.models.text_search import CASELESS_CATEGORIES, caseless
from chatapi.models.timestamps import utcnow
from chatapi.services import search as search_service
from chatapi.services import tokens

from .conftest import bearer

URL = "/api/search"


@pytest.fixture
def now():
    return utcnow()


def add_conversation(user, title="新会话", **fields):
    conversation = Conversation(user_id=user.id, title=title, model="glm-5", **fields)
    db.session.add(conversation)
    db.session.commit()
    return conversation


def add_message(conversation, content, role="user", at=None, status="completed"):
    message = Message(conversation_id=conversation.id, role=role, content=content,
                      status=status, tool_calls=[], created_at=at or utcnow())
    db.session.add(message)
    db.session.commit()
    return message


def found(client, headers, q, **params):
    response = client.get(URL, query_string={"q": q, **params}, headers=headers)
    assert response.status_code == 200, response.get_json()
    return response.get_json()["data"]


def message_ids(data):
    return [item["message_id"] for item in data["items"] if item["message_id"]]


SHARED = ["我们讨论了量子计算的未来", "日本語のテキストを検索する", "The Quick Brown Fox jumps",
          "Mixed 中文 and ENGLISH words"]


@pytest.fixture
def two_users_same_words(user, other_user, now):
    mine = add_conversation(user, title="Alice 的会话")
    theirs = add_conversation(other_user, title="Bob 的会话")
    ids = {}
    for index, content in enumerate(SHARED):
        at = now - timedelta(minutes=len(SHARED) - index)
        ids[content] = add_message(mine, content, at=at).id
        add_message(theirs, content, at=at)
    return mine, ids


@pytest.mark.parametrize("q,content", [
    ("量子计算", SHARED[0]), ("量子", SHARED[0]), ("テキスト", SHARED[1]), ("日本語の", SHARED[1]),
    ("quick brown", SHARED[2]), ("QUICK BROWN", SHARED[2]), ("fOx", SHARED[2]),
    ("中文 and english", SHARED[3]), ("K", SHARED[2]),
])
def test_finds_the_callers_message_in_any_script_and_case_never_the_other_users(
        client, auth_headers, two_users_same_words, q, content):
    conversation, ids = two_users_same_words
    data = found(client, auth_headers, q)
    assert message_ids(data) == [ids[content]]
    item = data["items"][0]
    assert item["conversation_id"] == conversation.id
    assert item["conversation_title"] == "Alice 的会话"
    assert item["role"] == "user" and item["created_at"].endswith("Z")
    assert "<mark>" in item["snippet"]


def test_non_ascii_letters_match_in_either_case(client, auth_headers, user):
    conversation = add_conversation(user)
    message = add_message(conversation, "Ελληνικά και ÄÖÜ Русский текст")
    for q in ("ελληνικά", "äöü", "РУССКИЙ ТЕКСТ"):
        assert message_ids(found(client, auth_headers, q)) == [message.id], q


def test_a_title_match_is_an_item_without_message(client, auth_headers, user, other_user):
    conversation = add_conversation(user, title="Weekly 周报 Review")
    add_conversation(other_user, title="Weekly 周报 Review")
    data = found(client, auth_headers, "周报 review")
    assert data["items"] == [{
        "conversation_id": conversation.id, "conversation_title": "Weekly 周报 Review",
        "message_id": None, "role": None, "snippet": "Weekly <mark>周报 Review</mark>",
        "created_at": data["items"][0]["created_at"]}]


@pytest.mark.parametrize("q,matching", [
    ("100%", "rate 100% done"), ("a_b", "name a_b here"),
    ('said "yes" AND', 'he said "yes" AND left'),
    ("C:\\temp*", "path C:\\temp* here"), ("NEAR(a b)", "call NEAR(a b) now"),
])
def test_like_wildcards_in_q_match_only_themselves(client, auth_headers, user, q, matching):
    conversation = add_conversation(user)
    wanted = add_message(conversation, matching)
    add_message(conversation, "rate 1000 done name axb here 100 percent")
    assert message_ids(found(client, auth_headers, q)) == [wanted.id]


def test_every_trigram_of_q_in_a_message_is_not_enough_they_must_make_q(client, auth_headers,
                                                                        user):
    """The index is asked for the rows holding each trigram of q, anywhere (a phrase made
    SQLite's FTS5 check q's trigrams from every place the first one is: `x` 199 times then `y`
    against 300 messages of `x` 32,000 times then `y` held the worker 40 s; now 0.1 s); the
    substring condition keeps only those where they make q."""
    conversation = add_conversation(user)
    scattered = add_message(conversation, "abcd and xbcda")  # abc, bcd, cda: not abcda
    whole = add_message(conversation, "x" * 2000 + "y")
    add_message(conversation, "x" * 2000)
    assert message_ids(found(client, auth_headers, "abcda")) == []
    assert message_ids(found(client, auth_headers, "bcda")) == [scattered.id]
    assert message_ids(found(client, auth_headers, "x" * 199 + "y")) == [whole.id]
    assert message_ids(found(client, auth_headers, "X" * 199 + "Y")) == [whole.id]


def test_html_in_content_comes_escaped_and_only_the_match_is_marked(client, auth_headers,
                                                                    user):
    conversation = add_conversation(user)
    add_message(conversation, 'look <img src=x onerror="alert(1)"> & <b>bold</b> 秘密')
    [item] = found(client, auth_headers, "onerror")["items"]
    assert item["snippet"] == ('look &lt;img src=x <mark>onerror</mark>=&quot;alert(1)&quot;&gt;'
                               ' &amp; &lt;b&gt;bold&lt;/b&gt; 秘密')
    [item] = found(client, auth_headers, "<b>")["items"]
    assert "<mark>&lt;b&gt;</mark>" in item["snippet"]
    assert "<img" not in item["snippet"] and "<b>" not in item["snippet"]


def test_a_long_message_gives_about_60_characters_around_the_first_match(client, auth_headers,
                                                                         user):
    conversation = add_conversation(user)
    content = "甲" * 500 + "目标词" + "乙" * 500 + "目标词"
    add_message(conversation, content)
    [item] = found(client, auth_headers, "目标词")["items"]
    assert item["snippet"] == "…" + "甲" * 28 + "<mark>目标词</mark>" + "乙" * 29 + "…"


def test_the_match_is_marked_after_characters_whose_fold_is_longer(client, auth_headers, user):
    """ß folds into ss on SQLite: the match's place in the text is found by folding prefixes
    (a loop over every character held the worker 0.8 s a megabyte, for each hit)."""
    conversation = add_conversation(user)
    add_message(conversation, "ß" * 300 + "Ziel" + "x" * 300)
    [item] = found(client, auth_headers, "ziel")["items"]
    assert item["snippet"] == "…" + "ß" * 28 + "<mark>Ziel</mark>" + "x" * 28 + "…"


def test_newest_first_and_pages_follow_the_cursor_without_overlap(client, auth_headers, user,
                                                                  now):
    conversation = add_conversation(user, title="pager notes")
    ids = [add_message(conversation, f"pager line {i}", at=now + timedelta(seconds=1 + i)).id
           for i in range(7)]
    pages, before = [], None
    while True:
        params = {"limit": 3, **({"before": before} if before else {})}
        data = found(client, auth_headers, "pager", **params)
        pages.append([item["message_id"] for item in data["items"]])
        before = data["next"]
        if before is None:
            break
    # The title (the conversation was made before the messages) comes last.
    assert pages == [ids[6:3:-1], ids[3:0:-1], [ids[0], None]]


def test_archived_conversations_are_searched(client, auth_headers, user):
    conversation = add_conversation(user, archived=True)
    message = add_message(conversation, "archived but findable")
    assert message_ids(found(client, auth_headers, "findable")) == [message.id]


def test_edits_and_deletes_keep_the_index_in_step(client, auth_headers, user):
    conversation = add_conversation(user, title="first title")
    message = add_message(conversation, "before the edit")
    other = add_message(conversation, "stays as it is")
    message.content = "after the change"
    db.session.commit()
    assert found(client, auth_headers, "before the")["items"] == []
    assert message_ids(found(client, auth_headers, "the change")) == [message.id]
    conversation.title = "second title"
    db.session.commit()
    assert found(client, auth_headers, "first title")["items"] == []
    assert [item["conversation_id"] for item in found(client, auth_headers,
                                                      "second title")["items"]] == [
        conversation.id]
    db.session.delete(message)
    db.session.commit()
    assert found(client, auth_headers, "the change")["items"] == []
    assert message_ids(found(client, auth_headers, "as it is")) == [other.id]
    db.session.delete(conversation)
    db.session.commit()
    assert found(client, auth_headers, "as it is")["items"] == []
    assert found(client, auth_headers, "second title")["items"] == []
    if db.engine.dialect.name == "sqlite":
        # Nothing left behind by the cascade: the index holds only live rows.
        keys = db.session.scalar(text("SELECT count(*) FROM message_search_keys"))
        assert keys == db.session.scalar(select(func.count()).select_from(Message)
                                         .where(Message.status != "in_progress"))


def test_an_answer_in_progress_is_found_once_it_ends(client, auth_headers, user):
    conversation = add_conversation(user)
    answer = add_message(conversation, "", role="assistant", status="in_progress")
    db.session.execute(update(Message).where(Message.id == answer.id)
                       .values(content="streaming 流式 text so far"))
    db.session.commit()
    assert found(client, auth_headers, "流式 text")["items"] == []
    db.session.execute(update(Message).where(Message.id == answer.id)
                       .values(content="streaming 流式 text so far, ended", status="completed"))
    db.session.commit()
    [item] = found(client, auth_headers, "流式 text")["items"]
    assert (item["message_id"], item["role"]) == (answer.id, "assistant")


def test_a_streamed_answer_is_found_by_its_text(chat_app, user, auth_headers):
    client = chat_app().test_client()
    conversation_id = client.post("/api/conversations/", json={"title": "t"},
                                  headers=auth_headers).get_json()["data"]["id"]
    response = client.post("/api/messages/stream", headers=auth_headers, json={
        "conversation_id": conversation_id,
        "content": "[[reply:答案里有一只紫色的长颈鹿]][[chunks:4]]"})
    assert response.status_code == 200 and "event: done" in response.get_data(as_text=True)
    items = found(client, auth_headers, "紫色的长颈鹿")["items"]
    assert [(item["role"], item["conversation_id"]) for item in items] == [
        ("assistant", conversation_id), ("user", conversation_id)]


def test_short_queries_look_through_the_newest_messages_only(client, auth_headers, user, now):
    conversation = add_conversation(user)
    oldest = add_message(conversation, "稀有词在最旧的消息里", at=now - timedelta(days=1))
    db.session.execute(insert(Message), [
        {"id": f"msg_filler{i:06d}", "conversation_id": conversation.id, "role": "user",
         "content": f"filler {i}", "status": "completed", "tool_calls": [],
         "created_at": now + timedelta(milliseconds=i)}
        for i in range(search_service.SHORT_QUERY_SCAN)])
    db.session.commit()
    assert found(client, auth_headers, "稀有")["items"] == []
    assert message_ids(found(client, auth_headers, "稀有词")) == [oldest.id]


def test_a_common_word_in_many_users_rows_still_finds_only_the_callers(client, auth_headers,
                                                                       user, other_user, now):
    """Past FTS_MATCHES_WORTH_IT matches, SQLite reads the caller's rows instead of the index:
    the same answer either way."""
    theirs = add_conversation(other_user)
    db.session.execute(insert(Message), [
        {"id": f"msg_theirs{i:06d}", "conversation_id": theirs.id, "role": "user",
         "content": f"a common phrase {i}", "status": "completed", "tool_calls": [],
         "created_at": now} for i in range(search_service.FTS_MATCHES_WORTH_IT + 1)])
    db.session.commit()
    mine = add_conversation(user)
    wanted = [add_message(mine, f"my COMMON phrase {i}", at=now + timedelta(seconds=i)).id
              for i in range(3)]
    assert message_ids(found(client, auth_headers, "common phrase")) == wanted[::-1]


@pytest.mark.parametrize("params", [
    {}, {"q": ""}, {"q": "   "}, {"q": "x" * 201}, {"q": "ok", "limit": 0},
    {"q": "ok", "limit": 51}, {"q": "ok", "limit": "many"}, {"q": "ok", "before": "%%%"},
    {"q": "ok", "before": base64.urlsafe_b64encode(b"yesterday|msg_x").decode()},
    {"q": "ok", "before": base64.urlsafe_b64encode(b"2026-01-01T00:00:00+00:00|x").decode()},
    {"q": "ok", "before": base64.urlsafe_b64encode(b"2026-01-01T00:00:00|msg_abc").decode()},
    # Valid times whose UTC is outside years 1-9999 (were a 500 when compared in the query).
    {"q": "ok", "before": base64.urlsafe_b64encode(
        b"0001-01-01T00:00:00+14:00|msg_abc").decode()},
    {"q": "ok", "before": base64.urlsafe_b64encode(
        b"9999-12-31T23:59:59-14:00|conv_abc").decode()},
])
def test_bad_parameters_are_422_naming_the_field(client, auth_headers, params):
    response = client.get(URL, query_string=params, headers=auth_headers)
    body = response.get_json()
    assert response.status_code == 422, body
    assert body["success"] is False and body["error"]["code"] == "validation_error"
    assert set(body["error"]["details"]) <= {"q", "limit", "before"}
    assert body["error"]["details"]


def test_exactly_200_characters_and_a_limit_of_50_are_served(client, auth_headers):
    assert found(client, auth_headers, "字" * 200, limit=50) == {"items": [], "next": None}


def test_without_a_token_it_is_401(client):
    response = client.get(URL, query_string={"q": "hello"})
    assert response.status_code == 401
    assert response.get_json()["error"]["code"] == "unauthorized"


def test_another_users_cursor_reveals_nothing(client, auth_headers, other_headers, user, now):
    conversation = add_conversation(user)
    for i in range(3):
        add_message(conversation, f"paged secret {i}", at=now + timedelta(seconds=i))
    cursor = found(client, auth_headers, "paged secret", limit=1)["next"]
    theirs = found(client, other_headers, "paged secret", before=cursor)
    assert theirs == {"items": [], "next": None}


def test_no_character_casefolds_into_a_caseless_one():
    """Why a caseless text may be looked for in the unfolded text (text_search.caseless)."""
    produced = {folded for code in range(sys.maxunicode + 1)
                for folded in chr(code).casefold() if folded != chr(code)}
    assert not [hex(ord(c)) for c in produced
                if unicodedata.category(c) in CASELESS_CATEGORIES]
    assert caseless("机器学习，日本語のテキスト 2026") and not caseless("中文 AND")


def test_searches_past_search_rate_limit_are_429(make_app, user):
    app = make_app(SEARCH_RATE_LIMIT="2 per minute")
    headers = bearer(tokens.issue_tokens(user, app.config)["access_token"])
    client = app.test_client()
    assert [client.get("/api/search", query_string={"q": "abc"}, headers=headers).status_code
            for _ in range(2)] == [200, 200]
    refused = client.get("/api/search", query_string={"q": "abc"}, headers=headers)
    assert refused.status_code == 429 and int(refused.headers["Retry-After"]) > 0
