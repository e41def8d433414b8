"""The app factory: settings, extensions, blueprints, error handlers, the CLI."""
import logging
import os

import click
from flask import Flask
from flask_cors import CORS
from sqlalchemy import event
from werkzeug.middleware.proxy_fix import ProxyFix

from . import apidocs, cli, errors, http, postgres, sqlite_writes, strict_json, web
from .api import register_blueprints, security
from .config import INSTANCE_PATH, NOTICES_SAID, Config, derive
from .glm import GLMClient
from .extensions import api, db, jwt, migrate
from .models.text_search import register_sqlite_casefold
from .redis_store import redis_client
from .schemas.messages import MessageSchema
from .services.answer_slots import answer_slots
from .services.answer_store import answer_store
from .services.answers import Answers
from .services.quotas import token_meter
from .services.rate_limits import RateLimiter
from .services.tokens import revocation_store
from .sessions import read_without_transactions
from .tools import default_registry
from .tools.compute_pool import compute_pool

log = logging.getLogger(__name__)

# How long a SQLite writer waits for another's lock before "database is locked" (503).
SQLITE_BUSY_SECONDS = 5


def create_app(config=None):
    app = Flask(__package__, static_folder=None, instance_path=INSTANCE_PATH)
    app.json = strict_json.StrictJSONProvider(app)
    app.config.update(Config.from_env())
    app.config.update(config or {})
    notices = derive(app.config, app.instance_path)
    configure_logging(app)
    say_startup_notices(notices, app.config["TESTING"])
    if app.config["PROXY_FIX_X_FOR"] > 0 or app.config["PROXY_FIX_X_PROTO"] > 0:
        # remote_addr (the login throttle's key) becomes the client the trusted proxies saw.
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=app.config["PROXY_FIX_X_FOR"],
                                x_proto=app.config["PROXY_FIX_X_PROTO"])

    app.url_map.strict_slashes = False
    register_extensions(app)
    register_blueprints(api)
    apidocs.init_app(app)
    web.init_app(app)
    errors.register_error_handlers(app)
    http.init_app(app)
    cli.init_app(app)
    return app


def say_startup_notices(notices, testing):
    """Settings left unset, said once per start: under gunicorn its master says them before it
    forks the workers (and sets NOTICES_SAID for them); a `flask` command other than `run`
    (migrations, `flask users`) needs neither key and says nothing; nor does a test's app."""
    if not notices or testing or os.environ.get(NOTICES_SAID):
        return
    command = click.get_current_context(silent=True)
    if command is not None and command.info_name != "run":
        return
    for notice in notices:
        log.warning(notice)


def make_sqlite_folder(config):
    sqlite_file = config["SQLALCHEMY_DATABASE_URI"].removeprefix("sqlite:///")
    if sqlite_file != config["SQLALCHEMY_DATABASE_URI"] and sqlite_file != ":memory:":
        os.makedirs(os.path.dirname(sqlite_file), exist_ok=True)


def configure_logging(app):
    if not logging.getLogger().handlers:
        logging.basicConfig(format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("chatapi").setLevel(app.config["LOG_LEVEL"])


def register_extensions(app):
    make_sqlite_folder(app.config)
    db.init_app(app)
    migrations = os.path.join(os.path.dirname(app.root_path), "migrations")
    migrate.init_app(app, db, directory=migrations, render_as_batch=True, compare_type=True)
    jwt.init_app(app)
    security.register_jwt_callbacks(jwt)
    api.init_app(app)
    redis = redis_client(app.config)
    app.extensions["chatapi.revocations"] = revocation_store(redis)
    app.extensions["chatapi.glm"] = GLMClient(app.config)
    app.extensions["chatapi.tools"] = default_registry()
    app.extensions["chatapi.compute"] = compute_pool(app.config)
    app.extensions["chatapi.rate_limiter"] = RateLimiter(
        app.config["RATELIMIT_STORAGE_URI"], redis, app.config["RATELIMIT_KEY_PREFIX"])
    app.extensions["chatapi.answer_slots"] = answer_slots(
        redis, app.config["RATELIMIT_KEY_PREFIX"])
    app.extensions["chatapi.token_meter"] = meter = token_meter(redis, app.config)
    app.extensions["chatapi.answers"] = Answers(app, answer_store(redis, app.config),
                                                MessageSchema().dump, meter)
    if app.config["CORS_ORIGINS"]:
        CORS(app, resources={r"/api/*": {"origins": app.config["CORS_ORIGINS"]}},
             expose_headers=["X-Request-ID", "Retry-After"], vary_header=False)
        app.after_request(vary_by_origin)
    with app.app_context():
        if db.engine.dialect.name == "sqlite":
            event.listen(db.engine, "connect", sqlite_pragmas)
            sqlite_writes.one_writer_at_a_time(db.engine, SQLITE_BUSY_SECONDS)
        elif db.engine.dialect.driver == "psycopg":
            postgres.bound_statements(db.engine, app.config["DB_STATEMENT_TIMEOUT"])
            postgres.plan_each_time(db.engine)
            postgres.ping_after_idle(db.engine, app.config["DB_PING_AFTER_IDLE"])
            read_without_transactions(app, db.engine)


def vary_by_origin(response):
    """With CORS on, the Access-Control-* headers of every answer, preflight or not, depend on
    the request's Origin (flask-cors says so only when more than one origin is configured):
    a cache must not give one origin's answer to another."""
    response.vary.add("Origin")
    return response


def sqlite_pragmas(connection, _record):
    register_sqlite_casefold(connection)
    cursor = connection.cursor()
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA journal_mode=WAL")
    # In WAL mode NORMAL is still crash-safe (a power cut may lose the last commits): it
    # fsyncs at checkpoints, not at every commit, and a blocking fsync would freeze every
    # stream of a gevent worker.
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_SECONDS * 1000}")
    cursor.close()
