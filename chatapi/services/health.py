import logging

from sqlalchemy import text
from sqlalchemy.exc import SQLAlchemyError

from ..extensions import db

log = logging.getLogger(__name__)


def report(version):
    try:
        db.session.execute(text("SELECT 1"))
        database = "ok"
    except SQLAlchemyError as error:
        log.warning("database check failed: %s", type(error).__name__)
        db.session.rollback()
        database = "unreachable"
    return {"status": "ok" if database == "ok" else "degraded", "database": database,
            "version": version}
