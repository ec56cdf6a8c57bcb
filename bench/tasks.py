"""The benchmark's work inside Django: seeding and the in-process measurements.

Run by the bench in a child process with the bench settings and one database, e.g.

    DJANGO_SETTINGS_MODULE=bench.settings DATABASE_URL=postgres://… \\
        python -m bench.tasks queries --url /api/v2/customer-account-orders?id=…

Each task prints one JSON object on stdout. The project's modules are imported inside the
tasks: this module is imported (by the runner, for `stream_key` and `bundle_files`) before
Django is set up.
"""

import argparse
import json
import os
import sys
import time
import timeit

HOT_LINES = 10
HOT_FILES_PER_LINE = 3
STORE_OTHER_PRODUCTS = 100
STORE_ORDER_BASE = 10_000_000
RACE_LIMIT = 10


def stream_key(size: int) -> str:
    """The storage key (under the local media root) of the streamed file of `size` bytes."""
    return f"bench/stream-{size}.bin"


def bundle_files(total: int, count: int) -> list[tuple[str, int]]:
    """The download-all's files: `count` storage keys (under the local media root) and sizes
    that add up to exactly `total` bytes, the first ones a byte larger when it does not
    divide evenly."""
    size, extra = divmod(total, count)
    return [
        (f"bench/bundle-{total}/part-{n + 1:02d}.bin", size + (n < extra)) for n in range(count)
    ]


def _self_kib(field: str) -> int:
    """A field of /proc/self/status in KiB (VmRSS, VmHWM), 0 when absent."""
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    return 0


def _setup():
    import django

    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "bench.settings")
    django.setup()


# --- Seeding ----------------------------------------------------------------------------------


def seed_hot(args) -> dict:
    """The orders the hot paths are measured on, created through the project's services:
    a 10-line order with 3 files a line (unlimited downloads), a 1-line 1-file order, a grant
    for the race (limit 10), and a grant on a local file of `--stream-bytes` for streaming."""
    from django.core.files.base import ContentFile

    from downloads.models import Download, Media, Order, Product
    from downloads.services.media import media_create
    from downloads.services.orders import LineInput, order_create

    paid = Order.Status.PAID

    def product(name: str, files: int, *, limit: int = 0) -> Product:
        # download_limit 0 = unlimited, so every benchmark request is served.
        item = Product.objects.create(
            name=name,
            sku=name.upper().replace(" ", "-"),
            vendor="Bench Press",
            tags=["bench"],
            download_limit=limit,
        )
        for position in range(files):
            media = media_create(
                file=ContentFile(os.urandom(4096)), filename=f"{name} part {position + 1}.pdf"
            )
            Download.objects.create(product=item, media=media, position=position)
        return item

    bundle = [product(f"Bench bundle {n + 1}", HOT_FILES_PER_LINE) for n in range(HOT_LINES)]
    hot = order_create(
        email="hot@example.com",
        lines=[LineInput(product=item) for item in bundle],
        status=paid,
        send_email=False,
    )
    tiny = order_create(
        email="tiny@example.com",
        lines=[LineInput(product=product("Bench single", 1))],
        status=paid,
        send_email=False,
    )
    race = order_create(
        email="race@example.com",
        lines=[LineInput(product=product("Bench race", 1, limit=RACE_LIMIT))],
        status=paid,
        send_email=False,
    )
    # The big local file: its bytes are written by the bench under the local server's media
    # root; only the row is created here (S3 is the default storage of this process).
    stream_product = Product.objects.create(name="Bench stream", download_limit=0)
    stream_media = Media.objects.create(
        file=stream_key(args.stream_bytes),
        filename="stream.bin",
        content_type="application/octet-stream",
        byte_size=args.stream_bytes,
    )
    Download.objects.create(product=stream_product, media=stream_media)
    stream = order_create(
        email="stream@example.com",
        lines=[LineInput(product=stream_product)],
        status=paid,
        send_email=False,
    )
    download = hot.grants.select_related("download__media").first()
    return {
        "hot_order": hot.access_token,
        "hot_grants": hot.grants.count(),
        "tiny_order": tiny.access_token,
        "tiny_grants": tiny.grants.count(),
        "download_grant": download.token,
        "download_grants": list(hot.grants.values_list("token", flat=True)),
        "download_key": download.download.media.file.name,
        "download_filename": download.download.media.filename,
        "race_grant": race.grants.get().token,
        "race_limit": RACE_LIMIT,
        "stream_grant": stream.grants.get().token,
    }


def seed_license(args) -> dict:
    """A licence key to validate: a paid order of a product that issues keys (unlimited
    activations), through the services, with one instance activated as the seller's app
    would on its first start."""
    from downloads.models import Order, Product
    from downloads.services.licences import license_key_activate
    from downloads.services.orders import LineInput, order_create

    product = Product.objects.create(
        name="Bench app", sku="BENCH-APP", license_keys=True, license_activation_limit=None
    )
    order = order_create(
        email="licence@example.com",
        lines=[LineInput(product=product)],
        status=Order.Status.PAID,
        send_email=False,
    )
    key = order.license_keys.get()
    instance = license_key_activate(key_text=key.key, instance_name="bench machine").instance
    return {"license_key": key.key, "instance_id": str(instance.pk)}


STORE_SQL = [
    # Orders: paid (API orders of two 15.00 lines), one per second going back from now.
    """
    INSERT INTO downloads_order (id, created_at, updated_at, number, customer_id, email,
        access_token, status, placed_at, paid_at, refunded_at, email_sent_at, channel,
        currency, subtotal, tax, total, refunded_total, payment_method, payment_id)
    SELECT gen_random_uuid(), t, t, %(base)s + g, NULL, 'buyer' || g || '@example.com',
        md5(random()::text || g::text), 'paid', t, t, NULL, t, 'api',
        'USD', 3000, 0, 3000, 0, '', ''
    FROM generate_series(1, %(orders)s) AS g,
        LATERAL (SELECT now() - make_interval(secs => %(orders)s - g + 3600)) AS at(t)
    """,
    # Two lines an order: the flagship product and one of the others.
    """
    INSERT INTO downloads_orderline (id, order_id, product_id, variant_id, name, variant_name,
        sku, quantity, price, total, external_id, position, refunded_quantity, refunded_at)
    SELECT gen_random_uuid(), o.id, p.id, NULL, p.name, '', p.sku, 1, 1500, 1500, '',
        k.position, 0, NULL
    FROM downloads_order o
    CROSS JOIN LATERAL (VALUES
        (0, %(flagship)s::uuid),
        (1, (%(others)s::uuid[])[1 + mod(o.number, %(n_others)s)])
    ) AS k(position, product_id)
    JOIN downloads_product p ON p.id = k.product_id
    WHERE o.number > %(base)s
    """,
    # One grant per line and file of the line's product (2 + 3 = 5 an order).
    """
    INSERT INTO downloads_downloadgrant (id, created_at, updated_at, token, order_id, line_id,
        download_id, download_count, download_limit, expires_at, revoked_at, last_downloaded_at,
        resume_until, resume_bytes_left)
    SELECT gen_random_uuid(), o.created_at, o.created_at,
        substr(encode(sha256(convert_to(random()::text || l.id::text || d.id::text, 'UTF8')),
            'hex'), 1, 43),
        o.id, l.id, d.id, mod(o.number, 4)::int, 10, NULL, NULL,
        CASE WHEN mod(o.number, 4) > 0 THEN o.created_at END, NULL, 0
    FROM downloads_orderline l
    JOIN downloads_order o ON o.id = l.order_id
    JOIN downloads_download d ON d.product_id = l.product_id
    WHERE o.number > %(base)s
    """,
]


def seed_store(args) -> dict:
    """A store of `--orders` paid orders, bulk-inserted in SQL (INSERT … SELECT over
    generate_series): two lines an order, the flagship product with 2 files and one of 100
    others with `--other-files` files (3 by default: 5 grants an order)."""
    from django.db import connection

    from downloads.models import Download, DownloadGrant, Media, Order, OrderLine, Product

    def files(product: Product, count: int) -> list[Download]:
        media = Media.objects.bulk_create(
            Media(
                file=f"bench/store/{product.sku}-{n}.pdf",
                filename=f"{product.name} part {n + 1}.pdf",
                content_type="application/pdf",
                byte_size=1_000_000,
            )
            for n in range(count)
        )
        return Download.objects.bulk_create(
            Download(product=product, media=item, position=n) for n, item in enumerate(media)
        )

    started = time.perf_counter()
    flagship = Product.objects.create(name="Store flagship", sku="STORE-FLAGSHIP", vendor="Store")
    files(flagship, 2)
    others = Product.objects.bulk_create(
        Product(name=f"Store product {n}", sku=f"STORE-{n}", vendor="Store", tags=["store"])
        for n in range(STORE_OTHER_PRODUCTS)
    )
    for item in others:
        files(item, args.other_files)
    params = {
        "base": STORE_ORDER_BASE,
        "orders": args.orders,
        "flagship": flagship.pk,
        "others": [item.pk for item in others],
        "n_others": len(others),
    }
    with connection.cursor() as cursor:
        for statement in STORE_SQL:
            cursor.execute(statement, params)
        for model in (Order, OrderLine, DownloadGrant, Product, Download, Media):
            cursor.execute(f"ANALYZE {model._meta.db_table}")
    return {
        "orders": Order.objects.count(),
        "lines": OrderLine.objects.count(),
        "grants": DownloadGrant.objects.count(),
        "flagship": str(flagship.pk),
        "seconds": round(time.perf_counter() - started, 1),
    }


# --- In-process measurements ------------------------------------------------------------------


TRANSACTION_CONTROL = ("BEGIN", "COMMIT", "ROLLBACK")


def queries(args) -> dict:
    """SQL statements per request, counted with CaptureQueriesContext through the test Client
    (after one warm-up request per URL), against the bench's database: GETs, or with
    `--data` POSTs of that form-encoded body.

    `queries` counts the statements that read or write data (savepoints included);
    BEGIN/COMMIT, which Django also records, are counted apart in `round_trips`.
    """
    from django.db import connection
    from django.test import Client
    from django.test.utils import CaptureQueriesContext

    client = Client()
    form = "application/x-www-form-urlencoded"

    def request(url):
        if args.data is None:
            return client.get(url)
        return client.post(url, args.data, content_type=form)

    out = {}
    for url in args.url:
        request(url)
        with CaptureQueriesContext(connection) as captured:
            response = request(url)
        sql = [query["sql"] for query in captured.captured_queries]
        out[url] = {
            "status": response.status_code,
            "queries": sum(not text.startswith(TRANSACTION_CONTROL) for text in sql),
            "round_trips": len(sql),
            "sql": [text[:300] for text in sql],
        }
    return out


def presign(args) -> dict:
    """The cost of one presigned download URL (timeit over storage.presigned_download_url),
    after a first call has built the process's boto3 client."""
    from downloads import storage

    def call():
        return storage.presigned_download_url(
            key=args.key, filename=args.filename, content_type="application/pdf"
        )

    call()
    timer = timeit.Timer(call)
    runs = [timer.timeit(number=args.number) / args.number for _ in range(args.repeat)]
    return {
        "storage": storage.storage_kind(),
        "per_call_ms": [round(run * 1e3, 4) for run in runs],
        "median_ms": round(sorted(runs)[len(runs) // 2] * 1e3, 4),
        "url_sample": call()[:160],
    }


def backfill(args) -> dict:
    """Deliver a new file of the store's flagship product to all its existing orders
    (download_deliver_to_existing_orders, then backfill_run, which
    a task worker would run); time the run and the process's peak memory growth."""
    from pathlib import Path

    from downloads.models import Download, DownloadGrant, Media, Product
    from downloads.services.backfills import backfill_run, download_deliver_to_existing_orders

    flagship = Product.objects.get(sku="STORE-FLAGSHIP")
    media = Media.objects.create(
        file="bench/store/flagship-new.pdf",
        filename="Bonus chapter.pdf",
        content_type="application/pdf",
        byte_size=1_000_000,
    )
    download = Download.objects.create(product=flagship, media=media, position=9)
    job = download_deliver_to_existing_orders(download=download, notify_buyers=False)
    before = DownloadGrant.objects.count()
    Path("/proc/self/clear_refs").write_text("5")
    rss_start = _self_kib("VmRSS")
    started = time.perf_counter()
    job = backfill_run(backfill=job)
    seconds = time.perf_counter() - started
    created = DownloadGrant.objects.count() - before
    return {
        "status": job.status,
        "orders_seen": job.orders_seen,
        "grants_created": created,
        "seconds": round(seconds, 2),
        "rows_per_second": round(created / seconds) if seconds else None,
        "rss_start_mib": round(rss_start / 1024, 1),
        "rss_peak_mib": round(_self_kib("VmHWM") / 1024, 1),
        "peak_growth_mib": round((_self_kib("VmHWM") - rss_start) / 1024, 1),
    }


def seed_shopify(args) -> dict:
    """The catalogue the Shopify deliveries buy (bench/shopify.py's PRODUCTS, mapped by
    Shopify's ids), with file rows only: paying makes grants, it never reads the files."""
    from bench.shopify import PRODUCTS
    from downloads.models import Download, Media, Product, Variant

    for spec in PRODUCTS:
        product = Product.objects.create(
            name=spec["name"], sku=spec["sku"], external_id=spec["external_id"], download_limit=0
        )
        if spec["variant_external_id"]:
            Variant.objects.create(
                product=product,
                name="PDF",
                sku=spec["sku"],
                external_id=spec["variant_external_id"],
            )
        for n in range(spec["files"]):
            media = Media.objects.create(
                file=f"bench/shopify/{spec['sku']}-{n}.pdf",
                filename=f"{spec['name']} {n + 1}.pdf",
                content_type="application/pdf",
                byte_size=1_000_000,
            )
            Download.objects.create(product=product, media=media, position=n)
    return {"products": len(PRODUCTS)}


def shopify_worker(args) -> dict:
    """One task worker (django-tasks' `db_worker`, in this process, after Django's setup) on
    the queued Shopify events, for `--tasks` tasks: orders made and events processed per
    second of wall time."""
    from django.core.management import call_command

    from downloads.models import ChannelEvent, DownloadGrant, Order

    def counts():
        return (
            Order.objects.filter(channel="shopify").count(),
            ChannelEvent.objects.filter(channel="shopify", status="processed").count(),
            DownloadGrant.objects.filter(order__channel="shopify").count(),
        )

    waiting = ChannelEvent.objects.filter(channel="shopify", status="received").count()
    orders, events, grants = counts()
    started = time.perf_counter()
    call_command(
        "db_worker",
        batch=True,
        max_tasks=args.tasks,
        startup_delay=False,
        reload=False,
        interval=0,
        verbosity=0,
    )
    seconds = time.perf_counter() - started
    orders_after, events_after, grants_after = counts()
    made = orders_after - orders
    return {
        "waiting": waiting,
        "orders": made,
        "events": events_after - events,
        "grants": grants_after - grants,
        "failed": ChannelEvent.objects.filter(channel="shopify", status="failed").count(),
        "seconds": round(seconds, 2),
        "orders_per_second": round(made / seconds, 1) if seconds else None,
    }


# --- Files: stamping a PDF, downloading an order's files as one ZIP --------------------------

STAMP_BOOK_SKU = "BENCH-STAMPED-BOOK"
STAMP_WARM_SKU = "BENCH-STAMPED-LEAFLET"
STAMP_WARM_PAGES = 2


def seed_stamp(args) -> dict:
    """Two stamped PDF downloads, stored through the services in the process's storage (S3
    here): a `--pages` book made like the tests' (tests.pdfs.book: a line of text, a
    bookmark and a page label per page, a link on page 1) and a 2-page leaflet that warms a
    worker up before the book is measured."""
    from django.core.files.base import ContentFile

    from downloads.models import Product
    from downloads.services.catalogue import download_create
    from downloads.services.media import media_create
    from tests.pdfs import book

    out = {}
    for sku, pages, name in (
        (STAMP_BOOK_SKU, args.pages, "Bench stamped book"),
        (STAMP_WARM_SKU, STAMP_WARM_PAGES, "Bench stamped leaflet"),
    ):
        product = Product.objects.create(name=name, sku=sku, download_limit=0)
        media = media_create(file=ContentFile(book(pages, title=name)), filename=f"{name}.pdf")
        download_create(media=media, product=product, stamp=True)
        out[sku] = {"pages": pages, "bytes": media.byte_size}
    return out


def stamp(args) -> dict:
    """What a worker pays to stamp one buyer's copy of the `--pages` book: an order paid
    for it (which requests the copy and queues its task), then `stamped_copy_make` run
    here, timed, with the process's peak memory growth (VmHWM reset through
    /proc/self/clear_refs just before). The leaflet's copy is made first, untimed: the
    imports and the storage client a running worker already has."""
    import gc
    import io
    from pathlib import Path

    import pikepdf
    from django_tasks_db.models import DBTaskResult

    from downloads import storage
    from downloads.models import Order, Product, StampedCopy
    from downloads.services.orders import LineInput, order_create
    from downloads.services.stamping import stamped_copy_make

    def requested(sku: str) -> StampedCopy:
        order = order_create(
            email="reader@example.com",
            lines=[LineInput(product=Product.objects.get(sku=sku))],
            status=Order.Status.PAID,
            send_email=False,
        )
        return StampedCopy.objects.get(grant__order=order)

    warm = requested(STAMP_WARM_SKU)
    stamped_copy_make(copy_id=warm.pk)
    copy = requested(STAMP_BOOK_SKU)
    gc.collect()
    Path("/proc/self/clear_refs").write_text("5")
    rss_start = _self_kib("VmRSS")
    started = time.perf_counter()
    made = stamped_copy_make(copy_id=copy.pk)
    seconds = time.perf_counter() - started
    rss_peak = _self_kib("VmHWM")
    # Done here as a worker would have: their queued tasks would find nothing left to do.
    DBTaskResult.objects.filter(
        task_path="downloads.tasks.stamped_copy_make",
        args_kwargs__args__0__in=[str(warm.pk), str(copy.pk)],
    ).delete()
    if made.status != StampedCopy.Status.READY:
        raise RuntimeError(f"the copy is {made.status}: {made.error}")
    with pikepdf.open(io.BytesIO(b"".join(storage.stored_chunks(made.file.name)))) as pdf:
        pages = len(pdf.pages)
    return {
        "storage": storage.storage_kind(),
        "pages": pages,
        "source_bytes": made.source.byte_size,
        "copy_bytes": made.byte_size,
        "seconds": round(seconds, 3),
        "rss_start_mib": round(rss_start / 1024, 1),
        "rss_peak_mib": round(rss_peak / 1024, 1),
        "peak_growth_mib": round((rss_peak - rss_start) / 1024, 1),
    }


def seed_bundle(args) -> dict:
    """An order for a download-all: one product with `--files` files (rows only, the files
    of `bundle_files`, whose bytes the bench writes under the local server's media root),
    paid, each grant unlimited."""
    from downloads.models import Download, Media, Order, Product
    from downloads.services.orders import LineInput, order_create

    product = Product.objects.create(name="Bench download all", sku="BENCH-ALL", download_limit=0)
    files = bundle_files(args.total_bytes, args.files)
    for n, (key, size) in enumerate(files):
        media = Media.objects.create(
            file=key,
            filename=f"Part {n + 1:02d}.bin",
            content_type="application/octet-stream",
            byte_size=size,
        )
        Download.objects.create(product=product, media=media, position=n)
    order = order_create(
        email="all@example.com",
        lines=[LineInput(product=product)],
        status=Order.Status.PAID,
        send_email=False,
    )
    return {
        "order": order.access_token,
        "number": order.number,
        "grants": order.grants.count(),
        "bytes": sum(size for _, size in files),
    }


TASKS = {
    "seed-hot": seed_hot,
    "seed-shopify": seed_shopify,
    "seed-license": seed_license,
    "shopify-worker": shopify_worker,
    "seed-store": seed_store,
    "queries": queries,
    "presign": presign,
    "backfill": backfill,
    "seed-stamp": seed_stamp,
    "stamp": stamp,
    "seed-bundle": seed_bundle,
}


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.tasks")
    sub = parser.add_subparsers(dest="task", required=True)
    sub.add_parser("seed-hot").add_argument("--stream-bytes", type=int, required=True)
    p = sub.add_parser("seed-store")
    p.add_argument("--orders", type=int, required=True)
    p.add_argument("--other-files", type=int, default=3)
    p = sub.add_parser("queries")
    p.add_argument("--url", action="append", required=True)
    p.add_argument("--data", help="POST this form-encoded body instead of a GET")
    p = sub.add_parser("presign")
    p.add_argument("--key", required=True)
    p.add_argument("--filename", required=True)
    p.add_argument("--number", type=int, default=2000)
    p.add_argument("--repeat", type=int, default=5)
    sub.add_parser("backfill")
    sub.add_parser("seed-shopify")
    sub.add_parser("seed-license")
    sub.add_parser("shopify-worker").add_argument("--tasks", type=int, required=True)
    sub.add_parser("seed-stamp").add_argument("--pages", type=int, required=True)
    sub.add_parser("stamp")
    p = sub.add_parser("seed-bundle")
    p.add_argument("--total-bytes", type=int, required=True)
    p.add_argument("--files", type=int, required=True)
    args = parser.parse_args(argv)
    _setup()
    json.dump(TASKS[args.task](args), sys.stdout)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
