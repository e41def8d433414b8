"""Private, throw-away PostgreSQL and Redis servers on free loopback ports, for tests that
stop, pause and restart them (the shared servers are never touched)."""
import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
from glob import glob
from pathlib import Path

import redis

from ..servers import free_port


def postgres_bin():
    """The directory holding initdb and pg_ctl: on PATH, else the newest Debian install."""
    found = shutil.which("pg_ctl")
    if found:
        return Path(found).parent
    installed = sorted(glob("/usr/lib/postgresql/*/bin/pg_ctl"),
                       key=lambda path: int(Path(path).parent.parent.name))
    return Path(installed[-1]).parent if installed else None


def unprivileged_account():
    """initdb and postgres refuse to run as root: (uid, gid) to run them as, or None when the
    tests already run as an ordinary user."""
    if os.geteuid() != 0:
        return None
    for name in ("postgres", "nobody"):
        try:
            entry = pwd.getpwnam(name)
        except KeyError:
            continue
        return entry.pw_uid, entry.pw_gid
    return 65534, 65534


class PrivatePostgres:
    """One PostgreSQL cluster in a temporary directory, owned by an unprivileged user when
    the tests run as root; `stop()` is an immediate shutdown, as in a crash."""

    def __init__(self, bin_dir):
        self.bin_dir = bin_dir
        self.account = unprivileged_account()
        self.root = Path(tempfile.mkdtemp(prefix="chatapi-pg-"))
        if self.account:
            os.chown(self.root, *self.account)
        self.data = self.root / "data"
        self.port = free_port()
        self.url = f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/postgres"

    def run(self, tool, *args, timeout=60):
        options = {}
        if self.account:
            options = {"user": self.account[0], "group": self.account[1], "extra_groups": []}
        return subprocess.run([str(self.bin_dir / tool), *args], capture_output=True,
                              text=True, timeout=timeout, cwd=self.root, **options)

    def init(self):
        done = self.run("initdb", "-D", str(self.data), "-U", "postgres", "--auth=trust",
                        "-N", "-E", "UTF8", "--locale=C")
        if done.returncode != 0:
            raise RuntimeError(f"initdb failed: {done.stderr.strip()[-500:]}")

    def start(self):
        options = (f"-p {self.port} -k {self.root} -c listen_addresses=127.0.0.1 "
                   "-c fsync=off -c full_page_writes=off")
        done = self.run("pg_ctl", "-D", str(self.data), "-l", str(self.root / "log"), "-w",
                        "-t", "30", "-o", options, "start")
        if done.returncode != 0:
            log = (self.root / "log").read_text(errors="replace")[-1000:]
            raise RuntimeError(f"pg_ctl start failed: {done.stderr.strip()} {log}")

    def stop(self, mode="immediate"):
        self.run("pg_ctl", "-D", str(self.data), "-m", mode, "-w", "stop")

    def destroy(self):
        if (self.data / "postmaster.pid").exists():
            self.stop()
        shutil.rmtree(self.root, ignore_errors=True)


class PrivateRedis:
    """One redis-server on a free port. `persistent=False` keeps nothing on disk (a restart
    forgets every key); `True` writes an append-only file, as a production Redis should."""

    def __init__(self, persistent=False):
        self.root = Path(tempfile.mkdtemp(prefix="chatapi-redis-"))
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.persistent = persistent
        self.process = None

    def start(self):
        persistence = (["--appendonly", "yes", "--appendfsync", "always"] if self.persistent
                       else ["--appendonly", "no"])
        self.process = subprocess.Popen(
            ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
             "--dir", str(self.root), *persistence],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        probe = redis.Redis(port=self.port, socket_timeout=1, socket_connect_timeout=1)
        deadline = time.monotonic() + 10
        while True:
            try:
                probe.ping()
                break
            except redis.RedisError:
                if time.monotonic() > deadline or self.process.poll() is not None:
                    raise RuntimeError("redis-server did not start")
                time.sleep(0.05)
            finally:
                probe.close()

    def kill(self):
        self.process.kill()
        self.process.wait()

    def pause(self):
        """SIGSTOP: the port still accepts connections (the kernel completes the handshake),
        but nothing ever answers, as with a hung or partitioned Redis."""
        self.process.send_signal(signal.SIGSTOP)

    def resume(self):
        self.process.send_signal(signal.SIGCONT)

    def destroy(self):
        if self.process is not None and self.process.poll() is None:
            self.resume()
            self.kill()
        shutil.rmtree(self.root, ignore_errors=True)


class FreezableProxy:
    """A TCP proxy on a free loopback port in front of 127.0.0.1:`target_port`. `freeze()`
    makes it forward nothing either way, hold what it has read and connect nothing new, while
    the kernel still accepts connections and acknowledges every byte: a pooler that hung, or a
    network that keeps TCP up but carries nothing. `thaw()` lets it all through again."""

    def __init__(self, target_port):
        self.target_port = target_port
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.flowing = threading.Event()
        self.flowing.set()
        self.sockets = []
        threading.Thread(target=self.accept, daemon=True).start()

    def freeze(self):
        self.flowing.clear()

    def thaw(self):
        self.flowing.set()

    def accept(self):
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return  # closed
            self.flowing.wait()
            upstream = socket.create_connection(("127.0.0.1", self.target_port))
            self.sockets += [client, upstream]
            for source, sink in ((client, upstream), (upstream, client)):
                threading.Thread(target=self.pump, args=(source, sink), daemon=True).start()

    def pump(self, source, sink):
        try:
            while data := source.recv(65536):
                self.flowing.wait()
                sink.sendall(data)
        except OSError:
            pass
        finally:
            for end in (source, sink):
                try:
                    end.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

    def close(self):
        self.thaw()
        self.listener.close()
        for end in self.sockets:
            end.close()
