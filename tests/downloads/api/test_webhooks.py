"""Webhooks through the API: /api/v1/webhook_endpoints (the secret shown once, rotation)
and /api/v1/webhook_deliveries (the log, retry)."""

import pytest

from downloads.models import WebhookDelivery, WebhookEndpoint
from downloads.services import webhooks
from downloads.services.webhooks import webhook_endpoint_create
from tests.downloads.services.test_outbound import REFUSED_URLS


@pytest.mark.django_db
class TestApi:
    def test_create_shows_the_secret_once_and_lists_do_not(self, api):
        response = api.post(
            "/api/v1/webhook_endpoints",
            {"url": "https://hooks.example.com/a", "event_types": ["order.paid"]},
            format="json",
        )
        assert response.status_code == 201
        body = response.json()
        assert body["object"] == "webhook_endpoint"
        assert body["secret"] == WebhookEndpoint.objects.get().secret
        listing = api.get("/api/v1/webhook_endpoints").json()
        assert listing["object"] == "list"
        assert [row["id"] for row in listing["data"]] == [body["id"]]
        assert "secret" not in listing["data"][0]
        rotated = api.post(f"/api/v1/webhook_endpoints/{body['id']}/rotate_secret").json()
        assert rotated["secret"] not in (body["secret"], None)

    def test_bad_input_is_a_422_with_the_attribute_and_read_keys_cannot_write(self, api, read_api):
        response = api.post(
            "/api/v1/webhook_endpoints",
            {"url": "ftp://x.example.com/", "event_types": ["order.paid"]},
            format="json",
        )
        assert response.status_code == 422
        assert response.json()["validation_errors"][0]["attribute"] == "url"
        response = api.post(
            "/api/v1/webhook_endpoints",
            {"url": "https://x.example.com/", "event_types": ["order.shipped"]},
            format="json",
        )
        assert response.status_code == 422
        assert response.json()["validation_errors"][0]["attribute"].startswith("event_types")
        response = read_api.post(
            "/api/v1/webhook_endpoints", {"url": "https://x.example.com/"}, format="json"
        )
        assert response.status_code == 403

    def test_update_and_delete_an_endpoint(self, api):
        endpoint = webhook_endpoint_create(url="https://a.example.com/")
        response = api.patch(
            f"/api/v1/webhook_endpoints/{endpoint.pk}",
            {"is_active": False, "event_types": ["grant.revoked"]},
            format="json",
        )
        assert response.status_code == 200
        assert (response.json()["is_active"], response.json()["event_types"]) == (
            False,
            ["grant.revoked"],
        )
        assert api.delete(f"/api/v1/webhook_endpoints/{endpoint.pk}").json()["deleted"] is True
        assert api.get(f"/api/v1/webhook_endpoints/{endpoint.pk}").status_code == 404

    @pytest.mark.parametrize("rows", [1, 20])
    def test_the_delivery_log_lists_attempts_in_constant_queries(
        self, rows, django_assert_num_queries, paid_order, api
    ):
        api.get("/api/v1/webhook_deliveries")  # the key's last_used_at is written once
        webhook_endpoint_create(url="http://127.0.0.1:9/", event_types=["order.paid"])
        for _ in range(rows):
            paid_order()
        for delivery in WebhookDelivery.objects.all():
            webhooks.webhook_delivery_attempt(delivery_id=delivery.pk)
        with django_assert_num_queries(5):  # key, count, the page's keys, its rows, attempts
            response = api.get("/api/v1/webhook_deliveries?limit=100&status=pending")
        body = response.json()
        assert body["pagination"]["count"] == rows
        assert all(len(row["attempt_log"]) == 1 for row in body["data"])
        assert body["data"][0]["attempt_log"][0]["status_code"] is None

    def test_retry_answers_202_and_a_delivered_one_409(self, receiver, paid_order, api):
        hook = receiver()
        webhook_endpoint_create(url=hook.url, event_types=["order.paid"])
        paid_order()
        delivery = WebhookDelivery.objects.get()
        response = api.post(f"/api/v1/webhook_deliveries/{delivery.pk}/retry")
        assert response.status_code == 202
        webhooks.webhook_delivery_attempt(delivery_id=delivery.pk)
        response = api.post(f"/api/v1/webhook_deliveries/{delivery.pk}/retry")
        assert response.status_code == 409
        assert response.json()["code"] == "webhook_delivery.delivered"


@pytest.mark.django_db
@pytest.mark.usefixtures("strict_webhooks")
class TestDestinations:
    """Issue 15: an endpoint may not aim at internal addresses, plain http or carry credentials."""

    @pytest.fixture(autouse=True)
    def _dns(self, fake_dns):
        fake_dns.names.update(
            {
                "example.com": ["93.184.215.14"],
                "hooks.example.com": ["93.184.215.14"],
                "internal.example.com": ["127.0.0.1"],  # a name that resolves to loopback
            }
        )

    # The service's refused URLs, but the one whose refusal needs two DNS answers.
    @pytest.mark.parametrize("url", [url for url in REFUSED_URLS if "mixed." not in url])
    def test_an_internal_local_plain_http_or_credentialed_url_is_a_422_on_url(self, api, url):
        response = api.post(
            "/api/v1/webhook_endpoints", {"url": url, "event_types": ["order.paid"]}, format="json"
        )
        assert response.status_code == 422
        body = response.json()
        assert body["code"] == "webhook_endpoint.invalid"
        assert [error["attribute"] for error in body["validation_errors"]] == ["url"]
        assert body["validation_errors"][0]["message"]
        assert not WebhookEndpoint.objects.exists()

    def test_changing_the_url_to_an_internal_one_is_a_422_on_url(self, api):
        endpoint = webhook_endpoint_create(url="https://hooks.example.com/a")
        response = api.patch(
            f"/api/v1/webhook_endpoints/{endpoint.pk}",
            {"url": "https://169.254.169.254/latest/meta-data/"},
            format="json",
        )
        assert response.status_code == 422
        assert response.json()["validation_errors"][0]["attribute"] == "url"
        endpoint.refresh_from_db()
        assert endpoint.url == "https://hooks.example.com/a"

    def test_a_public_https_url_is_accepted(self, api):
        response = api.post(
            "/api/v1/webhook_endpoints", {"url": "https://hooks.example.com/a"}, format="json"
        )
        assert response.status_code == 201
