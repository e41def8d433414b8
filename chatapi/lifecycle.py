"""What a gunicorn worker does when told to stop (wired in gunicorn.conf.py)."""
import gevent

from .services.chat import cancel_live_exchanges

# The worker notices SIGTERM up to a second late and the master kills it exactly
# graceful_timeout after sending it: end the answers with this much time to spare.
SPARE_SECONDS = 2.0


def end_answers_before(graceful_timeout):
    """Streams still running near the end of the graceful time are ended and stored as
    `incomplete` (the client gets `done` with that status) instead of dying with the worker."""
    gevent.spawn_later(max(0.0, graceful_timeout - SPARE_SECONDS), cancel_live_exchanges)
