from sqlalchemy import Boolean, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from ..extensions import db
from .timestamps import UTCDateTime


class AnswerJob(db.Model):
    """An answer being written (docs/API.md §4, "Answers as jobs"), as the workers that do not
    run it see it: who runs it, whether it is alive, whether someone asked it to stop. Kept
    RESUME_TTL_SECONDS after its end, with its events, for re-attaching streams. No foreign
    key: an answer deleted while it runs leaves these rows to the sweep, not to its writer's
    next insert failing."""

    __tablename__ = "answer_jobs"
    __table_args__ = (Index("ix_answer_jobs_worker_ended", "worker", "ended_at"),
                      Index("ix_answer_jobs_ended_heartbeat", "ended_at", "heartbeat_at"))

    answer_id: Mapped[str] = mapped_column(String(40), primary_key=True)
    worker: Mapped[str] = mapped_column(String(80))
    # What its texts are written in, for a last event written by another worker.
    language: Mapped[str] = mapped_column(String(8))
    heartbeat_at = mapped_column(UTCDateTime, nullable=False)
    stop_requested: Mapped[bool] = mapped_column(Boolean, default=False, nullable=False)
    # A stream of it attached on another worker says so here now and then.
    listened_at = mapped_column(UTCDateTime)
    ended_at = mapped_column(UTCDateTime)
    last_event_id: Mapped[int] = mapped_column(Integer, default=0, nullable=False)


class AnswerEvent(db.Model):
    """One stream event of an answer, as sent: `seq` is its `id:` (1, 2, ...)."""

    __tablename__ = "answer_events"

    answer_id: Mapped[str] = mapped_column(String(40), primary_key=True)
    seq: Mapped[int] = mapped_column(Integer, primary_key=True)
    event: Mapped[str] = mapped_column(String(16))
    data: Mapped[str] = mapped_column(Text)
