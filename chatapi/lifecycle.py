"""What a gunicorn worker does when it starts and when it is told to stop (wired in
gunicorn.conf.py)."""
import time

import gevent

from .services.answers import RUNTIMES, interrupt_every_answer, wait_for_every_answer

# The worker notices SIGTERM up to a second late and the master kills it exactly
# graceful_timeout after sending it: end the answers with this much time to spare.
SPARE_SECONDS = 2.0


def tick_always():
    """A worker's ticker runs from its start, so that it ends the answers of dead workers even
    while it writes none itself."""
    for runtime in list(RUNTIMES):
        runtime.tick_always()


def end_answers_before(graceful_timeout):
    """Answers still running near the end of the graceful time are ended and stored as
    `incomplete` (`interrupted`) instead of dying with the worker."""
    deadline = time.monotonic() + max(0.0, graceful_timeout - SPARE_SECONDS)
    gevent.spawn_later(max(0.0, graceful_timeout - SPARE_SECONDS), interrupt_every_answer)
    return deadline


def end_answers_at_exit(deadline):
    """The worker has stopped serving (no request is open): its answers, which run without
    one, get until `deadline` to end by themselves, then are interrupted and stored."""
    wait_for_every_answer(max(0.0, deadline - time.monotonic()))
    interrupt_every_answer()
    wait_for_every_answer(SPARE_SECONDS - 0.5)
