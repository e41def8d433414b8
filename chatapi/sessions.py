"""The database session of every request. On PostgreSQL a GET or HEAD reads without a
transaction: at READ COMMITTED (the default, and this service's) each statement sees what was
committed before it began, in a transaction or not, so around reads BEGIN and ROLLBACK were two
round trips that changed nothing. Writes, and everything outside a request (answers, the CLI),
keep their transaction."""
from flask import current_app, has_request_context, request
from flask_sqlalchemy.session import Session

READING_METHODS = ("GET", "HEAD")
READING_ENGINE = "chatapi.reading_engine"


class RequestSession(Session):
    def get_bind(self, mapper=None, clause=None, bind=None, **kwargs):
        engine = super().get_bind(mapper, clause, bind, **kwargs)
        if bind is None and has_request_context() and request.method in READING_METHODS:
            return current_app.extensions.get(READING_ENGINE, {}).get(engine, engine)
        return engine


def read_without_transactions(app, engine):
    """GET and HEAD requests of `app` read through `engine` (its pool) in autocommit."""
    app.extensions[READING_ENGINE] = {engine: engine.execution_options(
        isolation_level="AUTOCOMMIT")}
