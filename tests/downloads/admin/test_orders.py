"""Orders in the back office: creating through order_create, and every action."""

import re

import pytest
from django.core import mail
from django.urls import reverse

from downloads.errors import ServiceError
from downloads.models import ChannelEvent, DownloadGrant, Order, StampedCopy
from downloads.services.licences import license_key_activate
from downloads.services.orders import (
    LineInput,
    order_actions,
    order_cancel,
    order_create,
    order_dispute,
    order_pay,
    order_refund,
    order_send_email,
)
from downloads.services.stamping import stamped_copy_make
from tests import factories, pdfs
from tests.downloads.admin.conftest import (
    action,
    licence_order,
    messages_of,
    paid_order,
    product_with_file,
)

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


def readonly(html: str, field: str) -> str:
    """The text of a read-only field on a change page."""
    match = re.search(
        rf'<div class="form-row field-{field}">.*?<div class="readonly">(.*?)</div>', html, re.S
    )
    assert match, field
    return match.group(1).strip()


def cells(html: str, field: str) -> list[str]:
    """The texts of one column of a read-only inline, row by row."""
    return re.findall(rf'<td class="field-{field}">\s*<p>(.*?)</p>', html)


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

    def test_an_order_made_here_is_on_the_admin_channel_at_the_catalogue_prices(self, admin_client):
        variant = factories.VariantFactory(product__price=2500, price=None)
        priced = factories.VariantFactory(price=1500)
        data = order_form(
            lines=[{"variant": str(variant.pk), "quantity": "2"}, {"variant": str(priced.pk)}]
        )
        admin_client.post(ADD, data)
        order = Order.objects.get()
        assert (order.channel, order.currency, order.subtotal, order.total) == (
            "admin",
            "USD",
            6500,
            6500,
        )
        lines = list(order.lines.values_list("price", "quantity", "total"))
        assert lines == [(2500, 2, 5000), (1500, 1, 1500)]

    def test_a_line_can_name_its_own_unit_price(self, admin_client):
        product = product_with_file(price=2500)
        data = order_form(lines=[{"product": str(product.pk), "quantity": "3", "price": "999"}])
        admin_client.post(ADD, data)
        order = Order.objects.get()
        assert order.lines.get().price == 999 and order.total == 2997

    def test_a_negative_unit_price_is_refused_on_the_line(self, admin_client):
        product = product_with_file()
        data = order_form(lines=[{"product": str(product.pk), "price": "-1"}])
        response = admin_client.post(ADD, data)
        assert response.status_code == 200
        assert response.context["lines"].forms[0].errors["price"]
        assert not Order.objects.exists()

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


class TestList:
    @pytest.mark.parametrize(
        "currency, price, shown", [("USD", 2750, "$55.00"), ("JPY", 2750, "¥5,500")]
    )
    def test_shows_the_total_in_the_orders_currency_and_its_channel(
        self, admin_client, settings, currency, price, shown
    ):
        settings.DOWNLOADS_CURRENCY = currency
        paid_order(LineInput(product=product_with_file(), quantity=2, price=price))
        html = admin_client.get(CHANGELIST).content.decode()
        assert f'<td class="field-total_display">{shown}</td>' in html
        assert '<td class="field-channel">API</td>' in html

    def test_each_total_is_in_its_own_orders_currency(self, admin_client):
        product = product_with_file()
        paid_order(LineInput(product=product, price=1200), currency="EUR")
        paid_order(LineInput(product=product, price=1200), currency="JPY")
        html = admin_client.get(CHANGELIST).content.decode()
        assert "€12.00" in html and "¥1,200" in html

    def test_filters_by_channel_and_status(self, admin_client):
        product = product_with_file()
        shop = paid_order(product, channel="shopify", external_id="450789469", number=1)
        admin = paid_order(product, channel="admin")
        pending = factories.OrderFactory(channel="admin")
        by_channel = admin_client.get(CHANGELIST, {"channel__exact": "admin"})
        assert set(by_channel.context["cl"].result_list) == {admin, pending}
        both = admin_client.get(CHANGELIST, {"channel__exact": "admin", "status__exact": "paid"})
        assert list(both.context["cl"].result_list) == [admin]
        shopify = admin_client.get(CHANGELIST, {"channel__exact": "shopify"})
        assert list(shopify.context["cl"].result_list) == [shop]

    def test_searches_by_the_channels_external_id(self, admin_client):
        product = product_with_file()
        shop = paid_order(product, channel="stripe", external_id="cs_test_a1B2")
        paid_order(product)
        response = admin_client.get(CHANGELIST, {"q": "cs_test_a1B2"})
        assert list(response.context["cl"].result_list) == [shop]

    def test_a_disputed_order_is_flagged_in_the_list(self, admin_client, order):
        order_dispute(order=order)
        html = admin_client.get(CHANGELIST).content.decode()
        assert 'Paid <strong class="order-disputed">disputed</strong>' in html


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
        response = admin_client.post(CHANGELIST, action("cancel", [pending, order], apply="1"))
        pending.refresh_from_db()
        assert pending.status == "cancelled"
        assert set(messages_of(response)) == {
            f"Order {order}: Only a pending order can be cancelled; refund a paid one.",
            "Cancelled 1 order.",
        }

    def test_refund_shows_the_lines_to_choose_with_none_ticked(self, admin_client):
        order = paid_order(product_with_file(name="Guide"), product_with_file(name="Icons"))
        response = run(admin_client, "refund", order)
        assert response.status_code == 200
        html = response.content.decode()
        assert "1 × Guide" in html and "1 × Icons" in html
        assert not response.context["form"]["lines"].initial
        assert 'name="lines"' in html and "checked" not in html
        assert 'class="destructive" value="Refund"' in html

    def test_refunding_with_no_line_ticked_refunds_nothing(self, admin_client):
        order = paid_order(product_with_file(name="Guide"))
        response = run(admin_client, "refund", order, apply="1")
        assert response.status_code == 200
        assert response.context["form"].errors["lines"] == ["Tick at least one line to refund."]
        order.refresh_from_db()
        assert order.status == "paid" and not order.lines.filter(refunded_at__isnull=False)

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


def buttons(client, order) -> dict[str, bool]:
    """The order page's action buttons: name → destructive (red)."""
    response = client.get(reverse("admin:downloads_order_change", args=[order.pk]))
    return {item["name"]: item["destructive"] for item in response.context["object_actions"]}


class TestButtons:
    """The order page offers what its state allows (order_actions), destructive ones red and
    confirmed before anything changes."""

    def test_a_pending_order_offers_mark_paid_attach_and_a_red_cancel(self, admin_client):
        pending = factories.OrderFactory()
        assert buttons(admin_client, pending) == {
            "mark_paid": False,
            "attach": False,
            "cancel": True,
        }

    def test_a_paid_order_offers_no_mark_paid_nor_cancel(self, admin_client, order):
        assert buttons(admin_client, order) == {
            "send_email": False,
            "refund": True,
            "attach": False,
        }
        html = admin_client.get(
            reverse("admin:downloads_order_change", args=[order.pk])
        ).content.decode()
        assert "Mark paid" not in html and "Cancel order" not in html
        assert re.search(r'class="object-action-button destructive">Refund…</button>', html)

    def test_detach_is_offered_red_while_files_are_attached(self, admin_client, order):
        extra = factories.DownloadFactory(product=None)
        admin_client.post(
            CHANGELIST, action("attach", [order], apply="1", downloads=[str(extra.pk)])
        )
        assert buttons(admin_client, order)["detach"] is True

    @pytest.mark.parametrize("end", ["refunded", "cancelled"])
    def test_a_refunded_or_cancelled_order_offers_no_action(self, admin_client, end):
        order = paid_order(product_with_file()) if end == "refunded" else factories.OrderFactory()
        run(
            admin_client,
            "refund" if end == "refunded" else "cancel",
            order,
            apply="1",
            lines=[str(pk) for pk in order.lines.values_list("pk", flat=True)],
        )
        order.refresh_from_db()
        assert order.status == end
        assert buttons(admin_client, order) == {}

    @pytest.mark.parametrize("status", ["pending", "paid", "refunded", "cancelled"])
    def test_the_buttons_offered_are_the_actions_the_services_carry_out(self, admin_client, status):
        """Every action offered changes the order; every one withheld is refused by its
        service or would change nothing (paying a paid order)."""
        product = product_with_file()

        def make():
            # Through the services, so numbers come from one sequence.
            made = order_create(email="buyer@example.com", lines=[LineInput(product=product)])
            if status == "paid":
                order_pay(order=made, send_email=False)
            elif status == "refunded":
                order_pay(order=made, send_email=False)
                order_refund(order=made)
            elif status == "cancelled":
                order_cancel(order=made)
            return made

        def changed(service, order) -> bool:
            before = (order.status, order.email_sent_at, list(order.lines.values("refunded_at")))
            mail.outbox.clear()
            try:
                service(order)
            except ServiceError as exc:
                assert exc.code == "order.invalid_state", exc
                return False
            order.refresh_from_db()
            after = (order.status, order.email_sent_at, list(order.lines.values("refunded_at")))
            return after != before or bool(mail.outbox)

        services = {
            "pay": lambda o: order_pay(order=o, send_email=False),
            "cancel": lambda o: order_cancel(order=o),
            "send_email": lambda o: order_send_email(order=o),
            "refund": lambda o: order_refund(order=o, line_ids=[o.lines.first().pk]),
        }
        offered = order_actions(order=make())
        for verb, service in services.items():
            assert changed(service, make()) == (verb in offered), verb

    def test_cancel_asks_for_confirmation_before_it_takes_effect(self, admin_client):
        pending = factories.OrderFactory()
        change = reverse("admin:downloads_order_change", args=[pending.pk])
        page = run(admin_client, "cancel", pending)
        assert page.status_code == 200
        html = page.content.decode()
        assert 'class="destructive" value="Yes, cancel"' in html
        assert f'href="{change}" class="button cancel-link"' in html
        pending.refresh_from_db()
        assert pending.status == "pending"
        done = run(admin_client, "cancel", pending, apply="1")
        assert done["Location"] == change
        pending.refresh_from_db()
        assert pending.status == "cancelled"
        assert messages_of(done) == ["Cancelled 1 order."]

    def test_the_bulk_cancel_asks_for_confirmation_first(self, admin_client):
        pending = factories.OrderFactory()
        page = admin_client.post(CHANGELIST, action("cancel", [pending]))
        assert page.status_code == 200 and "Yes, cancel" in page.content.decode()
        pending.refresh_from_db()
        assert pending.status == "pending"

    def test_detach_asks_with_a_red_submit(self, admin_client, order):
        extra = factories.DownloadFactory(product=None)
        admin_client.post(
            CHANGELIST, action("attach", [order], apply="1", downloads=[str(extra.pk)])
        )
        page = run(admin_client, "detach", order)
        assert 'class="destructive" value="Detach"' in page.content.decode()
        assert order.grants.get(download=extra).revoked_at is None

    def test_a_button_the_state_no_longer_allows_changes_nothing(self, admin_client, order):
        # The page was opened while the order was pending; it has been paid since.
        response = run(admin_client, "mark_paid", order)
        assert response["Location"] == reverse("admin:downloads_order_change", args=[order.pk])
        assert messages_of(response) == ["Mark paid: not possible for this order now."]
        response = run(admin_client, "cancel", order, apply="1")
        assert messages_of(response) == ["Cancel order: not possible for this order now."]
        order.refresh_from_db()
        assert order.status == "paid" and mail.outbox == []


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

    def test_shows_every_amount_formatted_in_the_orders_currency(self, admin_client):
        product = product_with_file(name="Guide")
        order = paid_order(
            LineInput(product=product, quantity=3, price=1250),
            LineInput(product=product_with_file(name="Icons"), price=500),
            tax=475,
            channel="stripe",
            external_id="cs_test_42",
        )
        Order.objects.filter(pk=order.pk).update(payment_method="card")
        order_refund(
            order=order, quantities={str(order.lines.get(name="Guide").pk): 1}, amount=1250
        )
        html = admin_client.get(
            reverse("admin:downloads_order_change", args=[order.pk])
        ).content.decode()
        assert cells(html, "unit_price") == ["$12.50", "$5.00"]
        assert cells(html, "quantity") == ["3", "1"]
        assert cells(html, "line_total") == ["$37.50", "$5.00"]
        assert cells(html, "refunded_quantity") == ["1", "0"]
        for label, shown in [
            ("subtotal_display", "$42.50"),
            ("tax_display", "$4.75"),
            ("total_display", "$47.25"),
            ("refunded_display", "$12.50"),
            ("channel", "Stripe Checkout"),
            ("external_id", "cs_test_42"),
            ("payment_method", "card"),
        ]:
            assert readonly(html, label) == shown, label
        assert readonly(html, "paid_at") not in ("", "-")

    def test_yen_amounts_have_no_decimals(self, admin_client, settings):
        settings.DOWNLOADS_CURRENCY = "JPY"
        order = paid_order(LineInput(product=product_with_file(), quantity=2, price=1500), tax=300)
        html = admin_client.get(
            reverse("admin:downloads_order_change", args=[order.pk])
        ).content.decode()
        assert (cells(html, "unit_price"), cells(html, "line_total")) == (["¥1,500"], ["¥3,000"])
        assert (readonly(html, "subtotal_display"), readonly(html, "total_display")) == (
            "¥3,000",
            "¥3,300",
        )

    def test_a_disputed_order_is_flagged_on_its_page(self, admin_client, order):
        page = reverse("admin:downloads_order_change", args=[order.pk])
        assert "order-disputed" not in admin_client.get(page).content.decode()
        order_dispute(order=order)
        html = admin_client.get(page).content.decode()
        assert '<p class="errornote order-disputed-note">Disputed on' in html
        assert readonly(html, "disputed_at") not in ("", "-")

    def test_links_the_channel_events_of_the_order(self, admin_client, order):
        stored = ChannelEvent.objects.create(
            channel="shopify", event_id="e1", type="orders/paid", payload={}, order=order
        )
        html = admin_client.get(
            reverse("admin:downloads_order_change", args=[order.pk])
        ).content.decode()
        url = reverse("admin:downloads_channelevent_change", args=[stored.pk])
        assert f'<a href="{url}">orders/paid (Received)</a>' in html

    def test_the_refund_form_shows_each_lines_amount(self, admin_client):
        order = paid_order(LineInput(product=product_with_file(name="Guide"), price=1250))
        html = run(admin_client, "refund", order).content.decode()
        assert "1 × Guide, $12.50" in html

    def test_lines_are_read_only_snapshots(self, admin_client, order):
        response = admin_client.get(reverse("admin:downloads_order_change", args=[order.pk]))
        formset = response.context["inline_admin_formsets"][0]
        assert not formset.has_add_permission and not formset.has_change_permission
        assert response.context["show_save"] is False

    def test_a_paid_order_of_a_licence_product_shows_its_keys_per_line_linked(self, admin_client):
        guide = product_with_file(name="Guide")
        editor = factories.ProductFactory(
            name="Editor", license_keys=True, license_activation_limit=3
        )
        order = paid_order(LineInput(product=guide), LineInput(product=editor, quantity=2))
        first, second = order.license_keys.order_by("unit")
        license_key_activate(key_text=first.key, instance_name="Laptop")
        html = admin_client.get(
            reverse("admin:downloads_order_change", args=[order.pk])
        ).content.decode()
        assert '<h2 id="license_keys-heading" class="inline-heading">' in html
        links = re.findall(r'<td class="field-key_link">\s*<p><a href="([^"]+)">', html)
        assert links == [
            reverse("admin:downloads_licensekey_change", args=[key.pk]) for key in (first, second)
        ]
        assert cells(html, "item") == ["Editor, unit 1 of 2", "Editor, unit 2 of 2"]
        assert cells(html, "activations") == ["1 of 3", "0 of 3"]
        assert cells(html, "status_badge") == [
            '<span class="license-status license-status-active">Active</span>',
            '<span class="license-status license-status-inactive">Inactive</span>',
        ]

    def test_an_order_without_keys_has_no_licence_keys_section(self, admin_client, order):
        html = admin_client.get(
            reverse("admin:downloads_order_change", args=[order.pk])
        ).content.decode()
        assert "license_keys-group" not in html

    @pytest.mark.parametrize("keys", [1, 20])
    def test_the_page_takes_the_same_queries_for_1_and_20_licence_keys(
        self, admin_client, django_assert_num_queries, keys
    ):
        order = licence_order(quantity=keys)
        url = reverse("admin:downloads_order_change", args=[order.pk])
        admin_client.get(url)  # the process's content-type cache, filled once
        # session, user, the order, its lines, grants, channel events and attached files,
        # whether it has keys, and its keys with their lines
        with django_assert_num_queries(9):
            response = admin_client.get(url)
        assert response.content.decode().count('<td class="field-key_link">') == keys

    def test_orders_cannot_be_deleted(self, admin_client, order):
        url = reverse("admin:downloads_order_delete", args=[order.pk])
        assert admin_client.post(url, {"post": "yes"}).status_code == 403
        assert Order.objects.filter(pk=order.pk).exists()


class TestStampedCopies:
    """The order's grants show where each stamped copy stands, read with the grants."""

    @staticmethod
    def stamped_product(content):
        media = factories.MediaFactory(content=content, filename="Guide.pdf")
        return factories.DownloadFactory(media=media, stamp=True).product

    def test_the_grants_show_their_copy_and_an_encrypted_pdf_is_flagged(self, admin_client):
        order = paid_order(
            self.stamped_product(pdfs.book(2)),
            self.stamped_product(pdfs.encrypted()),
            product_with_file(),
        )
        copies = StampedCopy.objects.filter(grant__order=order).order_by("grant__line__position")
        stamped_copy_make(copy_id=copies[1].pk)
        html = admin_client.get(
            reverse("admin:downloads_order_change", args=[order.pk])
        ).content.decode()
        stamping = [
            re.sub(r"<[^>]+>", "", cell).strip()
            for cell in re.findall(r'<td class="field-stamping">\s*<p>(.*?)</p>', html, re.S)
        ]
        assert sorted(stamping) == sorted(
            ["Being prepared", "Delivered unstamped: The PDF is encrypted with a password.", "-"]
        )

    @pytest.mark.parametrize("files", [1, 10])
    def test_the_page_takes_the_same_queries_for_1_and_10_stamped_files(
        self, admin_client, django_assert_num_queries, files
    ):
        order = paid_order(*(self.stamped_product(pdfs.book(1)) for _ in range(files)))
        for copy in StampedCopy.objects.filter(grant__order=order):
            stamped_copy_make(copy_id=copy.pk)
        url = reverse("admin:downloads_order_change", args=[order.pk])
        admin_client.get(url)  # the process's content-type cache, filled once
        # session, user, the order, its lines, grants (their copies joined in), channel
        # events and attached files, whether it has licence keys
        with django_assert_num_queries(8):
            response = admin_client.get(url)
        assert response.content.decode().count(">Ready</span>") == files
