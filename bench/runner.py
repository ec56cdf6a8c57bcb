"""The benchmark: set up, measure each hot path against its baseline, report.

Phases (select some with --only): hot (baseline, storefront JSON, order page, download
endpoint, queries, presign), stream, upload, scale, race, backfill, shopify (webhook ingest
latency and one worker's orders per second), files (stamping a 500-page PDF, an order's
download-all ZIP against nginx).
"""

import argparse
import http.client
import json
import os
import shlex
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlencode

from . import infra, measure, shopify
from .infra import HOST, WORK, BenchError, Stack, log
from .report import Figure, machine, machine_line, render_text, write
from .tasks import bundle_files, stream_key

MiB = 1024**2
GiB = 1024**3
PHASES = ("hot", "stream", "upload", "scale", "race", "backfill", "shopify", "files")
BUCKET = "bench-media"
# gunicorn's recommended worker count: requests that wait on the database (a commit's fsync)
# overlap, as they would in production; CPU-bound ones gain nothing and lose nothing.
APP_WORKERS = 2 * (os.cpu_count() or 1) + 1
DB_SMALL = "downloads_bench"
DB_LARGE = "downloads_bench_large"
# Signed deliveries prepared for each wrk run of the Shopify ingest: more than the app can
# take in a run here, so no request repeats a delivery (the note says if one did).
SHOPIFY_DELIVERIES_PER_SECOND = 4_000


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


class Bench:
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

    # --- 1-3: the hot paths against the baseline ----------------------------------------------

    def phase_hot(self) -> None:
        c = self.config
        _proc, base = self.gunicorn("app", self.env(self.small_url), workers=c.app_workers)
        paths = {
            "baseline": "/bench/baseline",
            "json": f"/api/v2/customer-account-orders?id={self.hot['hot_order']}",
            "page": f"/account/orders/{self.hot['hot_order']}/",
            "page_reads": f"/bench/order-page-reads/{self.hot['hot_order']}/",
            "download": f"/downloads/{self.hot['download_grant']}/",
            "json_reads": f"/bench/storefront-reads?id={self.hot['hot_order']}",
            "download_db": f"/bench/download-without-presign/{self.hot['download_grant']}/",
            "license": "/api/v1/licenses/validate",
            "license_reads": "/bench/license-reads",
            "license_view": "/bench/license-validate-without-answer",
        }
        # POSTed (form-encoded, as Lemon Squeezy's docs send them); the others are GETs.
        bodies = {
            "license": self.license_body,
            "license_reads": self.license_body,
            "license_view": self.license_body,
        }
        expected = {
            "baseline": 200,
            "json": 200,
            "page": 200,
            "page_reads": 200,
            "download": 302,
            "json_reads": 200,
            "download_db": 302,
            "license": 200,
            "license_reads": 200,
            "license_view": 200,
        }
        titles = {
            "json": ("Storefront JSON req/s ÷ baseline (10 lines × 3 files)", ">= 0.6"),
            "json_reads": (
                "Floor: the storefront JSON's reads, no JSON built, ÷ baseline",
                "",
            ),
            "page": ("Order page req/s ÷ baseline (10 lines × 3 files)", ">= 0.15"),
            "page_reads": ("Floor: the order page's reads, no page rendered, ÷ baseline", ""),
            "download": ("Download endpoint (S3, 302) req/s ÷ baseline (30 grants)", ">= 0.4"),
            "download_db": ("Floor: the download's lookup and count, no presign, ÷ baseline", ""),
            "license": ("License validate req/s ÷ baseline (key and instance)", ">= 0.5"),
            "license_reads": (
                "Floor: the licence validate's read, no answer built, ÷ baseline",
                "",
            ),
            "license_view": (
                "Floor: the licence validate in the API's view (DRF, throttle, form), "
                "no answer built, ÷ baseline",
                "",
            ),
        }
        available = {}
        for name, path in paths.items():
            if name in bodies:
                status = measure.run_curl(
                    measure.curl_command(base + path, extra=("--data", bodies[name]))
                )["status"]
            else:
                status = self.probe(base + path)
            available[name] = status == expected[name]
            if not available[name]:
                log(f"{path}: HTTP {status}, expected {expected[name]}: not measured")
        if not available["baseline"]:
            raise BenchError("the baseline view does not answer 200")
        commands = {
            name: measure.wrk_command(
                self.wrk, base + path, duration=c.wrk_seconds, connections=c.wrk_connections
            )
            for name, path in paths.items()
            if available[name]
        }
        # The requests go round the order's 30 grants: one buyer's grant hammered by every
        # connection would measure the wait for that row's lock, not the endpoint.
        for name, prefix in (("download", "/downloads/"), ("download_db", paths["download_db"])):
            if name not in commands:
                continue
            prefix = prefix.removesuffix(f"{self.hot['download_grant']}/")
            script = WORK / f"{name}.lua"
            script.write_text(
                measure.wrk_paths_script(
                    [f"{prefix}{token}/" for token in self.hot["download_grants"]]
                )
            )
            commands[name] = measure.wrk_command(
                self.wrk,
                base,
                duration=c.wrk_seconds,
                connections=c.wrk_connections,
                script=script,
            )
        for name, body in bodies.items():
            if name not in commands:
                continue
            script = WORK / f"{name}.lua"
            script.write_text(
                measure.wrk_post_script(paths[name], body, "application/x-www-form-urlencoded")
            )
            commands[name] = measure.wrk_command(
                self.wrk,
                base,
                duration=c.wrk_seconds,
                connections=c.wrk_connections,
                script=script,
            )
        for command in commands.values():  # warm-up: imports, connections, caches
            measure.run_wrk([*command[:3], "-d1s", *command[4:]])
        log(f"hot paths: {c.rounds} interleaved rounds of {c.wrk_seconds:g} s each")
        results = measure.interleave(
            c.rounds,
            {name: (lambda cmd=cmd: measure.run_wrk(cmd)) for name, cmd in commands.items()},
        )
        baseline = [run["rps"] for run in results["baseline"]]
        self.add(
            Figure(
                "baseline.rps",
                f"Baseline: bare DRF view, gunicorn {c.app_workers} sync workers",
                round(measure.median(baseline)),
                "req/s",
                commands=[measure.shell(commands["baseline"])],
                note=f"median of {c.rounds} rounds; absolute numbers are machine noise, ratios are the figures",
                details={"rps": baseline},
            )
        )
        for name in (
            "json",
            "json_reads",
            "page",
            "page_reads",
            "download",
            "download_db",
            "license",
            "license_reads",
            "license_view",
        ):
            title, target = titles[name]
            if name not in commands:
                self.missing(f"{name}.ratio", title, target, f"{paths[name]} is not there yet")
                continue
            rps = [run["rps"] for run in results[name]]
            ratios = measure.round_ratios(rps, baseline)
            self.add(
                Figure(
                    f"{name}.ratio",
                    title,
                    round(measure.median(ratios), 3),
                    target=target,
                    commands=[
                        measure.shell(commands[name]),
                        "baseline: " + measure.shell(commands["baseline"]),
                    ],
                    note=f"{measure.median(rps):,.0f} req/s; median of {c.rounds} per-round ratios {', '.join(f'{r:.2f}' for r in ratios)}",
                    details={"rps": rps, "ratios": ratios, "baseline_rps": baseline},
                )
            )
        self.queries(available, paths)

    def queries(self, available: dict, paths: dict) -> None:
        env = self.env(self.small_url)
        tiny = self.hot["tiny_order"]
        urls = {
            "json": (paths["json"], f"/api/v2/customer-account-orders?id={tiny}"),
            "page": (paths["page"], f"/account/orders/{tiny}/"),
            "download": (paths["download"],),
            "license": (paths["license"],),
        }
        titles = {
            "json": ("Storefront JSON: SQL queries a request (1×1 and 10×3 orders)", "== 1"),
            "page": ("Order page: SQL queries a request (1×1 and 10×3 orders)", "== 1"),
            "download": ("Download endpoint: SQL statements a served download", "== 1"),
            "license": ("License validate: SQL statements a request", "== 1"),
        }
        for name, (title, target) in titles.items():
            if not available[name]:
                self.missing(f"{name}.queries", title, target, f"{paths[name]} is not there yet")
                continue
            args = [part for url in urls[name] for part in ("--url", url)]
            if name == "license":
                args += ["--data", self.license_body]
            counted, command = self.task(env, "queries", *args)
            counts = [entry["queries"] for entry in counted.values()]
            self.add(
                Figure(
                    f"{name}.queries",
                    title,
                    max(counts),
                    target=target,
                    commands=[command],
                    note="per URL: "
                    + ", ".join(
                        f"{entry['queries']} (HTTP {entry['status']}, {entry['round_trips']} "
                        "with BEGIN/COMMIT)"
                        for entry in counted.values()
                    ),
                    details=counted,
                )
            )
        timed, command = self.task(
            env,
            "presign",
            "--key",
            self.hot["download_key"],
            "--filename",
            self.hot["download_filename"],
        )
        self.add(
            Figure(
                "presign.ms",
                "One presign (storage.presigned_download_url), in-process",
                timed["median_ms"],
                "ms",
                target="<= 0.03",
                commands=[command],
                note="timeit, 5 × 2000 calls after a first one, median",
                details=timed,
            )
        )

    # --- 4: streaming a local file against nginx ----------------------------------------------

    def big_file(self) -> Path:
        """The streamed and uploaded file: `file_bytes` of incompressible bytes (not sparse)."""
        path = WORK / "media" / stream_key(self.config.file_bytes)
        write_incompressible(path, self.config.file_bytes)
        for folder in (WORK, WORK / "media", path.parent):
            folder.chmod(0o755)
        path.chmod(0o644)
        return path

    def local_servers(self) -> tuple[infra.Proc, str, int]:
        """nginx on the local media root, and one gunicorn worker serving the app on local
        storage from the same root: (nginx, the app's base URL, the worker's pid)."""
        media_root = WORK / "media"
        nginx = infra.start_nginx(self.stack, nginx=self.nginx, root=media_root)
        local, base = self.gunicorn(
            "app-local", self.env(self.small_url, local_media=media_root), workers=1, timeout=600
        )
        return nginx, base, local.children()[0]

    def phase_stream(self) -> None:
        c = self.config
        self.big_file()
        nginx, base, worker = self.local_servers()
        nginx_cmd = measure.curl_command(f"http://{HOST}:{nginx.port}/{stream_key(c.file_bytes)}")
        app_cmd = measure.curl_command(f"{base}/downloads/{self.hot['stream_grant']}/")
        title_ratio = f"Streaming {c.file_bytes / MiB:,.0f} MiB local file: throughput ÷ nginx"
        title_rss = "Streaming: gunicorn worker peak RSS growth"
        first = measure.run_curl(app_cmd)
        if first["status"] != 200:
            self.missing(
                "stream.ratio", title_ratio, ">= 0.5", f"/downloads/… answered {first['status']}"
            )
            self.missing("stream.rss", title_rss, "<= 32", "not measured")
            return
        measure.run_curl(nginx_cmd)

        def through_app():
            with measure.RssWatch(worker) as watch:
                run = measure.run_curl(app_cmd)
            return {**run, **watch.as_dict()}

        results = measure.interleave(
            c.rounds, {"nginx": lambda: measure.run_curl(nginx_cmd), "app": through_app}
        )
        for name, runs in results.items():
            for run in runs:
                if run["status"] != 200 or run["bytes"] != c.file_bytes:
                    raise BenchError(f"{name} transfer incomplete: {run}")
        speed = {
            name: [run["bytes"] / run["seconds"] for run in runs] for name, runs in results.items()
        }
        ratios = measure.round_ratios(speed["app"], speed["nginx"])
        self.add(
            Figure(
                "stream.ratio",
                title_ratio,
                round(measure.median(ratios), 3),
                target=">= 0.5",
                commands=[measure.shell(app_cmd), "nginx: " + measure.shell(nginx_cmd)],
                note=(
                    f"gunicorn {measure.median(speed['app']) / MiB:,.0f} MiB/s, nginx "
                    f"{measure.median(speed['nginx']) / MiB:,.0f} MiB/s; median of {c.rounds} per-round ratios"
                ),
                details={
                    "MiB_per_s": {k: [v / MiB for v in vals] for k, vals in speed.items()},
                    "ratios": ratios,
                },
            )
        )
        watches = [
            {key: run[key] for key in ("rss_start_mib", "rss_peak_mib", "growth_mib")}
            for run in results["app"]
        ]
        growth = max(watch["growth_mib"] for watch in watches)
        self.add(
            Figure(
                "stream.rss",
                title_rss,
                growth,
                "MiB",
                target="<= 32",
                commands=[
                    f"sample /proc/{worker}/status VmRSS/VmHWM during: " + measure.shell(app_cmd)
                ],
                note=f"largest of {c.rounds} transfers",
                details={"rounds": watches},
            )
        )

    # --- 5: a big multipart upload to S3 through the API --------------------------------------

    def phase_upload(self) -> None:
        c = self.config
        path = self.big_file()
        proc, base = self.gunicorn("app-upload", self.env(self.small_url), workers=1, timeout=900)
        worker = proc.children()[0]
        headers = {"Authorization": f"Bearer {self.api_key}"}
        title = f"Upload {c.file_bytes / MiB:,.0f} MiB (POST /api/v1/media → S3): worker peak RSS growth"
        command = measure.curl_command(
            f"{base}/api/v1/media",
            headers=headers,
            extra=("-F", f"file=@{path};filename=upload.bin"),
        )
        shown = measure.shell(command).replace(self.api_key, "$API_KEY")
        # Warm the worker first (imports, the boto3 client, a multipart upload's machinery):
        # the figure is what one more big upload costs a running worker.
        warm = WORK / "warmup.bin"
        with path.open("rb") as source:
            warm.write_bytes(source.read(16 * MiB))
        warm_command = [*command[:-3], "-F", f"file=@{warm};filename=warmup.bin", command[-1]]
        warmed = measure.run_curl(warm_command)
        if warmed["status"] != 201:
            self.missing(
                "upload.rss", title, "<= 150", f"POST /api/v1/media answered {warmed['status']}"
            )
            return
        with measure.RssWatch(worker) as watch:
            run = measure.run_curl(command, timeout=900)
        if run["status"] != 201:
            self.missing(
                "upload.rss", title, "<= 150", f"POST /api/v1/media answered {run['status']}"
            )
            return
        self.add(
            Figure(
                "upload.rss",
                title,
                round(watch.growth_mib, 1),
                "MiB",
                target="<= 150",
                commands=[
                    f"sample /proc/{worker}/status VmRSS/VmHWM during: " + shown,
                    "API_KEY from: "
                    + self.env_prefix(self.env(self.small_url))
                    + ".venv/bin/python manage.py create_api_key --name bench",
                ],
                note=f"{run['seconds']:.1f} s, {c.file_bytes / MiB / run['seconds']:,.0f} MiB/s end to end",
                details={**watch.as_dict(), **run},
            )
        )

    # --- 6: latency with a small and a large store --------------------------------------------

    def phase_scale(self) -> None:
        c = self.config
        _small, small_base = self.gunicorn("app-small", self.env(self.small_url), workers=1)
        _large, large_base = self.gunicorn("app-large", self.env(self.large_url), workers=1)
        auth = {"Authorization": f"Bearer {self.api_key}"}
        targets = {
            "json": (
                f"/api/v2/customer-account-orders?id={self.hot['hot_order']}",
                {},
                "<= 1.3",
                "Storefront JSON p50 latency, large ÷ small store",
            ),
            "grants1": (
                "/api/v1/grants?page=1",
                auth,
                "",
                "Grants list page 1 p50 latency, large ÷ small",
            ),
            "grants1000": (
                "/api/v1/grants?page=1000",
                auth,
                "<= 2",
                "Grants list page 1000 p50 latency, large ÷ small",
            ),
        }
        commands = {}
        statuses = {}
        for name, (path, headers, target, title) in targets.items():
            statuses[name] = {
                "small": self.probe(small_base + path, headers),
                "large": self.probe(large_base + path, headers),
            }
            if (
                statuses[name]["large"] != 200
                or statuses[name]["small"] >= 500
                or statuses[name]["small"] == 401
            ):
                self.missing(f"scale.{name}", title, target, f"{path} answered {statuses[name]}")
                continue
            for store, base in (("small", small_base), ("large", large_base)):
                commands[(name, store)] = measure.wrk_command(
                    self.wrk,
                    base + path,
                    duration=c.latency_seconds,
                    connections=1,
                    latency=True,
                    headers=headers,
                )
        if not commands:
            return
        allow = {key for key in commands if statuses[key[0]][key[1]] != 200}

        def run(key):
            command = commands[key]
            if key in allow:
                done = subprocess.run(command, capture_output=True, text=True, timeout=300)
                return measure.parse_wrk(done.stdout)
            return measure.run_wrk(command)

        for key in commands:  # warm-up: the large store's indexes into the buffer cache
            command = commands[key]
            subprocess.run([*command[:3], "-d1s", *command[4:]], capture_output=True, timeout=120)
        log(f"scale: {c.rounds} interleaved rounds")
        results = measure.interleave(
            c.rounds, {key: (lambda key=key: run(key)) for key in commands}
        )
        for name, (_path, _headers, target, title) in targets.items():
            if (name, "small") not in commands:
                continue
            small_ms = [r["latency_p50_ms"] for r in results[(name, "small")]]
            large_ms = [r["latency_p50_ms"] for r in results[(name, "large")]]
            ratios = measure.round_ratios(large_ms, small_ms)
            note = (
                f"p50 {measure.median(small_ms):.2f} ms ({c.small_orders:,} orders, "
                f"{self.small_store['grants']:,} grants) → "
                f"{measure.median(large_ms):.2f} ms ({c.large_orders:,} orders, "
                f"{self.large_store['grants']:,} grants); HTTP {statuses[name]['small']}/{statuses[name]['large']}"
            )
            self.add(
                Figure(
                    f"scale.{name}",
                    title,
                    round(measure.median(ratios), 2),
                    target=target,
                    commands=[
                        measure.shell(commands[(name, "large")]).replace(self.api_key, "$API_KEY"),
                        "small: "
                        + measure.shell(commands[(name, "small")]).replace(
                            self.api_key, "$API_KEY"
                        ),
                    ],
                    note=note,
                    details={
                        "small_ms": small_ms,
                        "large_ms": large_ms,
                        "ratios": ratios,
                        "status": statuses[name],
                    },
                )
            )

    # --- 7: the limit race --------------------------------------------------------------------

    def phase_race(self) -> None:
        c = self.config
        threads = 25
        workers = max(2, -(-c.race_parallel // threads))
        proc, base = self.gunicorn(
            "app-race", self.env(self.small_url), workers=workers, threads=threads
        )
        token = self.hot["race_grant"]
        path = f"/downloads/{token}/"
        limit = self.hot["race_limit"]
        title = f"Limit race: rounds of {c.race_parallel} parallel downloads, {c.race_left} left, served exactly {c.race_left}"
        if self.probe(base + path) != 302:
            self.missing("race.exact", title, f"== {c.race_rounds}", f"{path} is not there yet")
            return
        exact = 0
        rounds = []
        with infra.pg_connect(DB_SMALL) as conn:
            for _ in range(c.race_rounds):
                conn.execute(
                    "UPDATE downloads_downloadgrant SET download_count = %s WHERE token = %s",
                    (limit - c.race_left, token),
                )
                statuses = race_round(proc.port, path, c.race_parallel)
                count = conn.execute(
                    "SELECT download_count FROM downloads_downloadgrant WHERE token = %s", (token,)
                ).fetchone()[0]
                served = statuses.count(302)
                ok = (
                    served == c.race_left
                    and count == limit
                    and statuses.count(410) == c.race_parallel - c.race_left
                )
                exact += ok
                rounds.append({"served": served, "refused": statuses.count(410), "count": count})
        self.add(
            Figure(
                "race.exact",
                title,
                exact,
                f"of {c.race_rounds}",
                target=f"== {c.race_rounds}",
                commands=[
                    f"{c.race_parallel} threads × GET {base}{path} (connected first, released by a barrier), "
                    f"gunicorn gthread {workers} workers × {threads} threads; "
                    f"before each round the grant's count is set to {limit - c.race_left} of {limit}"
                ],
                note="served per round: " + ", ".join(sorted({str(r["served"]) for r in rounds})),
                details={"rounds": rounds},
            )
        )

    # --- 8: backfill of a new file to the large store -----------------------------------------

    def phase_backfill(self) -> None:
        title_rate = f"Backfill a new file to {self.config.large_orders:,} orders: grants/s"
        title_mem = "Backfill: peak memory growth of the process"
        services = infra.ROOT / "downloads" / "services" / "backfills.py"
        if not services.exists() or "def backfill_run" not in services.read_text():
            self.missing(
                "backfill.rate",
                title_rate,
                "",
                "downloads.services.backfills.backfill_run is not there yet",
            )
            self.missing("backfill.rss", title_mem, "", "not measured")
            return
        result, command = self.task(self.env(self.large_url), "backfill")
        self.add(
            Figure(
                "backfill.rate",
                title_rate,
                result["rows_per_second"],
                "grants/s",
                commands=[command],
                note=f"{result['grants_created']:,} grants in {result['seconds']} s",
                details=result,
            )
        )
        self.add(
            Figure(
                "backfill.rss",
                title_mem,
                result["peak_growth_mib"],
                "MiB",
                commands=[command],
                details=result,
            )
        )

    # --- 9: Shopify's webhooks: ingest latency, then one worker's processing ---------------

    def phase_shopify(self) -> None:
        c = self.config
        title_p99 = "Shopify orders/paid ingest: request-to-2xx p99"
        title_rate = "Shopify orders/paid: orders processed per second by one worker"
        env = {
            **self.env(self.small_url),
            "SHOPIFY_WEBHOOK_SECRET": shopify.SECRET,
            "SHOPIFY_SHOP_DOMAIN": "",
        }
        self.task(env, "seed-shopify")
        _proc, base = self.gunicorn("app-shopify", env, workers=c.app_workers)
        probe = WORK / "shopify-probe.json"
        probe.write_bytes(shopify.body(shopify.template(), 0))
        probe_cmd = measure.curl_command(
            base + shopify.PATH,
            headers={
                "Content-Type": "application/json",
                "X-Shopify-Topic": "orders/paid",
                "X-Shopify-Hmac-Sha256": shopify.signature(probe.read_bytes()),
                "X-Shopify-Webhook-Id": "bench-probe",
            },
            extra=("--data-binary", f"@{probe}"),
        )
        status = measure.run_curl(probe_cmd)["status"]
        if status != 200:
            why = f"POST {shopify.PATH} (signed) answered {status}"
            self.missing("shopify.p99", title_p99, "<= 50", why)
            self.missing("shopify.worker", title_rate, "", why)
            return

        start = 1
        commands = []

        def ingest(seconds: int) -> dict:
            nonlocal start
            count = SHOPIFY_DELIVERIES_PER_SECOND * seconds
            script = WORK / f"shopify-{start}.lua"
            script.write_text(shopify.wrk_script(start=start, count=count))
            command = measure.wrk_command(
                self.wrk,
                base,
                duration=seconds,
                connections=c.wrk_connections,
                latency=True,
                script=script,
            )
            commands.append(command)
            run = measure.run_wrk(command)
            run["repeated"] = max(0, run["requests"] - count)
            start += count
            return run

        ingest(1)  # warm-up: imports, connections
        log(f"shopify ingest: {c.rounds} rounds of {c.wrk_seconds:g} s")
        runs = [ingest(c.wrk_seconds) for _ in range(c.rounds)]
        with infra.pg_connect(DB_SMALL) as conn:
            stored = conn.execute(
                "SELECT count(*) FROM downloads_channelevent WHERE channel = 'shopify'"
            ).fetchone()[0]
        p99 = [run["latency_p99_ms"] for run in runs]
        repeated = sum(run["repeated"] for run in runs)
        self.add(
            Figure(
                "shopify.p99",
                title_p99,
                round(measure.median(p99), 2),
                "ms",
                target="<= 50",
                commands=[
                    measure.shell(commands[-1]),
                    f"app server: SHOPIFY_WEBHOOK_SECRET={shopify.SECRET}, gunicorn "
                    f"{c.app_workers} sync workers; the script: bench.shopify.wrk_script",
                ],
                note=(
                    f"p50 {measure.median([r['latency_p50_ms'] for r in runs]):.1f} ms, "
                    f"p90 {measure.median([r['latency_p90_ms'] for r in runs]):.1f} ms, "
                    f"{measure.median([r['rps'] for r in runs]):,.0f} req/s with "
                    f"{c.wrk_connections} connections; median of {c.rounds} rounds; every "
                    f"request a new signed delivery of a new order ({stored:,} events stored"
                    + (f", {repeated:,} requests repeated one" if repeated else "")
                    + ")"
                ),
                details={"runs": runs, "events_stored": stored},
            )
        )

        result, command = self.task(env, "shopify-worker", "--tasks", str(c.shopify_tasks))
        if not result["orders"]:
            self.missing("shopify.worker", title_rate, "", f"no order was made: {result}")
            return
        self.add(
            Figure(
                "shopify.worker",
                title_rate,
                result["orders_per_second"],
                "orders/s",
                commands=[command],
                note=(
                    f"{result['orders']:,} orders paid ({result['grants']:,} grants, "
                    f"{result['events']:,} events processed, {result['failed']} failed) in "
                    f"{result['seconds']} s by one db_worker, of {result['waiting']:,} queued"
                ),
                details=result,
            )
        )

    # --- 10: files: stamping a PDF, an order's download-all against nginx -------------------

    def phase_files(self) -> None:
        self.files_stamp()
        self.files_download_all()

    def files_stamp(self) -> None:
        """`stamped_copy_make` on a `stamp_pages` PDF in a bench task, `stamp_rounds` times,
        each in a fresh process: wall seconds and the process's peak memory growth."""
        c = self.config
        env = self.env(self.small_url)
        seeded, seed_command = self.task(env, "seed-stamp", "--pages", str(c.stamp_pages))
        log(f"stamping a {c.stamp_pages}-page PDF: {c.stamp_rounds} runs")
        runs = []
        for _ in range(c.stamp_rounds):
            result, command = self.task(env, "stamp")
            if result["pages"] != c.stamp_pages:
                raise BenchError(f"the stamped copy has {result['pages']} pages: {result}")
            runs.append(result)
        seconds = [run["seconds"] for run in runs]
        growth = [run["peak_growth_mib"] for run in runs]
        first = runs[0]
        what = (
            f"{c.stamp_pages} pages, {first['source_bytes'] / MiB:.2f} MiB → a "
            f"{first['copy_bytes'] / MiB:.2f} MiB copy, read from and stored to "
            f"{first['storage']} (moto); each run a fresh process, after an untimed 2-page "
            "copy (imports, the storage client)"
        )
        commands = [command, "the PDFs from: " + seed_command]
        self.add(
            Figure(
                "files.stamp_seconds",
                f"Stamp a {c.stamp_pages}-page PDF (stamped_copy_make): seconds",
                round(measure.median(seconds), 2),
                "s",
                target="<= 5",
                commands=commands,
                note=(
                    f"median of {len(runs)} runs ({', '.join(f'{v:.2f}' for v in seconds)} s); "
                    + what
                ),
                details={"runs": runs, "seeded": seeded},
            )
        )
        self.add(
            Figure(
                "files.stamp_rss",
                "Stamping: worker peak memory growth",
                max(growth),
                "MiB",
                target="<= 64",
                commands=commands,
                note=(
                    f"largest of {len(runs)} runs ({', '.join(f'{v:.1f}' for v in growth)} MiB), "
                    "VmHWM reset through /proc/self/clear_refs before the call, read after"
                ),
                details={"runs": runs},
            )
        )

    def files_download_all(self) -> None:
        """`GET /account/orders/<token>/download-all/` of an order of `bundle_files` local
        files (`file_bytes` in all) with curl, against nginx serving the `file_bytes` file of
        the same disk, interleaved; and the worker's peak RSS growth."""
        c = self.config
        media_root = WORK / "media"
        for key, size in bundle_files(c.file_bytes, c.bundle_files):
            write_incompressible(media_root / key, size)
        self.big_file()
        seeded, seed_command = self.task(
            self.env(self.small_url),
            "seed-bundle",
            "--total-bytes",
            str(c.file_bytes),
            "--files",
            str(c.bundle_files),
        )
        nginx, base, worker = self.local_servers()
        path = f"/account/orders/{seeded['order']}/download-all/"
        nginx_cmd = measure.curl_command(f"http://{HOST}:{nginx.port}/{stream_key(c.file_bytes)}")
        app_cmd = measure.curl_command(base + path)
        title_ratio = (
            f"Download all {c.file_bytes / MiB:,.0f} MiB ({c.bundle_files} files) "
            "throughput ÷ nginx"
        )
        title_rss = "Download all: worker peak RSS growth"
        # HEAD answers the ZIP's Content-Length and takes nothing.
        conn = http.client.HTTPConnection(HOST, int(base.rsplit(":", 1)[1]), timeout=60)
        try:
            conn.request("HEAD", path)
            head = conn.getresponse()
            head.read()
        finally:
            conn.close()
        if head.status != 200:
            self.missing("files.zip_ratio", title_ratio, ">= 0.5", f"HEAD {path}: {head.status}")
            self.missing("files.zip_rss", title_rss, "<= 32", "not measured")
            return
        length = int(head.getheader("Content-Length"))

        def checked(name: str, run: dict, size: int) -> dict:
            if run["status"] != 200 or run["bytes"] != size:
                raise BenchError(f"{name} transfer incomplete (expected {size:,} bytes): {run}")
            return run

        checked("download all", measure.run_curl(app_cmd), length)  # warm-up
        checked("nginx", measure.run_curl(nginx_cmd), c.file_bytes)

        def through_app():
            with measure.RssWatch(worker) as watch:
                run = checked("download all", measure.run_curl(app_cmd), length)
            return {**run, **watch.as_dict()}

        log(f"download all: {c.rounds} interleaved rounds")
        results = measure.interleave(
            c.rounds,
            {
                "nginx": lambda: checked("nginx", measure.run_curl(nginx_cmd), c.file_bytes),
                "app": through_app,
            },
        )
        speed = {
            name: [run["bytes"] / run["seconds"] for run in runs] for name, runs in results.items()
        }
        ratios = measure.round_ratios(speed["app"], speed["nginx"])
        self.add(
            Figure(
                "files.zip_ratio",
                title_ratio,
                round(measure.median(ratios), 3),
                target=">= 0.5",
                commands=[
                    measure.shell(app_cmd),
                    "nginx: " + measure.shell(nginx_cmd),
                    "the order from: " + seed_command,
                ],
                note=(
                    f"gunicorn {measure.median(speed['app']) / MiB:,.0f} MiB/s (a "
                    f"{length:,}-byte ZIP of {seeded['grants']} files), nginx "
                    f"{measure.median(speed['nginx']) / MiB:,.0f} MiB/s (one "
                    f"{c.file_bytes:,}-byte file); median of {c.rounds} per-round ratios "
                    + ", ".join(f"{r:.2f}" for r in ratios)
                ),
                details={
                    "MiB_per_s": {k: [v / MiB for v in vals] for k, vals in speed.items()},
                    "ratios": ratios,
                    "zip_bytes": length,
                    "seeded": seeded,
                },
            )
        )
        watches = [
            {key: run[key] for key in ("rss_start_mib", "rss_peak_mib", "growth_mib")}
            for run in results["app"]
        ]
        self.add(
            Figure(
                "files.zip_rss",
                title_rss,
                max(watch["growth_mib"] for watch in watches),
                "MiB",
                target="<= 32",
                commands=[
                    f"sample /proc/{worker}/status VmRSS/VmHWM during: " + measure.shell(app_cmd)
                ],
                note=f"largest of {c.rounds} downloads",
                details={"rounds": watches},
            )
        )

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


def write_incompressible(path: Path, size: int) -> None:
    """`size` bytes of random data at `path`, written a MiB at a time (never all in memory)
    and not sparse; a file already there with that size is kept."""
    if path.exists() and path.stat().st_size == size:
        return
    log(f"writing {path} ({size / MiB:,.1f} MiB)")
    path.parent.mkdir(parents=True, exist_ok=True)
    block = os.urandom(MiB)
    with path.open("wb") as out:
        for n in range(size // MiB):
            out.write(block[n % 251 :] + block[: n % 251])
        out.write(block[: size % MiB])


def race_round(port: int, path: str, parallel: int) -> list[int]:
    """`parallel` GETs sent at the same instant, each on its own connection opened beforehand."""
    barrier = threading.Barrier(parallel)
    statuses: list[int] = []
    lock = threading.Lock()

    def one():
        conn = http.client.HTTPConnection(HOST, port, timeout=60)
        conn.connect()
        try:
            barrier.wait()
            conn.request("GET", path)
            status = conn.getresponse().status
        finally:
            conn.close()
        with lock:
            statuses.append(status)

    workers = [threading.Thread(target=one) for _ in range(parallel)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    return statuses


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
