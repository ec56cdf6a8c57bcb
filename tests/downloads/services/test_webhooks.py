# --- The verification snippet from README.md ("Webhooks"), copied literally -------------------
import hashlib
import hmac
import inspect
import time
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

    def test_a_payment_s_events_arrive_in_causal_order_from_one_worker(self, receiver, run_worker):
        hook = receiver()
        webhook_endpoint_create(url=hook.url)  # every event type
        product = factories.ProductFactory(license_keys=True)
        factories.DownloadFactory(product=product)
        order_create(
            email="buyer@example.com",
            lines=[LineInput(product=product)],
            status=Order.Status.PAID,
            send_email=False,
        )
        queued = list(
            WebhookDelivery.objects.order_by("created_at").values_list("event_type", flat=True)
        )
        causal = ["order.created", "order.paid", "grant.created", "license_key.created"]
        assert queued == causal
        run_worker()
        assert [event["type"] for event in hook.events()] == causal


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


@pytest.mark.django_db(transaction=True)
def test_a_failure_recorded_after_another_run_delivered_the_event_leaves_it_delivered(
    paid_order,
):
    # Two runs of one delivery at once (a task taken over from a worker that only seemed dead):
    # run B's request is answered 500 only after run A has delivered and recorded it.
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    from django.db import connection

    seen = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):
            self.rfile.read(int(self.headers["Content-Length"]))
            seen.append(self.headers[webhooks.ID_HEADER])
            status = 200
            if len(seen) == 1:  # run B's request: run A goes through meanwhile
                try:
                    webhooks.webhook_delivery_attempt(delivery_id=seen[0])
                finally:
                    connection.close()
                status = 500
            self.send_response(status)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{server.server_port}/hooks"
        webhook_endpoint_create(url=url, event_types=["order.paid"])
        paid_order()
        delivery = WebhookDelivery.objects.get()

        run_b = webhooks.webhook_delivery_attempt(delivery_id=delivery.pk)
    finally:
        server.shutdown()
        server.server_close()

    assert seen == [str(delivery.pk)] * 2  # both sent it, with the same Webhook-Id
    assert run_b.status == WebhookDelivery.Status.DELIVERED
    delivery.refresh_from_db()
    assert (delivery.status, delivery.attempts) == (WebhookDelivery.Status.DELIVERED, 1)
    assert sorted(a.status_code for a in delivery.attempt_log.all()) == [200, 500]
    # No retry was queued over the delivered event.
    assert DBTaskResult.objects.filter(task_path="downloads.tasks.webhook_deliver").count() == 1
