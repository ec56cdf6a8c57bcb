"""Files through the app: streaming a local file and a big upload against their references,
stamping a PDF, an order's download-all ZIP against nginx."""

import http.client
import os
from pathlib import Path

from . import infra, measure
from .infra import HOST, WORK, BenchError, MiB, log
from .report import Figure
from .tasks import bundle_files, stream_key


class FilePhases:
    """The `stream`, `upload` and `files` phases, mixed into runner.Bench."""

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
        speed = measure.throughputs(results)
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
        speed = measure.throughputs(results)
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
