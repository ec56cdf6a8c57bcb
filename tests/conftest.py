"""Fixtures shared by the whole suite.

Media goes to a fresh temporary folder for every test (autouse), so tests never touch
var/media and never see each other's files.
"""

from pathlib import Path

import pytest
from django.db import connection

from downloads.models import Order
from downloads.services.orders import LineInput, order_create
from tests import factories
from tests.redis_server import redis_server  # noqa: F401 (a fixture: Debian's redis-server)
from tests.seaweed import seaweed_server_fixture  # noqa: F401 (`seaweed_server`: SeaweedFS)


@pytest.fixture(autouse=True)
def _media_in_tmp(settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path / "media"
    settings.STORAGES = {
        **settings.STORAGES,
        "default": {
            "BACKEND": "django.core.files.storage.FileSystemStorage",
            "OPTIONS": {"location": tmp_path / "media", "base_url": None},
        },
    }
    settings.DOWNLOADS_DEFAULT_LIMIT = 10
    settings.DOWNLOADS_DEFAULT_EXPIRY_DAYS = 0
    settings.DOWNLOADS_SITE_URL = "http://testserver"


@pytest.fixture
def postgres_only():
    """Concurrency tests need PostgreSQL's row locks; fail loudly elsewhere (never skip)."""
    if connection.vendor != "postgresql":
        pytest.fail(
            "This test needs PostgreSQL: run it with DATABASE_URL=postgres://… "
            "(make test does), or deselect it with -m 'not postgres'."
        )


@pytest.fixture
def staff(db):
    return factories.StaffFactory()


@pytest.fixture
def customer(db):
    return factories.UserFactory()


def paid_order(*lines, email="buyer@example.com", **kwargs):
    """An order paid through the services (grants issued, no email). A line is a Product or a
    LineInput; with none, the order buys one product with one file. Extra keywords go to
    order_create. Plain, for module-level helpers; tests take the `paid_order` fixture."""
    lines = lines or (factories.DownloadFactory().product,)
    return order_create(
        email=email,
        lines=[line if isinstance(line, LineInput) else LineInput(product=line) for line in lines],
        status=Order.Status.PAID,
        send_email=False,
        **kwargs,
    )


@pytest.fixture(name="paid_order")
def paid_order_fixture():
    """paid_order(*lines, email=…, **order_create options): see `paid_order` above."""
    return paid_order


# --- S3 on 127.0.0.1 through django-storages: moto (fast), SeaweedFS (checks signatures) ------


@pytest.fixture(scope="session")
def s3_server():
    """An S3-compatible server on 127.0.0.1 (a free port), for the whole session."""
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    yield f"http://{host}:{port}"
    server.stop()


def _s3_bucket(settings, monkeypatch, *, endpoint: str, access_key: str, secret_key: str):
    """Switch the default storage to a fresh private bucket on the S3 server at `endpoint`.

    Returns a namespace with `endpoint`, `bucket`, the key pair and a boto3 `client` for
    checking objects."""
    import uuid
    from types import SimpleNamespace

    import boto3
    from botocore.config import Config

    from downloads_project.settings import s3_storage_options

    for name, value in {
        "AWS_ACCESS_KEY_ID": access_key,
        "AWS_SECRET_ACCESS_KEY": secret_key,
        "AWS_DEFAULT_REGION": "us-east-1",
    }.items():
        monkeypatch.setenv(name, value)
    bucket = f"test-{uuid.uuid4().hex[:16]}"
    client = boto3.client(
        "s3",
        endpoint_url=endpoint,
        region_name="us-east-1",
        aws_access_key_id=access_key,
        aws_secret_access_key=secret_key,
        config=Config(signature_version="s3v4", s3={"addressing_style": "path"}),
    )
    client.create_bucket(Bucket=bucket)
    options = s3_storage_options(bucket)
    options.update(
        endpoint_url=endpoint,
        region_name="us-east-1",
        access_key=access_key,
        secret_key=secret_key,
        addressing_style="path",
        querystring_expire=settings.DOWNLOADS_URL_TTL,
    )
    settings.AWS_STORAGE_BUCKET_NAME = bucket
    settings.STORAGES = {
        **settings.STORAGES,
        "default": {"BACKEND": "storages.backends.s3.S3Storage", "OPTIONS": options},
    }
    return SimpleNamespace(
        endpoint=endpoint,
        bucket=bucket,
        client=client,
        access_key=access_key,
        secret_key=secret_key,
    )


@pytest.fixture
def s3(request, settings, monkeypatch):
    """Switch the default storage to a fresh private bucket on moto's S3 server (fast; it
    checks no signature, expiry or POST policy). See `_s3_bucket` for what it returns.

    In a test marked `s3_outage` the bucket is on the test's own `outage` server, which the
    test stops and starts again."""
    if request.node.get_closest_marker("s3_outage"):
        endpoint = request.getfixturevalue("outage").endpoint
    else:
        endpoint = request.getfixturevalue("s3_server")
    return _s3_bucket(
        settings, monkeypatch, endpoint=endpoint, access_key="testing", secret_key="testing"
    )


@pytest.fixture
def outage():
    """A private moto S3 server on 127.0.0.1 that the test takes down (`outage.stop()`) and
    brings back (`outage.start()`): tests/stoppable_s3.py. With the `s3_outage` mark, the `s3`
    fixture's bucket is on it."""
    from tests.stoppable_s3 import StoppableS3

    with StoppableS3() as server:
        yield server


@pytest.fixture
def s3_checking(settings, seaweed_server, monkeypatch):
    """Like `s3`, on SeaweedFS (tests/seaweed.py), which refuses what S3 refuses: a wrong or
    missing signature, an expired presigned URL, a POST that breaks its policy. The bucket
    is removed afterwards (each one holds a volume of the server's)."""
    bucket = _s3_bucket(
        settings,
        monkeypatch,
        endpoint=seaweed_server.endpoint,
        access_key=seaweed_server.access_key,
        secret_key=seaweed_server.secret_key,
    )
    yield bucket
    # SeaweedFS deletes a bucket with its objects (-s3.allowDeleteBucketNotEmpty, on).
    bucket.client.delete_bucket(Bucket=bucket.bucket)


# --- Browser: Debian's chromium driven by Playwright (never a browser download) ---------------

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
SCREENSHOTS = Path(__file__).parent / "e2e" / "screenshots"


@pytest.fixture(scope="session")
def browser():
    """Headless Chromium for the session. Fails loudly when chromium is missing."""
    import os

    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} is missing: run `make test` (it installs Debian's chromium).")
    from playwright.sync_api import sync_playwright

    # Playwright's sync API runs an event loop in this thread; the ORM calls the tests make
    # between page actions are still synchronous, so Django's async guard is lifted here.
    os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


@pytest.fixture
def page(browser):
    """A fresh browser context and page; downloads are accepted."""
    context = browser.new_context(accept_downloads=True, viewport={"width": 1280, "height": 900})
    page = context.new_page()
    page.set_default_timeout(15_000)
    yield page
    context.close()


@pytest.fixture
def screenshot(request):
    """screenshot(page, "step-name") saves a PNG under tests/e2e/screenshots/<test>/."""
    folder = SCREENSHOTS / request.node.name
    folder.mkdir(parents=True, exist_ok=True)
    counter = iter(range(1, 1000))

    def take(page, name: str) -> Path:
        path = folder / f"{next(counter):02d}-{name}.png"
        page.screenshot(path=str(path), full_page=True)
        return path

    return take


@pytest.fixture(autouse=True)
def _no_webhook_subscribers():
    """Every test starts with an empty endpoint table, so the per-process memo of subscribed
    webhook event types starts empty too (rows of earlier tests were rolled back, which sends
    no delete signal). Without this, the hot path's query count would depend on test order."""
    from downloads.services import webhooks

    webhooks.subscriptions_prime(())


@pytest.fixture
def run_worker():
    """run_worker() runs django-tasks' real `db_worker --batch` until the queue is empty.

    It needs committed task rows on SQLite (the worker opens an exclusive transaction), so
    use it in `@pytest.mark.django_db(transaction=True)` tests. Signal handlers the worker
    installs are put back afterwards.
    """
    import signal

    from django.core.management import call_command

    def run(**options):
        saved = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}
        try:
            call_command(
                "db_worker",
                batch=True,
                startup_delay=False,
                reload=False,
                interval=0,
                verbosity=0,
                **options,
            )
        finally:
            for sig, handler in saved.items():
                signal.signal(sig, handler)

    return run


@pytest.fixture(scope="session")
def live_server():
    """pytest-django's live server on 127.0.0.1, started with a MEDIA_URL it can parse and
    a listen backlog that takes the concurrency tests' 50 clients at once.

    MEDIA_URL is None by design (local media has no public URL), but Django's live server
    thread wraps the app in a media-files handler that parses MEDIA_URL as it starts and
    fails on every request when it is None. It gets a path no request ever uses instead,
    for the moment the thread starts, so media stays private there too.
    """
    import secrets

    from django.core.servers.basehttp import ThreadedWSGIServer
    from django.test.utils import override_settings
    from pytest_django.live_server_helper import LiveServer

    # Django's development server listens with a backlog of 10 connections; the concurrency
    # tests open 50 at once, and a full accept queue resets some of them before they are
    # served (gunicorn, in production, listens with 2048).
    ThreadedWSGIServer.request_queue_size = 128
    with override_settings(MEDIA_URL=f"/never-served-{secrets.token_hex(16)}/"):
        server = LiveServer("127.0.0.1")
    yield server
    server.stop()


# --- Stripe: a Stripe-shaped API on 127.0.0.1, spoken to by the real `stripe` library ---------


@pytest.fixture
def stripe_api(settings):
    """A fresh tests.stripe_server.StripeServer, with the store configured for it: its URL
    as STRIPE_API_BASE, its secret key and its webhook signing secret. Stopped afterwards."""
    from tests.stripe_server import StripeServer

    server = StripeServer().start()
    settings.STRIPE_API_BASE = server.url
    settings.STRIPE_SECRET_KEY = server.secret_key
    settings.STRIPE_WEBHOOK_SECRET = server.webhook_secret
    yield server
    server.stop()
