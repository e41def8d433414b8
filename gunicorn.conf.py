"""gunicorn settings for ChatAPI: gevent workers, so one worker holds many open streams."""
import os

bind = os.environ.get("BIND", f"127.0.0.1:{os.environ.get('PORT', '8000')}")
worker_class = "gevent"
workers = int(os.environ.get("WEB_CONCURRENCY", "2"))
# Each answer holds one client and one GLM connection; 2,000 leaves room beside 1,000 streams.
worker_connections = int(os.environ.get("WORKER_CONNECTIONS", "2000"))
# The gevent worker's heartbeat runs on its own greenlet, so a long healthy stream never
# trips `timeout`; it only catches a worker whose loop is blocked.
timeout = int(os.environ.get("GUNICORN_TIMEOUT", "30"))
# On SIGTERM a worker stops accepting and lets answers run this long; the ones still running
# 2 s before the end are stored as `incomplete` (see post_worker_init below).
graceful_timeout = int(os.environ.get("GRACEFUL_TIMEOUT", "30"))
# Longer than nginx's upstream keepalive_timeout (60 s), so nginx never reuses a connection
# that gunicorn has just closed (which would answer 502).
keepalive = int(os.environ.get("KEEPALIVE", "75"))
# The app writes one line per request (with its request id) to the error log stream.
accesslog = None
errorlog = "-"
loglevel = os.environ.get("LOG_LEVEL", "info").lower()
# gunicorn's control socket lives at one path per user; several instances on a host (tests,
# blue/green deploys) would fight over it, and nothing here uses it.
control_socket_disable = True


def on_starting(server):
    """Two sockets per stream: lift the soft open-file limit (often 1,024) to the hard one."""
    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = 4 * worker_connections + 256
    if soft < wanted:
        resource.setrlimit(resource.RLIMIT_NOFILE,
                           (wanted if hard == resource.RLIM_INFINITY else min(wanted, hard), hard))


def post_worker_init(worker):
    """On SIGTERM, streams that would outlive graceful_timeout are stored as incomplete."""
    import signal

    from chatapi.lifecycle import end_answers_before

    stop_accepting = signal.getsignal(signal.SIGTERM)

    def on_sigterm(signum, frame):
        stop_accepting(signum, frame)
        end_answers_before(worker.cfg.graceful_timeout)

    signal.signal(signal.SIGTERM, on_sigterm)
