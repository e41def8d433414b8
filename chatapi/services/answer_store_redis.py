"""The answer store in Redis (REDIS_URL), shared by every worker of every instance on it: what
answer_store.DatabaseAnswerStore keeps in two tables, kept in
  <prefix>:answer:<id>         a hash: worker, language, heartbeat_at, stop_requested,
                               listened_at, ended_at, last_event_id (times as epoch seconds)
  <prefix>:answer:<id>:events  a stream of the answer's events, entry id `<seq>-0`
  <prefix>:answers:running     a sorted set of running answers, scored by their heartbeat
  <prefix>:worker:<worker>     a set: the answers a worker runs
Nothing of a running answer expires or is trimmed; its hash and stream expire
RESUME_TTL_SECONDS after its end. One Redis, not a Cluster (scripts build keys from the prefix).

The database holds the answer's row, which is the truth: what must follow a database write (an
answer's end, after its row says so) is staged and written by `commit()` right after the
database commit, so that no stream sees an end its row does not show yet. When Redis fails
then, the staged writes are kept and retried at the next commit (the worker's ticker commits
every 0.2 s); if the worker dies first, or its answer's heartbeat lapses meanwhile, a reaper
writes the end from the stored row instead. Writes are idempotent by event number, so that
either way an answer has one end. Reads and stop requests fail closed (503)."""
import logging
import threading
import time
from dataclasses import dataclass
from datetime import datetime, timezone

import redis

from ..extensions import db
from ..redis_store import failing_closed

log = logging.getLogger(__name__)

# Events after the last one written, so that a write repeated after a failure adds nothing;
# with ARGV[1] = "end": the answer's end (out of the running sets, expiring after ARGV[2] s).
# ARGV: mode, ttl, now, answer id, the workers' key prefix, then (seq, event, data) each.
APPEND = """
local last = tonumber(redis.call('HGET', KEYS[1], 'last_event_id') or '0')
local i = 6
while i <= #ARGV do
  local seq = tonumber(ARGV[i])
  if seq > last then
    redis.call('XADD', KEYS[2], ARGV[i] .. '-0', 'e', ARGV[i + 1], 'd', ARGV[i + 2])
    last = seq
  end
  i = i + 3
end
redis.call('HSET', KEYS[1], 'last_event_id', last)
if ARGV[1] == 'end' then
  local worker = redis.call('HGET', KEYS[1], 'worker')
  redis.call('HSET', KEYS[1], 'ended_at', ARGV[3])
  redis.call('ZREM', KEYS[3], ARGV[4])
  if worker then redis.call('SREM', ARGV[5] .. worker, ARGV[4]) end
  redis.call('EXPIRE', KEYS[1], ARGV[2])
  redis.call('EXPIRE', KEYS[2], ARGV[2])
end
return last
"""

# A field of a running answer's hash (never recreating one that expired).
SET_IF_RUNNING = """
if redis.call('EXISTS', KEYS[1]) == 0 or redis.call('HEXISTS', KEYS[1], 'ended_at') == 1 then
  return 0
end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
return 1
"""

HEARTBEAT = """
for _, answer in ipairs(redis.call('SMEMBERS', KEYS[1])) do
  redis.call('ZADD', KEYS[2], 'XX', ARGV[1], answer)
  redis.call('HSET', ARGV[2] .. answer, 'heartbeat_at', ARGV[1])
end
"""

# One caller ends an abandoned answer: its heartbeat is moved to now, so that no other reaper
# claims it before this one writes its end, and one does again if this one fails to.
CLAIM = """
local beat = redis.call('ZSCORE', KEYS[1], ARGV[1])
if not beat or tonumber(beat) >= tonumber(ARGV[2]) then return 0 end
redis.call('ZADD', KEYS[1], ARGV[3], ARGV[1])
return 1
"""


# The keys of ended answers (KEYS: hash, stream, hash, stream, ...); a running one's stay.
FORGET_ENDED = """
for i = 1, #KEYS, 2 do
  if redis.call('HEXISTS', KEYS[i], 'worker') == 0
      or redis.call('HEXISTS', KEYS[i], 'ended_at') == 1 then
    redis.call('DEL', KEYS[i], KEYS[i + 1])
  end
end
"""


@dataclass
class RedisJob:
    """What answers.py reads of a job, as DatabaseAnswerStore's AnswerJob row gives it."""
    worker: str
    language: str
    heartbeat_at: datetime
    stop_requested: bool
    listened_at: datetime | None
    ended_at: datetime | None
    last_event_id: int


def moment(value):
    return None if value is None else datetime.fromtimestamp(float(value), timezone.utc)


class RedisAnswerStore:
    def __init__(self, client, prefix, resume_ttl):
        self.redis = client
        self.prefix = f"{prefix}:answer:"
        self.running = f"{prefix}:answers:running"
        self.workers = f"{prefix}:worker:"
        self.resume_ttl = int(resume_ttl)
        self.append_script = client.register_script(APPEND)
        self.set_if_running = client.register_script(SET_IF_RUNNING)
        self.heartbeat_script = client.register_script(HEARTBEAT)
        self.claim_script = client.register_script(CLAIM)
        self.forget_script = client.register_script(FORGET_ENDED)
        self.staged = threading.local()  # greenlet-local under gevent
        self.unwritten = []  # staged writes Redis refused after their database commit
        self.lock = threading.Lock()

    def key(self, answer_id):
        return self.prefix + answer_id

    def reserve(self, answer_id, worker, language):
        """Before the transaction that stores the answer's row (which, on SQLite, must make
        no round trip while it holds the only writer's lock): Redis down refuses the answer
        (503) before anything is stored; `discard` when that transaction fails."""
        now = time.time()
        with failing_closed(), self.redis.pipeline() as pipe:
            pipe.hset(self.key(answer_id), mapping={
                "worker": worker, "language": language, "heartbeat_at": now,
                "stop_requested": 0, "last_event_id": 0})
            pipe.zadd(self.running, {answer_id: now})
            pipe.sadd(self.workers + worker, answer_id)
            pipe.execute()

    def open(self, answer_id, worker, language):
        """Nothing more in the answer's transaction: `reserve` wrote the job."""

    def discard(self, answer_id, worker):
        """The job of an answer whose row was never stored."""
        with self.redis.pipeline() as pipe:
            pipe.delete(self.key(answer_id))
            pipe.zrem(self.running, answer_id)
            pipe.srem(self.workers + worker, answer_id)
            pipe.execute()

    def append(self, batches):
        """The new events of running answers, {answer id: [(seq, event, data)]}, written now,
        in one round trip."""
        if not batches:
            return
        with self.redis.pipeline(transaction=False) as pipe:
            for answer_id, events in batches.items():
                self.write(answer_id, events, ended=False, client=pipe)
            pipe.execute()

    def end(self, answer_id, events):
        """An answer's last events (the last of them its end; none when its end is there
        already), written by `commit()` after the database commit."""
        self.staged_writes().append((answer_id, events))

    def write(self, answer_id, events, ended, client=None):
        args = ["end" if ended else "", self.resume_ttl, time.time(), answer_id, self.workers]
        for seq, kind, data in events:
            args += [seq, kind, data]
        self.append_script(keys=[self.key(answer_id), self.key(answer_id) + ":events",
                                 self.running], args=args, client=client)

    def staged_writes(self):
        if not hasattr(self.staged, "writes"):
            self.staged.writes = []
        return self.staged.writes

    def forget(self, answer_ids):
        """Remove the keys of those of `answer_ids` that ended, after the database commit
        (`commit()`). A running one's keys expire after its end."""
        self.staged.forgets = getattr(self.staged, "forgets", []) + list(answer_ids)

    def forget_staged(self):
        answer_ids, self.staged.forgets = getattr(self.staged, "forgets", []), []
        try:
            for start in range(0, len(answer_ids), 500):
                keys = []
                for answer_id in answer_ids[start:start + 500]:
                    keys += [self.key(answer_id), self.key(answer_id) + ":events"]
                self.forget_script(keys=keys, args=[])
        except redis.RedisError:
            log.warning("could not remove the events of %d deleted answers: they expire "
                        "RESUME_TTL_SECONDS after their end", len(answer_ids))

    def commit(self):
        """Commit the database transaction, then write what was staged for after it."""
        db.session.commit()
        self.forget_staged()
        with self.lock:
            writes, self.unwritten = self.unwritten + self.staged_writes(), []
            self.staged.writes = []
        for position, (answer_id, events) in enumerate(writes):
            try:
                self.write(answer_id, events, ended=True)
            except redis.RedisError:
                # The stored answer stands; its streams elsewhere wait for the retry.
                log.warning("the end of answer %s is not in Redis yet", answer_id)
                with self.lock:
                    self.unwritten.extend(writes[position:])
                return

    def rollback(self):
        db.session.rollback()
        self.staged.writes = []
        self.staged.forgets = []

    def has_unwritten(self):
        return bool(self.unwritten)

    def job(self, answer_id):
        with failing_closed():
            fields = self.redis.hgetall(self.key(answer_id))
        if b"worker" not in fields:
            return None
        text = {name.decode(): value.decode() for name, value in fields.items()}
        return RedisJob(worker=text["worker"], language=text["language"],
                        heartbeat_at=moment(text["heartbeat_at"]),
                        stop_requested=text["stop_requested"] == "1",
                        listened_at=moment(text.get("listened_at")),
                        ended_at=moment(text.get("ended_at")),
                        last_event_id=int(text["last_event_id"]))

    def events_after(self, answer_id, after):
        with failing_closed():
            entries = self.redis.xrange(self.key(answer_id) + ":events", f"{after + 1}-0", "+")
        return [(int(entry_id.split(b"-")[0]), fields[b"e"].decode(), fields[b"d"].decode())
                for entry_id, fields in entries]

    def request_stop(self, answer_id):
        with failing_closed():
            self.set_if_running(keys=[self.key(answer_id)], args=["stop_requested", 1])

    def listened(self, answer_id):
        with failing_closed():
            self.set_if_running(keys=[self.key(answer_id)], args=["listened_at", time.time()])

    def running_on(self, worker):
        """{answer id: (stop requested, last listened elsewhere)} of the worker's answers."""
        with failing_closed():
            answers = [member.decode() for member in self.redis.smembers(self.workers + worker)]
            with self.redis.pipeline(transaction=False) as pipe:
                for answer_id in answers:
                    pipe.hmget(self.key(answer_id), "stop_requested", "listened_at", "ended_at")
                states = pipe.execute()
        return {answer_id: (stop == b"1", moment(listened))
                for answer_id, (stop, listened, ended) in zip(answers, states) if ended is None}

    def heartbeat(self, worker):
        self.heartbeat_script(keys=[self.workers + worker, self.running],
                              args=[time.time(), self.prefix])

    def stale(self, silent_for):
        with failing_closed():
            return [member.decode() for member in self.redis.zrangebyscore(
                self.running, "-inf", f"({time.time() - silent_for}")]

    def claim_end(self, answer_id, silent_for):
        """True when this caller is the one to write the end of an answer whose worker is gone;
        its end leaves the running set when written (end() + commit())."""
        now = time.time()
        with failing_closed():
            return self.claim_script(keys=[self.running],
                                     args=[answer_id, now - silent_for, now]) == 1

    def sweep(self, kept_for):
        """Nothing to do: an ended answer's keys expire by themselves."""
