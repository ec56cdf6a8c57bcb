"""The store under load: latency with a small and a large store, the limit race, a backfill,
Shopify's webhooks (ingest latency, one worker's rate)."""

import http.client
import subprocess
import threading

from . import infra, measure, shopify
from .infra import DB_SMALL, HOST, WORK, log
from .report import Figure

# Signed deliveries prepared for each wrk run of the Shopify ingest: more than the app can
# take in a run here, so no request repeats a delivery (the note says if one did).
SHOPIFY_DELIVERIES_PER_SECOND = 4_000


class StorePhases:
    """The `scale`, `race`, `backfill` and `shopify` phases, mixed into runner.Bench."""

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
