"""Configuration: every variable read is documented, gunicorn reads its own through config.py,
and the settings derived from others follow a caller's overrides."""
import ast
import json
import logging
import os
import re
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import jwt as pyjwt

from .conftest import JWT_TEST_SECRET, PASSWORD

ROOT = Path(__file__).resolve().parent.parent
ENV_READERS = {"env_str", "env_int", "env_float", "env_list", "env_rate_limit"}


def call_name(node):
    """`env_int` for env_int(...), `os.environ.get` for os.environ.get(...)."""
    parts, target = [], node.func
    while isinstance(target, ast.Attribute):
        parts.append(target.attr)
        target = target.value
    if isinstance(target, ast.Name):
        parts.append(target.id)
    return ".".join(reversed(parts))


def variables_read(path):
    """Names of the environment variables a file reads: through config.py's env_* helpers,
    os.environ.get, os.getenv or os.environ[...]."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Call) and node.args and isinstance(node.args[0], ast.Constant):
            name = call_name(node)
            if name in ENV_READERS or name in ("os.environ.get", "os.getenv", "environ.get"):
                names.add(node.args[0].value)
        elif (isinstance(node, ast.Subscript) and ast.unparse(node.value) == "os.environ"
              and isinstance(node.slice, ast.Constant)):
            names.add(node.slice.value)
    return names


def readme_configuration_table():
    section = (ROOT / "README.md").read_text().split("## Configuration", 1)[1].split("\n## ")[0]
    rows = [line for line in section.splitlines() if line.startswith("| `")]
    return {name for row in rows for name in re.findall(r"`([A-Z][A-Z0-9_]*)`",
                                                        row.split("|")[1])}


def test_every_environment_variable_read_is_in_the_readme_configuration_table():
    files = [*sorted((ROOT / "chatapi").rglob("*.py")), ROOT / "gunicorn.conf.py",
             ROOT / "wsgi.py"]
    read = {name: path.relative_to(ROOT) for path in files for name in variables_read(path)}
    assert {"DATABASE_URL", "GUNICORN_TIMEOUT", "KEEPALIVE", "PORT"} <= read.keys()
    documented = readme_configuration_table()
    assert {name: str(path) for name, path in read.items() if name not in documented} == {}


def gunicorn_run(env, code):
    """Loads gunicorn.conf.py as gunicorn's master does, in a fresh interpreter."""
    environment = {key: value for key, value in os.environ.items()
                   if key not in ("PORT", "BIND", "LOG_LEVEL", "WEB_CONCURRENCY")}
    result = subprocess.run(
        [sys.executable, "-c", "import json, runpy, sys\n"
                               "conf = runpy.run_path('gunicorn.conf.py')\n" + code],
        cwd=ROOT, env={**environment, **env}, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def test_gunicorn_takes_its_settings_from_the_environment_through_config_py():
    settings = gunicorn_run(
        {"PORT": "8123", "WEB_CONCURRENCY": "3", "WORKER_CONNECTIONS": "500",
         "GUNICORN_TIMEOUT": "7", "GRACEFUL_TIMEOUT": "11", "KEEPALIVE": " 9 ",
         "LOG_LEVEL": "WARNING"},
        "print(json.dumps({name: conf[name] for name in ('bind', 'workers',"
        " 'worker_connections', 'timeout', 'graceful_timeout', 'keepalive', 'loglevel')}))")
    assert settings == {"bind": "127.0.0.1:8123", "workers": 3, "worker_connections": 500,
                        "timeout": 7, "graceful_timeout": 11, "keepalive": 9,
                        "loglevel": "warning"}


def test_gunicorn_conf_imports_nothing_of_the_app_into_the_master():
    """The master forks the workers before gevent patches them: the app's modules (and the
    database driver, which picks how to wait when imported) must be imported after."""
    imported = gunicorn_run({}, "print(json.dumps(sorted(set(sys.modules) & {"
                                "'chatapi', 'psycopg', 'flask', 'zhipuai', 'httpx', 'redis',"
                                " 'limits', 'sqlalchemy'})))")
    assert imported == []


def log_in(app):
    return app.test_client().post("/api/auth/login", headers={"Accept-Language": "en"},
                                  json={"username": "alice", "password": PASSWORD})


def test_a_redis_url_given_to_the_factory_moves_the_login_throttle_there_too(make_app, user):
    """Nothing listens on port 1: a login throttle kept in that Redis fails closed at once,
    one left in memory would let the login through."""
    refused = log_in(make_app(REDIS_URL="redis://127.0.0.1:1/0"))
    assert refused.status_code == 503, refused.json
    assert refused.json["error"]["code"] == "upstream_unavailable"
    assert log_in(make_app(REDIS_URL=None)).status_code == 200


def test_token_lifetimes_given_to_the_factory_are_the_tokens_lifetimes(make_app, user):
    response = log_in(make_app(JWT_ACCESS_TOKEN_EXPIRES_SECONDS=60,
                               JWT_REFRESH_TOKEN_EXPIRES_SECONDS=120))
    assert response.status_code == 200, response.json
    data = response.json["data"]
    assert data["expires_in"] == 60
    lifetimes = {}
    for kind in ("access_token", "refresh_token"):
        claims = pyjwt.decode(data[kind], JWT_TEST_SECRET, algorithms=["HS256"])
        lifetimes[kind] = timedelta(seconds=claims["exp"] - claims["iat"])
    assert lifetimes == {"access_token": timedelta(seconds=60),
                         "refresh_token": timedelta(seconds=120)}


def test_each_app_serves_its_own_openapi_document(make_app):
    """One unbound Api object is bound to every app made in a process."""
    first = make_app(API_TITLE="first")
    make_app(API_TITLE="second")
    assert first.test_client().get("/api/openapi.json").json["info"]["title"] == "first"


def test_a_log_level_in_lower_case_is_taken(monkeypatch):
    """`LOG_LEVEL=info` once stopped every worker at start ("Unknown level")."""
    from chatapi.config import Config
    monkeypatch.setenv("LOG_LEVEL", "debug")
    level = Config.from_env()["LOG_LEVEL"]
    logging.getLogger("chatapi.test-config").setLevel(level)
    assert logging.getLogger("chatapi.test-config").level == logging.DEBUG
