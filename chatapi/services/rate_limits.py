"""Moving-window counters (the `limits` library): in memory for one process by default, in
Redis, shared by every worker and host, when `REDIS_URL` is set. Unreachable Redis fails
closed (503)."""
import math
import time

import redis
from limits import parse
from limits.storage import storage_from_string
from limits.strategies import MovingWindowRateLimiter

from ..errors import RateLimited, UpstreamUnavailable


class RateLimiter:
    def __init__(self, storage_uri, namespace, redis_timeout):
        # Without a socket timeout a hung Redis holds every login for redis-py's default (5 s).
        self.windows = MovingWindowRateLimiter(storage_from_string(
            storage_uri, socket_timeout=redis_timeout, socket_connect_timeout=redis_timeout))
        self.namespace = namespace

    def ensure_allowed(self, limit, *key):
        """Refuse when the window is full, without counting this call."""
        item = parse(limit)
        try:
            allowed = self.windows.test(item, self.namespace, *key)
        except redis.RedisError as error:
            raise UpstreamUnavailable() from error
        if not allowed:
            self.refuse(item, key)

    def count(self, limit, *key):
        try:
            self.windows.hit(parse(limit), self.namespace, *key)
        except redis.RedisError as error:
            raise UpstreamUnavailable() from error

    def take(self, limit, *key):
        """Count this call, or refuse it when the window is full."""
        item = parse(limit)
        try:
            allowed = self.windows.hit(item, self.namespace, *key)
        except redis.RedisError as error:
            raise UpstreamUnavailable() from error
        if not allowed:
            self.refuse(item, key)

    def refuse(self, item, key):
        try:
            reset_at = self.windows.get_window_stats(item, self.namespace, *key).reset_time
        except redis.RedisError as error:
            raise UpstreamUnavailable() from error
        retry_after = max(1, math.ceil(reset_at - time.time()))
        raise RateLimited(headers={"Retry-After": str(retry_after)})
