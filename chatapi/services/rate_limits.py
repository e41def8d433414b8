"""Moving-window counters (the `limits` library): in memory for one process by default, in
Redis, shared by every worker and host, when `REDIS_URL` is set. Unreachable Redis fails
closed (503)."""
import math
import time

from limits import parse
from limits.storage import storage_from_string
from limits.strategies import MovingWindowRateLimiter

from ..errors import RateLimited
from ..redis_store import failing_closed


class RateLimiter:
    def __init__(self, storage_uri, redis_client, namespace):
        # In Redis, the counters go through the app's own client (its connections, its timeout).
        pool = {"connection_pool": redis_client.connection_pool} if redis_client else {}
        self.windows = MovingWindowRateLimiter(storage_from_string(storage_uri, **pool))
        self.namespace = namespace

    def ensure_allowed(self, limit, *key):
        """Refuse when the window is full, without counting this call."""
        self.refuse_when_full(self.windows.test, parse(limit), key)

    def take(self, limit, *key):
        """Count this call, or refuse it when the window is full."""
        self.refuse_when_full(self.windows.hit, parse(limit), key)

    def count(self, limit, *key):
        with failing_closed():
            self.windows.hit(parse(limit), self.namespace, *key)

    def refuse_when_full(self, check, item, key):
        with failing_closed():
            if check(item, self.namespace, *key):
                return
            reset_at = self.windows.get_window_stats(item, self.namespace, *key).reset_time
        retry_after = max(1, math.ceil(reset_at - time.time()))
        raise RateLimited(headers={"Retry-After": str(retry_after)})
