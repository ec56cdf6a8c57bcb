"""A real Redis for the tests of the Redis cache path: Debian's `redis-server`, started once a
session on 127.0.0.1 on a free port, without persistence (`--save ''`, `--appendonly no`) in
a temporary folder, and stopped at the end (or with the test process, if that dies first).

No skip: without the binary the tests that need it fail, saying how to install it
(`bash scripts/ensure_redis.sh`, which `make test` runs).
"""

import shutil
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

BINARY = "redis-server"


@dataclass(frozen=True)
class RedisServer:
    host: str
    port: int
    folder: Path

    def url(self, db: int = 0) -> str:
        """`redis://127.0.0.1:<port>/<db>`, as DJANGO_CACHE_URL takes it."""
        return f"redis://{self.host}:{self.port}/{db}"


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _answers_ping(port: int) -> bool:
    import redis

    try:
        return redis.Redis(host="127.0.0.1", port=port, socket_timeout=1).ping()
    except redis.exceptions.ConnectionError:
        return False


def start(folder: Path, *, timeout: float = 15.0) -> tuple[subprocess.Popen, RedisServer]:
    """Start redis-server in `folder` and wait until it answers PING."""
    binary = shutil.which(BINARY)
    if binary is None:
        pytest.fail(
            f"{BINARY} is missing: install Debian's redis-server package "
            "(`bash scripts/ensure_redis.sh`; `make test` does it).",
            pytrace=False,
        )
    port = _free_port()
    # util-linux's setpriv sets the parent-death signal and runs the server in its place: the
    # server gets SIGTERM if the test process dies without its teardown.
    guard = ["setpriv", "--pdeathsig", "TERM", "--"] if shutil.which("setpriv") else []
    log = (folder / "redis.log").open("wb")
    process = subprocess.Popen(
        [
            *guard,
            binary,
            "--bind",
            "127.0.0.1",
            "--port",
            str(port),
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            str(folder),
            "--protected-mode",
            "yes",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    log.close()
    deadline = time.monotonic() + timeout
    while not _answers_ping(port):
        if process.poll() is not None or time.monotonic() > deadline:
            stop(process)
            output = (folder / "redis.log").read_text(errors="replace")
            pytest.fail(f"{BINARY} did not answer PING on port {port}:\n{output}", pytrace=False)
        time.sleep(0.05)
    return process, RedisServer(host="127.0.0.1", port=port, folder=folder)


def stop(process: subprocess.Popen) -> None:
    """SIGTERM, then SIGKILL if it is still there after a short grace."""
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory):
    """A running redis-server for the session (a `RedisServer`: host, port, url(db))."""
    process, server = start(tmp_path_factory.mktemp("redis"))
    yield server
    stop(process)
