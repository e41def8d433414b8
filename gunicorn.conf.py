"""gunicorn settings for ChatAPI: gevent workers, so one worker holds many open streams."""
import importlib.util
from contextlib import contextmanager
from pathlib import Path

import gevent
from gunicorn.workers.ggevent import GeventWorker


def chatapi_config():
    """chatapi/config.py, loaded on its own: the master imports nothing of the `chatapi`
    package, so each worker imports the app (psycopg, httpx, ...) after gevent patches it."""
    path = Path(__file__).resolve().parent / "chatapi" / "config.py"
    spec = importlib.util.spec_from_file_location("chatapi_gunicorn_config", path)
    config = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(config)
    return config


_config = chatapi_config()
_env = _config.gunicorn_settings()
bind = _env["bind"]


class ChatAPIWorker(GeventWorker):
    """gunicorn's gevent worker, except that on SIGTERM the connections idling between two
    requests (nginx keeps some open to every worker) are closed at once: gunicorn would wait
    the whole graceful time for them, as if they were answers in progress."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.idle = {}  # handler greenlet -> the Timeout of its wait for the next request

    @contextmanager
    def timeout_ctx(self):
        # The wait gunicorn's worker makes (keepalive seconds, ending quietly), made endable.
        # Every other connection whose request is ready goes first: a client that sends its
        # next request at once would otherwise find it already read, and be served again and
        # again without a switch (under load, a few keep-alive clients got most answers and the
        # others waited over a second).
        gevent.sleep(0)
        # A stop that came during that turn found nothing to end here: do not wait.
        timeout = gevent.Timeout(self.cfg.keepalive if self.alive else 0, False)
        handler = gevent.getcurrent()
        self.idle[handler] = timeout
        try:
            with timeout:
                yield
        finally:
            self.idle.pop(handler, None)

    def close_idle_connections(self):
        gevent.get_hub().loop.run_callback(self.end_idle_waits)

    def end_idle_waits(self):
        """Runs in the hub, as a firing Timeout does: each handler still waiting gets its own
        Timeout raised now and closes its connection; one that has a request by now is left
        alone (it was checked just before, with no switch in between)."""
        for handler in list(self.idle):
            timeout = self.idle.get(handler)
            if timeout is not None:
                handler.throw(timeout)


# Imported by gunicorn's master before any fork, so this file imports nothing of the app.
worker_class = ChatAPIWorker
workers = _env["workers"]
# Each answer holds one client and one GLM connection; 2,000 leaves room beside 1,000 streams.
worker_connections = _env["worker_connections"]
# The gevent worker's heartbeat runs on its own greenlet, so a long healthy stream never
# trips `timeout`; it only catches a worker whose loop is blocked.
timeout = _env["timeout"]
# On SIGTERM a worker stops accepting and lets answers run this long; the ones still running
# 2 s before the end are stored as `incomplete` (see post_worker_init below).
graceful_timeout = _env["graceful_timeout"]
# Longer than nginx's upstream keepalive_timeout (60 s), so nginx never reuses a connection
# that gunicorn has just closed (which would answer 502).
keepalive = _env["keepalive"]
# The app refuses a request target over MAX_URL_LENGTH (4,096) and a head over
# MAX_HEADERS_LENGTH (16 KiB) with the envelope's 414 / 431 (chatapi/http.py). gunicorn's own
# limits sit above them so that the app answers first: the longest request line gunicorn still
# bounds (0 would mean no bound at all), header fields up to 32 KiB, 256 of them, so at most
# ~8 MiB of head is buffered per connection. Past those gunicorn answers itself, in the
# envelope too (post_worker_init).
limit_request_line = 8190
limit_request_field_size = 32768
limit_request_fields = 256
# The app writes one line per request (with its request id) to the error log stream.
accesslog = None
errorlog = "-"
loglevel = _env["loglevel"]
# gunicorn's control socket lives at one path per user; several instances on a host (tests,
# blue/green deploys) would fight over it, and nothing here uses it.
control_socket_disable = True


def on_starting(server):
    """Settings left unset are said here, once per start, not by every worker; the development
    JWT key is made here, before the workers that read it exist. Two sockets per stream: lift
    the soft open-file limit (often 1,024) to the hard one."""
    import os
    import resource

    settings = {name: _config.env_str(name) for name in ("JWT_SECRET_KEY", "ZHIPUAI_API_KEY")}
    for notice in _config.startup_notices(settings, _config.INSTANCE_PATH):
        server.log.warning(notice)
    os.environ[_config.NOTICES_SAID] = "1"

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = 4 * worker_connections + 256
    if soft < wanted:
        resource.setrlimit(resource.RLIMIT_NOFILE,
                           (wanted if hard == resource.RLIM_INFINITY else min(wanted, hard), hard))


def post_worker_init(worker):
    """gunicorn's own error answers speak the envelope; the answers' ticker starts; on SIGTERM,
    idle keep-alive connections close, and answers that would outlive graceful_timeout are
    stored as incomplete (interrupted)."""
    import signal

    from chatapi import gunicorn_errors
    from chatapi.lifecycle import end_answers_before, tick_always

    gunicorn_errors.install()
    tick_always()

    stop_accepting = signal.getsignal(signal.SIGTERM)

    def on_sigterm(signum, frame):
        stop_accepting(signum, frame)
        worker.close_idle_connections()
        worker.chatapi_answers_deadline = end_answers_before(worker.cfg.graceful_timeout)

    signal.signal(signal.SIGTERM, on_sigterm)


def worker_exit(server, worker):
    """Answers run without a request: a worker that has stopped serving waits for them (to the
    graceful deadline) before it exits, and stores what the rest have."""
    import time

    from chatapi.lifecycle import SPARE_SECONDS, end_answers_at_exit

    deadline = getattr(worker, "chatapi_answers_deadline", None)
    if deadline is None:
        deadline = time.monotonic() + max(0.0, worker.cfg.graceful_timeout - SPARE_SECONDS)
    end_answers_at_exit(deadline)
