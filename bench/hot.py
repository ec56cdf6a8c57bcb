"""The hot paths against the baseline: the storefront JSON, the order page, the download
endpoint and the licence validate, each beside its floor; their SQL statements; one presign."""

from . import measure
from .infra import WORK, BenchError, log
from .report import Figure


class HotPaths:
    """The `hot` phase, mixed into runner.Bench (its helpers, servers and stores)."""

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

        def scripted(script):
            # wrk driven by a Lua script (the paths or the body it sends) on the same server.
            return measure.wrk_command(
                self.wrk,
                base,
                duration=c.wrk_seconds,
                connections=c.wrk_connections,
                script=script,
            )

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
            commands[name] = scripted(script)
        for name, body in bodies.items():
            if name not in commands:
                continue
            script = WORK / f"{name}.lua"
            script.write_text(
                measure.wrk_post_script(paths[name], body, "application/x-www-form-urlencoded")
            )
            commands[name] = scripted(script)
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
