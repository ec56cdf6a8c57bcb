"""Webhook endpoints and deliveries in the back office: registering an endpoint shows its
secret, and the delivery log lists attempts and retries."""

import pytest
from django.utils import timezone

from downloads.models import WebhookDelivery, WebhookEndpoint
from downloads.services import webhooks
from downloads.services.webhooks import webhook_endpoint_create


@pytest.mark.django_db
class TestAdmin:
    def test_a_merchant_registers_an_endpoint_and_sees_its_secret(self, client, staff):
        client.force_login(staff)
        response = client.post(
            "/admin/downloads/webhookendpoint/add/",
            {
                "url": "https://hooks.example.com/store",
                "description": "CRM",
                "event_types": ["order.paid", "order.refunded"],
                "is_active": "on",
            },
        )
        assert response.status_code == 302
        endpoint = WebhookEndpoint.objects.get()
        assert endpoint.event_types == ["order.paid", "order.refunded"]
        page = client.get(f"/admin/downloads/webhookendpoint/{endpoint.pk}/change/")
        assert endpoint.secret in page.content.decode()

    def test_a_bad_url_shows_on_the_form(self, client, staff):
        client.force_login(staff)
        response = client.post(
            "/admin/downloads/webhookendpoint/add/", {"url": "ftp://x.example.com/"}
        )
        assert response.status_code == 200
        assert "errorlist" in response.content.decode()
        assert not WebhookEndpoint.objects.exists()

    def test_the_delivery_log_lists_attempts_and_retry_now_queues_one(
        self, client, staff, django_assert_max_num_queries, paid_order
    ):
        client.force_login(staff)
        endpoint = webhook_endpoint_create(url="http://127.0.0.1:9/")
        for _ in range(3):
            paid_order()
        with django_assert_max_num_queries(8):
            listing = client.get("/admin/downloads/webhookdelivery/")
        assert listing.status_code == 200
        delivery = WebhookDelivery.objects.filter(endpoint=endpoint).first()
        webhooks.webhook_delivery_attempt(delivery_id=delivery.pk)  # port 9: refused
        page = client.get(f"/admin/downloads/webhookdelivery/{delivery.pk}/change/")
        assert page.status_code == 200
        assert "refused" in page.content.decode().lower()
        response = client.post(
            "/admin/downloads/webhookdelivery/",
            {"action": "retry_now", "_selected_action": [str(delivery.pk)]},
        )
        assert response.status_code == 302
        delivery.refresh_from_db()
        assert delivery.next_attempt_at <= timezone.now()


@pytest.mark.django_db
def test_an_internal_url_shows_on_the_url_field(client, staff, strict_webhooks):
    client.force_login(staff)
    response = client.post(
        "/admin/downloads/webhookendpoint/add/",
        {"url": "https://169.254.169.254/latest/meta-data/", "is_active": "on"},
    )
    assert response.status_code == 200
    errors = response.context["adminform"].form.errors
    assert list(errors) == ["url"]
    assert "169.254.169.254" in errors["url"][0]
    assert not WebhookEndpoint.objects.exists()
