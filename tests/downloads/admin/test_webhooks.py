"""Webhook endpoints and deliveries in the back office: registering an endpoint shows its
secret, the delivery log lists attempts and retries, rotating a secret confirms first, and an
endpoint with a log is offered deactivation instead of deletion."""

import pytest
from django.contrib.auth.models import Permission
from django.utils import timezone

from downloads.models import WebhookDelivery, WebhookEndpoint
from downloads.services import webhooks
from downloads.services.webhooks import webhook_endpoint_create
from tests import factories
from tests.downloads.admin.conftest import messages_of


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


@pytest.mark.django_db
class TestDestructive:
    """Rotating a secret confirms first; deleting an endpoint says its log goes with it and
    offers to deactivate it instead."""

    CHANGELIST = "/admin/downloads/webhookendpoint/"

    def test_rotating_the_secret_asks_for_confirmation_before_it_takes_effect(self, admin_client):
        endpoint = webhook_endpoint_create(url="https://hooks.example.com/store")
        secret = endpoint.secret
        selected = {"action": "rotate_secret", "_selected_action": [str(endpoint.pk)]}
        page = admin_client.post(self.CHANGELIST, selected)
        assert page.status_code == 200
        assert 'class="destructive" value="Yes, rotate"' in page.content.decode()
        endpoint.refresh_from_db()
        assert endpoint.secret == secret
        done = admin_client.post(self.CHANGELIST, {**selected, "apply": "1"})
        assert messages_of(done) == ["New secrets for 1 endpoint."]
        endpoint.refresh_from_db()
        assert endpoint.secret != secret

    def test_the_delete_page_of_an_endpoint_with_deliveries_offers_to_deactivate(
        self, admin_client
    ):
        endpoint = webhook_endpoint_create(url="https://hooks.example.com/store")
        WebhookDelivery.objects.create(endpoint=endpoint, event_type="order.paid", payload={})
        page = admin_client.get(f"{self.CHANGELIST}{endpoint.pk}/delete/")
        html = page.content.decode()
        assert "also erases its delivery log (1 delivery and every attempt)" in html
        deactivate = f"{self.CHANGELIST}{endpoint.pk}/deactivate/"
        assert f'action="{deactivate}"' in html
        assert admin_client.get(deactivate).status_code == 405
        response = admin_client.post(deactivate)
        assert response["Location"] == f"{self.CHANGELIST}{endpoint.pk}/change/"
        endpoint.refresh_from_db()
        assert endpoint.is_active is False
        assert endpoint.deliveries.count() == 1

    def test_deactivating_needs_the_change_permission(self, client, db):
        endpoint = webhook_endpoint_create(url="https://hooks.example.com/store")
        viewer = factories.StaffFactory(is_superuser=False)
        viewer.user_permissions.add(Permission.objects.get(codename="view_webhookendpoint"))
        client.force_login(viewer)
        assert client.post(f"{self.CHANGELIST}{endpoint.pk}/deactivate/").status_code == 403
        endpoint.refresh_from_db()
        assert endpoint.is_active is True

    def test_the_delivery_payload_has_no_inline_style(self, admin_client):
        endpoint = webhook_endpoint_create(url="https://hooks.example.com/store")
        delivery = WebhookDelivery.objects.create(
            endpoint=endpoint, event_type="order.paid", payload={"id": 1}
        )
        html = admin_client.get(f"/admin/downloads/webhookdelivery/{delivery.pk}/change/")
        assert '<pre class="webhook-payload">' in html.content.decode()
        assert "style=" not in html.content.decode().split('id="content"')[1]
