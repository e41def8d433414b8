"""The app's one Redis client (REDIS_URL), shared by revocations, rate limits and answer slots,
and the one place where Redis failing becomes the 503 that fails closed."""
from contextlib import contextmanager

import redis

from .errors import UpstreamUnavailable


def redis_client(config):
    """None without REDIS_URL. Connecting and each reply wait at most REDIS_TIMEOUT seconds:
    without a socket timeout a hung Redis would hold every request for redis-py's default."""
    if not config["REDIS_URL"]:
        return None
    return redis.Redis.from_url(config["REDIS_URL"], socket_timeout=config["REDIS_TIMEOUT"],
                                socket_connect_timeout=config["REDIS_TIMEOUT"])


@contextmanager
def failing_closed():
    """Redis unreachable, refusing or too slow: 503 `upstream_unavailable`, never an answer
    given as if the revocation, the counter or the lease were not there."""
    try:
        yield
    except redis.RedisError as error:
        raise UpstreamUnavailable() from error
