"""What only the Redis answer store does (REDIS_URL; skipped when the suite has no Redis): the
events of a running answer are never trimmed and expire only after its end; instances sharing
one Redis stop each other's answers, and reap an abandoned one exactly once."""
import os
import threading
import uuid

import pytest

from chatapi.services import chat as chat_service

from .simulator_client import wait_for
from .test_answers_as_jobs import (STALLED, URL, follow, left_by_a_dead_worker, open_stream,
                                   read_until, stored)
from .test_chat import parse_events

pytestmark = pytest.mark.skipif(not os.environ.get("REDIS_URL"),
                                reason="the suite has no Redis (REDIS_URL)")


@pytest.fixture
def instances(chat_app):
    """A factory of apps that stand for instances behind one nginx: one database, one Redis,
    one key prefix."""
    prefix = f"chatapi-test-{uuid.uuid4().hex}"
    return lambda **overrides: chat_app(**{"REDIS_URL": os.environ["REDIS_URL"],
                                           "RATELIMIT_KEY_PREFIX": prefix,
                                           "GLM_READ_TIMEOUT": 600.0, **overrides})


def new_conversation(client, headers):
    return client.post("/api/conversations/", json={}, headers=headers).json["data"]["id"]


def started_answer(client, headers, content):
    """An answer started by a stream that then goes away: (its id, the rest of its stream)."""
    response, pieces = open_stream(client, headers, new_conversation(client, headers), content)
    answer_id = read_until(pieces, "start")[0][1]["assistant_message_id"]
    return answer_id, response


def store_of(app):
    return app.extensions["chatapi.answers"].store


def written_events(store, answer_id, at_least):
    return wait_for(lambda: (job := store.job(answer_id)) and job.last_event_id >= at_least
                    and job, timeout=120)


def test_a_running_answers_events_are_never_trimmed_and_expire_only_after_its_end(
        instances, auth_headers):
    app = instances(RESUME_TTL_SECONDS=120)
    client, store = app.test_client(), store_of(app)
    answer_id, response = started_answer(
        client, auth_headers, "[[chunks:5100]][[stall_after:5000]][[stall:600]]")
    response.close()
    job = written_events(store, answer_id, 5001)
    stream_key = store.key(answer_id) + ":events"
    assert store.redis.xlen(stream_key) == job.last_event_id == 5001
    assert [seq for seq, *_ in store.events_after(answer_id, 0)] == list(range(1, 5002))
    assert store.redis.ttl(stream_key) == store.redis.ttl(store.key(answer_id)) == -1

    stopped = instances().test_client().post(f"{URL}{answer_id}/stop", headers=auth_headers)
    assert stopped.status_code == 200, stopped.json
    assert stopped.json["data"]["message"]["finish_reason"] == "stopped"
    for key in (stream_key, store.key(answer_id)):
        assert 100 <= store.redis.ttl(key) <= 120
    events = parse_events(follow(instances().test_client(), auth_headers, answer_id)
                          .get_data(as_text=True))
    assert len(events) == 5002 and events[-1][0] == "done"
    assert sum(1 for kind, _ in events if kind == "text") == 5000


def test_a_stop_asked_of_another_instance_reaches_the_answer(instances, auth_headers,
                                                             glm_simulator):
    first, second = instances().test_client(), instances().test_client()
    response, pieces = open_stream(first, auth_headers, new_conversation(first, auth_headers),
                                   STALLED)
    seen = read_until(pieces, "text", count=2)
    answer_id = seen[0][1]["assistant_message_id"]

    stopped = second.post(f"{URL}{answer_id}/stop", headers=auth_headers)
    assert stopped.status_code == 200, stopped.json
    message = stopped.json["data"]["message"]
    assert (message["status"], message["finish_reason"], message["content"]) == (
        "incomplete", "stopped", "w0 w1 ")
    assert wait_for(glm_simulator.hangups, timeout=30)
    rest = read_until(pieces, "done")
    response.close()
    assert rest[-1][0] == "done" and rest[-1][1]["assistant_message"] == message
    # Followed on the other instance: the same events, from Redis.
    again = parse_events(follow(second, auth_headers, answer_id).get_data(as_text=True))
    assert [(kind, data) for kind, data, _ in seen + rest] == again


def test_two_instances_reaping_one_abandoned_answer_end_it_once(instances, auth_headers):
    apps = [instances(ANSWER_REAP_AFTER_SECONDS=1.0) for _ in range(2)]
    client = apps[0].test_client()
    sent = client.post(URL, headers=auth_headers, json={
        "conversation_id": new_conversation(client, auth_headers),
        "content": "[[reply:so far]]"})
    answer_id = sent.json["data"]["assistant_message"]["id"]
    left_by_a_dead_worker(apps[0], answer_id)

    both_ready = threading.Barrier(2)

    def reap(app):
        with app.app_context():
            both_ready.wait()
            app.extensions["chatapi.answers"].end_abandoned(answer_id, chat_service.INTERRUPTED,
                                                            1.0)

    reapers = [threading.Thread(target=reap, args=(app,)) for app in apps]
    for reaper in reapers:
        reaper.start()
    for reaper in reapers:
        reaper.join(60)
    answer = stored(answer_id)
    assert (answer.status, answer.finish_reason, answer.content) == (
        "incomplete", "interrupted", "so far")
    events = store_of(apps[0]).events_after(answer_id, 0)
    assert [kind for _, kind, _ in events].count("error") == 1
    assert events[-1][1] == "error" and "answer_interrupted" in events[-1][2]
    assert [seq for seq, *_ in events] == list(range(1, len(events) + 1))


def test_a_running_answer_of_200_chunks_takes_a_few_kilobytes_of_redis(instances,
                                                                       auth_headers):
    app = instances()
    store = store_of(app)
    answer_id, response = started_answer(app.test_client(), auth_headers,
                                         "[[chunks:300]][[stall_after:200]][[stall:600]]")
    response.close()
    written_events(store, answer_id, 201)
    running = memory_of(store, answer_id)
    assert app.test_client().post(f"{URL}{answer_id}/stop",
                                  headers=auth_headers).status_code == 200
    ended = memory_of(store, answer_id)
    print(f"\nRedis memory of an answer of 200 chunks: {running} bytes running, "
          f"{ended} bytes ended (its last event carries the whole message)")
    assert running < 32 * 1024 and ended < 32 * 1024


def memory_of(store, answer_id):
    """Its hash and its stream (its entries in the running sets add some 100 bytes)."""
    key = store.key(answer_id)
    return sum(store.redis.memory_usage(name, samples=0) for name in (key, key + ":events"))
