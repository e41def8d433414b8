"""How many answers one user may have in progress at once (MAX_CONCURRENT_ANSWERS): each holds
an upstream connection and a worker's attention for minutes, so one account must not take them
all. Slots are leases: an answer renews its lease while it runs and gives it back when stored,
and a worker killed mid-answer only holds its slot until the lease runs out. In memory (one
process) by default; in Redis, shared by every worker and host, when REDIS_URL is set."""
import threading
import time

import redis

from ..errors import RateLimited
from ..redis_store import failing_closed

LEASE_SECONDS = 120
RENEW_AFTER_SECONDS = 30
RETRY_AFTER_SECONDS = "5"


def refused():
    return RateLimited("too_many_answers", headers={"Retry-After": RETRY_AFTER_SECONDS})


class MemoryAnswerSlots:
    def __init__(self):
        self.leases = {}  # user id -> {answer id: lease end}
        self.lock = threading.Lock()

    def acquire(self, user_id, answer_id, cap):
        now = time.monotonic()
        with self.lock:
            held = {answer: end for answer, end in self.leases.get(user_id, {}).items()
                    if end > now}
            if len(held) >= cap:
                self.leases[user_id] = held
                raise refused()
            held[answer_id] = now + LEASE_SECONDS
            self.leases[user_id] = held

    def renew(self, user_id, answer_id):
        with self.lock:
            held = self.leases.get(user_id, {})
            if answer_id in held:
                held[answer_id] = time.monotonic() + LEASE_SECONDS

    def release(self, user_id, answer_id):
        with self.lock:
            held = self.leases.get(user_id, {})
            held.pop(answer_id, None)
            if not held:
                self.leases.pop(user_id, None)


# Drop expired leases, then take one if fewer than the cap remain: atomic in Redis.
ACQUIRE = """
local now = tonumber(ARGV[1])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
if redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[2]) then return 0 end
redis.call('ZADD', KEYS[1], now + tonumber(ARGV[3]), ARGV[4])
redis.call('EXPIRE', KEYS[1], tonumber(ARGV[3]))
return 1
"""


class RedisAnswerSlots:
    """A sorted set per user: members are answer ids, scores the ends of their leases."""

    def __init__(self, client, prefix):
        self.redis = client
        self.prefix = f"{prefix}:answers:"
        self.acquire_script = self.redis.register_script(ACQUIRE)

    def acquire(self, user_id, answer_id, cap):
        with failing_closed():
            taken = self.acquire_script(keys=[self.prefix + str(user_id)],
                                        args=[time.time(), cap, LEASE_SECONDS, answer_id])
        if not taken:
            raise refused()

    def renew(self, user_id, answer_id):
        key = self.prefix + str(user_id)
        try:
            with self.redis.pipeline() as pipe:
                pipe.zadd(key, {answer_id: time.time() + LEASE_SECONDS}, xx=True)
                pipe.expire(key, LEASE_SECONDS)
                pipe.execute()
        except redis.RedisError:
            pass  # the lease may lapse early; the answer itself goes on

    def release(self, user_id, answer_id):
        try:
            self.redis.zrem(self.prefix + str(user_id), answer_id)
        except redis.RedisError:
            pass  # the lease runs out by itself


def answer_slots(redis_client, prefix):
    if redis_client is not None:
        return RedisAnswerSlots(redis_client, prefix)
    return MemoryAnswerSlots()
