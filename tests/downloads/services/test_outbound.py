"""Outbound HTTP (services.outbound): where webhooks may be sent, checked at save and again
before each delivery, and a delivery that connects only to the addresses it checked."""

import socket
import ssl
import urllib.request

import pytest

from downloads.errors import ServiceError
from downloads.models import WebhookDelivery, WebhookEndpoint
from downloads.services import outbound, webhooks
from downloads.services.webhooks import (
    webhook_endpoint_create,
    webhook_endpoint_update,
)

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
        assert not outbound.address_allowed(address)

    @pytest.mark.parametrize("address", [PUBLIC_V4, PUBLIC_V6, "8.8.8.8", "::ffff:8.8.8.8"])
    def test_public_addresses_are_allowed(self, address):
        assert outbound.address_allowed(address)

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
        monkeypatch.setattr(outbound, "address_allowed", lambda address: address == "127.0.0.1")
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

        monkeypatch.setattr(outbound.socket, "getaddrinfo", lookup_once)
        delivery = webhooks.webhook_delivery_attempt(delivery_id=WebhookDelivery.objects.get().pk)
        assert delivery.status == WebhookDelivery.Status.DELIVERED
        assert fake_dns.lookups == ["shop.example.com"]
        assert hook.requests[0]["headers"]["Host"] == f"shop.example.com:{port}"

    def test_a_redirect_from_a_checked_address_is_not_followed(
        self, receiver, fake_dns, settings, paid_order, monkeypatch
    ):
        settings.DOWNLOADS_WEBHOOK_ALLOW_HTTP = True
        monkeypatch.setattr(outbound, "address_allowed", lambda address: address == "127.0.0.1")
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
        monkeypatch.setattr(outbound, "address_allowed", lambda address: address == "127.0.0.1")
        hook = receiver()
        port = hook.server.server_port
        fake_dns.names["shop.example.com"] = ["127.0.0.1"]
        seen = {}

        def wrap_socket(context, sock, server_hostname=None, **kwargs):
            seen["peer"], seen["server_hostname"] = sock.getpeername()[:2], server_hostname
            seen["verify"] = (context.check_hostname, context.verify_mode)
            raise ssl.SSLError("stop here")

        monkeypatch.setattr(ssl.SSLContext, "wrap_socket", wrap_socket)
        status, error = outbound.post(
            f"https://shop.example.com:{port}/", b"{}", {"Content-Type": "application/json"}, 5
        )
        assert status is None and "stop here" in error
        assert seen == {
            "peer": ("127.0.0.1", port),
            "server_hostname": "shop.example.com",
            "verify": (True, ssl.CERT_REQUIRED),
        }
        assert hook.requests == []
