"""One SQLite writer at a time per process (chatapi/sqlite_writes.py), under gevent as gunicorn's
workers run: a greenlet that holds the write lock across a round trip to the network lets the
others wait where gevent can switch, so it gets to commit and they write after it. Without
that, the second writer waits in SQLite's busy handler, in C: nothing else of the process runs
until the busy timeout fails it with "database is locked"."""
import json
import sqlite3
import subprocess
import sys

import pytest

from chatapi import create_app
from chatapi.extensions import db
from chatapi.models import User
from chatapi.services import tokens

from .conftest import app_config, bearer, migrated
from .servers import PROJECT

pytestmark = pytest.mark.slow

SCRIPT = """
from gevent import monkey
monkey.patch_all()

import json, sys
import gevent
from gevent.event import Event
from sqlalchemy import text

from chatapi import create_app
from chatapi.extensions import db

app = create_app({"TESTING": True, "SQLALCHEMY_DATABASE_URI": sys.argv[1],
                  "JWT_SECRET_KEY": "k" * 64, "REDIS_URL": None})
with app.app_context():
    db.session.execute(text("CREATE TABLE scratch (writer TEXT)"))
    db.session.commit()

holding = Event()
outcome = {}


def write(name, round_trip):
    with app.app_context():
        try:
            if name == "second":
                holding.wait()
            db.session.execute(text("INSERT INTO scratch VALUES (:name)"), {"name": name})
            if round_trip:
                holding.set()
                gevent.sleep(0.2)  # a round trip to Redis inside the transaction
            db.session.commit()
            outcome[name] = "committed"
        except Exception as error:
            outcome[name] = f"{type(error).__name__}: {error}"


gevent.joinall([gevent.spawn(write, "first", True), gevent.spawn(write, "second", False)])
with app.app_context():
    outcome["rows"] = db.session.execute(text("SELECT writer FROM scratch ORDER BY rowid")
                                         ).scalars().all()
print(json.dumps(outcome))
"""


def test_a_writer_holding_the_lock_across_a_round_trip_commits_and_the_next_one_follows(
        tmp_path):
    done = subprocess.run([sys.executable, "-c", SCRIPT, f"sqlite:///{tmp_path / 'w.db'}"],
                          cwd=PROJECT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    outcome = json.loads(done.stdout.strip().splitlines()[-1])
    assert outcome == {"first": "committed", "second": "committed",
                       "rows": ["first", "second"]}


def test_a_write_that_waits_out_the_busy_timeout_is_503_and_changes_nothing(tmp_path):
    """Another process (a CLI command, say) holds SQLite's write lock past the busy timeout."""
    app = create_app(app_config(migrated(f"sqlite:///{tmp_path / 'busy.db'}"), REDIS_URL=None))
    with app.app_context():
        user = User(username="busy", username_key="busy", email="busy@example.com",
                    password_hash="x")
        db.session.add(user)
        db.session.commit()
        headers = {**bearer(tokens.issue_tokens(user, app.config)["access_token"]),
                   "Accept-Language": "en"}
    holder = sqlite3.connect(tmp_path / "busy.db")
    holder.execute("BEGIN IMMEDIATE")
    try:
        response = app.test_client().post("/api/conversations/", json={}, headers=headers)
    finally:
        holder.rollback()
        holder.close()
    assert response.status_code == 503, response.get_data(as_text=True)
    assert response.json["error"]["code"] == "upstream_unavailable"
    assert response.json["message"] == "The database is unavailable"
    assert "locked" not in response.get_data(as_text=True)
    listed = app.test_client().get("/api/conversations/", headers=headers)
    assert listed.status_code == 200 and listed.json["data"]["total"] == 0
    with app.app_context():
        db.engine.dispose()
