"""The benchmark: set up, measure each hot path against its baseline, report.

Phases (select some with --only): hot (baseline, storefront JSON, order page, download
endpoint, queries, presign), stream, upload, scale, race, backfill, shopify (webhook ingest
latency and one worker's orders per second), files (stamping a 500-page PDF, an order's
download-all ZIP against nginx).
"""

import argparse
import json
import os
import shlex
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlencode

from . import infra, measure
from .files import FilePhases
from .hot import HotPaths
from .infra import DB_LARGE, DB_SMALL, HOST, BenchError, GiB, MiB, Stack, log
from .report import Figure, machine, machine_line, render_text, write
from .store import StorePhases

PHASES = ("hot", "stream", "upload", "scale", "race", "backfill", "shopify", "files")
BUCKET = "bench-media"
# gunicorn's recommended worker count: requests that wait on the database (a commit's fsync)
# overlap, as they would in production; CPU-bound ones gain nothing and lose nothing.
APP_WORKERS = 2 * (os.cpu_count() or 1) + 1


@dataclass(frozen=True)
class Config:
    mode: str
    rounds: int  # interleaved rounds for every ratio (median taken)
    wrk_seconds: int
    wrk_connections: int
    app_workers: int
    latency_seconds: int
    small_orders: int
    large_orders: int
    file_bytes: int  # the streamed and the uploaded file
    race_rounds: int
    race_parallel: int
    race_left: int
    shopify_tasks: int  # queued Shopify events one worker processes for the rate
    stamp_pages: int  # the stamped PDF
    stamp_rounds: int  # stamping runs, each in a fresh process (median taken)
    bundle_files: int  # the download-all's files, `file_bytes` in all


FULL = Config(
    mode="full",
    rounds=7,
    wrk_seconds=4,
    wrk_connections=8,
    app_workers=APP_WORKERS,
    latency_seconds=3,
    small_orders=1_000,
    large_orders=200_000,
    file_bytes=1 * GiB,
    race_rounds=100,
    race_parallel=50,
    race_left=7,
    shopify_tasks=1_000,
    stamp_pages=500,
    stamp_rounds=3,
    bundle_files=10,
)
QUICK = Config(
    mode="quick",
    rounds=5,
    wrk_seconds=2,
    wrk_connections=8,
    app_workers=APP_WORKERS,
    latency_seconds=1,
    small_orders=1_000,
    large_orders=10_000,
    file_bytes=128 * MiB,
    race_rounds=10,
    race_parallel=50,
    race_left=7,
    shopify_tasks=300,
    stamp_pages=500,
    stamp_rounds=1,
    bundle_files=10,
)


class Bench(HotPaths, FilePhases, StorePhases):
    """The bench: its setup and helpers here, its phases in hot.py, files.py and store.py."""

    def __init__(self, config: Config, phases: list[str], stack: Stack):
        self.config = config
        self.phases = phases
        self.stack = stack
        self.figures: list[Figure] = []
        self.tools: dict[str, str] = {}

    # --- helpers ------------------------------------------------------------------------------

    def task(self, env: dict, *args: str) -> tuple[dict, str]:
        """Run `python -m bench.tasks ARGS` with `env`; return its JSON and the command line."""
        command = [infra.PYTHON, "-m", "bench.tasks", *args]
        shown = self.env_prefix(env) + measure.shell(command)
        done = subprocess.run(command, cwd=infra.ROOT, env=env, capture_output=True, text=True)
        if done.returncode != 0:
            raise BenchError(f"{shown} failed:\n{done.stderr[-4000:]}")
        return json.loads(done.stdout.strip().splitlines()[-1]), shown

    @staticmethod
    def env_prefix(env: dict) -> str:
        keys = [
            "DJANGO_SETTINGS_MODULE",
            "DATABASE_URL",
            "AWS_STORAGE_BUCKET_NAME",
            "AWS_S3_ENDPOINT_URL",
            "DOWNLOADS_MEDIA_ROOT",
        ]
        shown = [f"{key}={shlex.quote(env[key])}" for key in keys if env.get(key)]
        return " ".join(shown) + " " if shown else ""

    def add(self, figure: Figure) -> None:
        self.figures.append(figure)
        log(f"{figure.title}: {figure.shown_value()} {figure.shown_target()} {figure.verdict}")

    def missing(self, key: str, title: str, target: str, why: str) -> None:
        self.add(Figure(key, title, None, target=target, note=why))

    def probe(self, url: str, headers: dict | None = None) -> int:
        return measure.run_curl(measure.curl_command(url, headers=headers))["status"]

    # --- setup --------------------------------------------------------------------------------

    def setup(self) -> None:
        c = self.config
        self.wrk = infra.ensure_tool("wrk", "wrk")
        self.tools["wrk"] = infra.tool_version([self.wrk, "-v"]).split(" [")[0].removeprefix("wrk ")
        infra.ensure_tool("curl", "curl")
        if {"stream", "files"} & set(self.phases):
            self.nginx = infra.ensure_tool("nginx", "nginx")
            self.tools["nginx"] = infra.tool_version([self.nginx, "-v"]).split("/")[-1]
        log("PostgreSQL: bash scripts/ensure_postgres.sh")
        infra.ensure_postgres()
        with infra.pg_connect() as conn:
            self.tools["PostgreSQL"] = conn.execute("SHOW server_version").fetchone()[0].split()[0]
        self.tools["gunicorn"] = (
            infra.tool_version([str(infra.VENV_BIN / "gunicorn"), "--version"])
            .split()[-1]
            .strip("()")
        )
        self.s3 = {"bucket": BUCKET, "endpoint": infra.start_s3(self.stack, BUCKET)}
        log(f"S3 (moto) on {self.s3['endpoint']}, bucket {BUCKET}")

        self.small_url = infra.create_database(DB_SMALL)
        env = self.env(self.small_url)
        log(f"migrating {DB_SMALL}")
        subprocess.run(
            [infra.PYTHON, "manage.py", "migrate", "--noinput", "-v0"],
            cwd=infra.ROOT,
            env=env,
            check=True,
        )
        self.hot, _ = self.task(env, "seed-hot", "--stream-bytes", str(c.file_bytes))
        # A seller's app checking its key on start: the key and the instance it activated.
        self.license, _ = self.task(env, "seed-license")
        self.license_body = urlencode(self.license)
        done = subprocess.run(
            [infra.PYTHON, "manage.py", "create_api_key", "--name", "bench", "--scope", "write"],
            cwd=infra.ROOT,
            env=env,
            capture_output=True,
            text=True,
            check=True,
        )
        self.api_key = done.stdout.strip().splitlines()[-1]

        need_large = {"scale", "backfill"} & set(self.phases)
        if need_large:
            # The same hot orders and API key in both stores: a copy made before the bulk rows.
            self.large_url = infra.create_database(DB_LARGE, template=DB_SMALL)
        # The small store's orders carry 25 files each (the large one's 5), so that page
        # 1000 of the grants list (rows 19,981-20,000) exists in both stores.
        self.small_store, _ = self.task(
            env, "seed-store", "--orders", str(c.small_orders), "--other-files", "23"
        )
        log(f"small store: {self.small_store}")
        if need_large:
            log(f"seeding the large store ({c.large_orders:,} orders)")
            self.large_store, _ = self.task(
                self.env(self.large_url), "seed-store", "--orders", str(c.large_orders)
            )
            log(f"large store: {self.large_store}")

    def env(self, db_url: str, *, local_media: Path | None = None) -> dict:
        if local_media is not None:
            return infra.django_env(db_url=db_url, DOWNLOADS_MEDIA_ROOT=local_media)
        return infra.django_env(db_url=db_url, s3=self.s3)

    def gunicorn(self, name: str, env: dict, **options) -> tuple[infra.Proc, str]:
        proc = infra.start_gunicorn(self.stack, name, env=env, **options)
        return proc, f"http://{HOST}:{proc.port}"

    def run(self) -> list[str]:
        """Set up, then run each phase with its own servers; return the phases that broke.

        A phase that breaks is reported with its error and the others still run."""
        self.setup()
        broken = []
        for phase in PHASES:
            if phase not in self.phases:
                continue
            log(f"--- {phase}")
            outer = self.stack
            try:
                with Stack() as stack:
                    self.stack = stack
                    getattr(self, f"phase_{phase}")()
            except (BenchError, RuntimeError, OSError, subprocess.SubprocessError) as exc:
                log(f"{phase} broke: {exc}")
                broken.append(phase)
                self.add(
                    Figure(
                        f"{phase}.error",
                        f"{phase}: the measurement broke",
                        None,
                        note=f"{exc.__class__.__name__}: {str(exc)[:500]}",
                    )
                )
            finally:
                self.stack = outer
        return broken


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument(
        "--quick", action="store_true", help="smaller sizes, shorter runs (< 3 min)"
    )
    parser.add_argument("--only", nargs="+", choices=PHASES, help="run only these measurements")
    parser.add_argument(
        "--settings",
        default=infra.SETTINGS["module"],
        help="Django settings of the servers and tasks (default bench.settings); a variant "
        "that imports bench.settings and changes one thing measures that change",
    )
    args = parser.parse_args(argv)
    config = QUICK if args.quick else FULL
    infra.SETTINGS["module"] = args.settings
    phases = list(args.only or PHASES)
    started = time.time()
    stamp = time.strftime("%Y%m%d-%H%M%S", time.gmtime(started)) + f"-{config.mode}"
    command = (
        "python -m bench"
        + (" --quick" if args.quick else "")
        + (f" --only {' '.join(args.only)}" if args.only else "")
        + (f" --settings {args.settings}" if args.settings != "bench.settings" else "")
    )
    log(f"{command}: {config}")
    with Stack() as stack:
        bench = Bench(config, phases, stack)
        broken = bench.run()
    info = machine()
    info["tools"] = bench.tools
    header = {
        "mode": config.mode,
        "command": command,
        "config": config.__dict__,
        "started": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(started)),
        "duration_s": time.time() - started,
        "machine": info,
        "machine_line": machine_line(info),
    }
    print(render_text(bench.figures, header))
    json_path, md_path = write(bench.figures, header, stamp)
    print(
        f"\nResults: {json_path.relative_to(infra.ROOT)} (and the table in {md_path.relative_to(infra.ROOT)}); "
        f"took {header['duration_s']:.0f} s"
    )
    return 1 if broken else 0


if __name__ == "__main__":
    sys.exit(main())
