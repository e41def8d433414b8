"""Auth on the deployment operators run: gunicorn, two gevent workers, one database."""
import time

import pytest
import requests

from .conftest import JWT_TEST_SECRET, PASSWORD, app_config
from .servers import gunicorn

pytestmark = pytest.mark.slow


def test_a_logged_out_token_is_refused_by_every_worker(app, user, database_url, tmp_path):
    config = app_config(database_url)
    env = {"DATABASE_URL": database_url, "JWT_SECRET_KEY": JWT_TEST_SECRET,
           "REDIS_URL": config["REDIS_URL"], "LOG_LEVEL": "WARNING"}
    access_log = tmp_path / "access.log"
    args = ["--access-logfile", str(access_log), "--access-logformat", "%(p)s %(U)s %(s)s"]
    with gunicorn(env, workers=2, extra_args=args) as base:
        login = requests.post(f"{base}/api/auth/login",
                              json={"username": "alice", "password": PASSWORD}, timeout=10)
        assert login.status_code == 200
        headers = {"Authorization": f"Bearer {login.json()['data']['access_token']}",
                   "Connection": "close"}
        assert requests.get(f"{base}/api/auth/me", headers=headers, timeout=5).status_code == 200
        assert requests.post(f"{base}/api/auth/logout", headers=headers,
                             timeout=5).status_code == 200

        # Which worker accepts a connection is up to the kernel: ask until both have answered.
        refusing_workers, statuses = set(), []
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            response = requests.get(f"{base}/api/auth/me", headers=headers, timeout=5)
            statuses.append(response.status_code)
            refusing_workers = {line.split()[0] for line in access_log.read_text().splitlines()
                                if line.split()[1:] == ["/api/auth/me", "401"]}
            if len(refusing_workers) >= 2 and len(statuses) >= 20:
                break
    assert set(statuses) == {401}
    assert len(refusing_workers) == 2, "both workers must have refused the revoked token"
