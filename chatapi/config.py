"""Configuration, read from the environment once (docs/API.md §7): the app's settings
(`Config.from_env`, then `derive` once the caller's overrides are in) and gunicorn's
(`gunicorn_settings`).

gunicorn's master loads this file on its own, before it forks the workers that gevent
patches: at module level it imports the standard library only (no `chatapi`, nothing that
would load ssl, asyncio or a database driver unpatched into every worker)."""
import os
import secrets
import tempfile
from datetime import timedelta
from pathlib import Path

VERSION = "0.1.0"
DEFAULT_MODELS = ("glm-5", "glm-4.6", "glm-4.5", "glm-4.5-air")


def env_str(name, default=None):
    value = os.environ.get(name, "").strip()
    return value if value else default


def env_int(name, default):
    value = env_str(name)
    return int(value) if value is not None else default


def env_float(name, default):
    value = env_str(name)
    return float(value) if value is not None else default


def env_list(name, default=()):
    value = env_str(name)
    if value is None:
        return list(default)
    return [item.strip() for item in value.split(",") if item.strip()]


def env_choice(name, choices):
    """One of `choices`, the first by default; anything else stops the service at start."""
    value = env_str(name, choices[0]).lower()
    if value not in choices:
        raise ValueError(f"{name} must be one of {', '.join(choices)}, not {value!r}")
    return value


def env_rate_limit(name, default):
    """A `limits` expression such as "30 per minute", or `off` for no limit; checked here so a
    typo stops the service at start, not at the first request."""
    from limits import parse  # not at module level: see the module's docstring

    value = env_str(name, default)
    if value.lower() in ("off", "0", "none"):
        return None
    parse(value)
    return value


def sqlite_url_made_absolute(url):
    """Relative SQLite paths are taken from the working directory (the project root under
    `make run`), not from Flask-SQLAlchemy's instance folder, so the documented default
    `sqlite:///instance/chatapi.db` means exactly that file."""
    prefix = "sqlite:///"
    if not url.startswith(prefix) or url == "sqlite://":
        return url
    path = url[len(prefix):]
    if path.startswith("/") or path.startswith(":memory:"):
        return url
    return prefix + str(Path(path).resolve())


# Flask's instance folder for this package as it is used (not installed): instance/ beside
# chatapi/. The app is made with it, and gunicorn's master makes the development key there.
INSTANCE_PATH = str(Path(__file__).resolve().parent.parent / "instance")
# Set by gunicorn's master once it has said the start-up notices, so its workers stay quiet.
NOTICES_SAID = "CHATAPI_STARTUP_NOTICES_SAID"
NO_GLM_KEY_NOTICE = (
    "ZHIPUAI_API_KEY is not set: sending a message (and the web_search tool) will answer 503 "
    "upstream_unavailable; accounts, conversations, history and the other tools work")


def jwt_secret_kept_in(instance_path):
    """Development fallback: one random secret kept in instance/ so every worker and every
    restart signs with the same key. (secret, whether this call made it). The file appears
    whole or not at all: a worker starting beside another never reads it half-written."""
    path = Path(instance_path) / "jwt-secret"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, draft = tempfile.mkstemp(dir=path.parent, prefix=".jwt-secret-")  # mode 0600
        try:
            with os.fdopen(fd, "w") as handle:
                handle.write(secrets.token_urlsafe(48))
            os.link(draft, path)
            return path.read_text().strip(), True
        except FileExistsError:
            pass
        finally:
            os.unlink(draft)
    return path.read_text().strip(), False


def startup_notices(config, instance_path):
    """Fills JWT_SECRET_KEY with the development key when it is unset, and returns what a start
    says once about settings left unset (gunicorn's master, or the app outside gunicorn)."""
    notices = []
    if not config.get("JWT_SECRET_KEY"):
        config["JWT_SECRET_KEY"], made = jwt_secret_kept_in(instance_path)
        where = Path(instance_path) / "jwt-secret"
        notices.append(
            f"JWT_SECRET_KEY is not set: {'generated' if made else 'using'} a development key "
            f"{'into' if made else 'from'} {where}; set JWT_SECRET_KEY in production (every "
            "worker and host must share it)")
    if not config.get("ZHIPUAI_API_KEY"):
        notices.append(NO_GLM_KEY_NOTICE)
    return notices


def engine_options(config):
    """A bounded pool per worker: streams hold no connection, so a few serve many streams.
    Database errors leave out the statement's values (password hashes, emails, message
    text), so the traceback logged for a 500 carries none of them."""
    url = config["SQLALCHEMY_DATABASE_URI"]
    shared = {"hide_parameters": True}
    if url in ("sqlite://", "sqlite:///:memory:"):
        return shared  # one shared in-memory connection (StaticPool)
    pool = {"pool_size": config["DB_POOL_SIZE"], "max_overflow": 0,
            "pool_timeout": config["DB_POOL_TIMEOUT"], **shared}
    if url.startswith("sqlite"):
        return {**pool, "connect_args": {"timeout": 5}}
    # Last in, first out: under light load a few connections stay warm (postgres.py skips
    # their ping) and the rest age out of use.
    return {**pool, "pool_use_lifo": True,
            "connect_args": {"connect_timeout": config["DB_CONNECT_TIMEOUT"]}}


def derive(config, instance_path):
    """The settings computed from others, once the caller's overrides are in (a test's
    REDIS_URL moves the rate-limit counters too): `config` is changed in place. Returns the
    start-up notices (`startup_notices`)."""
    # Not at module level: see the module's docstring.
    from .model_limits import model_figures
    from .quota_text import token_quota_setting

    config["GLM_MODEL_FIGURES"] = model_figures(config["GLM_MODELS"], config["GLM_MODEL_LIMITS"])
    config["TOKEN_QUOTA"] = token_quota_setting(config["TOKEN_QUOTA"])
    config["TITLE_MODEL"] = config["TITLE_MODEL"] or config["GLM_MODELS"][0]
    config["SQLALCHEMY_DATABASE_URI"] = sqlite_url_made_absolute(
        config["SQLALCHEMY_DATABASE_URI"])
    config["SQLALCHEMY_ENGINE_OPTIONS"] = engine_options(config)
    notices = startup_notices(config, instance_path)
    config["JWT_ACCESS_TOKEN_EXPIRES"] = timedelta(
        seconds=config["JWT_ACCESS_TOKEN_EXPIRES_SECONDS"])
    config["JWT_REFRESH_TOKEN_EXPIRES"] = timedelta(
        seconds=config["JWT_REFRESH_TOKEN_EXPIRES_SECONDS"])
    config["RATELIMIT_STORAGE_URI"] = config["REDIS_URL"] or "memory://"
    return notices


class Config:
    """Every setting the service reads, as Flask config keys."""

    @classmethod
    def from_env(cls):
        return {
            "VERSION": VERSION,
            "SQLALCHEMY_DATABASE_URI": env_str("DATABASE_URL", "sqlite:///instance/chatapi.db"),
            "DB_POOL_SIZE": env_int("DB_POOL_SIZE", 10),
            "DB_CONNECT_TIMEOUT": env_int("DB_CONNECT_TIMEOUT", 5),
            "DB_POOL_TIMEOUT": env_float("DB_POOL_TIMEOUT", 30.0),
            "DB_STATEMENT_TIMEOUT": env_float("DB_STATEMENT_TIMEOUT", 10.0),
            "DB_PING_AFTER_IDLE": env_float("DB_PING_AFTER_IDLE", 1.0),
            "JWT_SECRET_KEY": env_str("JWT_SECRET_KEY"),
            "JWT_ACCESS_TOKEN_EXPIRES_SECONDS": env_int("JWT_ACCESS_TOKEN_EXPIRES", 86400),
            "JWT_REFRESH_TOKEN_EXPIRES_SECONDS": env_int("JWT_REFRESH_TOKEN_EXPIRES", 30 * 86400),
            "ZHIPUAI_API_KEY": env_str("ZHIPUAI_API_KEY"),
            "GLM_BASE_URL": env_str("GLM_BASE_URL"),
            "GLM_MODELS": env_list("GLM_MODELS", DEFAULT_MODELS),
            "GLM_MODEL_LIMITS": env_str("GLM_MODEL_LIMITS"),
            "GLM_CONNECT_TIMEOUT": env_float("GLM_CONNECT_TIMEOUT", 8.0),
            "GLM_READ_TIMEOUT": env_float("GLM_READ_TIMEOUT", 300.0),
            "GLM_MAX_RETRIES": env_int("GLM_MAX_RETRIES", 0),
            "GLM_MAX_CONNECTIONS": env_int("GLM_MAX_CONNECTIONS", 2000),
            "GLM_TRANSPORT": env_choice("GLM_TRANSPORT", ("httptools", "httpx")),
            "WEB_SEARCH_TIMEOUT": env_float("WEB_SEARCH_TIMEOUT", 20.0),
            "REDIS_URL": env_str("REDIS_URL"),
            "REDIS_TIMEOUT": env_float("REDIS_TIMEOUT", 1.0),
            "OPEN_METEO_BASE_URL": env_str("OPEN_METEO_BASE_URL", "https://api.open-meteo.com/v1"),
            "OPEN_METEO_GEOCODING_URL": env_str(
                "OPEN_METEO_GEOCODING_URL", "https://geocoding-api.open-meteo.com/v1"),
            "WEATHER_TIMEOUT": env_float("WEATHER_TIMEOUT", 10.0),
            "FETCH_ALLOWED_HOSTS": env_list("FETCH_ALLOWED_HOSTS"),
            "FETCH_MAX_BYTES": env_int("FETCH_MAX_BYTES", 5_000_000),
            "FETCH_TIMEOUT": env_float("FETCH_TIMEOUT", 10.0),
            "CORS_ORIGINS": env_list("CORS_ORIGINS"),
            "MAX_CONTENT_LENGTH": env_int("MAX_CONTENT_LENGTH", 1024 * 1024),
            # A conversation import (docs/API.md §3, "Export and import") has its own limits.
            "IMPORT_MAX_BYTES": env_int("IMPORT_MAX_BYTES", 50 * 1024 * 1024),
            "IMPORT_MAX_MESSAGES": env_int("IMPORT_MAX_MESSAGES", 100_000),
            "MAX_URL_LENGTH": env_int("MAX_URL_LENGTH", 4096),
            "MAX_HEADERS_LENGTH": env_int("MAX_HEADERS_LENGTH", 16384),
            "MAX_MESSAGE_CHARS": env_int("MAX_MESSAGE_CHARS", 32000),
            "AUTO_TITLE": env_choice("AUTO_TITLE", ("on", "off")) == "on",
            "WEB_CLIENT": env_choice("WEB_CLIENT", ("on", "off")) == "on",
            # Unset: the first of GLM_MODELS.
            "TITLE_MODEL": env_str("TITLE_MODEL"),
            "TITLE_TIMEOUT": env_float("TITLE_TIMEOUT", 20.0),
            "TOOL_MAX_ROUNDS": env_int("TOOL_MAX_ROUNDS", 5),
            "TOOL_MAX_CALLS_PER_ROUND": env_int("TOOL_MAX_CALLS_PER_ROUND", 10),
            "SANDBOX_PYTHON": env_str("SANDBOX_PYTHON"),
            "SANDBOX_BWRAP": env_str("SANDBOX_BWRAP"),
            "SANDBOX_FIRST_UID": env_int("SANDBOX_FIRST_UID", 1879048192),
            "SANDBOX_UID_COUNT": env_int("SANDBOX_UID_COUNT", 256),
            "SANDBOX_LOCK_DIR": env_str("SANDBOX_LOCK_DIR", "/run/chatapi-sandbox"),
            "SANDBOX_TMPFS_MB": env_int("SANDBOX_TMPFS_MB", 64),
            "SANDBOX_MEMORY_MB": env_int("SANDBOX_MEMORY_MB", 512),
            "SANDBOX_MAX_PROCESSES": env_int("SANDBOX_MAX_PROCESSES", 32),
            "SANDBOX_FILE_SIZE_MB": env_int("SANDBOX_FILE_SIZE_MB", 10),
            "SANDBOX_OUTPUT_BYTES": env_int("SANDBOX_OUTPUT_BYTES", 1024 * 1024),
            "TOOL_RESULT_MAX_CHARS": env_int("TOOL_RESULT_MAX_CHARS", 20000),
            "COMPUTE_WORKERS": env_int("COMPUTE_WORKERS", 2),
            "COMPUTE_TIMEOUT": env_float("COMPUTE_TIMEOUT", 10.0),
            "COMPUTE_QUEUE": env_int("COMPUTE_QUEUE", 32),
            "COMPUTE_MEMORY_MB": env_int("COMPUTE_MEMORY_MB", 512),
            "COMPUTE_PER_USER": env_int("COMPUTE_PER_USER", 1),
            "SSE_PING_SECONDS": env_float("SSE_PING_SECONDS", 15.0),
            # Unset: an answer nobody listens to runs to its end; 0: it stops at once.
            "STOP_AFTER_DISCONNECT_SECONDS": env_float("STOP_AFTER_DISCONNECT_SECONDS", None),
            "RESUME_TTL_SECONDS": env_float("RESUME_TTL_SECONDS", 600.0),
            "IDEMPOTENCY_TTL_HOURS": env_float("IDEMPOTENCY_TTL_HOURS", 24.0),
            "ANSWER_HEARTBEAT_SECONDS": env_float("ANSWER_HEARTBEAT_SECONDS", 5.0),
            "ANSWER_REAP_AFTER_SECONDS": env_float("ANSWER_REAP_AFTER_SECONDS", 30.0),
            "LOGIN_FAILURE_LIMIT": env_rate_limit("LOGIN_FAILURE_LIMIT", "10 per 5 minutes"),
            "LOGIN_ADDRESS_FAILURE_LIMIT": env_rate_limit("LOGIN_ADDRESS_FAILURE_LIMIT",
                                                          "50 per 5 minutes"),
            "REGISTER_LIMIT": env_rate_limit("REGISTER_LIMIT", "20 per hour"),
            "MESSAGE_RATE_LIMIT": env_rate_limit("MESSAGE_RATE_LIMIT", "30 per minute"),
            "TOOL_RATE_LIMIT": env_rate_limit("TOOL_RATE_LIMIT", "60 per minute"),
            "MAX_CONCURRENT_ANSWERS": env_int("MAX_CONCURRENT_ANSWERS", 3),
            "IMPORT_RATE_LIMIT": env_rate_limit("IMPORT_RATE_LIMIT", "20 per hour"),
            "SEARCH_RATE_LIMIT": env_rate_limit("SEARCH_RATE_LIMIT", "60 per minute"),
            # Each user's tokens a day, week or month (`200000 per day`); unset or `none`: none.
            "TOKEN_QUOTA": env_str("TOKEN_QUOTA", "none"),
            "RATELIMIT_KEY_PREFIX": "chatapi",
            "LOG_LEVEL": env_str("LOG_LEVEL", "INFO").upper(),
            # Proxies in front of the app whose X-Forwarded-For / -Proto entries are trusted;
            # 0 (no proxy): a client could write any address there and dodge per-address limits.
            "PROXY_FIX_X_FOR": env_int("PROXY_FIX_X_FOR", 0),
            "PROXY_FIX_X_PROTO": env_int("PROXY_FIX_X_PROTO", 0),
            # What the extensions are told about this service rather than settings.
            "JWT_TOKEN_LOCATION": ["headers"],
            "API_TITLE": "ChatAPI",
            "API_VERSION": VERSION,
            "OPENAPI_VERSION": "3.0.3",
            "OPENAPI_URL_PREFIX": "/api",
            "OPENAPI_JSON_PATH": "openapi.json",
            "API_SPEC_OPTIONS": {
                "components": {"securitySchemes": {
                    "bearerAuth": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"}}},
            },
        }


def gunicorn_settings():
    """What gunicorn.conf.py sets from the environment, under gunicorn's names."""
    port = env_int("PORT", 8000)
    return {
        "bind": env_str("BIND", f"127.0.0.1:{port}"),
        "workers": env_int("WEB_CONCURRENCY", 2),
        "worker_connections": env_int("WORKER_CONNECTIONS", 2000),
        "timeout": env_int("GUNICORN_TIMEOUT", 30),
        "graceful_timeout": env_int("GRACEFUL_TIMEOUT", 30),
        "keepalive": env_int("KEEPALIVE", 75),
        "loglevel": env_str("LOG_LEVEL", "INFO").lower(),
    }
