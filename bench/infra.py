"""What the benchmark starts and stops: tools, PostgreSQL databases, the S3 server, gunicorn
and nginx.

Every server binds 127.0.0.1 on a free port, runs in its own process group, and is stopped
when the `Stack` that started it closes: at the end, on an exception, on Ctrl-C or SIGTERM.
"""

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PYTHON = sys.executable
VENV_BIN = Path(PYTHON).parent
WORK = ROOT / "var" / "bench"
HOST = "127.0.0.1"
MiB = 1024**2
GiB = 1024**3
DB_SMALL = "downloads_bench"
DB_LARGE = "downloads_bench_large"
PG_BASE_URL = "postgres://downloads:downloads@127.0.0.1:5432"
S3_KEYS = {"AWS_ACCESS_KEY_ID": "bench", "AWS_SECRET_ACCESS_KEY": "bench"}
S3_REGION = "us-east-1"
# The settings of every Django process the bench starts; `--settings` swaps in a variant
# (e.g. a module that imports bench.settings and changes one thing) to measure a change.
SETTINGS = {"module": "bench.settings"}


class BenchError(RuntimeError):
    """The benchmark could not set itself up (a missing tool, a server that did not start)."""


def log(message: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


# --- Tools ------------------------------------------------------------------------------------


def _apt_install(package: str) -> None:
    if os.geteuid() != 0:
        raise BenchError(
            f"{package} is missing; install it (apt-get install {package}) or run as root"
        )
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    # Debian starts a service when its package is installed; the bench runs its own nginx on
    # 127.0.0.1 and never wants the system one on port 80. policy-rc.d says no to that.
    policy = Path("/usr/sbin/policy-rc.d")
    added_policy = not policy.exists()
    if added_policy:
        policy.write_text("#!/bin/sh\nexit 101\n")
        policy.chmod(0o755)
    try:
        install = ["apt-get", "install", "-y", "-q", "--no-install-recommends", package]
        if subprocess.run(install, env=env, capture_output=True).returncode != 0:
            subprocess.run(["apt-get", "update", "-q"], env=env, check=True, capture_output=True)
            subprocess.run(install, env=env, check=True, capture_output=True)
    finally:
        if added_policy:
            policy.unlink()


def ensure_tool(binary: str, package: str) -> str:
    """The path of `binary`, installing Debian's `package` when it is absent."""
    path = shutil.which(binary) or shutil.which(binary, path="/usr/sbin:/usr/bin")
    if path is None:
        log(f"installing {package} (apt-get install -y {package})")
        _apt_install(package)
        path = shutil.which(binary) or shutil.which(binary, path="/usr/sbin:/usr/bin")
        if path is None:
            raise BenchError(f"{package} installed but {binary} is not on PATH")
    return path


def tool_version(command: list[str]) -> str:
    done = subprocess.run(command, capture_output=True, text=True)
    lines = (done.stdout + done.stderr).strip().splitlines()
    return lines[0] if lines else "?"


# --- Ports and processes ----------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return sock.getsockname()[1]


def port_open(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.2)
        return sock.connect_ex((HOST, port)) == 0


class Proc:
    """A child process in its own process group, with its output in a log file."""

    def __init__(self, name: str, command: list[str], *, env: dict | None = None, port=None):
        self.name = name
        self.command = [str(part) for part in command]
        self.port = port
        WORK.mkdir(parents=True, exist_ok=True)
        self.log_path = WORK / f"{name}.log"
        self._log = self.log_path.open("wb")
        self.popen = subprocess.Popen(
            self.command,
            cwd=ROOT,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    @property
    def pid(self) -> int:
        return self.popen.pid

    def log_tail(self, lines: int = 30) -> str:
        with contextlib.suppress(OSError):
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        return ""

    def wait_port(self, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.popen.poll() is not None:
                raise BenchError(
                    f"{self.name} exited ({self.popen.returncode}):\n{self.log_tail()}"
                )
            if port_open(self.port):
                return
            time.sleep(0.05)
        raise BenchError(f"{self.name} did not listen on {HOST}:{self.port}:\n{self.log_tail()}")

    def children(self) -> list[int]:
        """The pids of this process's direct children (gunicorn's workers)."""
        path = Path(f"/proc/{self.pid}/task/{self.pid}/children")
        with contextlib.suppress(OSError):
            return [int(pid) for pid in path.read_text().split()]
        return []

    def stop(self) -> None:
        if self.popen.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.pid, signal.SIGTERM)
            try:
                self.popen.wait(timeout=15)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.pid, signal.SIGKILL)
                self.popen.wait(timeout=5)
        self._log.close()


class Stack(contextlib.ExitStack):
    """An ExitStack that also turns SIGTERM and SIGHUP into an exception, so a killed bench
    still stops everything it started."""

    def __enter__(self):
        super().__enter__()
        self._previous = {}
        for signum in (signal.SIGTERM, signal.SIGHUP):
            self._previous[signum] = signal.signal(signum, self._raise)
        return self

    @staticmethod
    def _raise(signum, frame):
        raise KeyboardInterrupt(f"signal {signum}")

    def __exit__(self, *exc):
        try:
            return super().__exit__(*exc)
        finally:
            for signum, handler in self._previous.items():
                signal.signal(signum, handler)

    def start(self, proc: Proc) -> Proc:
        self.callback(proc.stop)
        if proc.port is not None:
            proc.wait_port()
        return proc


# --- PostgreSQL -------------------------------------------------------------------------------


def ensure_postgres() -> None:
    """The project's own script: installs and starts PostgreSQL on 127.0.0.1:5432 if needed."""
    done = subprocess.run(
        ["bash", "scripts/ensure_postgres.sh"], cwd=ROOT, capture_output=True, text=True
    )
    if done.returncode != 0:
        raise BenchError(f"scripts/ensure_postgres.sh failed:\n{done.stderr[-2000:]}")


def database_url(name: str) -> str:
    return f"{PG_BASE_URL}/{name}"


def pg_connect(name: str = "downloads"):
    import psycopg

    return psycopg.connect(database_url(name), autocommit=True)


def create_database(name: str, *, template: str | None = None) -> str:
    """(Re)create database `name`, empty or as a copy of `template`; return its URL."""
    from psycopg import sql

    with pg_connect() as conn:
        conn.execute(
            sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
        )
        statement = sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name))
        if template:
            statement += sql.SQL(" TEMPLATE {}").format(sql.Identifier(template))
        conn.execute(statement)
    return database_url(name)


# --- Servers ----------------------------------------------------------------------------------


def start_s3(stack: Stack, bucket: str) -> str:
    """moto's S3 server on 127.0.0.1 with a private bucket; return its endpoint URL."""
    import boto3
    from botocore.config import Config

    port = free_port()
    stack.start(
        Proc(
            "moto",
            [VENV_BIN / "moto_server", "-H", HOST, "-p", port],
            env=dict(os.environ),
            port=port,
        )
    )
    endpoint = f"http://{HOST}:{port}"
    client = boto3.client(
        "s3",
        endpoint_url=endpoint,
        region_name=S3_REGION,
        aws_access_key_id=S3_KEYS["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=S3_KEYS["AWS_SECRET_ACCESS_KEY"],
        config=Config(signature_version="s3v4", s3={"addressing_style": "path"}),
    )
    client.create_bucket(Bucket=bucket)
    return endpoint


def django_env(*, db_url: str, s3: dict | None = None, **extra) -> dict:
    """The environment of a Django process of the bench: bench settings, a database, and S3
    media when `s3` (bucket, endpoint) is given, else local media."""
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("AWS_", "DJANGO_", "DOWNLOADS_", "DATABASE_", "PYTEST"))
    }
    env.update(
        DJANGO_SETTINGS_MODULE=SETTINGS["module"],
        DATABASE_URL=db_url,
        DATABASE_CONN_MAX_AGE="600",
        DOWNLOADS_DEV="1",
        DOWNLOADS_VAR_DIR=str(WORK / "var"),
        # The API's per-key throttle (60/min by default) would measure the throttle.
        DOWNLOADS_API_THROTTLE="100000000/min",
        # Likewise the licence API's per-address one (wrk calls from one address); it still
        # runs, one cache increment a request.
        DOWNLOADS_LICENSE_THROTTLE="100000000/min",
        DJANGO_LOG_LEVEL="ERROR",
    )
    if s3:
        env.update(
            AWS_STORAGE_BUCKET_NAME=s3["bucket"],
            AWS_S3_ENDPOINT_URL=s3["endpoint"],
            AWS_S3_REGION_NAME=S3_REGION,
            **S3_KEYS,
        )
    env.update({key: str(value) for key, value in extra.items()})
    return env


def start_gunicorn(
    stack: Stack,
    name: str,
    *,
    env: dict,
    workers: int = 2,
    threads: int = 1,
    timeout: int = 120,
) -> Proc:
    """The production WSGI app under gunicorn (sync workers unless threads > 1)."""
    port = free_port()
    command = [
        VENV_BIN / "gunicorn",
        "downloads_project.wsgi:application",
        "--bind",
        f"{HOST}:{port}",
        "--workers",
        workers,
        "--worker-class",
        "gthread" if threads > 1 else "sync",
        "--threads",
        threads,
        "--timeout",
        timeout,
        "--graceful-timeout",
        5,
        "--backlog",
        512,
    ]
    proc = stack.start(Proc(name, command, env=env, port=port))
    # Workers fork after the master listens; wait until all are up.
    deadline = time.monotonic() + 30
    while len(proc.children()) < workers and time.monotonic() < deadline:
        time.sleep(0.05)
    return proc


NGINX_CONF = """\
daemon off;
worker_processes 1;
pid {work}/nginx.pid;
error_log {work}/nginx-error.log warn;
events {{ worker_connections 64; }}
http {{
    access_log off;
    sendfile on;
    tcp_nopush on;
    default_type application/octet-stream;
    client_body_temp_path {work}/client_body;
    proxy_temp_path {work}/proxy;
    fastcgi_temp_path {work}/fastcgi;
    uwsgi_temp_path {work}/uwsgi;
    scgi_temp_path {work}/scgi;
    server {{
        listen {host}:{port};
        root {root};
        location / {{ }}
    }}
}}
"""


def start_nginx(stack: Stack, *, nginx: str, root: Path) -> Proc:
    """nginx on 127.0.0.1 serving `root` (a generated config; never the system service)."""
    work = WORK / "nginx"
    work.mkdir(parents=True, exist_ok=True)
    port = free_port()
    conf = work / "nginx.conf"
    conf.write_text(NGINX_CONF.format(work=work, host=HOST, port=port, root=root))
    return stack.start(Proc("nginx", [nginx, "-c", conf, "-p", work], port=port))
