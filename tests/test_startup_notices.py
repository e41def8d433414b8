"""Settings left unset are said once per start: by gunicorn's master, not by each of its workers,
and not by `flask` commands (migrations, `flask users`), which need neither key."""
import os
import re
import subprocess
import sys
import time

import pytest

from .servers import PROJECT, gunicorn

pytestmark = pytest.mark.slow

JWT_NOTICE = "JWT_SECRET_KEY is not set"
GLM_NOTICE = "ZHIPUAI_API_KEY is not set"


def wait_for_lines(path, text, count, timeout=60):
    deadline = time.monotonic() + timeout
    while path.read_text().count(text) < count:
        assert time.monotonic() < deadline, path.read_text()
        time.sleep(0.05)


def test_a_gunicorn_start_with_two_workers_says_each_notice_once(database_url, tmp_path):
    log = tmp_path / "gunicorn.log"
    env = {"DATABASE_URL": database_url, "JWT_SECRET_KEY": None, "ZHIPUAI_API_KEY": None,
           "LOG_LEVEL": "info"}
    with gunicorn(env, workers=2, log_path=log):
        wait_for_lines(log, "Booting worker", 2)
    # Stopped: a worker loads the app whole before it heeds SIGTERM, so both workers have.
    said = log.read_text()
    assert said.count("Booting worker") == 2 and "Shutting down: Master" in said, said
    jwt_lines = [line for line in said.splitlines() if JWT_NOTICE in line]
    glm_lines = [line for line in said.splitlines() if GLM_NOTICE in line]
    assert len(jwt_lines) == 1 and len(glm_lines) == 1, said
    assert re.search(r"instance/jwt-secret; set JWT_SECRET_KEY in production", jwt_lines[0])
    assert "sending a message" in glm_lines[0] and "503 upstream_unavailable" in glm_lines[0]


def test_flask_commands_say_neither_notice(tmp_path):
    environment = {name: value for name, value in os.environ.items()
                   if name not in ("JWT_SECRET_KEY", "ZHIPUAI_API_KEY", "REDIS_URL")}
    environment.update(FLASK_APP="wsgi.py", DATABASE_URL=f"sqlite:///{tmp_path / 'cli.db'}")
    flask = [sys.executable, "-m", "flask"]
    for command in (["db", "upgrade"], ["users", "--help"]):
        done = subprocess.run(flask + command, cwd=PROJECT, env=environment,
                              capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, done.stderr
        said = done.stdout + done.stderr
        assert JWT_NOTICE not in said and GLM_NOTICE not in said, said
    assert (tmp_path / "cli.db").exists()
