"""GET /downloads/<grant token>/: one conditional UPDATE takes a download, then the file is
served (302 to a presigned S3 URL, 302 to a link, or the local file streamed with ranges)."""

import threading
from datetime import timedelta
from urllib.parse import parse_qs, urlsplit

import pytest
import requests
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.db import connection, connections
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from downloads import selectors, storage
from downloads.models import DownloadEvent, DownloadGrant
from downloads.services.media import media_create
from tests import factories

pytestmark = pytest.mark.django_db

CONTENT = bytes(range(256)) * 4  # 1024 distinct-enough bytes, so ranges are checkable


def url_of(grant) -> str:
    return reverse("downloads:download", args=[grant.token])


def local_grant(content=CONTENT, filename="Field Guide (2nd édition).pdf", **kwargs):
    media = factories.MediaFactory(content=content, filename=filename, sha256="ab" * 32)
    line = factories.OrderLineFactory(order=factories.OrderFactory(status="paid"))
    download = factories.DownloadFactory(product=line.product, media=media)
    kwargs.setdefault("download_limit", 5)
    return factories.GrantFactory(order=line.order, line=line, download=download, **kwargs)


def s3_grant(filename="My Book — part 1.pdf", content=b"s3 bytes of the book", **kwargs):
    media = media_create(file=ContentFile(content), filename=filename)
    line = factories.OrderLineFactory(order=factories.OrderFactory(status="paid"))
    download = factories.DownloadFactory(product=line.product, media=media)
    kwargs.setdefault("download_limit", 5)
    return factories.GrantFactory(order=line.order, line=line, download=download, **kwargs)


def count_of(grant) -> int:
    return DownloadGrant.objects.get(pk=grant.pk).download_count


def body(response) -> bytes:
    return b"".join(response.streaming_content)


def outcomes(grant) -> list[str]:
    return list(DownloadEvent.objects.filter(grant=grant).values_list("outcome", flat=True))


class TestLocalFile:
    def test_get_streams_the_file_as_an_attachment_and_takes_one_download(self, client):
        grant = local_grant()
        response = client.get(
            url_of(grant), HTTP_USER_AGENT="Firefox/130", REMOTE_ADDR="203.0.113.9"
        )
        assert response.status_code == 200
        assert body(response) == CONTENT
        assert response["Content-Length"] == str(len(CONTENT))
        assert response["Content-Type"] == "application/pdf"
        assert response["Content-Disposition"] == storage.content_disposition(
            "Field Guide (2nd édition).pdf"
        )
        assert (
            "filename*=UTF-8''Field%20Guide%20%282nd%20%C3%A9dition%29.pdf"
            in (response["Content-Disposition"])
        )
        assert response["Accept-Ranges"] == "bytes"
        assert count_of(grant) == 1
        event = DownloadEvent.objects.get(grant=grant)
        assert (event.outcome, event.ip, event.user_agent) == (
            "served",
            "203.0.113.9",
            "Firefox/130",
        )
        assert DownloadGrant.objects.get(pk=grant.pk).last_downloaded_at is not None

    def test_responses_are_never_cached_and_send_no_referrer(self, client):
        grant = local_grant()
        used_up = local_grant(download_limit=1, download_count=1)
        for response in (client.get(url_of(grant)), client.get(url_of(used_up))):
            assert "no-store" in response["Cache-Control"]
            assert response["Referrer-Policy"] == "no-referrer"
        missing = client.get("/downloads/not-a-token/")
        assert "no-store" in missing["Cache-Control"]
        assert missing["Referrer-Policy"] == "no-referrer"

    def test_range_from_the_middle_answers_206_with_exactly_those_bytes_and_takes_nothing(
        self, client
    ):
        grant = local_grant()
        assert body(client.get(url_of(grant))) == CONTENT  # the counted download it resumes
        response = client.get(url_of(grant), HTTP_RANGE="bytes=100-")
        assert response.status_code == 206
        assert body(response) == CONTENT[100:]
        assert response["Content-Range"] == f"bytes 100-{len(CONTENT) - 1}/{len(CONTENT)}"
        assert response["Content-Length"] == str(len(CONTENT) - 100)
        closed = client.get(url_of(grant), HTTP_RANGE="bytes=10-19")
        assert closed.status_code == 206
        assert body(closed) == CONTENT[10:20]
        assert closed["Content-Range"] == f"bytes 10-19/{len(CONTENT)}"
        assert count_of(grant) == 1
        assert outcomes(grant) == ["served"]

    def test_range_from_byte_zero_counts_like_a_plain_get(self, client):
        grant = local_grant()
        response = client.get(url_of(grant), HTTP_RANGE="bytes=0-")
        assert response.status_code == 206
        assert body(response) == CONTENT
        assert response["Content-Range"] == f"bytes 0-{len(CONTENT) - 1}/{len(CONTENT)}"
        assert count_of(grant) == 1
        assert outcomes(grant) == ["served"]

    def test_suffix_range_counts_because_it_can_cover_the_whole_file(self, client):
        grant = local_grant()
        response = client.get(url_of(grant), HTTP_RANGE="bytes=-5")
        assert response.status_code == 206
        assert body(response) == CONTENT[-5:]
        assert count_of(grant) == 1

    def test_range_past_the_end_is_416_and_takes_nothing(self, client):
        grant = local_grant()
        response = client.get(url_of(grant), HTTP_RANGE="bytes=5000-")
        assert response.status_code == 416
        assert response["Content-Range"] == f"bytes */{len(CONTENT)}"
        assert count_of(grant) == 0

    def test_unparseable_or_multiple_ranges_get_the_whole_file_and_count(self, client):
        grant = local_grant()
        for header in ("bytes=5-1", "items=1-2", "bytes=1-2,5-6", "bytes=-0"):
            response = client.get(url_of(grant), HTTP_RANGE=header)
            assert response.status_code == 200, header
            assert body(response) == CONTENT
        assert count_of(grant) == 4

    def test_resume_against_another_version_gets_and_pays_for_the_whole_file(self, client):
        grant = local_grant()
        stale = client.get(url_of(grant), HTTP_RANGE="bytes=100-", HTTP_IF_RANGE='"old-etag"')
        assert stale.status_code == 200
        assert body(stale) == CONTENT
        assert count_of(grant) == 1
        fresh = client.get(url_of(grant), HTTP_RANGE="bytes=100-", HTTP_IF_RANGE=f'"{"ab" * 32}"')
        assert fresh.status_code == 206
        assert count_of(grant) == 1

    def test_head_answers_the_headers_and_takes_nothing(self, client):
        grant = local_grant()
        response = client.head(url_of(grant))
        assert response.status_code == 200
        assert response["Content-Length"] == str(len(CONTENT))
        assert response["Content-Disposition"].startswith("attachment;")
        assert response.content == b""
        assert count_of(grant) == 0
        assert outcomes(grant) == []

    def test_missing_file_answers_503_and_rolls_the_count_back(self, client):
        grant = local_grant()
        default_storage.delete(grant.download.media.file.name)
        response = client.get(url_of(grant))
        assert response.status_code == 503
        assert "could not be delivered" in response.content.decode()
        assert "was not counted" in response.content.decode()
        assert count_of(grant) == 0
        assert outcomes(grant) == ["failed"]


class TestRefusals:
    @pytest.mark.parametrize(
        ("state", "reason", "outcome"),
        [
            ({"download_limit": 3, "download_count": 3}, "Download limit reached", "limit_reached"),
            ({"expires_at": timezone.now() - timedelta(days=1)}, "Download expired", "expired"),
            ({"revoked_at": timezone.now()}, "Access revoked", "revoked"),
        ],
    )
    def test_refused_get_is_a_410_page_with_the_reason_and_takes_nothing(
        self, client, state, reason, outcome
    ):
        grant = local_grant(**state)
        before = count_of(grant)
        response = client.get(url_of(grant))
        assert response.status_code == 410
        assert reason in response.content.decode()
        assert count_of(grant) == before
        assert outcomes(grant) == [outcome]

    def test_a_refusal_on_the_row_just_read_is_logged_without_an_update(
        self, client, django_assert_num_queries
    ):
        grant = local_grant(download_limit=1, download_count=1)
        with django_assert_num_queries(2):  # the lookup, then the refusal's event
            assert client.get(url_of(grant)).status_code == 410
        assert outcomes(grant) == ["limit_reached"]

    def test_a_download_that_loses_the_race_after_its_file_was_opened_closes_it(
        self, client, monkeypatch
    ):
        grant = local_grant(download_limit=1)
        opened = []
        original_open = storage.open_local
        monkeypatch.setattr(
            storage, "open_local", lambda key: opened.append(original_open(key)) or opened[-1]
        )
        # Another download takes the last one between this request's lookup and its UPDATE.
        original_lookup = selectors.grant_get_for_delivery

        def lookup_then_lose_the_race(**kwargs):
            loaded = original_lookup(**kwargs)
            DownloadGrant.objects.filter(pk=grant.pk).update(download_count=1)
            return loaded

        monkeypatch.setattr(selectors, "grant_get_for_delivery", lookup_then_lose_the_race)
        response = client.get(url_of(grant))
        assert response.status_code == 410
        assert len(opened) == 1 and opened[0].closed
        assert count_of(grant) == 1
        assert outcomes(grant) == ["limit_reached"]

    @pytest.mark.parametrize(
        "state",
        [
            {"download_limit": 2, "download_count": 2},
            {"expires_at": timezone.now() - timedelta(seconds=1)},
            {"revoked_at": timezone.now()},
        ],
    )
    def test_head_and_resumed_ranges_are_refused_too(self, client, state):
        grant = local_grant(**state)
        assert client.head(url_of(grant)).status_code == 410
        assert client.get(url_of(grant), HTTP_RANGE="bytes=100-").status_code == 410

    def test_410_links_back_to_the_order_page_for_a_buyer_who_came_from_it(self, client):
        grant = local_grant(download_limit=1, download_count=1)
        order_url = reverse("accounts:order_detail", args=[grant.order.access_token])
        response = client.get(url_of(grant), HTTP_REFERER=f"http://testserver{order_url}")
        assert response.status_code == 410
        assert f'href="{order_url}"' in response.content.decode()

    def test_410_links_back_to_the_order_page_for_its_logged_in_owner(self, client, customer):
        grant = local_grant(download_limit=1, download_count=1)
        grant.order.customer = customer
        grant.order.save()
        client.force_login(customer)
        response = client.get(url_of(grant))
        assert grant.order.access_token in response.content.decode()

    def test_a_shared_download_link_never_reveals_the_order_page(self, client, customer):
        grant = local_grant(download_limit=1, download_count=1)
        client.force_login(customer)  # somebody else
        for referer in (
            "",
            "https://forum.example.com/thread",
            "http://testserver/account/orders/x/",
        ):
            response = client.get(url_of(grant), HTTP_REFERER=referer)
            assert response.status_code == 410
            assert grant.order.access_token not in response.content.decode()


class TestTokens:
    @pytest.mark.parametrize(
        "token",
        [
            "unknown-token",
            "a" * 64,
            "a" * 65,
            "x" * 5000,
            "%00",
            "abc%00def",
            "%C3%A9t%C3%A9",
            "%0D%0A",
        ],
    )
    def test_unknown_and_malformed_tokens_are_404_pages(self, client, token):
        factories.GrantFactory()
        response = client.get(f"/downloads/{token}/")
        assert response.status_code == 404
        assert "not valid" in response.content.decode()
        assert client.head(f"/downloads/{token}/").status_code == 404
        assert DownloadEvent.objects.count() == 0

    @pytest.mark.parametrize("method", ["post", "put", "patch", "delete", "options"])
    def test_other_methods_are_405_and_take_nothing(self, client, method):
        grant = local_grant()
        response = getattr(client, method)(url_of(grant))
        assert response.status_code == 405
        assert count_of(grant) == 0

    def test_a_nul_byte_in_the_user_agent_is_logged_without_it(self, client):
        grant = local_grant()
        response = client.get(url_of(grant), HTTP_USER_AGENT="evil\x00agent")
        assert response.status_code == 200
        assert DownloadEvent.objects.get(grant=grant).user_agent == "evilagent"


class TestClientAddress:
    def test_the_log_ignores_a_forged_forwarded_for_without_trusted_proxies(self, client):
        grant = local_grant()
        client.get(url_of(grant), REMOTE_ADDR="203.0.113.9", HTTP_X_FORWARDED_FOR="10.6.6.6")
        assert grant.events.get().ip == "203.0.113.9"

    def test_the_log_takes_the_address_the_trusted_proxy_saw(self, client, settings):
        settings.REST_FRAMEWORK = {**settings.REST_FRAMEWORK, "NUM_PROXIES": 1}
        grant = local_grant()
        client.get(
            url_of(grant),
            REMOTE_ADDR="10.0.0.2",
            HTTP_X_FORWARDED_FOR="10.6.6.6, 198.51.100.4",
        )
        assert grant.events.get().ip == "198.51.100.4"


class TestLink:
    def test_link_redirects_to_the_url_and_takes_one_download(self, client):
        grant = factories.GrantFactory(
            download=factories.LinkDownloadFactory(url="https://cdn.example.com/ep1.mp3")
        )
        response = client.get(url_of(grant))
        assert response.status_code == 302
        assert response["Location"] == "https://cdn.example.com/ep1.mp3"
        assert response["Referrer-Policy"] == "no-referrer"
        assert count_of(grant) == 1


class TestS3:
    def test_get_redirects_to_a_sigv4_url_living_the_configured_ttl(self, client, s3, settings):
        settings.DOWNLOADS_URL_TTL = 45
        grant = s3_grant()
        response = client.get(url_of(grant))
        assert response.status_code == 302
        location = urlsplit(response["Location"])
        query = {key: values[0] for key, values in parse_qs(location.query).items()}
        assert location.path.startswith(f"/{s3.bucket}/media/")
        assert query["X-Amz-Algorithm"] == "AWS4-HMAC-SHA256"
        assert query["X-Amz-Expires"] == "45"
        assert query["X-Amz-SignedHeaders"] == "host"
        assert query["response-content-disposition"] == storage.content_disposition(
            "My Book — part 1.pdf"
        )
        assert (
            "filename*=UTF-8''My%20Book%20%E2%80%94%20part%201.pdf"
            in (query["response-content-disposition"])
        )
        assert query["response-content-type"] == "application/pdf"
        assert "no-store" in response["Cache-Control"]
        assert response["Referrer-Policy"] == "no-referrer"
        assert count_of(grant) == 1
        assert outcomes(grant) == ["served"]

    def test_end_to_end_the_redirect_delivers_the_exact_bytes_under_the_original_name(
        self, client, s3
    ):
        content = b"%PDF-1.7 the real book\n" * 100
        grant = s3_grant(filename="Guía rápida 2024.pdf", content=content)
        response = client.get(url_of(grant))
        assert response.status_code == 302
        delivered = requests.get(response["Location"], timeout=10)
        assert delivered.status_code == 200
        assert delivered.content == content
        disposition = delivered.headers["Content-Disposition"]
        assert disposition == storage.content_disposition("Guía rápida 2024.pdf")
        assert "filename*=UTF-8''Gu%C3%ADa%20r%C3%A1pida%202024.pdf" in disposition

    def test_head_and_resumed_range_take_nothing_and_give_no_whole_file_url(self, client, s3):
        content = b"0123456789" * 20
        grant = s3_grant(content=content)
        head = client.head(url_of(grant))
        assert head.status_code == 302
        assert requests.head(head["Location"], timeout=10).status_code == 200
        assert count_of(grant) == 0
        assert client.get(url_of(grant)).status_code == 302  # the counted download resumed
        resumed = client.get(url_of(grant), HTTP_RANGE="bytes=100-")
        assert resumed.status_code == 302
        query = parse_qs(urlsplit(resumed["Location"]).query)
        # The range is signed: S3 accepts this URL only with exactly this Range header.
        assert query["X-Amz-SignedHeaders"] == ["host;range"]
        part = requests.get(resumed["Location"], headers={"Range": "bytes=100-"}, timeout=10)
        assert part.status_code == 206
        assert part.content == content[100:]
        assert count_of(grant) == 1
        assert outcomes(grant) == ["served"]
        assert client.get(url_of(grant), HTTP_RANGE="bytes=0-").status_code == 302
        assert count_of(grant) == 2

    def test_failure_to_presign_rolls_the_count_back(self, client, s3, monkeypatch):
        grant = s3_grant()

        def broken(**kwargs):
            raise RuntimeError("no credentials")

        monkeypatch.setattr(storage, "presigned_download_url", broken)
        response = client.get(url_of(grant))
        assert response.status_code == 503
        assert count_of(grant) == 0
        assert outcomes(grant) == ["failed"]

    def test_the_storage_and_its_client_are_built_once_not_per_request(self, client, s3):
        grant = s3_grant()
        client.get(url_of(grant))
        built = default_storage._wrapped
        s3_client = built.connection.meta.client
        client.get(url_of(grant))
        assert default_storage._wrapped is built
        assert built.connection.meta.client is s3_client


class TestStatementCount:
    """A served download of a file on S3 is ONE SQL statement on PostgreSQL (lookup, count
    and event: grant_consume_by_token); a local one two (the grant lookup, then the
    conditional UPDATE and the event INSERT as one statement); three elsewhere (the lookup,
    then the UPDATE and the INSERT in a transaction). The test database wraps each test in a transaction, so
    a transaction of the view's shows up as SAVEPOINT/RELEASE SAVEPOINT: those are left out of
    the count (in production they are BEGIN/COMMIT, which Django does not log either)."""

    @staticmethod
    def statements(queries) -> list[str]:
        return [
            query["sql"]
            for query in queries
            if not query["sql"].upper().startswith(("SAVEPOINT", "RELEASE SAVEPOINT"))
        ]

    @staticmethod
    def expected(*, s3: bool = False) -> list[str]:
        if connection.vendor == "postgresql":
            return ["WITH"] if s3 else ["SELECT", "WITH"]
        return ["SELECT", "UPDATE", "INSERT"]

    def check(self, queries, *, s3: bool = False) -> None:
        sql = self.statements(queries)
        expected = self.expected(s3=s3)
        assert [statement.split()[0].upper() for statement in sql] == expected, sql

    def test_a_served_local_download_is_two_statements_on_postgresql_three_elsewhere(self, client):
        grant = local_grant()
        with CaptureQueriesContext(connection) as captured:
            response = client.get(url_of(grant))
            body(response)
        assert response.status_code == 200
        self.check(captured.captured_queries)

    def test_a_served_s3_download_is_one_statement_on_postgresql_three_elsewhere(self, client, s3):
        grant = s3_grant()
        client.get(url_of(grant))  # builds the boto3 client once for the process
        with CaptureQueriesContext(connection) as captured:
            response = client.get(url_of(grant))
        assert response.status_code == 302
        assert requests.get(response["Location"], timeout=10).content == b"s3 bytes of the book"
        self.check(captured.captured_queries, s3=True)
        assert (count_of(grant), outcomes(grant)) == (2, ["served", "served"])

    @pytest.mark.parametrize(
        ("state", "reason"),
        [
            ({"download_limit": 1, "download_count": 1}, "limit_reached"),
            ({"revoked_at": timezone.now()}, "revoked"),
            ({"expires_at": timezone.now() - timedelta(seconds=1)}, "expired"),
        ],
    )
    def test_a_refused_s3_download_reads_its_reason_from_the_same_statement(
        self, client, s3, state, reason
    ):
        grant = s3_grant(**state)
        with CaptureQueriesContext(connection) as captured:
            assert client.get(url_of(grant)).status_code == 410
        sql = [q.split()[0].upper() for q in self.statements(captured.captured_queries)]
        # PostgreSQL: the one statement, then the refusal's event; no second lookup.
        expected = ["WITH", "INSERT"] if connection.vendor == "postgresql" else ["SELECT", "INSERT"]
        assert sql == expected
        assert outcomes(grant) == [reason]

    def test_an_s3_download_that_cannot_be_presigned_is_given_back(self, client, s3, monkeypatch):
        grant = s3_grant(download_limit=1)

        def broken(**kwargs):
            raise RuntimeError("no credentials")

        monkeypatch.setattr(storage, "presigned_download_url", broken)
        assert client.get(url_of(grant)).status_code == 503
        assert count_of(grant) == 0
        assert outcomes(grant) == ["failed"]
        monkeypatch.undo()
        assert client.get(url_of(grant)).status_code == 302


# --- Concurrency, through the real endpoint --------------------------------------------------


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("where", ["local", "s3"])
def test_fifty_parallel_clients_with_seven_downloads_left_get_exactly_seven_files(
    postgres_only, live_server, request, where
):
    # On S3 each download is the one statement of grant_consume_by_token.
    make = local_grant if where == "local" else (request.getfixturevalue("s3") and s3_grant)
    grant = make(content=b"concurrent bytes", download_limit=7)
    url = live_server.url + url_of(grant)
    barrier = threading.Barrier(50)
    statuses: list[int] = []
    lock = threading.Lock()

    def fetch():
        try:
            with requests.Session() as session:
                barrier.wait(timeout=30)
                response = session.get(url, allow_redirects=False, timeout=60)
                with lock:
                    statuses.append(response.status_code)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=fetch) for _ in range(50)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=90)

    assert len(statuses) == 50
    assert sum(status in (200, 302) for status in statuses) == 7
    assert statuses.count(410) == 43
    assert count_of(grant) == 7
    assert DownloadEvent.objects.filter(grant=grant, outcome="served").count() == 7
    assert DownloadEvent.objects.filter(grant=grant, outcome="limit_reached").count() == 43


# --- The resume rule (issue 15): a Range not from byte 0 is free only as a bounded resume ----


class TestResumeBudget:
    """A Range request not starting at byte 0 is free only as the resume of a counted
    download, within DOWNLOADS_RESUME_WINDOW and a budget of DOWNLOADS_RESUME_BUDGET × the
    file's size (the counted download's own bytes included); anything else counts."""

    def test_twenty_resumes_of_a_limit_one_grant_serve_at_most_its_budget(self, client, settings):
        settings.DOWNLOADS_RESUME_BUDGET = 2
        grant = local_grant(download_limit=1)
        statuses, served = [], 0
        for _ in range(20):
            response = client.get(url_of(grant), HTTP_RANGE="bytes=1-")
            statuses.append(response.status_code)
            if response.status_code == 206:
                data = body(response)
                assert data == CONTENT[1:]
                served += len(data)
        # The first one counts (nothing to resume), the second fits what is left of the
        # budget (2 × 1024 − 1023), the third does not: it counts, and the limit refuses it.
        assert statuses == [206, 206] + [410] * 18
        assert served <= grant.download_limit * 2 * len(CONTENT)
        assert count_of(grant) == 1
        assert outcomes(grant).count("served") == 1
        assert outcomes(grant).count("limit_reached") == 18

    def test_a_real_resume_of_the_last_download_is_free(self, client):
        grant = local_grant(download_limit=1)
        assert body(client.get(url_of(grant))) == CONTENT
        resumed = client.get(url_of(grant), HTTP_RANGE="bytes=600-")
        assert resumed.status_code == 206
        assert body(resumed) == CONTENT[600:]
        assert count_of(grant) == 1
        assert outcomes(grant) == ["served"]  # a free resume is not a new download
        assert client.get(url_of(grant)).status_code == 410

    def test_a_resume_after_the_window_counts_like_a_new_download(self, client):
        grant = local_grant(download_limit=2)
        assert client.get(url_of(grant)).status_code == 200
        DownloadGrant.objects.filter(pk=grant.pk).update(
            resume_until=timezone.now() - timedelta(seconds=1)
        )
        assert client.get(url_of(grant), HTTP_RANGE="bytes=600-").status_code == 206
        assert count_of(grant) == 2
        # That count opened a new window: a resume of it is free.
        assert client.get(url_of(grant), HTTP_RANGE="bytes=900-").status_code == 206
        assert count_of(grant) == 2
        DownloadGrant.objects.filter(pk=grant.pk).update(
            resume_until=timezone.now() - timedelta(seconds=1)
        )
        assert client.get(url_of(grant), HTTP_RANGE="bytes=900-").status_code == 410

    def test_a_window_of_zero_makes_every_resume_count(self, client, settings):
        settings.DOWNLOADS_RESUME_WINDOW = 0
        grant = local_grant(download_limit=2)
        assert client.get(url_of(grant)).status_code == 200
        assert client.get(url_of(grant), HTTP_RANGE="bytes=600-").status_code == 206
        assert count_of(grant) == 2

    def test_a_resume_of_a_grant_never_counted_counts(self, client):
        grant = local_grant()
        response = client.get(url_of(grant), HTTP_RANGE="bytes=100-")
        assert response.status_code == 206
        assert body(response) == CONTENT[100:]
        assert count_of(grant) == 1
        assert outcomes(grant) == ["served"]
        left = DownloadGrant.objects.get(pk=grant.pk).resume_bytes_left
        assert left == 2 * len(CONTENT) - (len(CONTENT) - 100)

    def test_a_resume_larger_than_the_budget_left_counts_and_renews_it(self, client, settings):
        settings.DOWNLOADS_RESUME_BUDGET = 1.5  # 512 bytes of resumes after a whole file
        grant = local_grant(download_limit=3)
        assert client.get(url_of(grant)).status_code == 200
        assert client.get(url_of(grant), HTTP_RANGE="bytes=600-").status_code == 206  # 424
        assert count_of(grant) == 1
        assert client.get(url_of(grant), HTTP_RANGE="bytes=600-").status_code == 206  # > 88
        assert count_of(grant) == 2
        assert DownloadGrant.objects.get(pk=grant.pk).resume_bytes_left == 1536 - 424

    def test_head_never_counts_nor_spends_the_budget(self, client):
        grant = local_grant(download_limit=1)
        for _ in range(5):
            assert client.head(url_of(grant)).status_code == 200
        assert count_of(grant) == 0
        assert client.get(url_of(grant)).status_code == 200
        left = DownloadGrant.objects.get(pk=grant.pk).resume_bytes_left
        assert left == len(CONTENT)
        assert client.head(url_of(grant), HTTP_RANGE="bytes=1-").status_code == 410
        assert DownloadGrant.objects.get(pk=grant.pk).resume_bytes_left == left
        assert count_of(grant) == 1

    def test_a_resume_past_the_end_delivers_nothing_and_takes_nothing(self, client):
        grant = local_grant(download_limit=1)
        assert client.get(url_of(grant)).status_code == 200
        for _ in range(3):
            assert client.get(url_of(grant), HTTP_RANGE="bytes=5000-").status_code == 416
        assert count_of(grant) == 1
        assert DownloadGrant.objects.get(pk=grant.pk).resume_bytes_left == len(CONTENT)

    def test_a_range_on_a_link_always_counts(self, client):
        line = factories.OrderLineFactory(order=factories.OrderFactory(status="paid"))
        download = factories.LinkDownloadFactory(product=line.product)
        grant = factories.GrantFactory(
            order=line.order, line=line, download=download, download_limit=1
        )
        assert client.get(url_of(grant)).status_code == 302
        assert client.get(url_of(grant), HTTP_RANGE="bytes=1-").status_code == 410
        assert count_of(grant) == 1

    def test_a_revoked_grant_gets_no_free_resume(self, client):
        grant = local_grant(download_limit=1)
        assert client.get(url_of(grant)).status_code == 200
        DownloadGrant.objects.filter(pk=grant.pk).update(revoked_at=timezone.now())
        assert client.get(url_of(grant), HTTP_RANGE="bytes=600-").status_code == 410

    def test_s3_range_urls_follow_the_same_rule_and_cost_the_whole_file(self, client, s3):
        content = b"0123456789" * 20
        grant = s3_grant(content=content, download_limit=1)
        statuses = []
        for _ in range(5):
            response = client.get(url_of(grant), HTTP_RANGE="bytes=1-")
            statuses.append(response.status_code)
            if response.status_code == 302:
                query = parse_qs(urlsplit(response["Location"]).query)
                assert query["X-Amz-SignedHeaders"] == ["host;range"]
                part = requests.get(response["Location"], headers={"Range": "bytes=1-"}, timeout=10)
                assert part.content == content[1:]
        # S3 applies If-Range itself, so a range may come back as the whole file: each free
        # resume costs the whole size, and the default budget (2) leaves one after a count.
        assert statuses == [302, 302, 410, 410, 410]
        assert count_of(grant) == 1
        assert DownloadGrant.objects.get(pk=grant.pk).resume_bytes_left == 0


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_twenty_parallel_resumes_with_budget_for_five_get_exactly_five(postgres_only, live_server):
    grant = local_grant(download_limit=1, download_count=1)
    span = len(CONTENT) - 1000  # bytes=1000-
    DownloadGrant.objects.filter(pk=grant.pk).update(
        resume_until=timezone.now() + timedelta(hours=1), resume_bytes_left=5 * span
    )
    url = live_server.url + url_of(grant)
    barrier = threading.Barrier(20)
    statuses: list[int] = []
    lock = threading.Lock()

    def fetch():
        try:
            with requests.Session() as session:
                barrier.wait(timeout=30)
                response = session.get(url, headers={"Range": "bytes=1000-"}, timeout=60)
                with lock:
                    statuses.append(response.status_code)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=fetch) for _ in range(20)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=90)

    assert len(statuses) == 20
    assert statuses.count(206) == 5
    assert statuses.count(410) == 15
    reloaded = DownloadGrant.objects.get(pk=grant.pk)
    assert (reloaded.download_count, reloaded.resume_bytes_left) == (1, 0)
    assert DownloadEvent.objects.filter(grant=grant, outcome="limit_reached").count() == 15


def test_a_free_resume_of_a_used_up_grant_costs_the_lookup_and_one_update(
    client, django_assert_num_queries
):
    grant = local_grant(download_limit=1)
    assert client.get(url_of(grant)).status_code == 200
    with django_assert_num_queries(2):  # the lookup, then the budget's conditional UPDATE
        response = client.get(url_of(grant), HTTP_RANGE="bytes=600-")
        assert body(response) == CONTENT[600:]
    assert count_of(grant) == 1
