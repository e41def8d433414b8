"""Token quotas (docs/API.md §8, "Quotas"): each user may spend so many tokens a UTC day, week
(from Monday) or month, TOKEN_QUOTA's or their own (`flask users set-quota`). What was spent
is kept per user and day in the database (token_counters, added to in the transaction that
stores an answer's end); with REDIS_URL each period's total is also kept in Redis for a short
while, so that checking a send costs one Redis read. A send is checked before anything is
stored: the answers already running when the quota runs out may finish, no new one starts."""
import math
from datetime import datetime, time, timezone

from sqlalchemy import bindparam, func, select
from sqlalchemy.dialects.postgresql import insert as postgres_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from ..errors import RateLimited
from ..extensions import db
from ..models import TokenCounter
from ..models.timestamps import iso_utc
from ..quota_text import PERIODS, Quota, parse_quota
from ..redis_store import failing_closed

# How long Redis keeps a period's total before it is summed from the database again: the most
# a total can lag behind when an answer's end was stored while the total was being summed.
CACHE_SECONDS = 30


def quota_of(user, default):
    """The user's own quota when one is set (`none` included), else `default`."""
    if user.token_quota is None:
        return default
    return parse_quota(user.token_quota)


COUNTERS = TokenCounter.__table__
SPENT_SINCE = (select(func.coalesce(func.sum(COUNTERS.c.used), 0))
               .where(COUNTERS.c.user_id == bindparam("user_id"),
                      COUNTERS.c.day >= bindparam("since")))


def add_to_counter(insert):
    statement = insert(COUNTERS)
    return statement.on_conflict_do_update(
        index_elements=["user_id", "day"],
        set_={"used": COUNTERS.c.used + statement.excluded.used})


# By dialect: built once.
ADD_TO_COUNTER = {"postgresql": add_to_counter(postgres_insert),
                  "sqlite": add_to_counter(sqlite_insert)}


class DatabaseMeter:
    """What users spent, per day, in the database."""

    def used(self, user_id, since):
        # Through the session's connection: the ORM's handling of a statement costs as much
        # as the query. int(): PostgreSQL sums a bigint as a numeric.
        return int(db.session.connection().execute(
            SPENT_SINCE, {"user_id": user_id, "since": since}).scalar())

    def add(self, user_id, spent):
        """Add {day: tokens} to the user's counters, in the caller's transaction."""
        if not spent:
            return
        connection = db.session.connection()
        connection.execute(ADD_TO_COUNTER[connection.dialect.name], [
            {"user_id": user_id, "day": day, "used": tokens} for day, tokens in spent.items()])

    def added(self, user_id, spent):
        """After the commit of `add`: nothing more in the database alone."""


# Add to a cached total only while it is there: a total missing is summed from the database.
ADD_IF_CACHED = """
for i, key in ipairs(KEYS) do
  if redis.call('EXISTS', key) == 1 then redis.call('INCRBY', key, ARGV[i]) end
end
"""


class RedisMeter(DatabaseMeter):
    """The database's counters, each period's total cached in Redis for CACHE_SECONDS."""

    def __init__(self, client, prefix):
        self.redis = client
        self.prefix = f"{prefix}:tokens:"
        self.add_if_cached = client.register_script(ADD_IF_CACHED)

    def key(self, user_id, since):
        return f"{self.prefix}{user_id}:{since.isoformat()}"

    def used(self, user_id, since):
        key = self.key(user_id, since)
        with failing_closed():
            cached = self.redis.get(key)
            if cached is not None:
                return int(cached)
            total = super().used(user_id, since)
            self.redis.set(key, total, ex=CACHE_SECONDS, nx=True)
        return total

    def added(self, user_id, spent):
        """Each period total cached that holds a day of `spent` grows by that day's tokens,
        once: a total is the sum from its first day on, so on a Monday or a month's first day
        the day's, the week's and the month's are one key."""
        amounts = {}
        for day, tokens in spent.items():
            for since in {Quota(1, period).start(datetime.combine(day, time(), timezone.utc))
                          for period in PERIODS}:
                key = self.key(user_id, since)
                amounts[key] = amounts.get(key, 0) + tokens
        try:
            self.add_if_cached(keys=list(amounts), args=list(amounts.values()))
        except Exception:  # the totals expire within CACHE_SECONDS and are summed again
            pass


def token_meter(redis_client, config):
    if redis_client is None:
        return DatabaseMeter()
    return RedisMeter(redis_client, config["RATELIMIT_KEY_PREFIX"])


class QuotaExceeded(RateLimited):
    code = "quota_exceeded"


def check(meter, quota, user_id, now):
    """Raises QuotaExceeded (429, Retry-After: seconds until the period resets) when the user
    has spent the quota's tokens."""
    if quota is None:
        return
    used = meter.used(user_id, quota.start(now))
    if used >= quota.limit:
        wait = math.ceil((quota.resets_at(now) - now).total_seconds())
        raise QuotaExceeded("quota_exceeded", headers={"Retry-After": str(max(wait, 1))},
                            details={"limit": quota.limit, "period": quota.period,
                                     "used": used, "resets_at": iso_utc(quota.resets_at(now))})


def status(meter, quota, user_id, now):
    """What /api/auth/me tells of the user's quota; None without one."""
    if quota is None:
        return None
    used = meter.used(user_id, quota.start(now))
    return {"limit": quota.limit, "period": quota.period, "used": used,
            "remaining": max(quota.limit - used, 0), "resets_at": quota.resets_at(now)}


def account_with_quota(user, default_quota, meter, now):
    """The account as /api/auth/me shows it: its fields and its quota's status."""
    fields = ("id", "username", "email", "role", "is_active", "created_at")
    return {**{name: getattr(user, name) for name in fields},
            "quota": status(meter, quota_of(user, default_quota), user.id, now)}
