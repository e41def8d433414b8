"""A gunicorn (gevent) worker killed with SIGKILL in the middle of a stream: nothing runs in it
to end the answer, so another worker does once the killed one has been silent for
ANSWER_REAP_AFTER_SECONDS (interrupted, with the text its events had stored), and the service
goes on with a new worker."""
import os
import signal
from pathlib import Path

import pytest
import requests

from ..conftest import gunicorn_env
from ..servers import gunicorn_process
from ..simulator_client import wait_for
from ..sse_client import events, open_stream
from .conftest import stored

pytestmark = pytest.mark.slow


def workers_of(master):
    return [int(pid) for pid in
            Path(f"/proc/{master.pid}/task/{master.pid}/children").read_text().split()]


def test_a_worker_killed_mid_stream_leaves_a_consistent_conversation_and_a_new_worker(
        app, auth_headers, database_url, glm_simulator):
    glm_simulator.reset()
    # A requests response keeps its keep-alive connection until it is collected, and gunicorn
    # waits for open connections on SIGTERM: do not wait 30 s at the end.
    env = gunicorn_env(database_url, glm_simulator, GRACEFUL_TIMEOUT="3",
                       ANSWER_HEARTBEAT_SECONDS="0.5", ANSWER_REAP_AFTER_SECONDS="3")
    content = "[[chunks:100]][[delay:100]]"
    with gunicorn_process(env, workers=1) as (base, master):
        conversation_id = requests.post(f"{base}/api/conversations/", json={},
                                        headers=auth_headers, timeout=30).json()["data"]["id"]
        [worker] = workers_of(master)
        received, cut = [], None
        with open_stream(base, auth_headers, conversation_id, content) as response:
            try:
                for kind, data, _ in events(response):
                    received.append((kind, data))
                    if len(received) == 4:
                        os.kill(worker, signal.SIGKILL)
            except requests.RequestException as error:
                cut = type(error).__name__

        # The client saw the stream stop: no `done` or `error`, the HTTP response cut short.
        kinds = [kind for kind, _ in received]
        assert kinds[0] == "start" and set(kinds[1:]) == {"text"}
        assert 3 <= len(kinds) < 100
        assert cut == "ChunkedEncodingError"
        # The upstream connection died with the worker: GLM does not stream on for nobody.
        hangups = wait_for(glm_simulator.hangups, timeout=60.0)
        assert hangups and hangups[0]["chunks_sent"] < 100

        # The new worker ends the answer: interrupted, with a prefix of what was sent.
        answer_id = received[0][1]["assistant_message_id"]
        sent_text = "".join(data["delta"] for kind, data in received if kind == "text")

        def reaped():
            count, rows = stored(conversation_id)
            return (count, rows) if rows[-1].status != "in_progress" else None

        count, rows = wait_for(reaped, timeout=120.0)
        assert [(m.role, m.status) for m in rows] == [
            ("user", "completed"), ("assistant", "incomplete")]
        answer = rows[1]
        assert (answer.id, answer.finish_reason, answer.error_code) == (
            answer_id, "interrupted", "answer_interrupted")
        assert sent_text.startswith(answer.content)
        assert count == len(rows) == 2
        # A stream that comes back gets the answer's end.
        with requests.get(f"{base}/api/messages/{answer_id}/stream", stream=True, timeout=60,
                          headers={**auth_headers, "Last-Event-ID": "1"}) as again:
            tail = list(events(again))
        assert tail[-1][0] == "error"
        assert tail[-1][1]["assistant_message"]["finish_reason"] == "interrupted"

        sent = requests.post(f"{base}/api/messages/", headers=auth_headers, timeout=30,
                             json={"conversation_id": conversation_id, "content": "again"})
        assert sent.status_code == 201
        assert sent.json()["data"]["assistant_message"]["status"] == "completed"
        count, rows = stored(conversation_id)
        assert count == len(rows) == 4
