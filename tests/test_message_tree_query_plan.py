"""Listing the active branch of a conversation of 1,000 messages in 50 branches, among 9,000
other messages: the walk from the leaf to the root goes by index one step at a time, and a
page is one statement besides the conversation's look-up and the siblings'."""
import re
from contextlib import contextmanager
from datetime import timedelta

import pytest
from sqlalchemy import event, insert, select, text, update

from chatapi.extensions import db
from chatapi.models import Conversation, Message
from chatapi.models.conversation import new_conversation_id
from chatapi.models.timestamps import utcnow
from chatapi.services import messages
from chatapi.services import tree as tree_service
from chatapi.services.tree import branch as branch_walk

from .message_trees import branched, linear

pytestmark = pytest.mark.slow


def store(owner, rows, leaf):
    conversation_id = rows[0]["conversation_id"]
    db.session.execute(insert(Conversation), [{"id": conversation_id, "user_id": owner.id,
                                               "model": "glm-5", "message_count": len(rows)}])
    # Parents first, so that each row's foreign key finds its parent.
    db.session.execute(insert(Message), rows)
    db.session.execute(update(Conversation).where(Conversation.id == conversation_id)
                       .values(current_message_id=leaf))


@pytest.fixture
def tree(user, other_user):
    """(the conversation's id, its active branch root first)."""
    start = utcnow() - timedelta(days=1)
    rows, branch = branched(new_conversation_id(), 1000, 50, start)
    store(user, rows, branch[-1])
    for _ in range(9):
        others, other_branch = linear(new_conversation_id(), 1000, start)
        store(other_user, others, other_branch[-1])
    db.session.commit()
    if db.engine.dialect.name == "postgresql":
        db.session.execute(text("ANALYZE messages"))
        db.session.execute(text("ANALYZE conversations"))
    return rows[0]["conversation_id"], branch


def plan_of(statement, explain=None):
    sql = str(statement.compile(db.engine, compile_kwargs={"literal_binds": True}))
    explain = explain or ("EXPLAIN " if db.engine.dialect.name == "postgresql"
                          else "EXPLAIN QUERY PLAN ")
    return "\n".join(str(row[-1]) for row in db.session.execute(text(explain + sql)))


@contextmanager
def statements():
    sent = []

    def count(_connection, _cursor, statement, *_args):
        sent.append(statement)

    event.listen(db.engine, "before_cursor_execute", count)
    try:
        yield sent
    finally:
        event.remove(db.engine, "before_cursor_execute", count)


def test_the_branch_is_walked_by_index_one_step_at_a_time(tree):
    conversation_id, branch = tree
    walk = branch_walk(conversation_id, branch[-1])
    plan = plan_of(messages.branch_page_query(walk, 100))
    print(plan)
    if db.engine.dialect.name == "postgresql":
        # The leaf, each step up (the Recursive Union's Nested Loop) and the page's rows.
        assert "Recursive Union" in plan
        assert "Seq Scan on messages" not in plan
        assert plan.count("Index Scan using pk_messages on messages") == 3
        # For the record: the rows and times of a run (the estimate of the walk's length is
        # the planner's guess for any recursion).
        print(plan_of(messages.branch_page_query(walk, 100), "EXPLAIN (ANALYZE) "))
    else:
        # The leaf, each step up (messages_1) and the page's rows: each a search of the key.
        assert "SCAN messages" not in plan
        assert len(re.findall(r"SEARCH messages(_1)? USING INDEX sqlite_autoindex_messages_1 "
                              r"\(id=\?\)", plan)) == 3


def test_a_page_of_the_active_branch_is_one_statement_with_its_total(user, tree):
    conversation_id, branch = tree
    user_id = user.id
    # Nothing from the session's identity map: every row is read as a request would.
    db.session.expire_all()
    with statements() as sent:
        page = messages.list_page(user_id, conversation_id, limit=100)
    # The conversation's look-up, the page with its total, the page's siblings.
    assert len(sent) == 3, sent
    assert [message["id"] for message in page["items"]] == branch[-100:]
    assert page["total"] == len(branch) == 744
    assert page["has_more"] is True
    # The fork's first message is the newer version of the trunk's message at its depth.
    assert page["items"][-5]["sibling_ids"][1:] == [branch[-5]]
    assert len(page["items"][-5]["sibling_ids"]) == 2

    with statements() as sent:
        older = messages.list_page(user_id, conversation_id, limit=100,
                                   before=page["items"][0]["id"])
    # One more: the depth of `before`.
    assert len(sent) == 4, sent
    assert [message["id"] for message in older["items"]] == branch[-200:-100]
    assert older["total"] == 744 and older["has_more"] is True


def test_a_new_answers_history_is_walked_by_index_one_step_at_a_time(tree):
    conversation_id, branch = tree
    plan = plan_of(tree_service.BRANCH_ROWS.params(conversation_id=conversation_id,
                                                   leaf_id=branch[-1]))
    print(plan)
    if db.engine.dialect.name == "postgresql":
        assert "Recursive Union" in plan
        assert "Seq Scan on messages" not in plan
        assert plan.count("Index Scan using pk_messages on messages") == 3
    else:
        assert "SCAN messages" not in plan
        assert len(re.findall(r"SEARCH (messages|parent) USING INDEX "
                              r"sqlite_autoindex_messages_1 \(id=\?\)", plan)) == 3


def test_a_new_answers_history_is_the_branch_up_to_its_last_answer(tree):
    conversation_id, branch = tree
    with statements() as sent:
        parent_id, rows = tree_service.history_to_follow(conversation_id, branch[-1])
    assert len(sent) == 1, sent
    stored = {message.id: message for message in db.session.scalars(
        select(Message).where(Message.id.in_(branch)))}
    last = max(position for position, message_id in enumerate(branch)
               if stored[message_id].role == "assistant"
               and stored[message_id].status != "in_progress")
    assert parent_id == branch[last]
    assert [row.id for row in rows] == branch[:last + 1]
