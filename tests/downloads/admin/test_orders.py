"""Orders in the back office: creating through order_create, and every action."""

import pytest
from django.core import mail
from django.urls import reverse

from downloads.models import DownloadGrant, Order
from downloads.services.orders import order_refund
from tests import factories
from tests.downloads.admin.conftest import action, messages_of, paid_order, product_with_file

pytestmark = pytest.mark.django_db

CHANGELIST = reverse("admin:downloads_order_changelist")
ADD = reverse("admin:downloads_order_add")


def order_form(email="buyer@example.com", lines=(), **fields):
    data = {
        "email": email,
        "number": "",
        "status": "pending",
        "lines-TOTAL_FORMS": str(len(lines)),
        "lines-INITIAL_FORMS": "0",
        "lines-MIN_NUM_FORMS": "1",
        "lines-MAX_NUM_FORMS": "100",
        **fields,
    }
    for index, line in enumerate(lines):
        for key, value in {"quantity": "1", **line}.items():
            data[f"lines-{index}-{key}"] = value
    return data


def run(client, name, order, **extra):
    """Press the change page's button for an action."""
    return client.post(reverse("admin:downloads_order_run", args=[order.pk, name]), extra)


class TestCreate:
    def test_the_add_view_creates_a_pending_order_with_sequential_number_and_snapshots(
        self, admin_client
    ):
        variant = factories.VariantFactory(name="Hardback", sku="HB-1")
        product = product_with_file(name="Guide", sku="G-1")
        data = order_form(
            email=" Buyer@Example.com",
            lines=[{"product": str(product.pk), "quantity": "2"}, {"variant": str(variant.pk)}],
        )
        response = admin_client.post(ADD, data)
        order = Order.objects.get()
        assert response["Location"] == reverse("admin:downloads_order_change", args=[order.pk])
        assert (order.number, order.email, order.status) == (1001, "buyer@example.com", "pending")
        lines = list(order.lines.values_list("name", "variant_name", "sku", "quantity"))
        assert lines == [("Guide", "", "G-1", 2), (variant.product.name, "Hardback", "HB-1", 1)]
        assert not order.grants.exists()
        assert messages_of(response) == ["Order #1001 was created for buyer@example.com."]

    def test_a_paid_order_gets_its_grants_and_the_email_after_commit(
        self, admin_client, django_capture_on_commit_callbacks
    ):
        product = product_with_file()
        data = order_form(lines=[{"product": str(product.pk)}], status="paid", send_email="on")
        with django_capture_on_commit_callbacks(execute=True):
            admin_client.post(ADD, data)
        order = Order.objects.get()
        assert order.status == "paid"
        assert order.grants.get().download_limit == 10
        assert [message.to for message in mail.outbox] == [["buyer@example.com"]]

    def test_a_taken_number_is_shown_on_the_number_field(self, admin_client):
        product = product_with_file()
        paid_order(product, number=4242)
        response = admin_client.post(
            ADD, order_form(lines=[{"product": str(product.pk)}], number="4242")
        )
        assert response.status_code == 200
        assert response.context["form"].errors["number"] == ["Order number 4242 is taken."]
        assert Order.objects.count() == 1

    def test_a_variant_of_another_product_is_refused_by_the_service(self, admin_client):
        product, variant = product_with_file(), factories.VariantFactory()
        data = order_form(lines=[{"product": str(product.pk), "variant": str(variant.pk)}])
        response = admin_client.post(ADD, data)
        assert response.status_code == 200
        assert "The variant belongs to another product." in response.content.decode()
        assert not Order.objects.exists()

    def test_an_order_needs_a_line(self, admin_client):
        response = admin_client.post(ADD, order_form(lines=[{"quantity": "1"}]))
        assert response.status_code == 200
        assert "Choose a product or a variant." in response.content.decode()
        assert not Order.objects.exists()

    def test_the_add_page_renders_for_staff_only(self, client, admin_client):
        assert admin_client.get(ADD).status_code == 200
        assert client.get(ADD).status_code == 302


class TestActions:
    def test_mark_paid_issues_grants_and_sends_the_email(
        self, admin_client, django_capture_on_commit_callbacks
    ):
        product = product_with_file()
        order = factories.OrderFactory()
        factories.OrderLineFactory(order=order, product=product)
        with django_capture_on_commit_callbacks(execute=True):
            response = admin_client.post(CHANGELIST, action("mark_paid", [order]))
        order.refresh_from_db()
        assert order.status == "paid" and order.grants.count() == 1
        assert messages_of(response) == ["Marked 1 order paid."]
        assert len(mail.outbox) == 1

    def test_mark_paid_on_a_refunded_order_reports_the_conflict(self, admin_client, order):
        order_refund(order=order)
        response = admin_client.post(CHANGELIST, action("mark_paid", [order]))
        assert messages_of(response) == [f"Order {order}: A refunded order cannot be paid."]

    def test_the_mark_paid_button_returns_to_the_order(self, admin_client):
        order = factories.OrderFactory()
        factories.OrderLineFactory(order=order, product=product_with_file())
        response = run(admin_client, "mark_paid", order)
        assert response["Location"] == reverse("admin:downloads_order_change", args=[order.pk])
        assert order.grants.count() == 1

    def test_resend_email_sends_it_and_records_when(self, admin_client, order):
        response = run(admin_client, "send_email", order)
        order.refresh_from_db()
        assert order.email_sent_at is not None
        assert mail.outbox[0].to == [order.email]
        assert messages_of(response) == ["Sent the order email for 1 order."]

    def test_resend_email_refuses_an_unpaid_order_like_the_api(self, admin_client):
        pending = factories.OrderFactory()
        response = admin_client.post(CHANGELIST, action("send_email", [pending]))
        assert messages_of(response) == [f"Order {pending}: Only a paid order's email can be sent."]
        assert mail.outbox == []

    def test_cancel_a_pending_order_and_refuse_to_cancel_a_paid_one(self, admin_client, order):
        pending = factories.OrderFactory()
        response = admin_client.post(CHANGELIST, action("cancel", [pending, order]))
        pending.refresh_from_db()
        assert pending.status == "cancelled"
        assert set(messages_of(response)) == {
            f"Order {order}: Only a pending order can be cancelled; refund a paid one.",
            "Cancelled 1 order.",
        }

    def test_refund_shows_the_lines_to_choose(self, admin_client):
        order = paid_order(product_with_file(name="Guide"), product_with_file(name="Icons"))
        response = run(admin_client, "refund", order)
        assert response.status_code == 200
        html = response.content.decode()
        assert "1 × Guide" in html and "1 × Icons" in html
        assert response.context["form"]["lines"].initial == [
            str(pk) for pk in order.lines.values_list("pk", flat=True)
        ]

    def test_refunding_chosen_lines_revokes_only_their_grants(self, admin_client):
        order = paid_order(product_with_file(name="Guide"), product_with_file(name="Icons"))
        guide = order.lines.get(name="Guide")
        response = run(admin_client, "refund", order, apply="1", lines=[str(guide.pk)])
        assert response["Location"] == reverse("admin:downloads_order_change", args=[order.pk])
        order.refresh_from_db()
        assert order.status == "paid"
        revoked = dict(order.grants.values_list("line__name", "revoked_at"))
        assert revoked["Guide"] is not None and revoked["Icons"] is None
        assert messages_of(response) == ["Refunded 1 line; their downloads are revoked."]

    def test_refunding_every_line_refunds_the_order_and_its_attached_files(self, admin_client):
        order = paid_order(product_with_file())
        extra = factories.DownloadFactory(product=None)
        admin_client.post(
            CHANGELIST, action("attach", [order], apply="1", downloads=[str(extra.pk)])
        )
        lines = [str(pk) for pk in order.lines.values_list("pk", flat=True)]
        response = admin_client.post(CHANGELIST, action("refund", [order], apply="1", lines=lines))
        order.refresh_from_db()
        assert order.status == "refunded"
        assert not order.grants.filter(revoked_at__isnull=True).exists()
        assert order.grants.count() == 2
        assert messages_of(response)[-1] == "Refunded 1 order; their downloads are revoked."

    def test_refunding_a_pending_order_reports_the_services_conflict(self, admin_client):
        order = factories.OrderFactory()
        line = factories.OrderLineFactory(order=order)
        response = admin_client.post(
            CHANGELIST, action("refund", [order], apply="1", lines=[str(line.pk)])
        )
        assert messages_of(response) == [f"Order {order}: Only a paid order can be refunded."]

    def test_attach_downloads_gives_a_paid_order_grants_at_once(self, admin_client, order):
        extra = factories.DownloadFactory(product=None)
        form = admin_client.post(CHANGELIST, action("attach", [order]))
        assert form.status_code == 200 and "Attach downloads" in form.content.decode()
        response = admin_client.post(
            CHANGELIST, action("attach", [order], apply="1", downloads=[str(extra.pk)])
        )
        assert order.downloads.get() == extra
        assert DownloadGrant.objects.filter(order=order, download=extra, line=None).exists()
        assert messages_of(response) == ["Attached 1 download to 1 order."]

    def test_detach_downloads_revokes_their_grants(self, admin_client, order):
        extra = factories.DownloadFactory(product=None)
        admin_client.post(
            CHANGELIST, action("attach", [order], apply="1", downloads=[str(extra.pk)])
        )
        response = run(admin_client, "detach", order, apply="1", downloads=[str(extra.pk)])
        assert response.status_code == 302
        assert not order.downloads.exists()
        assert order.grants.get(download=extra).revoked_at is not None


class TestChangePage:
    def test_shows_lines_grants_with_counts_and_the_buyers_page(self, admin_client, order):
        grant = order.grants.get()
        DownloadGrant.objects.filter(pk=grant.pk).update(download_count=3)
        html = admin_client.get(
            reverse("admin:downloads_order_change", args=[order.pk])
        ).content.decode()
        assert "3 / 10" in html and "active" in html
        page_url = "http://testserver" + reverse("accounts:order_detail", args=[order.access_token])
        assert f'href="{page_url}"' in html

    def test_lines_are_read_only_snapshots(self, admin_client, order):
        response = admin_client.get(reverse("admin:downloads_order_change", args=[order.pk]))
        formset = response.context["inline_admin_formsets"][0]
        assert not formset.has_add_permission and not formset.has_change_permission
        assert response.context["show_save"] is False

    def test_orders_cannot_be_deleted(self, admin_client, order):
        url = reverse("admin:downloads_order_delete", args=[order.pk])
        assert admin_client.post(url, {"post": "yes"}).status_code == 403
        assert Order.objects.filter(pk=order.pk).exists()
