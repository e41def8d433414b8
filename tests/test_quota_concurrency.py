"""A quota under concurrency, on real gunicorn gevent workers sharing the counters (the
database, or Redis in the suite's Redis pass): 50 sends, ten at a time, by a user with 1,000
tokens left. Each send waits for its answer, so at most ten answers run at once: the quota may
be overshot by the answers running when it ran out, never by more, whichever worker each send
lands on; every refused send stored nothing, and once it has run out every send is refused."""
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests
from sqlalchemy import func, select

from chatapi.extensions import db
from chatapi.models import Message, TokenCounter, UsageRecord
from chatapi.models.timestamps import utcnow

from .conftest import gunicorn_env
from .servers import gunicorn

pytestmark = pytest.mark.slow

LIMIT = 100_000
LEFT = 1_000
SENDS = 50
AT_ONCE = 10
# About 100 prompt tokens (the simulator counts four characters a token), 3 completion tokens.
CONTENT = "[[chunks:3]][[delay:100]]" + "x" * 400


@pytest.fixture
def service(app, database_url, glm_simulator):
    glm_simulator.reset()
    env = gunicorn_env(database_url, glm_simulator, TOKEN_QUOTA=f"{LIMIT} per day",
                       MESSAGE_RATE_LIMIT="off", MAX_CONCURRENT_ANSWERS="0")
    with gunicorn(env, workers=2) as base:
        yield base


def test_parallel_sends_overshoot_by_at_most_the_answers_running(service, auth_headers, user):
    db.session.add(TokenCounter(user_id=user.id, day=utcnow().date(), used=LIMIT - LEFT))
    db.session.commit()
    conversations = [requests.post(f"{service}/api/conversations/", json={}, timeout=30,
                                   headers=auth_headers).json()["data"]["id"]
                     for _ in range(SENDS)]

    def send(conversation_id):
        response = requests.post(f"{service}/api/messages/", headers=auth_headers, timeout=120,
                                 json={"conversation_id": conversation_id, "content": CONTENT})
        return response.status_code, response.json()

    with ThreadPoolExecutor(AT_ONCE) as pool:
        outcomes = list(pool.map(send, conversations))

    statuses = [status for status, _ in outcomes]
    print(f"{statuses.count(201)} sends answered, {statuses.count(429)} refused")
    assert set(statuses) == {201, 429}, statuses
    assert all(body["error"]["code"] == "quota_exceeded"
               for status, body in outcomes if status == 429)
    db.session.expire_all()
    questions = db.session.scalar(select(func.count()).select_from(Message).where(
        Message.role == "user"))
    assert questions == statuses.count(201)
    spent = db.session.scalar(select(func.sum(TokenCounter.used)).where(
        TokenCounter.user_id == user.id))
    assert spent == LIMIT - LEFT + db.session.scalar(select(func.sum(UsageRecord.total_tokens)))
    largest = db.session.scalar(select(func.max(UsageRecord.total_tokens)))
    assert LIMIT <= spent <= LIMIT + AT_ONCE * largest, (spent, largest)

    me = requests.get(f"{service}/api/auth/me", headers=auth_headers, timeout=30).json()
    assert me["data"]["quota"]["used"] == spent
    assert me["data"]["quota"]["remaining"] == 0
    for status, _ in map(send, conversations[:4]):  # both workers refuse from now on
        assert status == 429
