"""run_python and regex_test through the HTTP API, with the real sandbox (needs root for the
user switch and the namespaces, as the service does)."""
import json
import os
import socket
import time

import pytest

from chatapi.tools import sandbox
from chatapi.tools.code import sandbox_settings

from .conftest import JWT_TEST_SECRET
from .sandbox_processes import processes_of

needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="the sandbox switches user: needs root")
SECRET_API_KEY = "zhipu-secret-" + "k" * 20


def execute(client, headers, name, **arguments):
    return client.post(f"/api/tools/{name}/execute", json=arguments, headers=headers)


def run_python(client, headers, **arguments):
    response = execute(client, headers, "run_python", **arguments)
    assert response.status_code == 200, response.get_json()
    return response.get_json()["data"]["result"]


def assert_service_healthy(client, headers):
    assert client.get("/api/health").status_code == 200
    assert run_python(client, headers, code="print(6 * 7)")["stdout"] == "42\n"


@needs_root
def test_run_python_returns_stdout_and_the_documented_fields(client, auth_headers):
    response = execute(client, auth_headers, "run_python", code="print('你好', 1 + 1)")
    assert response.status_code == 200
    data = response.get_json()["data"]
    assert data["tool"] == "run_python"
    result = data["result"]
    assert result["stdout"] == "你好 2\n"
    assert result["stderr"] == ""
    assert result["exit_code"] == 0
    assert result["timed_out"] is False and result["truncated"] is False
    assert 0 < result["duration_ms"] < 5000


@needs_root
def test_run_python_feeds_stdin_to_the_script(client, auth_headers):
    result = run_python(client, auth_headers, code="import sys\nprint(sys.stdin.read().upper())",
                        stdin="line one\nline two")
    assert result["stdout"] == "LINE ONE\nLINE TWO\n"


@needs_root
def test_run_python_propagates_the_exit_code(client, auth_headers):
    result = run_python(client, auth_headers, code="import sys\nprint('bye')\nsys.exit(7)")
    assert result["exit_code"] == 7
    assert result["stdout"] == "bye\n"


@needs_root
def test_an_uncaught_exception_goes_to_stderr_with_exit_code_1(client, auth_headers):
    result = run_python(client, auth_headers, code="raise ValueError('boom')")
    assert result["exit_code"] == 1
    assert "Traceback" in result["stderr"] and "ValueError: boom" in result["stderr"]


@needs_root
def test_the_script_sees_none_of_the_services_environment(client, auth_headers, monkeypatch):
    monkeypatch.setenv("JWT_SECRET_KEY", JWT_TEST_SECRET)
    monkeypatch.setenv("ZHIPUAI_API_KEY", SECRET_API_KEY)
    monkeypatch.setenv("DATABASE_URL", "postgresql+psycopg://secret-user:secret-pw@db/x")
    code = (
        "import json, os\n"
        "print(json.dumps(dict(os.environ)))\n"
        f"try:\n    print(open('/proc/{os.getpid()}/environ', 'rb').read())\n"
        "except OSError as error:\n    print(type(error).__name__)\n")
    result = run_python(client, auth_headers, code=code)
    environment_line, service_environ = result["stdout"].splitlines()
    assert set(json.loads(environment_line)) <= {"PATH", "LANG", "HOME", "TMPDIR", "PWD"}
    assert service_environ == "FileNotFoundError"
    for secret in (JWT_TEST_SECRET, SECRET_API_KEY, "secret-pw"):
        assert secret not in result["stdout"] + result["stderr"]


@needs_root
def test_the_script_runs_under_a_uid_of_the_sandbox_range_in_a_private_work_dir(
        client, auth_headers, app):
    code = ("import os\n"
            "print(os.getuid(), os.getgid(), os.getgroups(), os.getcwd(), os.listdir('.'))\n")
    uid, gid, groups, workdir, listing = run_python(
        client, auth_headers, code=code)["stdout"].split(" ", 4)
    first = app.config["SANDBOX_FIRST_UID"]
    assert first <= int(uid) < first + app.config["SANDBOX_UID_COUNT"]
    assert (gid, groups, workdir, listing) == (uid, "[]", sandbox.WORKDIR, "['main.py']\n")


@needs_root
def test_the_script_cannot_reach_a_listener_on_the_services_loopback(client, auth_headers):
    with socket.create_server(("127.0.0.1", 0)) as listener:
        listener.setblocking(False)
        port = listener.getsockname()[1]
        code = ("import socket\n"
                "try:\n"
                f"    socket.create_connection(('127.0.0.1', {port}), timeout=2)\n"
                "    print('connected')\n"
                "except OSError as error:\n"
                "    print('refused', error.errno)\n")
        result = run_python(client, auth_headers, code=code)
        assert result["stdout"].startswith("refused")
        with pytest.raises(BlockingIOError):
            listener.accept()
        with socket.create_connection(("127.0.0.1", port), timeout=2):
            accepted, _ = listener.accept()
            accepted.close()


@needs_root
def test_a_script_that_never_ends_is_killed_at_its_timeout_with_every_process_it_started(
        client, auth_headers):
    code = ("import os, subprocess, time\n"
            "print(os.getuid(), flush=True)\n"
            "if os.fork() == 0:\n"
            "    os.setsid()\n"
            "    subprocess.Popen(['sleep', '3600'])\n"
            "    print('escaped', flush=True)\n"
            "    os._exit(0)\n"
            "subprocess.Popen(['sleep', '3600'], start_new_session=True)\n"
            "print('detached', flush=True)\n"
            "while True:\n    time.sleep(1)\n")
    started = time.perf_counter()
    result = run_python(client, auth_headers, code=code, timeout=1)
    elapsed = time.perf_counter() - started
    assert result["timed_out"] is True
    assert result["exit_code"] == -9
    # At its timeout, not at the tool's own limit (MAX_RUN_SECONDS, 30 s).
    assert 1.0 <= elapsed < 12
    uid = int(result["stdout"].splitlines()[0])
    assert sorted(result["stdout"].splitlines()[1:]) == ["detached", "escaped"]
    assert processes_of(uid) == []
    assert_service_healthy(client, auth_headers)


@needs_root
def test_a_fork_bomb_is_bounded_and_ends(client, auth_headers):
    code = ("import os\nforks = 0\n"
            "while True:\n"
            "    try:\n        os.fork()\n        forks += 1\n"
            "    except OSError:\n        pass\n")
    started = time.perf_counter()
    result = run_python(client, auth_headers, code=code, timeout=2)
    assert result["timed_out"] is True
    # Ended at its timeout, not at the tool's own limit (MAX_RUN_SECONDS, 30 s): room for a
    # loaded machine in between.
    assert time.perf_counter() - started < 12
    assert_service_healthy(client, auth_headers)


@needs_root
def test_allocating_8_gb_fails_with_memory_error(client, auth_headers):
    result = run_python(client, auth_headers, code="block = bytearray(8 * 1024 ** 3)")
    assert result["exit_code"] == 1
    assert "MemoryError" in result["stderr"]
    assert_service_healthy(client, auth_headers)


@needs_root
def test_printing_50_mb_is_truncated_at_1_mib_and_the_script_killed(client, auth_headers):
    started = time.perf_counter()
    result = run_python(client, auth_headers, code="print('x' * 50_000_000)")
    assert result["truncated"] is True
    assert len(result["stdout"]) == 1024 * 1024
    assert result["exit_code"] == -9
    # Killed at the cap, not at the default 10-second timeout.
    assert time.perf_counter() - started < 8


@needs_root
def test_writing_a_100_mb_file_stops_at_the_file_size_limit(client, auth_headers):
    code = ("import os\n"
            "try:\n    open('big', 'wb').write(b'x' * 100 * 1024 * 1024)\n"
            "except OSError as error:\n    print(error.strerror, os.path.getsize('big'))\n")
    result = run_python(client, auth_headers, code=code)
    assert result["stdout"] == f"File too large {10 * 1024 * 1024}\n"


def test_run_python_refuses_arguments_outside_its_schema(client, auth_headers):
    cases = [({}, "code"), ({"code": "1", "timeout": 31}, "timeout"),
             ({"code": "1", "timeout": 0.5}, "timeout"), ({"code": "x" * 100_001}, "code"),
             ({"code": "1", "stdin": 3}, "stdin")]
    for arguments, field in cases:
        response = execute(client, auth_headers, "run_python", **arguments)
        assert response.status_code == 422, arguments
        assert field in response.get_json()["error"]["details"]


def test_without_bwrap_run_python_answers_503(make_app, auth_headers):
    client = make_app(SANDBOX_BWRAP="/nonexistent/bwrap").test_client()
    response = client.post("/api/tools/run_python/execute", json={"code": "print(1)"},
                           headers={**auth_headers, "Accept-Language": "en"})
    assert response.status_code == 503
    assert response.get_json()["error"]["code"] == "upstream_unavailable"
    assert "bubblewrap" in response.get_json()["message"]


@needs_root
def test_with_every_uid_of_the_range_running_run_python_answers_503_with_retry_after(
        make_app, auth_headers, tmp_path):
    app = make_app(SANDBOX_UID_COUNT=1, SANDBOX_LOCK_DIR=str(tmp_path))
    with sandbox.uid_slot(sandbox_settings(app.config)):
        response = app.test_client().post(
            "/api/tools/run_python/execute", json={"code": "print(1)"},
            headers={**auth_headers, "Accept-Language": "en"})
    assert response.status_code == 503
    assert response.headers["Retry-After"] == "1"
    assert response.get_json()["message"] == (
        "Every slot of the code sandbox is in use; try again shortly")
    assert run_python(app.test_client(), auth_headers, code="print(1)")["stdout"] == "1\n"


def regex_test(client, headers, **arguments):
    response = execute(client, headers, "regex_test", **arguments)
    assert response.status_code == 200, response.get_json()
    return response.get_json()["data"]["result"]


def test_regex_test_returns_spans_groups_and_named_groups(client, auth_headers):
    result = regex_test(client, auth_headers, pattern=r"(?P<user>\w+)@(\w+)\.com(:\d+)?",
                        text="mail a@b.com or cd@ef.com:25")
    assert result == {"count": 2, "truncated": False, "matches": [
        {"match": "a@b.com", "start": 5, "end": 12, "groups": ["a", "b", None],
         "named_groups": {"user": "a"}},
        {"match": "cd@ef.com:25", "start": 16, "end": 28, "groups": ["cd", "ef", ":25"],
         "named_groups": {"user": "cd"}}]}


def test_regex_test_applies_flags(client, auth_headers):
    text = "first\nABC\nlast"
    assert regex_test(client, auth_headers, pattern="^abc$", text=text)["count"] == 0
    result = regex_test(client, auth_headers, pattern="^abc$", text=text,
                        flags=["IGNORECASE", "MULTILINE"])
    assert [(m["match"], m["start"]) for m in result["matches"]] == [("ABC", 6)]
    assert regex_test(client, auth_headers, pattern="first.ABC", text=text,
                      flags=["DOTALL"])["count"] == 1
    assert regex_test(client, auth_headers, pattern=r"\w+", text="été",
                      flags=["ASCII"])["count"] == 1


def test_regex_test_stops_at_max_matches_and_says_so(client, auth_headers):
    result = regex_test(client, auth_headers, pattern=r"\d", text="0123456789", max_matches=3)
    assert [m["match"] for m in result["matches"]] == ["0", "1", "2"]
    assert result["count"] == 3 and result["truncated"] is True
    exact = regex_test(client, auth_headers, pattern=r"\d", text="0123456789", max_matches=10)
    assert exact["count"] == 10 and exact["truncated"] is False


def test_an_invalid_pattern_answers_422_on_pattern(client, auth_headers):
    response = execute(client, auth_headers, "regex_test", pattern="(unclosed", text="x")
    assert response.status_code == 422
    assert "missing )" in response.get_json()["error"]["details"]["pattern"][0]


def test_regex_test_refuses_arguments_outside_its_schema(client, auth_headers):
    cases = [({"text": "x"}, "pattern"), ({"pattern": "x" * 1001, "text": "x"}, "pattern"),
             ({"pattern": "x", "text": "x", "flags": ["LOCALE"]}, "flags.0"),
             ({"pattern": "x", "text": "x", "max_matches": 0}, "max_matches")]
    for arguments, field in cases:
        response = execute(client, auth_headers, "regex_test", **arguments)
        assert response.status_code == 422, arguments
        assert field in response.get_json()["error"]["details"]


def test_a_catastrophically_backtracking_pattern_answers_422_within_its_time_limit(
        client, auth_headers):
    started = time.perf_counter()
    response = execute(client, auth_headers, "regex_test", pattern="(a|aa)+$",
                       text="a" * 40 + "b")
    # Ended by the match's own limit, not by the compute pool's (COMPUTE_TIMEOUT, 10 s): room
    # for a loaded machine in between.
    assert time.perf_counter() - started < 8
    assert response.status_code == 422
    assert "took longer than 0.5 s" in response.get_json()["error"]["details"]["pattern"][0]


def test_a_pattern_whose_counted_repeats_would_unroll_to_gigabytes_answers_422_at_once(
        client, auth_headers):
    for pattern, flags in [("x{4294967294}", []), ("(?:(?:x{1000}[)]){1000}){1000}", []),
                           ("(?#[)x{99999999}]", []), ("a # [\nx{99999999}]", ["VERBOSE"])]:
        started = time.perf_counter()
        response = execute(client, auth_headers, "regex_test", pattern=pattern, text="x",
                           flags=flags)
        # Refused before compiling: unrolled, the first would take far longer (and gigabytes).
        assert time.perf_counter() - started < 5
        assert response.status_code == 422, pattern
        assert "unroll" in response.get_json()["error"]["details"]["pattern"][0]
    ordinary = "[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"
    uuid_text = "id 123e4567-e89b-12d3-a456-426614174000"
    assert regex_test(client, auth_headers, pattern=ordinary, text=uuid_text)["count"] == 1
