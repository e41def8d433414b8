"""A gunicorn (gevent) worker killed with SIGKILL in the middle of a stream: nothing runs to
store the answer, so what matters is that the database holds no half of it and the service
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
    env = gunicorn_env(database_url, glm_simulator, GRACEFUL_TIMEOUT="3")
    content = "[[chunks:100]][[delay:100]]"
    with gunicorn_process(env, workers=1) as (base, master):
        conversation_id = requests.post(f"{base}/api/conversations/", json={},
                                        headers=auth_headers, timeout=5).json()["data"]["id"]
        [worker] = workers_of(master)
        received, cut = [], None
        with open_stream(base, auth_headers, conversation_id, content) as response:
            try:
                for kind, data, _ in events(response):
                    received.append(kind)
                    if len(received) == 4:
                        os.kill(worker, signal.SIGKILL)
            except requests.RequestException as error:
                cut = type(error).__name__

        # The client saw the stream stop: no `done` or `error`, the HTTP response cut short.
        assert received[0] == "start" and set(received[1:]) == {"text"}
        assert 3 <= len(received) < 100
        assert cut == "ChunkedEncodingError"
        # The upstream connection died with the worker: GLM does not stream on for nobody.
        hangups = wait_for(glm_simulator.hangups, timeout=5.0)
        assert hangups and hangups[0]["chunks_sent"] < 100

        # The user message was committed before GLM was asked; the answer, written only at the
        # end, was never begun: no half-written row, and the count matches the rows.
        count, rows = stored(conversation_id)
        assert [(m.role, m.status, m.content) for m in rows] == [("user", "completed", content)]
        assert count == len(rows) == 1

        assert wait_for(lambda: [pid for pid in workers_of(master) if pid != worker],
                        timeout=15.0)
        sent = requests.post(f"{base}/api/messages/", headers=auth_headers, timeout=30,
                             json={"conversation_id": conversation_id, "content": "again"})
        assert sent.status_code == 201
        assert sent.json()["data"]["assistant_message"]["status"] == "completed"
        count, rows = stored(conversation_id)
        assert count == len(rows) == 3
