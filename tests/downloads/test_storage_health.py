"""downloads/storage_health.py: whether S3 can be reached, per process, in memory: which
faults mean unreachable, the probe against a real S3 server that is stopped and started, the
probe thread that runs while downloads are served, and a hot path that asks the store
nothing."""

import logging

import pytest
from boto3.exceptions import S3UploadFailedError
from botocore.exceptions import (
    ClientError,
    ConnectTimeoutError,
    EndpointConnectionError,
    ReadTimeoutError,
)
from django.core.files.base import ContentFile
from django.urls import reverse

from downloads import storage, storage_health
from downloads.services.media import media_create
from tests import factories
from tests.stoppable_s3 import wait_for

# The `s3` fixture's bucket is on a private server the tests stop (tests/conftest.py).
pytestmark = pytest.mark.s3_outage


def client_error(status: int, code: str) -> ClientError:
    return ClientError(
        {"Error": {"Code": code}, "ResponseMetadata": {"HTTPStatusCode": status}}, "HeadObject"
    )


def raised_from(cause: Exception, exc: Exception) -> Exception:
    try:
        try:
            raise cause
        except Exception:
            raise exc from cause
    except Exception as chained:
        return chained


class TestWhatUnreachableMeans:
    @pytest.mark.parametrize(
        "exc",
        [
            EndpointConnectionError(endpoint_url="http://127.0.0.1:1"),
            ConnectTimeoutError(endpoint_url="http://127.0.0.1:1"),
            ReadTimeoutError(endpoint_url="http://127.0.0.1:1"),
            client_error(503, "SlowDown"),
            client_error(500, "InternalError"),
            raised_from(client_error(503, "SlowDown"), S3UploadFailedError("Failed to upload")),
        ],
    )
    def test_no_connection_a_timeout_or_a_5xx_is_unreachable(self, exc):
        assert storage_health.is_unreachable(exc)

    @pytest.mark.parametrize(
        "exc",
        [
            client_error(404, "NoSuchKey"),
            client_error(403, "AccessDenied"),
            ValueError("a bug"),
            FileNotFoundError("media/x"),
        ],
    )
    def test_an_answer_of_the_store_or_a_bug_is_not(self, exc):
        assert not storage_health.is_unreachable(exc)


@pytest.mark.django_db
class TestTheProbe:
    def test_finds_a_stopped_store_down_and_a_started_one_up(self, s3, outage):
        assert storage_health.probe() is None
        outage.stop()
        assert "Could not connect" in storage_health.probe()
        outage.start()
        assert storage_health.probe() is None

    def test_a_bucket_that_is_gone_is_down_a_refused_head_is_up(self, s3, settings):
        s3.client.delete_bucket(Bucket=s3.bucket)
        assert "404" in storage_health.probe()

    def test_runs_while_downloads_are_asked_for_and_stops_when_they_stop(
        self, s3, settings, monkeypatch
    ):
        settings.DOWNLOADS_STORAGE_PROBE_SECONDS = 0.05
        monkeypatch.setattr(storage_health, "IDLE_SECONDS", 0)
        monkeypatch.setattr(storage_health, "IDLE_PROBES", 2)
        assert not storage_health.probing()
        assert storage_health.available()
        assert storage_health.probing()
        wait_for(lambda: not storage_health.probing(), what="the idle probe to stop")
        assert storage_health.available() and storage_health.probing()

    def test_keeps_probing_while_the_store_is_down_until_it_is_back(
        self, s3, outage, settings, monkeypatch
    ):
        settings.DOWNLOADS_STORAGE_PROBE_SECONDS = 0.05
        monkeypatch.setattr(storage_health, "IDLE_SECONDS", 0)
        monkeypatch.setattr(storage_health, "IDLE_PROBES", 1)
        outage.stop()
        storage_health.mark_down("an upload failed")  # starts the probe, no download asked
        assert storage_health.probing() and not storage_health.available()
        outage.start()
        wait_for(storage_health.is_up, what="the probe to find S3 back")
        wait_for(lambda: not storage_health.probing(), what="the probe to stop once idle")

    def test_a_change_of_storage_forgets_the_answer(self, s3, outage, settings):
        outage.stop()
        storage_health.mark_down("gone")
        settings.STORAGES = {**settings.STORAGES}
        assert storage_health.is_up() and not storage_health.probing()

    def test_the_signal_is_off_on_local_storage_and_with_a_probe_of_zero(self, settings):
        storage_health.mark_down("ignored: local storage is not tracked")
        assert storage_health.available() and not storage_health.probing()

    def test_a_probe_of_zero_turns_it_off_on_s3(self, s3, outage, settings):
        settings.DOWNLOADS_STORAGE_PROBE_SECONDS = 0
        outage.stop()
        with pytest.raises(storage.StorageUnavailable):
            storage.stored_size("media/any")
        assert storage_health.available() and not storage_health.probing()


@pytest.mark.django_db
def test_a_served_s3_download_sends_nothing_to_s3(client, s3, settings, caplog):
    """The server's own request log: after the probe's first HEAD of the bucket, downloads
    (302s, HEADs, resumes) reach S3 not once; the presign is local, the health a memory read."""
    settings.DOWNLOADS_STORAGE_PROBE_SECONDS = 300  # one probe, then none during the test
    media = media_create(file=ContentFile(b"x" * 300), filename="Guide.pdf")
    line = factories.OrderLineFactory(order=factories.OrderFactory(status="paid"))
    download = factories.DownloadFactory(product=line.product, media=media)
    grant = factories.GrantFactory(order=line.order, line=line, download=download)
    url = reverse("downloads:download", args=[grant.token])
    caplog.set_level(logging.INFO, logger="werkzeug")

    def server_log():
        return [r.getMessage() for r in caplog.records if r.name == "werkzeug"]

    assert client.get(url).status_code == 302
    wait_for(lambda: any("HEAD /" in line for line in server_log()), what="the first probe")
    caplog.clear()
    for headers in ({}, {"HTTP_RANGE": "bytes=0-"}, {"HTTP_RANGE": "bytes=10-"}):
        assert client.get(url, **headers).status_code == 302
    assert client.head(url).status_code == 302
    assert server_log() == []
