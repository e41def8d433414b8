"""One writer at a time per process on SQLite, waited for where gevent can switch.

SQLite lets one connection write at a time; another waits for the lock in SQLite's busy
handler, in C, where gevent cannot switch. A greenlet that holds the write lock across a
network round trip (Redis, a model, a tool) gives way to the others, and when one of them then
waits in C for the lock, nothing else of the worker runs, the holder included, until the busy
timeout ends that wait with "database is locked". Here a connection's first write of a
transaction first takes a lock of this process, where a waiting greenlet gives way to the
holder; the lock is let go when the transaction ends. SQLite's own lock still orders the
writers of other processes, whose waits only delay them."""
import logging
import threading

from sqlalchemy import event

log = logging.getLogger(__name__)

WRITES = ("INSERT", "UPDATE", "DELETE", "REPLACE")
HOLDS = "chatapi.holds_write_lock"


class WriterLock:
    def __init__(self, wait_seconds):
        # Made when the app is, in the worker, after gevent patched `threading`.
        self.lock = threading.Lock()
        self.wait_seconds = wait_seconds

    def before_statement(self, connection, _cursor, statement, *_args):
        if connection.info.get(HOLDS) or not statement.lstrip()[:7].upper().startswith(WRITES):
            return
        # Past the wait, SQLite's own busy handler decides (another connection of this
        # greenlet, say, holding the lock).
        if not self.lock.acquire(timeout=self.wait_seconds):
            log.warning("waited %.0f s for this process's SQLite writer", self.wait_seconds)
            return
        connection.info[HOLDS] = True

    def let_go(self, info):
        if info.pop(HOLDS, False):
            self.lock.release()

    def transaction_ended(self, connection):
        self.let_go(connection.info)

    def returned(self, _dbapi_connection, record, *_args):
        self.let_go(record.info)


def one_writer_at_a_time(engine, wait_seconds):
    writers = WriterLock(wait_seconds)
    event.listen(engine, "before_cursor_execute", writers.before_statement)
    event.listen(engine, "commit", writers.transaction_ended)
    event.listen(engine, "rollback", writers.transaction_ended)
    # A connection given back or dropped mid-transaction: SQLite rolls it back.
    event.listen(engine.pool, "checkin", writers.returned)
    event.listen(engine.pool, "invalidate", writers.returned)
    return writers
