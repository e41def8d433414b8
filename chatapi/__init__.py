"""ChatAPI: a chat backend for Zhipu's GLM models."""
import logging
import os

from flask import Flask
from flask_cors import CORS
from sqlalchemy import event
from werkzeug.middleware.proxy_fix import ProxyFix

from . import cli, errors, http, postgres, security_headers, strict_json
from .api import register_blueprints
from .config import Config, jwt_secret_kept_in
from .glm import GLMClient
from .extensions import EnvelopedApi, db, jwt, migrate
from .models.text_search import register_sqlite_casefold
from .services.answer_slots import answer_slots
from .services.rate_limits import RateLimiter
from .services.tokens import revocation_store
from .tools import default_registry
from .tools.compute_pool import compute_pool

__version__ = "0.1.0"

log = logging.getLogger(__name__)


def create_app(config=None):
    app = Flask(__name__, static_folder=None)
    app.json = strict_json.StrictJSONProvider(app)
    app.config.update(Config.from_env())
    app.config.update(config or {})
    configure(app)
    configure_logging(app)
    if app.config["PROXY_FIX_X_FOR"] > 0 or app.config["PROXY_FIX_X_PROTO"] > 0:
        # remote_addr (the login throttle's key) becomes the client the trusted proxies saw.
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=app.config["PROXY_FIX_X_FOR"],
                                x_proto=app.config["PROXY_FIX_X_PROTO"])

    app.url_map.strict_slashes = False
    register_extensions(app)
    register_blueprints(EnvelopedApi(app))
    errors.register_error_handlers(app)
    errors.register_jwt_error_loaders(jwt)
    http.init_app(app)
    security_headers.init_app(app)
    cli.init_app(app)
    return app


def configure(app):
    config = app.config
    config["VERSION"] = __version__
    if not config.get("JWT_SECRET_KEY"):
        log.warning("JWT_SECRET_KEY is not set: using a development key kept in instance/")
        config["JWT_SECRET_KEY"] = jwt_secret_kept_in(app.instance_path)
    config.setdefault("SQLALCHEMY_ENGINE_OPTIONS", engine_options(config))
    sqlite_file = config["SQLALCHEMY_DATABASE_URI"].removeprefix("sqlite:///")
    if sqlite_file != config["SQLALCHEMY_DATABASE_URI"] and sqlite_file != ":memory:":
        os.makedirs(os.path.dirname(sqlite_file), exist_ok=True)
    config.update({
        "JWT_TOKEN_LOCATION": ["headers"],
        "API_TITLE": "ChatAPI",
        "API_VERSION": __version__,
        "OPENAPI_VERSION": "3.0.3",
        "OPENAPI_URL_PREFIX": "/api",
        "OPENAPI_JSON_PATH": "openapi.json",
        "API_SPEC_OPTIONS": {
            "components": {"securitySchemes": {
                "bearerAuth": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"}}},
        },
    })


def engine_options(config):
    """A bounded pool per worker: streams hold no connection, so a few serve many streams.
    Database errors leave out the statement's values (password hashes, emails, message
    text), so the traceback logged for a 500 carries none of them."""
    url = config["SQLALCHEMY_DATABASE_URI"]
    if url in ("sqlite://", "sqlite:///:memory:"):
        return {"hide_parameters": True}  # one shared in-memory connection (StaticPool)
    pool = {"pool_size": config["DB_POOL_SIZE"], "max_overflow": 0,
            "pool_timeout": config["DB_POOL_TIMEOUT"], "hide_parameters": True}
    if url.startswith("sqlite"):
        return {**pool, "connect_args": {"timeout": 5}}
    return {**pool, "pool_pre_ping": True,
            "connect_args": {"connect_timeout": config["DB_CONNECT_TIMEOUT"]}}


def configure_logging(app):
    if not logging.getLogger().handlers:
        logging.basicConfig(format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("chatapi").setLevel(app.config["LOG_LEVEL"])


def register_extensions(app):
    db.init_app(app)
    migrations = os.path.join(os.path.dirname(app.root_path), "migrations")
    migrate.init_app(app, db, directory=migrations, render_as_batch=True, compare_type=True)
    jwt.init_app(app)
    app.extensions["chatapi.revocations"] = revocation_store(app.config)
    app.extensions["chatapi.glm"] = GLMClient(app.config)
    app.extensions["chatapi.tools"] = default_registry()
    app.extensions["chatapi.compute"] = compute_pool(app.config)
    app.extensions["chatapi.rate_limiter"] = RateLimiter(
        app.config["RATELIMIT_STORAGE_URI"], app.config["RATELIMIT_KEY_PREFIX"],
        app.config["REDIS_TIMEOUT"])
    app.extensions["chatapi.answer_slots"] = answer_slots(app.config)
    if app.config["CORS_ORIGINS"]:
        CORS(app, resources={r"/api/*": {"origins": app.config["CORS_ORIGINS"]}},
             expose_headers=["X-Request-ID", "Retry-After"], vary_header=False)
        app.after_request(vary_by_origin)
    with app.app_context():
        if db.engine.dialect.name == "sqlite":
            event.listen(db.engine, "connect", sqlite_pragmas)
        elif db.engine.dialect.driver == "psycopg":
            postgres.bound_statements(db.engine, app.config["DB_STATEMENT_TIMEOUT"])


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
    cursor.execute("PRAGMA busy_timeout=5000")
    cursor.close()
