"""What every worker knows of the answers being written, in the database: each answer's events
(for streams that attach later or elsewhere), which worker runs it and whether that worker is
alive, and requests to stop it. The writer batches its events (services/answers.py)."""
from datetime import timedelta

from sqlalchemy import bindparam, delete, select, update

from ..extensions import db
from ..models import AnswerEvent, AnswerJob
from ..models.timestamps import utcnow
from .answer_store_redis import RedisAnswerStore

EVENTS = AnswerEvent.__table__
INSERT_EVENTS = EVENTS.insert()
JOBS = AnswerJob.__table__
INSERT_JOB = JOBS.insert()
END_JOB = (update(JOBS).where(JOBS.c.answer_id == bindparam("job_id"))
           .values(ended_at=bindparam("ended"), last_event_id=bindparam("last")))


class DatabaseAnswerStore:
    """Every write joins the session's transaction; `commit()` is the database's."""

    def reserve(self, answer_id, worker, language):
        """Nothing before the transaction: the job's row is stored with the answer's."""

    def discard(self, answer_id, worker):
        """Nothing: the job's row went with the transaction that failed."""

    def open(self, answer_id, worker, language):
        """The job's row, added to the transaction that stores the answer's row."""
        db.session.connection().execute(INSERT_JOB, {
            "answer_id": answer_id, "worker": worker, "language": language,
            "heartbeat_at": utcnow(), "stop_requested": False, "last_event_id": 0})

    def append(self, batches):
        """Add the new events of running answers, {answer id: [(seq, event, data)]}, to the
        transaction: one statement for them all (a worker's ticker writes every 0.2 s)."""
        rows = [{"answer_id": answer_id, "seq": seq, "event": kind, "data": data}
                for answer_id, events in batches.items() for seq, kind, data in events]
        if rows:
            # The table's insert, not the model's: no ORM bookkeeping for each event.
            db.session.connection().execute(INSERT_EVENTS, rows)

    def end(self, answer_id, events):
        """Add an answer's last events (the last of them its end; none when its end is stored
        already) to the transaction, and mark it ended."""
        self.append({answer_id: events})
        if not events:
            db.session.execute(update(AnswerJob).where(AnswerJob.answer_id == answer_id)
                               .values(ended_at=utcnow()))
            return
        db.session.connection().execute(END_JOB, {"job_id": answer_id, "ended": utcnow(),
                                                  "last": events[-1][0]})

    def commit(self):
        db.session.commit()

    def rollback(self):
        db.session.rollback()

    def has_unwritten(self):
        return False

    def job(self, answer_id):
        return db.session.scalar(select(AnswerJob).where(AnswerJob.answer_id == answer_id))

    def events_after(self, answer_id, after):
        return [(row.seq, row.event, row.data) for row in db.session.execute(
            select(AnswerEvent.seq, AnswerEvent.event, AnswerEvent.data)
            .where(AnswerEvent.answer_id == answer_id, AnswerEvent.seq > after)
            .order_by(AnswerEvent.seq))]

    def request_stop(self, answer_id):
        db.session.execute(update(AnswerJob).where(AnswerJob.answer_id == answer_id,
                                                   AnswerJob.ended_at.is_(None))
                           .values(stop_requested=True))
        db.session.commit()

    def listened(self, answer_id):
        db.session.execute(update(AnswerJob).where(AnswerJob.answer_id == answer_id)
                           .values(listened_at=utcnow()))
        db.session.commit()

    def running_on(self, worker):
        """{answer id: (stop requested, last listened elsewhere)} of the worker's answers."""
        return {row.answer_id: (row.stop_requested, row.listened_at)
                for row in db.session.execute(
                    select(AnswerJob.answer_id, AnswerJob.stop_requested, AnswerJob.listened_at)
                    .where(AnswerJob.worker == worker, AnswerJob.ended_at.is_(None)))}

    def heartbeat(self, worker):
        db.session.execute(update(AnswerJob).where(AnswerJob.worker == worker,
                                                   AnswerJob.ended_at.is_(None))
                           .values(heartbeat_at=utcnow()))

    def stale(self, silent_for):
        """Answers whose worker has not said it is alive for `silent_for` seconds."""
        cutoff = utcnow() - timedelta(seconds=silent_for)
        return db.session.scalars(select(AnswerJob.answer_id).where(
            AnswerJob.ended_at.is_(None), AnswerJob.heartbeat_at < cutoff)).all()

    def claim_end(self, answer_id, silent_for):
        """End a job whose worker is gone, unless another worker did first (or the job ended or
        came alive meanwhile); True when this caller is the one to write its end."""
        cutoff = utcnow() - timedelta(seconds=silent_for)
        claimed = db.session.execute(
            update(AnswerJob).where(AnswerJob.answer_id == answer_id,
                                    AnswerJob.ended_at.is_(None),
                                    AnswerJob.heartbeat_at < cutoff)
            .values(ended_at=utcnow()).execution_options(synchronize_session=False))
        return claimed.rowcount == 1

    def forget(self, answer_ids):
        """Remove the jobs and events of those of `answer_ids` that ended, in the transaction.
        A running one is left to the sweep: its writer still adds events, which a removed
        job's row would no longer sweep."""
        for chunk in chunks(answer_ids):
            ended = db.session.scalars(select(AnswerJob.answer_id).where(
                AnswerJob.answer_id.in_(chunk), AnswerJob.ended_at.is_not(None))).all()
            if ended:
                for table in (AnswerEvent, AnswerJob):
                    db.session.execute(delete(table).where(table.answer_id.in_(ended))
                                       .execution_options(synchronize_session=False))

    def sweep(self, kept_for):
        """Forget the events of answers that ended more than `kept_for` seconds ago."""
        cutoff = utcnow() - timedelta(seconds=kept_for)
        expired = select(AnswerJob.answer_id).where(AnswerJob.ended_at < cutoff)
        db.session.execute(delete(AnswerEvent).where(AnswerEvent.answer_id.in_(expired))
                           .execution_options(synchronize_session=False))
        db.session.execute(delete(AnswerJob).where(AnswerJob.ended_at < cutoff)
                           .execution_options(synchronize_session=False))
        db.session.commit()


def chunks(ids, size=500):
    """`ids` in lists short enough for one statement's parameters on every database."""
    ids = list(ids)
    return [ids[start:start + size] for start in range(0, len(ids), size)]


def answer_store(redis_client, config):
    """In Redis when REDIS_URL is set (shared by every instance on it), else the database."""
    if redis_client is None:
        return DatabaseAnswerStore()
    return RedisAnswerStore(redis_client, config["RATELIMIT_KEY_PREFIX"],
                            config["RESUME_TTL_SECONDS"])
