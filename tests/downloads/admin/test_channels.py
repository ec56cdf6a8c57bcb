"""Channel events in the back office: the inbox listed by status and channel, each shown as it
came in (payload escaped), never added or deleted here, and *Process again* through
channel_event_process_again.

Most tests point the Shopify handler at `match_by_sku` below (through the HANDLERS map the
service reads), so they prove the admin's wiring whatever the real handlers decide; one
test runs the real Shopify handler on an order whose product was missing.
"""

import pytest
from django.contrib.auth.models import Permission
from django.urls import reverse

from downloads.errors import ServiceError
from downloads.models import ChannelEvent, Order, Product
from downloads.services import channels
from downloads.services.channels import Outcome
from downloads.services.orders import LineInput, order_intake
from tests import factories
from tests.downloads.admin.conftest import action, messages_of

pytestmark = pytest.mark.django_db

CHANGELIST = reverse("admin:downloads_channelevent_changelist")
Status = ChannelEvent.Status


def match_by_sku(event: ChannelEvent) -> Outcome:
    """A stand-in handler: the order for the payload's id, when its SKU is in the catalogue."""
    payload = event.payload
    if payload.get("explode"):
        raise ServiceError("The payload is not an order.", code="channel_event.invalid")
    product = Product.objects.filter(sku=payload["sku"]).first()
    if product is None:
        return Outcome(Status.UNMATCHED, error=f"No product with SKU {payload['sku']!r}.")
    order, _ = order_intake(
        channel=event.channel,
        external_id=str(payload["id"]),
        email="buyer@example.com",
        lines=[LineInput(product=product)],
    )
    return Outcome(Status.PROCESSED, order=order)


@pytest.fixture
def handler(monkeypatch):
    monkeypatch.setitem(
        channels.HANDLERS, Order.Channel.SHOPIFY, f"{__name__}.{match_by_sku.__name__}"
    )


def event(channel="shopify", type="orders/paid", status=Status.UNMATCHED, **fields):
    fields.setdefault("event_id", f"evt-{ChannelEvent.objects.count() + 1}")
    fields.setdefault("payload", {"id": 820982911946154508, "sku": "GUIDE-1"})
    return ChannelEvent.objects.create(channel=channel, type=type, status=status, **fields)


def change_url(obj):
    return reverse("admin:downloads_channelevent_change", args=[obj.pk])


def listed(response) -> list:
    return list(response.context["cl"].result_list)


class TestList:
    def test_shows_channel_type_status_attempts_the_order_and_an_error_excerpt(self, admin_client):
        order = factories.OrderFactory(number=4321)
        event(error="x" * 300, attempts=2, order=order)
        html = admin_client.get(CHANGELIST).content.decode()
        assert "orders/paid" in html and "Shopify" in html and "Unmatched" in html
        assert f'href="{reverse("admin:downloads_order_change", args=[order.pk])}"' in html
        assert "#4321" in html
        assert "x" * 79 + "…" in html and "x" * 81 not in html

    @pytest.mark.parametrize(
        "params, expected",
        [
            ({"status__exact": "failed"}, ["e-failed"]),
            ({"status__exact": "unmatched"}, ["e-unmatched"]),
            ({"channel__exact": "stripe"}, ["e-stripe"]),
            ({"q": "e-fail"}, ["e-failed"]),
            ({"q": "checkout.session"}, ["e-stripe"]),
        ],
    )
    def test_filters_by_status_and_channel_and_searches_event_id_and_type(
        self, admin_client, params, expected
    ):
        event(event_id="e-failed", status=Status.FAILED)
        event(event_id="e-unmatched", status=Status.UNMATCHED)
        event(
            event_id="e-stripe",
            channel="stripe",
            type="checkout.session.completed",
            status=Status.PROCESSED,
        )
        response = admin_client.get(CHANGELIST, params)
        assert [e.event_id for e in listed(response)] == expected

    def test_events_are_never_added_or_deleted_by_hand(self, admin_client):
        stored = event()
        assert admin_client.get(reverse("admin:downloads_channelevent_add")).status_code == 403
        delete = reverse("admin:downloads_channelevent_delete", args=[stored.pk])
        assert admin_client.post(delete, {"post": "yes"}).status_code == 403
        choices = admin_client.get(CHANGELIST).context["action_form"].fields["action"].choices
        assert [name for name, _ in choices if name] == ["process_again"]
        assert ChannelEvent.objects.filter(pk=stored.pk).exists()


class TestChangePage:
    def test_shows_the_payload_pretty_printed_and_escaped_and_the_error(self, admin_client):
        stored = event(
            payload={"note": "<script>alert(1)</script>", "id": 7},
            error="channel_event.invalid: <b>no</b> line items",
        )
        response = admin_client.get(change_url(stored))
        html = response.content.decode()
        assert response.context["show_save"] is False
        assert "<script>alert(1)</script>" not in html
        assert (
            '<pre class="channel-event-payload">{\n  &quot;id&quot;: 7,\n'
            "  &quot;note&quot;: &quot;&lt;script&gt;alert(1)&lt;/script&gt;&quot;\n}</pre>"
        ) in html
        assert "channel_event.invalid: &lt;b&gt;no&lt;/b&gt; line items" in html

    def test_a_post_to_the_change_page_changes_nothing(self, admin_client):
        stored = event()
        response = admin_client.post(change_url(stored), {"status": "processed"})
        assert response.status_code == 403
        stored.refresh_from_db()
        assert stored.status == Status.UNMATCHED


class TestProcessAgain:
    def test_an_unmatched_event_becomes_processed_once_its_product_exists(
        self, admin_client, handler
    ):
        stored = event()
        factories.ProductFactory(sku="GUIDE-1", name="Guide")
        response = admin_client.post(CHANGELIST, action("process_again", [stored]))
        assert response.status_code == 302
        stored.refresh_from_db()
        order = Order.objects.get(channel="shopify", external_id="820982911946154508")
        assert (stored.status, stored.order, stored.attempts, stored.error) == (
            Status.PROCESSED,
            order,
            1,
            "",
        )
        assert messages_of(response) == [
            "Processed 1 event again: 1 processed, 0 unmatched, 0 failed."
        ]

    def test_the_bulk_action_reports_each_outcome_and_names_what_is_still_wrong(
        self, admin_client, handler
    ):
        factories.ProductFactory(sku="GUIDE-1")
        matched = event(event_id="a", payload={"id": 1, "sku": "GUIDE-1"})
        missing = event(event_id="b", payload={"id": 2, "sku": "NOPE"})
        broken = event(event_id="c", status=Status.FAILED, payload={"explode": True})
        response = admin_client.post(
            CHANGELIST, action("process_again", [matched, missing, broken])
        )
        statuses = dict(ChannelEvent.objects.values_list("event_id", "status"))
        assert statuses == {"a": "processed", "b": "unmatched", "c": "failed"}
        assert sorted(messages_of(response)) == [
            "Processed 3 events again: 1 processed, 1 unmatched, 1 failed.",
            "Shopify orders/paid b: unmatched: No product with SKU 'NOPE'.",
            "Shopify orders/paid c: failed: channel_event.invalid: The payload is not an order.",
        ]

    def test_the_change_page_button_processes_that_event_and_returns_there(
        self, admin_client, handler
    ):
        stored = event()
        factories.ProductFactory(sku="GUIDE-1")
        page = admin_client.get(change_url(stored)).content.decode()
        run = reverse("admin:downloads_channelevent_run", args=[stored.pk, "process_again"])
        assert f'action="{run}"' in page and "Process again" in page
        response = admin_client.post(run)
        assert response["Location"] == change_url(stored)
        stored.refresh_from_db()
        assert stored.status == Status.PROCESSED

    def test_processing_again_needs_the_change_permission(self, client):
        staff = factories.UserFactory(is_staff=True)
        staff.user_permissions.add(Permission.objects.get(codename="view_channelevent"))
        client.force_login(staff)
        stored = event()
        run = reverse("admin:downloads_channelevent_run", args=[stored.pk, "process_again"])
        assert client.post(run).status_code == 403
        assert "Process again" not in client.get(change_url(stored)).content.decode()
        stored.refresh_from_db()
        assert stored.attempts == 0

    def test_the_shopify_handler_adds_the_order_once_the_missing_product_is_mapped(
        self, admin_client, settings
    ):
        settings.DOWNLOADS_CURRENCY = "USD"
        payload = {
            "id": 5550001,
            "order_number": 1234,
            "email": "buyer@example.com",
            "currency": "USD",
            "financial_status": "paid",
            "total_tax": "0.00",
            "line_items": [
                {
                    "id": 9001,
                    "product_id": 777,
                    "variant_id": 888,
                    "sku": "ICONS-1",
                    "quantity": 1,
                    "price": "19.00",
                    "title": "Icons",
                },
            ],
        }
        stored = event(type="orders/paid", status=Status.RECEIVED, payload=payload)
        admin_client.post(CHANGELIST, action("process_again", [stored]))
        stored.refresh_from_db()
        assert stored.status == Status.UNMATCHED and stored.order is None

        factories.ProductFactory(sku="ICONS-1", name="Icons")
        response = admin_client.post(CHANGELIST, action("process_again", [stored]))
        stored.refresh_from_db()
        assert stored.status == Status.PROCESSED
        order = stored.order
        assert (order.channel, order.number, order.status, order.total) == (
            "shopify",
            1234,
            "paid",
            1900,
        )
        assert messages_of(response) == [
            "Processed 1 event again: 1 processed, 0 unmatched, 0 failed."
        ]
