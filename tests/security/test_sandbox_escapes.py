"""The attacks of issue 13 on `run_python`, as a user would make them through the API: another
user's concurrent run (its files, its process, its process cap), the host's unix sockets, the
service's database file and instance folder, the host's processes, new user namespaces, and
writing outside the sandbox's own tmpfs. Runs that must be in progress while another acts exec
into a marked sleeper (tests/sandbox_processes.py): the host waits for that mark, not for time."""
import json
import os
import socket
import stat
import threading
import uuid
from pathlib import Path

import pytest

from ..sandbox_processes import exec_into_marked_sleeper, kill, marked_process, new_marker

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="the sandbox switches user: needs root")
SECRET = "secret-" + uuid.uuid4().hex


def run_python(client, headers, code, timeout=30):
    response = client.post("/api/tools/run_python/execute", headers=headers,
                           json={"code": code, "timeout": timeout})
    assert response.status_code == 200, response.get_json()
    return response.get_json()["data"]["result"]


def json_result(result):
    assert result["exit_code"] == 0, result["stderr"]
    return json.loads(result["stdout"])


class RunInProgress:
    """A run started in a thread (its own test client) that reaches `marker` and stays there
    until `end()` kills its marked process, which ends the whole run."""

    def __init__(self, app, headers, code, marker):
        self.result = None
        self.thread = threading.Thread(target=self.run, args=(app, headers, code))
        self.thread.start()
        self.pid = marked_process(marker)

    def run(self, app, headers, code):
        self.result = run_python(app.test_client(), headers, code)

    def end(self):
        kill(self.pid)
        self.thread.join()
        return self.result


def test_a_concurrent_run_of_another_user_cannot_see_read_or_write_its_files(
        app, auth_headers, other_headers):
    marker = new_marker()
    alice = RunInProgress(app, auth_headers, (
        f"open('/tmp/notes', 'w').write({SECRET!r})\n"
        f"open('data.txt', 'w').write({SECRET!r})\n" + exec_into_marked_sleeper(marker)),
        marker)
    try:
        code = f"""\
import glob, json, os
secret = {SECRET[::-1]!r}[::-1]  # not written as is: this script itself is a file of the run
found, written = [], []
paths = glob.glob('/tmp/**', recursive=True) + glob.glob('/proc/*/cwd/*')
paths += [f'/proc/{alice.pid}/cwd/data.txt', f'/proc/{alice.pid}/root/tmp/notes']
for path in paths:
    try:
        if secret in open(path).read():
            found.append(path)
    except OSError:
        pass
for path in [f'/proc/{alice.pid}/cwd/main.py', f'/proc/{alice.pid}/cwd/data.txt']:
    try:
        open(path, 'w').write('overwritten')
        written.append(path)
    except OSError:
        pass
print(json.dumps({{"found": found, "written": written, "tmp": sorted(os.listdir('/tmp'))}}))
"""
        bob = json_result(run_python(app.test_client(), other_headers, code))
    finally:
        alice_result = alice.end()
    assert bob == {"found": [], "written": [], "tmp": ["work"]}
    assert alice_result["exit_code"] == -9


def test_one_run_at_its_process_cap_does_not_stop_another_from_starting_processes(
        app, auth_headers, other_headers):
    marker = new_marker()
    forker = RunInProgress(app, auth_headers, (
        "import os, signal\n"
        "forks = 0\n"
        "while True:\n"
        "    try:\n"
        "        if os.fork() == 0:\n"
        "            signal.pause()\n"
        "        forks += 1\n"
        "    except OSError:\n"
        "        break\n"
        "print(forks, flush=True)\n" + exec_into_marked_sleeper(marker)), marker)
    try:
        code = ("import subprocess, sys\n"
                "print(subprocess.run([sys.executable, '-c', 'print(42)'], capture_output=True,"
                " text=True).stdout, end='')\n")
        other = run_python(app.test_client(), other_headers, code)
    finally:
        forker_result = forker.end()
    assert (other["stdout"], other["exit_code"]) == ("42\n", 0)
    assert forker_result["stdout"] == f"{app.config['SANDBOX_MAX_PROCESSES'] - 1}\n"


@pytest.fixture
def host_unix_sockets():
    """A listener of our own in a fresh folder under /run, an abstract one, and every socket the
    host already has under /run and /var/run (PostgreSQL's, MySQL's, ...)."""
    folder = Path(f"/run/chatapi-test-{uuid.uuid4().hex}")
    folder.mkdir(mode=0o755)
    path_listener = socket.socket(socket.AF_UNIX)
    path_listener.bind(str(folder / "service.sock"))
    os.chmod(folder / "service.sock", 0o777)
    abstract_listener = socket.socket(socket.AF_UNIX)
    abstract_name = f"\0chatapi-test-{uuid.uuid4().hex}"
    abstract_listener.bind(abstract_name)
    listeners = [path_listener, abstract_listener]
    for listener in listeners:
        listener.listen()
        listener.setblocking(False)
    try:
        yield {"paths": sockets_under("/run", "/var/run"), "abstract": abstract_name,
               "path": str(folder / "service.sock"), "listeners": listeners}
    finally:
        for listener in listeners:
            listener.close()
        (folder / "service.sock").unlink()
        folder.rmdir()


def sockets_under(*folders):
    found = set()
    for folder in folders:
        for directory, _, names in os.walk(folder):
            for path in (os.path.join(directory, name) for name in names):
                try:
                    if stat.S_ISSOCK(os.lstat(path).st_mode):
                        found.add(path)
                except FileNotFoundError:
                    pass  # another test's, gone meanwhile
    return sorted(found)


def test_no_unix_socket_of_the_host_is_reachable(client, auth_headers, host_unix_sockets):
    paths = host_unix_sockets["paths"]
    assert host_unix_sockets["path"] in paths
    for address in (host_unix_sockets["path"], host_unix_sockets["abstract"]):
        with socket.socket(socket.AF_UNIX) as from_the_host:
            from_the_host.connect(address)
    code = f"""\
import json, socket
reached = []
for address in {paths!r} + ['/run/postgresql/.s.PGSQL.5432', {host_unix_sockets['abstract']!r}]:
    for kind in (socket.SOCK_STREAM, socket.SOCK_DGRAM):
        try:
            socket.socket(socket.AF_UNIX, kind).connect(address)
            reached.append(address)
        except OSError:
            pass
print(json.dumps(reached))
"""
    assert json_result(run_python(client, auth_headers, code)) == []
    for listener in host_unix_sockets["listeners"]:
        accepted, _ = listener.accept()  # the host's own connection above, and only that
        accepted.close()
        with pytest.raises(BlockingIOError):
            listener.accept()


@pytest.fixture
def database_file(app, database_url):
    """The service's SQLite file as `make run` has it (instance/chatapi.db), with a secret row."""
    instance = Path(app.instance_path)
    made = not instance.exists()
    instance.mkdir(exist_ok=True)
    path = instance / f"chatapi-test-{uuid.uuid4().hex}.db"
    path.write_text(SECRET)
    path.chmod(0o644)
    yield path
    path.unlink()
    if made:
        instance.rmdir()


def test_the_services_files_and_the_hosts_processes_are_out_of_reach(
        client, auth_headers, database_file, database_url):
    service_files = [str(database_file), str(database_file.parent)]
    if database_url.startswith("sqlite:///"):
        service_files.append(database_url.removeprefix("sqlite:///"))
    code = f"""\
import json, os
readable = []
for path in {service_files!r}:
    try:
        os.listdir(path) if os.path.isdir(path) else open(path, 'rb').read()
        readable.append(path)
    except OSError:
        pass
commands = [open(f'/proc/{{pid}}/cmdline', 'rb').read().decode(errors='replace')
            for pid in os.listdir('/proc') if pid.isdigit()]
print(json.dumps({{"readable": readable, "commands": commands}}))
"""
    seen = json_result(run_python(client, auth_headers, code))
    assert seen["readable"] == []
    host_init = Path("/proc/1/cmdline").read_bytes().decode(errors="replace")
    assert host_init not in seen["commands"]
    assert len(seen["commands"]) == 1 and "main.py" in seen["commands"][0]


def test_the_code_cannot_make_a_user_namespace(client, auth_headers):
    code = ("import ctypes, os\n"
            "libc = ctypes.CDLL(None, use_errno=True)\n"
            "CLONE_NEWUSER = 0x10000000\n"
            "print(libc.unshare(CLONE_NEWUSER), os.strerror(ctypes.get_errno()))\n")
    result = run_python(client, auth_headers, code)
    assert result["stdout"] == "-1 No space left on device\n"


def test_the_code_can_write_only_in_its_own_tmpfs(client, auth_headers):
    code = """\
import json
written = []
for path in ['/x', '/dev/x', '/dev/shm/x', '/usr/x', '/usr/lib/python3/dist-packages/x',
             '/proc/x', '/tmp/x', '/tmp/work/x']:
    try:
        open(path, 'w').write('x')
        written.append(path)
    except OSError:
        pass
print(json.dumps(written))
"""
    assert json_result(run_python(client, auth_headers, code)) == ["/tmp/x", "/tmp/work/x"]


def test_neither_the_services_packages_nor_the_systems_are_importable(client, auth_headers):
    import flask
    code = f"""\
import json, os, site
try:
    import flask
    imported = True
except ImportError:
    imported = False
print(json.dumps({{"imported": imported, "flask_source": os.path.exists({flask.__file__!r}),
                  "packages": [name for path in site.getsitepackages() if os.path.isdir(path)
                               for name in os.listdir(path)]}}))
"""
    seen = json_result(run_python(client, auth_headers, code))
    assert seen == {"imported": False, "flask_source": False, "packages": []}
