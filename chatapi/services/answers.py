"""Answers as jobs (docs/API.md §4, "Answers as jobs"). Each answer runs in a thread of its own
(a greenlet under gunicorn's gevent worker) to its end, whoever listens. Its events are numbered
from 1 and kept in memory for the streams of this worker; a ticker per worker writes them in
batches to the store (answer_store.py: the database, or Redis with REDIS_URL) for streams
attached elsewhere, keeps the answer's row at most CONTENT_SECONDS behind, says the worker is
alive, takes stop requests, stops answers nobody listens to (STOP_AFTER_DISCONNECT_SECONDS) and
ends the answers of dead workers."""
import json
import logging
import os
import socket
import secrets
import threading
import time
import weakref
from datetime import timedelta
from json.encoder import encode_basestring

from gevent import monkey
from gevent.lock import Semaphore
from sqlalchemy import bindparam, select, update

from ..errors import CODE_BY_STATUS, api_error_for
from ..extensions import db
from ..models import Message
from ..models.timestamps import utcnow
from ..texts import say
from . import chat, idempotency, messages, usage

log = logging.getLogger(__name__)

FLUSH_SECONDS = 0.2
CONTENT_SECONDS = 1.0
# A stream attached on a worker that does not run the answer reads the store this often, and
# says it is listening this often.
POLL_SECONDS = 0.2
LISTENED_SECONDS = 1.0
STOP_WAIT_SECONDS = 2.0
ENDS = ("done", "error")
# Past any event: following from here sends just the last one, once there is one.
LAST_EVENT = 2**31 - 1
# Every runtime of this process, so a stopping worker can end their answers.
RUNTIMES = weakref.WeakSet()

# The text so far of running answers, many at once (an executemany); a stored end is kept.
MESSAGES = Message.__table__
UPDATE_CONTENT = (update(MESSAGES)
                  .where(MESSAGES.c.id == bindparam("answer_id"),
                         MESSAGES.c.status == "in_progress")
                  .values(content=bindparam("text"), reasoning_content=bindparam("reasoning"),
                          tool_calls=bindparam("calls")))

# One encoder for every event; NaN and Infinity raise, as in every JSON response.
to_json = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), allow_nan=False).encode
# Most events are a piece of text: written as to_json writes them, without its walk of a dict.
DELTAS = ("text", "thinking")


def event_json(kind, data):
    if kind in DELTAS:
        return '{"delta":' + encode_basestring(data["delta"]) + "}"
    return to_json(data)


def held_lock():
    """A lock that is held, for a follower to wait on until an event releases it: under gevent
    its own semaphore (there threading's Lock is Python code around one), else a Lock."""
    if monkey.is_module_patched("threading"):
        return Semaphore(0)
    waiter = threading.Lock()
    waiter.acquire()
    return waiter


class Job:
    """One answer being written, as this worker holds it."""

    def __init__(self, exchange, on_detach):
        self.exchange = exchange
        self.id = exchange.assistant_message_id
        self.events = []  # (seq, kind, data as JSON text)
        self.written = 0  # how many of them are in the store
        self.content_written_at = time.monotonic()
        self.content_written = (0, 0, 0)
        self.ended = False
        self.ending = False  # its end is being stored
        self.failure = None  # the provider's or the tool loop's, an ApiError
        self.unstored = None  # why the end could not be stored, an ApiError
        self.listeners = 0
        self.listeners_lock = threading.Lock()
        self.detached_at = None
        self.on_detach = on_detach
        self.waiters = []  # a held lock for each follower waiting for the next event

    # Events are handed from the answer's thread to its streams without a Condition (under
    # gevent its RLock is Python code, paid several times per event): one thread writes, an
    # append to a list and the swap of `waiters` are atomic, and a follower looks again after
    # putting its waiter in the list, so that no wake-up is lost.

    def emit(self, kind, data, last=False):
        self.events.append((len(self.events) + 1, kind, event_json(kind, data)))
        if last:
            self.ended = True
        waiters, self.waiters = self.waiters, []
        for waiter in waiters:
            waiter.release()

    def wait_past(self, position, timeout):
        """Back once there is an event past `position` or the answer ended, or `timeout`
        (None: no limit) passed."""
        if position < len(self.events) or self.ended:
            return
        waiter = held_lock()
        self.waiters.append(waiter)
        if position < len(self.events) or self.ended:
            return
        waiter.acquire(timeout=-1 if timeout is None else timeout)

    def attach(self):
        with self.listeners_lock:
            self.listeners += 1
            self.detached_at = None

    def detach(self):
        with self.listeners_lock:
            self.listeners -= 1
            if self.listeners == 0:
                self.detached_at = time.monotonic()
        self.on_detach(self)

    def follow(self, after, ping_seconds):
        """Batches of the events after `after`, then of each new one as it comes, to the last;
        None when nothing came for `ping_seconds`. Past the end of an ended answer: its last
        event again."""
        self.attach()
        try:
            position, sent = after, False
            while True:
                self.wait_past(position, ping_seconds)
                # `ended` first: once it is set, the last event is in the list.
                ended = self.ended
                batch = self.events[position:]
                if batch:
                    position += len(batch)
                    sent = True
                    yield batch
                elif ended:
                    if not sent:
                        yield self.events[-1:]
                    return
                else:
                    yield None
        finally:
            self.detach()

    def wait(self, timeout=None):
        """Until the answer is stored (or `timeout` passes); True when it ended."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while not self.ended:
            left = None if deadline is None else deadline - time.monotonic()
            if left is not None and left <= 0:
                return False
            self.wait_past(len(self.events), left)
        return True

    def pending(self):
        return self.events[self.written:]

    def content_due(self, now):
        exchange = self.exchange
        # Pieces are only ever appended, none empty: their number tells a change, without a
        # walk of the whole answer on every tick.
        sizes = (len(exchange.text), len(exchange.reasoning), len(exchange.tool_calls))
        return sizes != self.content_written and now - self.content_written_at >= \
            CONTENT_SECONDS, sizes


class Opening:
    """An answer's job, opened in the store in steps around the transaction that stores the
    answer's row (chat.start)."""

    def __init__(self, store, worker, language, also):
        self.store, self.worker, self.language, self.also = store, worker, language, also

    def reserve(self, answer_id):
        self.store.reserve(answer_id, self.worker, self.language)

    def add(self, answer_id, question_id):
        self.store.open(answer_id, self.worker, self.language)
        if self.also is not None:
            self.also(answer_id, question_id)

    def undo(self, answer_id):
        try:
            self.store.discard(answer_id, self.worker)
        except Exception:  # Redis down: the worker's reaper-to-be finds no row for it
            log.warning("could not forget the job of answer %s, never stored", answer_id)


class Answers:
    """The answers of one app in this process; `store` is what every worker shares. Its
    writes are committed with the database's transaction by `store.commit()` (and dropped by
    `store.rollback()`): what must follow a database commit is written after it."""

    def __init__(self, app, store, dump, meter):
        self.app = app
        self.store = store
        self.meter = meter  # what users spent (services/quotas.py)
        self.dump = dump
        self.config = app.config
        self.jobs = {}
        self.ends_to_store = set()  # jobs whose end could not be stored yet
        self.lock = threading.Lock()
        self.write_lock = threading.Lock()
        self.ticker = None
        self.always_on = False
        self.pid = self.worker_id = None
        self.worker_lock = threading.Lock()
        self.timers = {}
        RUNTIMES.add(self)

    @property
    def worker(self):
        """This process's name in the store (made after gunicorn forks), made once: requests
        of several threads at once each read it as their first answer opens."""
        pid = os.getpid()
        with self.worker_lock:
            if self.pid != pid:
                self.worker_id = f"{socket.gethostname()[:50]}:{pid}:{secrets.token_hex(4)}"
                self.pid = pid
            return self.worker_id

    def opening(self, language, also=None):
        """How chat.start opens an answer's job (its `opening`); `also(answer_id,
        question_id)` adds what else is stored with the answer's row."""
        return Opening(self.store, self.worker, language, also)

    def start(self, exchange, run_exchange, start_data):
        job = Job(exchange, self.detached)
        job.emit("start", start_data)
        with self.lock:
            self.jobs[job.id] = job
        threading.Thread(target=self.run, args=(job, run_exchange), daemon=True).start()
        self.keep_ticking()
        return job

    def local(self, answer_id):
        return self.jobs.get(answer_id)

    def run(self, job, run_exchange):
        side_events = job.exchange.side_events
        with self.app.app_context():
            try:
                for kind, data in run_exchange():
                    job.emit(kind, data)
                    if side_events:
                        emit_side_events(job)
            except Exception as error:  # every failure must end as a stored answer
                job.failure = api_error_for(error)
            emit_side_events(job)
            try:
                self.end(job)
            finally:
                with self.lock:
                    self.jobs.pop(job.id, None)

    def end(self, job):
        """Store the answer's end with its last events, in one transaction; then tell its
        streams. When it cannot be stored, they get that error, without a message, and the
        ticker stores it once the database answers again."""
        job.ending = True
        if job.failure is not None:
            job.exchange.fail(job.failure)
        try:
            kind, data = self.store_end(job)
        except Exception as error:  # the answer is over: its end must still reach its streams
            self.store.rollback()
            job.unstored = api_error_for(error)
            with self.lock:
                self.ends_to_store.add(job)
            kind, data = "error", {"code": CODE_BY_STATUS[job.unstored.status],
                                   "message": say(job.unstored.text_key, job.exchange.language),
                                   "assistant_message": None}
        job.emit(kind, data, last=True)

    def store_end(self, job):
        """The answer's end, unless another worker ended it first (then its end). Its row,
        written only while it is still `in_progress`, tells first, with no look before:
        only when it is not does the store say whether the answer was ended elsewhere (or
        deleted: then its end is written as it would have been)."""
        with self.write_lock:
            written = self.write_end(job, running_only=True)
            if written is None:
                self.store.rollback()
                ended = self.ended_elsewhere(job)
                if ended is not None:
                    return ended
                written = self.write_end(job, running_only=False)
            kind, data, spent, last = written
            self.store.commit()
            job.written = last
        self.meter.added(job.exchange.user_id, spent)
        return kind, data

    def write_end(self, job, running_only):
        """Add the answer's end to the transaction: (its last event's kind and data, what the
        user spent, its number); None, with `running_only`, when its row is not in progress."""
        message, stored = chat.finish(job.exchange, running_only)
        if running_only and not stored:
            return None
        # A stored answer's account exists (deleting it deletes its messages).
        spent = usage.record(job.exchange, account_known=stored)
        self.meter.add(job.exchange.user_id, spent)
        kind, data = self.last_event(self.dump(message), job.exchange.language, job.failure)
        # A retry: the error its streams were sent is not the answer's end.
        pending = [event for event in job.pending() if event[1] not in ENDS]
        last = (pending[-1][0] if pending else job.written) + 1
        self.store.end(job.id, pending + [(last, kind, to_json(data))])
        return kind, data, spent, last

    def ended_elsewhere(self, job):
        """The last event of an answer another worker ended meanwhile (a reaper that took this
        worker for dead): the first end stored is the answer's; None when there is none."""
        try:
            stored_job = self.store.job(job.id)
        except Exception:  # a store that cannot tell (Redis down): the database's row decides
            log.warning("could not tell whether answer %s was ended elsewhere", job.id)
            return None
        if stored_job is None or stored_job.ended_at is None:
            return None
        stored = self.stored_message(job.id)
        self.store.rollback()
        if stored is None:
            return None
        job.exchange.release_slot()
        log.warning("answer %s was ended by another worker before this one ended it", job.id)
        return self.last_event(stored, job.exchange.language)

    def store_unstored_ends(self):
        for job in list(self.ends_to_store):
            try:
                self.store_end(job)
            except Exception:
                self.store.rollback()
                log.warning("the end of answer %s is still not stored", job.id)
                return
            with self.lock:
                self.ends_to_store.discard(job)

    @staticmethod
    def last_event(stored, language, failure=None):
        """`done` with the answer, or `error` with its code: as the answer is stored (a
        failure's own text when it is known)."""
        code = stored.get("error_code")
        if code is None:
            return "done", {"assistant_message": stored}
        text = say(failure.text_key if failure is not None else code, language)
        return "error", {"code": code, "message": text, "assistant_message": stored}

    # Streams of answers this worker does not run, and answers ended by another worker.

    def follow_stored(self, answer_id, after, ping_seconds, language):
        """Job.follow from the store, for an answer running on another worker or ended; when
        its events are no longer kept, only its last event, rebuilt from its row (no `id`)."""
        quiet_since = listened_at = time.monotonic()
        sent = False
        while True:
            # The job first: when it has ended, the events read next hold its end (stored
            # with it in one transaction); read the other way round, an end committed between
            # the two reads would skip the events stored with it.
            job = self.store.job(answer_id)
            events = self.store.events_after(answer_id, after)
            if not events and job is not None and job.ended_at is not None and not sent:
                events = self.store.events_after(answer_id, job.last_event_id - 1)
            if not events and job is None and not sent:
                message = self.stored_message(answer_id)
                if message is not None:
                    kind, data = self.last_event(message, language)
                    events = [(None, kind, to_json(data))]
            # No connection is held between two looks.
            db.session.close()
            if events:
                after, sent = events[-1][0], True
                quiet_since = time.monotonic()
                yield events
                if events[-1][1] in ENDS:
                    return
                continue
            if job is None or job.ended_at is not None:
                return
            now = time.monotonic()
            if now - listened_at >= LISTENED_SECONDS:
                self.store.listened(answer_id)
                listened_at = now
            if now - quiet_since >= ping_seconds:
                quiet_since = now
                yield None
            time.sleep(POLL_SECONDS)

    def follow(self, answer_id, after, ping_seconds, language):
        """The events of an answer after `after`, then live to its end, wherever it runs. It may
        take minutes: the caller's session is closed, so no connection is held meanwhile (the
        store's reader takes one for each look)."""
        db.session.close()
        job = self.local(answer_id)
        if job is not None:
            return job.follow(after, ping_seconds)
        return self.follow_stored(answer_id, after, ping_seconds, language)

    def wait_until_ended(self, answer_id, language):
        """Back once the answer is stored as it ended (or is gone), wherever it runs."""
        for _events in self.follow(answer_id, LAST_EVENT, LISTENED_SECONDS, language):
            pass

    def stored_message(self, answer_id):
        message = db.session.scalar(select(Message).where(Message.id == answer_id))
        if message is None:
            return None
        messages.attach_siblings([message])
        return self.dump(message)

    def stop(self, answer_id):
        """Stop the answer wherever it runs; back once it is stored (or STOP_WAIT_SECONDS
        passed). An answer whose worker is gone is ended here and now. The caller's session
        is closed first: waiting with its connection, ten stops at once held a pool of ten
        while the answers they waited for needed a connection to store their end."""
        db.session.close()
        job = self.local(answer_id)
        if job is not None:
            job.exchange.cancel(chat.STOPPED)
            job.wait(STOP_WAIT_SECONDS)
            return
        self.store.request_stop(answer_id)
        gone_after = 2 * self.config["ANSWER_HEARTBEAT_SECONDS"] + 1
        deadline = time.monotonic() + STOP_WAIT_SECONDS
        while time.monotonic() < deadline:
            job = self.store.job(answer_id)
            db.session.close()
            if job is None or job.ended_at is not None:
                return
            if worker_is_gone(job.worker):
                self.end_abandoned(answer_id, chat.STOPPED, 0)
                return
            if utcnow() - job.heartbeat_at > timedelta(seconds=gone_after):
                self.end_abandoned(answer_id, chat.STOPPED, gone_after)
                return
            time.sleep(POLL_SECONDS / 4)

    def end_abandoned(self, answer_id, reason, silent_for):
        """End an answer whose worker is gone: its row keeps the text its events carried,
        `incomplete` with `reason`; its streams get the last event. Done by one worker only."""
        try:
            if not self.store.claim_end(answer_id, silent_for):
                self.store.rollback()
                return
            job = self.store.job(answer_id)
            if job.stop_requested:  # asked before its worker was known to be gone
                reason = chat.STOPPED
            events = self.store.events_after(answer_id, 0)
            message = db.session.scalar(select(Message).where(Message.id == answer_id))
            ending = []
            if message is not None and message.status == "in_progress":
                keep_what_was_sent(message, events, reason)
                db.session.flush()
            if message is not None:
                messages.attach_siblings([message])
                language = job.language
                kind, data = self.last_event(self.dump(message), language)
                last = events[-1][0] if events else 0
                if not events or events[-1][1] not in ENDS:
                    ending = [(last + 1, kind, to_json(data))]
            self.store.end(answer_id, ending)
            self.store.commit()
        except Exception:
            self.store.rollback()
            log.exception("could not end the abandoned answer %s", answer_id)

    # The ticker: one per process and app, while it has answers (always under gunicorn).

    def tick_always(self):
        self.always_on = True
        self.keep_ticking()

    def keep_ticking(self):
        with self.lock:
            if self.ticker is None:
                self.ticker = threading.Thread(target=self.tick_while_needed, daemon=True)
                self.ticker.start()

    def tick_while_needed(self):
        with self.app.app_context():
            while True:
                try:
                    self.tick()
                except Exception:
                    self.store.rollback()
                    log.exception("answer ticker")
                finally:
                    db.session.close()
                with self.lock:
                    if not (self.jobs or self.ends_to_store or self.always_on
                            or self.store.has_unwritten()):
                        self.ticker = None
                        return
                time.sleep(FLUSH_SECONDS)

    def due(self, name, every, now):
        if now - self.timers.get(name, 0.0) >= every:
            self.timers[name] = now
            return True
        return False

    def tick(self):
        now = time.monotonic()
        jobs = list(self.jobs.values())
        with self.write_lock:
            # Answers whose end is not stored yet are alive too: this worker holds them whole.
            if (jobs or self.ends_to_store) and self.due(
                    "heartbeat", self.config["ANSWER_HEARTBEAT_SECONDS"], now):
                self.store.heartbeat(self.worker)
            written = self.write_progress(jobs, now)
            self.store.commit()
            for job, count in written:
                job.written += count
        if jobs:
            self.take_requests(jobs, now)
        if self.ends_to_store and self.due("unstored", CONTENT_SECONDS, now):
            self.store_unstored_ends()
        reap_after = self.config["ANSWER_REAP_AFTER_SECONDS"]
        if self.due("reap", max(1.0, min(reap_after / 3, 15.0)), now):
            for answer_id in self.store.stale(reap_after):
                if answer_id not in self.jobs and not any(
                        job.id == answer_id for job in self.ends_to_store):
                    self.end_abandoned(answer_id, chat.INTERRUPTED, reap_after)
        if self.due("sweep", 60.0, now):
            self.store.sweep(self.config["RESUME_TTL_SECONDS"])
            idempotency.sweep(self.config["IDEMPOTENCY_TTL_HOURS"])

    def write_progress(self, jobs, now):
        """Each answer's new events, and its text so far when CONTENT_SECONDS have passed: one
        statement for each kind, whatever the number of answers. The events first: in Redis,
        they are written before the database transaction holds any lock."""
        written, batches, contents = [], {}, []
        for job in jobs:
            if job.ended:
                continue
            pending = job.pending()
            if pending:
                batches[job.id] = pending
                written.append((job, len(pending)))
            due, sizes = job.content_due(now)
            if due:
                exchange = job.exchange
                contents.append({"answer_id": job.id, "text": "".join(exchange.text),
                                 "reasoning": "".join(exchange.reasoning) or None,
                                 "calls": list(exchange.tool_calls)})
                job.content_written, job.content_written_at = sizes, now
        self.store.append(batches)
        if contents:
            db.session.execute(UPDATE_CONTENT, contents)
        return written

    def take_requests(self, jobs, now):
        """Stop requests from other workers, and answers nobody has listened to for
        STOP_AFTER_DISCONNECT_SECONDS."""
        states = self.store.running_on(self.worker)
        for job in jobs:
            if job.id not in states:
                # Ended by another worker (which took this one for dead): stop writing it.
                if not job.ended and not job.ending:
                    job.exchange.cancel(chat.INTERRUPTED)
                continue
            stop_requested, listened_at = states[job.id]
            if stop_requested:
                job.exchange.cancel(chat.STOPPED)
            elif self.unheard_too_long(job, listened_at):
                job.exchange.cancel(chat.DISCONNECTED)

    def unheard_too_long(self, job, listened_at):
        limit = self.config["STOP_AFTER_DISCONNECT_SECONDS"]
        if limit is None or job.detached_at is None or job.listeners:
            return False
        if listened_at is not None and utcnow() - listened_at < timedelta(
                seconds=max(limit, LISTENED_SECONDS * 3)):
            return False
        return time.monotonic() - job.detached_at >= limit

    def detached(self, job):
        """The last stream of `job` here went away: with STOP_AFTER_DISCONNECT_SECONDS=0 the
        answer stops now (unless a stream elsewhere still listens)."""
        if self.config["STOP_AFTER_DISCONNECT_SECONDS"] != 0 or job.listeners or job.ended:
            return
        try:
            with self.app.app_context():
                listened_at = self.store.running_on(self.worker).get(job.id, (False, None))[1]
                db.session.close()
        except Exception:
            listened_at = None
        if self.unheard_too_long(job, listened_at):
            job.exchange.cancel(chat.DISCONNECTED)

    # A stopping worker, and a test's app.

    def interrupt_all(self):
        for job in list(self.jobs.values()):
            job.exchange.cancel(chat.INTERRUPTED)

    def settle(self, timeout):
        """Interrupt every answer and wait for them to be stored and the ticker to stop."""
        self.always_on = False
        self.interrupt_all()
        deadline = time.monotonic() + timeout
        for job in list(self.jobs.values()):
            job.wait(max(0.0, deadline - time.monotonic()))
        ticker = self.ticker
        if ticker is not None:
            ticker.join(max(0.0, deadline - time.monotonic()))


def emit_side_events(job):
    """Events other threads gave the answer (its conversation's title), sent from the answer's
    own thread, the only one that emits."""
    side_events = job.exchange.side_events
    while side_events:
        job.emit(*side_events.pop(0))


def worker_is_gone(worker):
    """True when `worker` (host:pid:token) ran on this host and its process has exited (or
    is a zombie): its answers need not wait for its heartbeat to go stale."""
    host, _, rest = worker.partition(":")
    pid = rest.partition(":")[0]
    if host != socket.gethostname()[:50] or not pid.isdigit():
        return False
    try:
        with open(f"/proc/{pid}/stat") as stat:
            state = stat.read().rpartition(")")[2].split()[0]
    except (FileNotFoundError, ProcessLookupError, IndexError):
        return True
    except OSError:
        return False
    return state in ("Z", "X")


def keep_what_was_sent(message, events, reason):
    """An answer's row from the events its streams were sent: the text, the thinking and the
    tool calls as far as they went."""
    text, reasoning, calls = [], [], {}
    for _seq, kind, data in events:
        payload = json.loads(data)
        if kind == "text":
            text.append(payload["delta"])
        elif kind == "thinking":
            reasoning.append(payload["delta"])
        elif kind == "tool_call":
            calls[payload["id"]] = {**payload, "result": None, "status": "error",
                                    "duration_ms": 0.0}
        elif kind == "tool_result":
            calls.setdefault(payload["id"], {"arguments": {}}).update(payload)
    message.content = "".join(text)
    message.reasoning_content = "".join(reasoning) or None
    message.tool_calls = list(calls.values())
    message.status = "incomplete"
    message.finish_reason = reason
    message.error_code = chat.ERROR_CODE_OF.get(reason)


def interrupt_every_answer():
    for runtime in list(RUNTIMES):
        runtime.interrupt_all()


def wait_for_every_answer(timeout):
    deadline = time.monotonic() + timeout
    for runtime in list(RUNTIMES):
        for job in list(runtime.jobs.values()):
            job.wait(max(0.0, deadline - time.monotonic()))
