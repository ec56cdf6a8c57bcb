# --- The verification snippet from README.md ("Webhooks"), copied literally -------------------
import hashlib
import hmac
import inspect
import socket
import ssl
import time
import urllib.request
from datetime import timedelta
from pathlib import Path

import pytest
from django.conf import settings as django_settings
from django.core.cache import cache
from django.db import transaction
from django.utils import timezone
from django_tasks_db.models import DBTaskResult

from downloads.errors import ServiceError
from downloads.models import DownloadGrant, Order, WebhookAttempt, WebhookDelivery, WebhookEndpoint
from downloads.services import webhooks
from downloads.services.consume import grant_consume
from downloads.services.grants import grants_revoke
from downloads.services.orders import LineInput, order_create, order_pay, order_refund
from downloads.services.webhooks import (
    webhook_delivery_retry,
    webhook_endpoint_create,
    webhook_endpoint_delete,
    webhook_endpoint_rotate_secret,
    webhook_endpoint_update,
)
from tests import factories


def verify_webhook(secret: str, body: bytes, signature: str, tolerance: int = 300) -> bool:
    """True if `signature` (the Webhook-Signature header) was made with `secret` over
    exactly `body` (the raw request bytes) less than `tolerance` seconds ago."""
    try:
        fields = dict(item.split("=", 1) for item in signature.split(","))
        timestamp = int(fields["t"])
    except (KeyError, ValueError):
        return False
    if abs(time.time() - timestamp) > tolerance:
        return False
    signed = f"{timestamp}.".encode() + body
    expected = hmac.new(secret.encode(), signed, hashlib.sha256).hexdigest()
    return hmac.compare_digest(expected, fields.get("v1", ""))


# ----------------------------------------------------------------------------------------------


def test_the_verification_snippet_is_the_one_in_the_readme():
    readme = (Path(django_settings.BASE_DIR) / "README.md").read_text()
    assert inspect.getsource(verify_webhook) in readme


class TestSignature:
    def test_a_signature_verifies_with_the_readme_snippet(self):
        body = webhooks.encode({"id": "x", "type": "order.paid", "data": {"number": 1001}})
        header = webhooks.sign(secret="s3cret", timestamp=int(time.time()), body=body)
        assert verify_webhook("s3cret", body, header)

    def test_a_changed_body_another_secret_or_an_old_timestamp_fail(self):
        body = b'{"id":"x"}'
        now = int(time.time())
        header = webhooks.sign(secret="s3cret", timestamp=now, body=body)
        assert not verify_webhook("s3cret", body + b" ", header)
        assert not verify_webhook("other", body, header)
        old = webhooks.sign(secret="s3cret", timestamp=now - 301, body=body)
        assert not verify_webhook("s3cret", body, old)
        assert not verify_webhook("s3cret", body, "garbage")


@pytest.mark.django_db(transaction=True)
class TestDeliveryByTheWorker:
    def test_a_receiver_that_fails_twice_gets_the_event_exactly_once(
        self, receiver, run_worker, settings, paid_order
    ):
        settings.DOWNLOADS_WEBHOOK_RETRY_BASE = 0  # retry at once, so one worker run sees all
        hook = receiver(statuses=[500, 503])
        endpoint = webhook_endpoint_create(url=hook.url, event_types=["order.paid"])
        order = paid_order()

        run_worker()

        delivery = WebhookDelivery.objects.get()
        assert len(hook.requests) == 3
        ids = {r["headers"][webhooks.ID_HEADER] for r in hook.requests}
        assert ids == {str(delivery.pk)}
        assert hook.processed == {str(delivery.pk): 1}
        for request in hook.requests:
            assert verify_webhook(
                endpoint.secret, request["body"], request["headers"][webhooks.SIGNATURE_HEADER]
            )
            assert request["headers"][webhooks.EVENT_HEADER] == "order.paid"
        event = hook.events()[-1]
        assert (event["id"], event["type"]) == (str(delivery.pk), "order.paid")
        assert event["data"]["number"] == order.number
        assert (delivery.status, delivery.attempts) == (WebhookDelivery.Status.DELIVERED, 3)
        log = WebhookAttempt.objects.filter(delivery=delivery).order_by("at")
        assert [a.status_code for a in log] == [500, 503, 200]
        assert [a.error for a in log] == ["HTTP 500", "HTTP 503", ""]

    def test_no_event_is_sent_for_a_transaction_that_rolled_back(self, receiver, run_worker):
        hook = receiver()
        webhook_endpoint_create(url=hook.url)  # every event type
        product = factories.DownloadFactory().product
        order = order_create(email="buyer@example.com", lines=[LineInput(product=product)])
        created = WebhookDelivery.objects.get()  # order.created, committed with the order
        assert created.event_type == "order.created"
        with pytest.raises(RuntimeError), transaction.atomic():
            order_pay(order=order, send_email=False)
            assert WebhookDelivery.objects.count() == 3  # + order.paid + grant.created, queued
            raise RuntimeError("payment capture failed")

        run_worker()
        assert list(WebhookDelivery.objects.values_list("event_type", flat=True)) == [
            "order.created"
        ]
        assert DBTaskResult.objects.filter(task_path="downloads.tasks.webhook_deliver").count() == 1
        assert [r["headers"][webhooks.EVENT_HEADER] for r in hook.requests] == ["order.created"]

        order_pay(order=order, send_email=False)  # the real payment, committed
        run_worker()
        assert sorted(e["type"] for e in hook.events()) == [
            "grant.created",
            "order.created",
            "order.paid",
        ]


@pytest.mark.django_db
class TestRetries:
    def test_backoff_doubles_from_30_seconds_and_stops_growing_at_6_hours(self):
        assert webhooks.backoff(1) == timedelta(seconds=30)
        assert webhooks.backoff(2) == timedelta(seconds=60)
        assert webhooks.backoff(5) == timedelta(seconds=480)
        assert webhooks.backoff(20) == timedelta(hours=6)

    def test_a_failure_schedules_the_next_attempt_as_a_deferred_task(self, receiver, paid_order):
        hook = receiver(statuses=[500])
        webhook_endpoint_create(url=hook.url, event_types=["order.paid"])
        paid_order()
        delivery = WebhookDelivery.objects.get()
        before = timezone.now()
        webhooks.webhook_delivery_attempt(delivery_id=delivery.pk)
        delivery.refresh_from_db()
        assert delivery.status == WebhookDelivery.Status.PENDING
        assert delivery.next_attempt_at >= before + timedelta(seconds=30)
        retry = DBTaskResult.objects.filter(task_path="downloads.tasks.webhook_deliver").latest(
            "enqueued_at"
        )
        assert retry.run_after >= before + timedelta(seconds=30)

    def test_it_gives_up_when_the_next_attempt_would_be_more_than_a_day_after_the_event(
        self, receiver, paid_order
    ):
        hook = receiver(statuses=[500])
        webhook_endpoint_create(url=hook.url, event_types=["order.paid"])
        paid_order()
        delivery = WebhookDelivery.objects.get()
        WebhookDelivery.objects.filter(pk=delivery.pk).update(
            created_at=timezone.now() - timedelta(hours=23, minutes=59, seconds=50), attempts=9
        )
        webhooks.webhook_delivery_attempt(delivery_id=delivery.pk)
        delivery.refresh_from_db()
        assert (delivery.status, delivery.attempts) == (WebhookDelivery.Status.FAILED, 10)
        assert delivery.next_attempt_at is None
        assert delivery.attempt_log.count() == 1

    def test_a_dead_receiver_is_logged_as_a_connection_error(self, receiver, paid_order):
        hook = receiver()
        hook.server.shutdown()
        hook.server.server_close()
        webhook_endpoint_create(url=hook.url, event_types=["order.paid"])
        paid_order()
        delivery = webhooks.webhook_delivery_attempt(delivery_id=WebhookDelivery.objects.get().pk)
        attempt = delivery.attempt_log.get()
        assert attempt.status_code is None
        assert "refused" in attempt.error.lower()

    def test_a_redirect_is_a_failure_not_followed(self, receiver, paid_order):
        hook = receiver(statuses=[302])
        webhook_endpoint_create(url=hook.url, event_types=["order.paid"])
        paid_order()
        delivery = webhooks.webhook_delivery_attempt(delivery_id=WebhookDelivery.objects.get().pk)
        assert delivery.status == WebhookDelivery.Status.PENDING
        assert delivery.attempt_log.get().status_code == 302
        assert len(hook.requests) == 1

    def test_retry_now_queues_a_failed_delivery_and_refuses_a_delivered_one(
        self, receiver, paid_order
    ):
        hook = receiver()
        webhook_endpoint_create(url=hook.url, event_types=["order.paid"])
        paid_order()
        delivery = WebhookDelivery.objects.get()
        WebhookDelivery.objects.filter(pk=delivery.pk).update(status=WebhookDelivery.Status.FAILED)
        delivery.refresh_from_db()
        webhook_delivery_retry(delivery=delivery)
        delivery = webhooks.webhook_delivery_attempt(delivery_id=delivery.pk)
        assert delivery.status == WebhookDelivery.Status.DELIVERED
        with pytest.raises(ServiceError):
            webhook_delivery_retry(delivery=delivery)


@pytest.mark.django_db
class TestEvents:
    def types(self):
        return sorted(WebhookDelivery.objects.values_list("event_type", flat=True))

    def test_paying_refunding_and_revoking_emit_their_events(self):
        endpoint = webhook_endpoint_create(url="https://hooks.example.com/all")
        product = factories.ProductFactory()
        factories.DownloadFactory(product=product)
        order = order_create(
            email="buyer@example.com",
            lines=[LineInput(product=product)] * 2,
            status=Order.Status.PAID,
            send_email=False,
        )
        assert self.types() == ["grant.created", "grant.created", "order.created", "order.paid"]
        paid = WebhookDelivery.objects.get(event_type="order.paid").payload["data"]
        line_total = product.price * 2
        assert {k: paid[k] for k in ("currency", "subtotal", "tax", "total", "refunded_total")} == {
            "currency": "USD",
            "subtotal": line_total,
            "tax": 0,
            "total": line_total,
            "refunded_total": 0,
        }

        WebhookDelivery.objects.all().delete()
        first_line = order.lines.first()
        order_refund(order=order, line_ids=[first_line.pk])
        refunded = WebhookDelivery.objects.get(event_type="order.refunded").payload["data"]
        assert refunded["refunded_line_ids"] == [str(first_line.pk)]
        assert refunded["status"] == "paid"
        assert refunded["refunded_total"] == product.price
        revoked = WebhookDelivery.objects.get(event_type="grant.revoked").payload["data"]
        assert revoked["line"] == str(first_line.pk)

        WebhookDelivery.objects.all().delete()
        grants_revoke(grants=DownloadGrant.objects.filter(order=order))
        assert self.types() == ["grant.revoked"]
        assert WebhookDelivery.objects.get().endpoint == endpoint

    def test_only_subscribed_active_endpoints_get_an_event(self, paid_order):
        paid_only = webhook_endpoint_create(
            url="https://a.example.com/", event_types=["order.paid"]
        )
        webhook_endpoint_create(url="https://b.example.com/", event_types=["order.refunded"])
        webhook_endpoint_create(url="https://c.example.com/", is_active=False)
        paid_order()
        assert list(WebhookDelivery.objects.values_list("endpoint", "event_type")) == [
            (paid_only.pk, "order.paid")
        ]

    def test_limit_reached_is_emitted_once_by_the_download_that_takes_the_last_one(self):
        webhook_endpoint_create(
            url="https://hooks.example.com/", event_types=["grant.limit_reached"]
        )
        grant = factories.GrantFactory(download_limit=2)
        for _ in range(3):
            grant_consume(grant=DownloadGrant.objects.get(pk=grant.pk))
        delivery = WebhookDelivery.objects.get()
        assert delivery.event_type == "grant.limit_reached"
        assert delivery.payload["data"]["download_count"] == 2

    def test_each_served_download_is_an_event_when_subscribed(self):
        webhook_endpoint_create(url="https://hooks.example.com/", event_types=["download.served"])
        grant = factories.GrantFactory(download_limit=1)
        grant_consume(grant=grant, ip="203.0.113.9", user_agent="curl")
        grant_consume(grant=grant)  # refused: limit reached, nothing served
        data = WebhookDelivery.objects.get().payload["data"]
        assert (data["grant"], data["ip"], data["user_agent"]) == (
            str(grant.pk),
            "203.0.113.9",
            "curl",
        )


@pytest.mark.django_db
class TestHotPath:
    def test_a_served_download_costs_no_more_statements_when_nobody_listens(self, client):
        from django.db import connection
        from django.test.utils import CaptureQueriesContext

        webhook_endpoint_create(url="https://a.example.com/", event_types=["order.paid"])
        grant = factories.GrantFactory()
        webhooks.subscribed_types()  # this process learns of the endpoint once
        with CaptureQueriesContext(connection) as queries:
            response = client.get(f"/downloads/{grant.token}/")
        assert response.status_code == 200
        # The view's atomic block is a savepoint inside the test's transaction; not a statement
        # of the download itself.
        statements = [
            q["sql"].split()[0]
            for q in queries.captured_queries
            if not q["sql"].startswith(("SAVEPOINT", "RELEASE SAVEPOINT"))
        ]
        if connection.vendor == "postgresql":
            assert statements == ["SELECT", "WITH"]  # lookup; consume and event in one
        else:
            assert statements == ["SELECT", "UPDATE", "INSERT"]  # lookup, consume, event
        assert not WebhookDelivery.objects.exists()

    def test_consume_adds_no_query_for_webhooks_when_nobody_subscribes(
        self, django_assert_num_queries
    ):
        from django.db import connection

        grant = factories.GrantFactory()
        # PostgreSQL: one statement; elsewhere the UPDATE and the event INSERT.
        with django_assert_num_queries(1 if connection.vendor == "postgresql" else 2):
            grant_consume(grant=grant)

    def test_a_subscriber_gets_the_event_queued_in_the_download_transaction(
        self, django_assert_num_queries
    ):
        webhook_endpoint_create(url="https://a.example.com/", event_types=["download.served"])
        grant = factories.GrantFactory()
        webhooks.subscribed_types()
        with transaction.atomic():
            grant_consume(grant=grant)
            assert WebhookDelivery.objects.filter(event_type="download.served").count() == 1
            assert DBTaskResult.objects.filter(task_path="downloads.tasks.webhook_deliver").exists()

    def test_a_dead_receiver_never_slows_a_download(self, client, receiver):
        hook = receiver()
        hook.server.shutdown()
        hook.server.server_close()
        webhook_endpoint_create(url=hook.url, event_types=["download.served"])
        grant = factories.GrantFactory()
        started = time.monotonic()
        response = client.get(f"/downloads/{grant.token}/")
        assert response.status_code == 200
        assert time.monotonic() - started < 2
        delivery = WebhookDelivery.objects.get()
        assert (delivery.status, delivery.attempts) == (WebhookDelivery.Status.PENDING, 0)


@pytest.mark.django_db
class TestSubscriptionMemo:
    def test_an_endpoint_saved_in_another_process_is_seen_after_the_cache_version_bump(self):
        assert webhooks.subscribed_types() == frozenset()
        # Another process inserts an endpoint: no signal reaches this one...
        WebhookEndpoint.objects.bulk_create(
            [WebhookEndpoint(url="https://a.example.com/", event_types=["download.served"])]
        )
        assert webhooks.subscribed_types() == frozenset()
        # ...but its save bumped the shared cache version, which this process checks.
        cache.set("downloads:webhooks:subscriptions", "from-another-process", None)
        assert webhooks.subscribed_types() == {"download.served"}

    def test_without_a_shared_cache_the_memo_expires_after_its_ttl(self, settings):
        WebhookEndpoint.objects.bulk_create(
            [WebhookEndpoint(url="https://a.example.com/", event_types=["grant.revoked"])]
        )
        assert webhooks.subscribed_types() == frozenset()
        settings.DOWNLOADS_WEBHOOK_CACHE_SECONDS = 0
        assert webhooks.subscribed_types() == {"grant.revoked"}

    def test_saving_or_deleting_an_endpoint_here_refreshes_at_once(self):
        endpoint = webhook_endpoint_create(url="https://a.example.com/")
        assert webhooks.subscribed_types() == set(webhooks.EVENT_TYPES)
        webhook_endpoint_update(endpoint=endpoint, is_active=False)
        assert webhooks.subscribed_types() == frozenset()
        webhook_endpoint_update(endpoint=endpoint, is_active=True, event_types=["grant.created"])
        assert webhooks.subscribed_types() == {"grant.created"}
        webhook_endpoint_delete(endpoint=endpoint)
        assert webhooks.subscribed_types() == frozenset()


@pytest.mark.django_db
class TestEndpoints:
    @pytest.mark.parametrize(
        ("kwargs", "attribute", "code"),
        [
            ({"url": "not a url"}, "url", "invalid"),
            ({"url": "ftp://example.com/hook"}, "url", "invalid"),
            (
                {"url": "https://a.example.com/", "event_types": ["order.shipped"]},
                "event_types",
                "invalid_choice",
            ),
            (
                {"url": "https://a.example.com/", "event_types": "order.paid"},
                "event_types",
                "invalid",
            ),
        ],
    )
    def test_bad_input_is_refused_with_a_code(self, kwargs, attribute, code):
        with pytest.raises(ServiceError) as exc:
            webhook_endpoint_create(**kwargs)
        assert exc.value.code == "webhook_endpoint.invalid"
        assert (exc.value.attribute, exc.value.reason) == (attribute, code)
        assert not WebhookEndpoint.objects.exists()

    def test_a_new_endpoint_gets_a_256_bit_secret_and_rotation_replaces_it(self):
        endpoint = webhook_endpoint_create(
            url="https://a.example.com/", event_types=["order.paid", "order.paid"]
        )
        assert endpoint.event_types == ["order.paid"]
        assert len(endpoint.secret) >= 43  # token_urlsafe(32)
        old = endpoint.secret
        webhook_endpoint_rotate_secret(endpoint=endpoint)
        endpoint.refresh_from_db()
        assert endpoint.secret != old


# --- Where webhooks may go (issue 15) ----------------------------------------------------------

PUBLIC_V4 = "93.184.215.14"
PUBLIC_V6 = "2606:2800:21f:cb07:6820:80da:af6b:8b2c"

# Each is refused when saved with the production rules (internal.example.com: see fake_dns).
REFUSED_URLS = [
    "http://127.0.0.1/",
    "http://[::1]/",
    "https://169.254.169.254/latest/meta-data/",
    "https://10.0.0.5/",
    "https://192.168.1.1/",
    "https://[fd00::1]/",
    "https://[::ffff:127.0.0.1]/",
    "https://localhost/",
    "https://foo.localhost/",
    "https://user:pass@example.com/",
    "http://example.com/",
    "https://internal.example.com/",  # a name that resolves to 127.0.0.1
    "https://mixed.example.com/",  # one public and one private address
    "https://nowhere.example.com/",  # does not resolve
]


def _no_connection(*args, **kwargs):
    raise AssertionError("a refused destination was connected to")


@pytest.mark.django_db
@pytest.mark.usefixtures("strict_webhooks")
class TestDestinations:
    @pytest.fixture(autouse=True)
    def _dns(self, fake_dns):
        fake_dns.names.update(
            {
                "example.com": [PUBLIC_V4],
                "hooks.example.com": [PUBLIC_V4, PUBLIC_V6],
                "internal.example.com": ["127.0.0.1"],
                "mixed.example.com": [PUBLIC_V4, "10.1.2.3"],
            }
        )
        return fake_dns

    @pytest.mark.parametrize("url", REFUSED_URLS)
    def test_an_internal_local_plain_http_or_credentialed_url_is_refused_at_save(self, url):
        with pytest.raises(ServiceError) as caught:
            webhook_endpoint_create(url=url, event_types=["order.paid"])
        assert (caught.value.code, caught.value.attribute) == ("webhook_endpoint.invalid", "url")
        assert caught.value.message
        assert not WebhookEndpoint.objects.exists()

    def test_localhost_names_are_refused_without_a_lookup(self, fake_dns):
        for url in ("https://localhost/", "https://foo.localhost./"):
            with pytest.raises(ServiceError, match="localhost"):
                webhook_endpoint_create(url=url)
        assert fake_dns.lookups == []

    def test_the_message_names_the_rule_broken(self):
        cases = {
            "http://example.com/": "https",
            "https://user:pass@example.com/": "user name or password",
            "https://internal.example.com/": "127.0.0.1",
            "https://mixed.example.com/": "10.1.2.3",
            "https://nowhere.example.com/": "does not resolve",
        }
        for url, words in cases.items():
            with pytest.raises(ServiceError) as caught:
                webhook_endpoint_create(url=url)
            assert words in caught.value.message, url

    def test_a_public_https_url_is_accepted(self):
        endpoint = webhook_endpoint_create(url="https://hooks.example.com/store")
        assert endpoint.url == "https://hooks.example.com/store"

    def test_changing_the_url_to_an_internal_one_is_refused(self):
        endpoint = webhook_endpoint_create(url="https://hooks.example.com/store")
        with pytest.raises(ServiceError) as caught:
            webhook_endpoint_update(endpoint=endpoint, url="https://10.0.0.5/")
        assert caught.value.attribute == "url"
        endpoint.refresh_from_db()
        assert endpoint.url == "https://hooks.example.com/store"

    def test_the_settings_allow_plain_http_and_private_addresses(self, settings):
        settings.DOWNLOADS_WEBHOOK_ALLOW_HTTP = True
        with pytest.raises(ServiceError):  # http is fine now, 127.0.0.1 still is not
            webhook_endpoint_create(url="http://127.0.0.1/")
        assert webhook_endpoint_create(url="http://example.com/").url == "http://example.com/"
        settings.DOWNLOADS_WEBHOOK_ALLOW_PRIVATE = True
        assert webhook_endpoint_create(url="http://127.0.0.1/").url == "http://127.0.0.1/"

    @pytest.mark.parametrize(
        "address",
        [
            "127.0.0.1",
            "10.0.0.5",
            "172.16.0.1",
            "192.168.1.1",
            "169.254.169.254",
            "100.64.0.1",
            "0.0.0.0",  # noqa: S104
            "224.0.0.1",
            "240.0.0.1",
            "255.255.255.255",
            "::1",
            "::",
            "fe80::1",
            "fe80::1%eth0",
            "fd00::1",
            "ff02::1",
            "::ffff:127.0.0.1",
            "::ffff:10.0.0.5",
            "::127.0.0.1",  # IPv4-compatible
            "2002:7f00:1::",  # 6to4 of 127.0.0.1
            "64:ff9b::a00:5",  # NAT64 of 10.0.0.5
            "not an address",
        ],
    )
    def test_non_public_addresses_are_not_allowed(self, address):
        assert not webhooks.address_allowed(address)

    @pytest.mark.parametrize("address", [PUBLIC_V4, PUBLIC_V6, "8.8.8.8", "::ffff:8.8.8.8"])
    def test_public_addresses_are_allowed(self, address):
        assert webhooks.address_allowed(address)

    def test_a_name_repointed_to_a_private_address_after_save_is_not_posted(
        self, fake_dns, paid_order, monkeypatch
    ):
        endpoint = webhook_endpoint_create(
            url="https://hooks.example.com/store", event_types=["order.paid"]
        )
        fake_dns.names["hooks.example.com"] = ["10.0.0.1"]  # DNS changed since
        monkeypatch.setattr(urllib.request.OpenerDirector, "open", _no_connection)
        monkeypatch.setattr(socket, "create_connection", _no_connection)
        paid_order()
        delivery = webhooks.webhook_delivery_attempt(
            delivery_id=WebhookDelivery.objects.get(endpoint=endpoint).pk
        )
        attempt = delivery.attempt_log.get()
        assert (attempt.status_code, attempt.error) == (None, "destination not allowed: 10.0.0.1")
        assert delivery.status == WebhookDelivery.Status.PENDING  # retried: DNS may change back

    def test_a_refused_destination_reads_the_same_whether_a_port_is_open(
        self, receiver, paid_order
    ):
        listening = receiver()
        closed = receiver()
        closed.server.shutdown()
        closed.server.server_close()
        for hook in (listening, closed):  # stored before the rules (or by hand): not re-saved
            WebhookEndpoint.objects.create(
                url=hook.url.replace("http://", "https://"), event_types=["order.paid"]
            )
        paid_order()
        errors = {
            webhooks.webhook_delivery_attempt(delivery_id=delivery.pk).attempt_log.get().error
            for delivery in WebhookDelivery.objects.all()
        }
        assert errors == {"destination not allowed: 127.0.0.1"}
        assert listening.requests == []

    def test_delivery_connects_to_the_address_it_checked_without_a_second_lookup(
        self, receiver, fake_dns, settings, paid_order, monkeypatch
    ):
        settings.DOWNLOADS_WEBHOOK_ALLOW_HTTP = True
        # 127.0.0.1 stands in for a public address here, so the local receiver can answer.
        monkeypatch.setattr(webhooks, "address_allowed", lambda address: address == "127.0.0.1")
        hook = receiver()
        port = hook.server.server_port
        fake_dns.names["shop.example.com"] = ["127.0.0.1"]
        webhook_endpoint_create(
            url=f"http://shop.example.com:{port}/hooks", event_types=["order.paid"]
        )
        paid_order()
        fake_dns.lookups.clear()
        real = fake_dns.getaddrinfo

        def lookup_once(host, *args, **kwargs):
            answer = real(host, *args, **kwargs)
            if host == "shop.example.com":
                fake_dns.names[host] = ["10.0.0.1"]  # rebound right after the check
            return answer

        monkeypatch.setattr(webhooks.socket, "getaddrinfo", lookup_once)
        delivery = webhooks.webhook_delivery_attempt(delivery_id=WebhookDelivery.objects.get().pk)
        assert delivery.status == WebhookDelivery.Status.DELIVERED
        assert fake_dns.lookups == ["shop.example.com"]
        assert hook.requests[0]["headers"]["Host"] == f"shop.example.com:{port}"

    def test_a_redirect_from_a_checked_address_is_not_followed(
        self, receiver, fake_dns, settings, paid_order, monkeypatch
    ):
        settings.DOWNLOADS_WEBHOOK_ALLOW_HTTP = True
        monkeypatch.setattr(webhooks, "address_allowed", lambda address: address == "127.0.0.1")
        hook = receiver(statuses=[302])
        fake_dns.names["shop.example.com"] = ["127.0.0.1"]
        webhook_endpoint_create(
            url=f"http://shop.example.com:{hook.server.server_port}/", event_types=["order.paid"]
        )
        paid_order()
        delivery = webhooks.webhook_delivery_attempt(delivery_id=WebhookDelivery.objects.get().pk)
        assert delivery.attempt_log.get().status_code == 302
        assert len(hook.requests) == 1

    def test_https_to_a_checked_address_keeps_the_name_for_sni_and_the_certificate(
        self, receiver, fake_dns, monkeypatch
    ):
        monkeypatch.setattr(webhooks, "address_allowed", lambda address: address == "127.0.0.1")
        hook = receiver()
        port = hook.server.server_port
        fake_dns.names["shop.example.com"] = ["127.0.0.1"]
        seen = {}

        def wrap_socket(context, sock, server_hostname=None, **kwargs):
            seen["peer"], seen["server_hostname"] = sock.getpeername()[:2], server_hostname
            seen["verify"] = (context.check_hostname, context.verify_mode)
            raise ssl.SSLError("stop here")

        monkeypatch.setattr(ssl.SSLContext, "wrap_socket", wrap_socket)
        status, error = webhooks._post(
            f"https://shop.example.com:{port}/", b"{}", {"Content-Type": "application/json"}, 5
        )
        assert status is None and "stop here" in error
        assert seen == {
            "peer": ("127.0.0.1", port),
            "server_hostname": "shop.example.com",
            "verify": (True, ssl.CERT_REQUIRED),
        }
        assert hook.requests == []
