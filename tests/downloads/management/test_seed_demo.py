"""`make run`'s printout: every URL it prints answers, every command it prints works pasted.

The demo is seeded and served the way `make run` does it (DJANGO_DEBUG=1 on each command), in
a folder of its own, by subprocesses that know nothing of pytest; the printed commands then
run in a shell with none of that environment.
"""

import json
import os
import re
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

from django.conf import settings

ROOT = Path(settings.BASE_DIR)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def clean_env(tmp_path, base: str) -> dict:
    env = {
        name: value
        for name, value in os.environ.items()
        if not name.startswith(("DJANGO_", "DATABASE_", "DOWNLOADS_", "AWS_", "PYTEST"))
    }
    # Only where the demo lives and the address it is served at differ from `make run`'s.
    env.update(DOWNLOADS_VAR_DIR=str(tmp_path), DOWNLOADS_SITE_URL=base)
    return env


def manage(env, *args, debug=True):
    command = [sys.executable, "manage.py", *args]
    return subprocess.run(
        command,
        cwd=ROOT,
        env={**env, **({"DJANGO_DEBUG": "1"} if debug else {})},
        capture_output=True,
        text=True,
        timeout=300,
        check=True,
    )


def wait_for(url: str, deadline: float) -> None:
    while True:
        try:
            urllib.request.urlopen(url, timeout=2)
            return
        except urllib.error.HTTPError:
            return
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)


class NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args, **kwargs):
        return None


def status_of(url: str) -> int:
    opener = urllib.request.build_opener(NoRedirect)
    try:
        with opener.open(url, timeout=10) as response:
            return response.status
    except urllib.error.HTTPError as error:
        return error.code


def test_every_url_and_command_make_run_prints_works_when_pasted(tmp_path):
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    env = clean_env(tmp_path, base)
    manage(env, "migrate", "--noinput", "-v", "0")
    printed = manage(env, "seed_demo").stdout
    server = subprocess.Popen(
        [sys.executable, "manage.py", "runserver", f"127.0.0.1:{port}", "--noreload"],
        cwd=ROOT,
        env={**env, "DJANGO_DEBUG": "1"},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_for(base + "/", time.monotonic() + 60)
        urls = re.findall(r"^\s+[A-Z][\w ]+:\s+(http\S+)$", printed, re.MULTILINE)
        assert len(urls) >= 6, printed
        expected = {"/admin/": 302, "/account/orders/": 302}  # both ask to sign in first
        for url in urls:
            path = url.removeprefix(base).split("?")[0]
            assert status_of(url) == expected.get(path, 200), url

        lines = printed.splitlines()
        start = next(i for i, line in enumerate(lines) if "paste these" in line)
        commands = [line.strip() for line in lines[start + 1 :] if line.startswith("    ")]
        assert commands, printed
        shell = subprocess.run(
            ["bash", "-euo", "pipefail", "-c", "\n".join(commands)],
            cwd=ROOT,
            env=clean_env(tmp_path, base),
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert shell.returncode == 0, shell.stderr
        answer = json.loads(shell.stdout)
        assert answer["object"] == "list" and answer["pagination"]["count"] == 4
    finally:
        server.kill()
        server.wait(timeout=10)


def test_the_readme_shows_the_api_commands_make_run_prints(settings):
    from downloads.management.commands.seed_demo import api_commands

    settings.DEBUG = True  # as under `make run`
    readme = (ROOT / "README.md").read_text()
    for command in api_commands("http://127.0.0.1:8000"):
        assert command in readme
