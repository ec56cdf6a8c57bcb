"""Orders through /api/v1/orders: create (with its amounts, once per external_id), pay,
refund (by line or amount), attach/detach, send_email, filters."""

from datetime import UTC, datetime

import pytest
from django.core import mail

from downloads.models import DownloadGrant, Order
from downloads.money import MAX_AMOUNT
from tests import factories

pytestmark = pytest.mark.django_db


def _product_with_file(**kwargs):
    product = factories.ProductFactory(**kwargs)
    factories.DownloadFactory(product=product)
    return product


def test_create_order_by_variant_product_and_sku_answers_lines_and_page_url(api):
    variant = factories.VariantFactory(sku="VAR-EPUB")
    product = factories.ProductFactory(sku="BOOK")
    response = api.post(
        "/api/v1/orders",
        {
            "email": "Buyer@Example.com",
            "lines": [
                {"variant": str(variant.pk)},
                {"product": str(product.pk), "quantity": 2},
                {"sku": "VAR-EPUB"},
            ],
            "send_email": False,
        },
        format="json",
    )
    assert response.status_code == 201, response.json()
    body = response.json()
    order = Order.objects.get(pk=body["id"])
    assert body["object"] == "order" and body["status"] == "pending"
    assert body["email"] == "buyer@example.com" and body["number"] == order.number
    assert [line["variant"] for line in body["lines"]] == [str(variant.pk), None, str(variant.pk)]
    assert body["lines"][1]["quantity"] == 2 and body["lines"][1]["sku"] == "BOOK"
    assert body["customer_page_url"] == f"http://testserver/account/orders/{order.access_token}/"
    assert body["downloads"] == []


def test_create_paid_order_issues_grants_and_emails_the_buyer(
    api, django_capture_on_commit_callbacks
):
    product = _product_with_file()
    with django_capture_on_commit_callbacks(execute=True):
        response = api.post(
            "/api/v1/orders",
            {"email": "b@example.com", "status": "paid", "lines": [{"product": str(product.pk)}]},
            format="json",
        )
    assert response.status_code == 201
    order = Order.objects.get(pk=response.json()["id"])
    assert order.status == "paid" and order.grants.count() == 1
    assert [message.to for message in mail.outbox] == [["b@example.com"]]


def test_unknown_line_target_is_422_naming_the_line(api):
    response = api.post(
        "/api/v1/orders",
        {"email": "b@example.com", "lines": [{"sku": "NOPE"}]},
        format="json",
    )
    assert response.status_code == 422
    assert response.json()["validation_errors"][0]["attribute"] == "lines[0].sku"


def test_every_unknown_line_target_is_named_and_nothing_is_created(api):
    product = factories.ProductFactory()
    missing = "00000000-0000-0000-0000-000000000000"
    response = api.post(
        "/api/v1/orders",
        {
            "email": "b@example.com",
            "lines": [{"variant": missing}, {"product": str(product.pk)}, {"sku": "NOPE"}],
        },
        format="json",
    )
    assert response.status_code == 422
    body = response.json()
    assert body["code"] == "order.invalid"
    assert [
        (error["attribute"], error["code"], error["message"]) for error in body["validation_errors"]
    ] == [
        ("lines[0].variant", "does_not_exist", f"No variant {missing}."),
        ("lines[2].sku", "does_not_exist", "No sku NOPE."),
    ]
    assert not Order.objects.exists()


def test_an_unknown_download_to_attach_on_create_is_422_naming_it(api):
    product = factories.ProductFactory()
    missing = "00000000-0000-0000-0000-000000000000"
    response = api.post(
        "/api/v1/orders",
        {"email": "b@example.com", "lines": [{"product": str(product.pk)}], "downloads": [missing]},
        format="json",
    )
    assert response.status_code == 422
    assert response.json()["validation_errors"] == [
        {
            "attribute": "downloads",
            "code": "does_not_exist",
            "message": f"No such download: {missing}.",
        }
    ]
    assert not Order.objects.exists()


@pytest.mark.parametrize(
    "line",
    [
        {},
        {"sku": "A", "product": "00000000-0000-0000-0000-000000000000"},
        {"sku": "A", "quantity": 0},
    ],
)
def test_a_line_needs_exactly_one_target_and_a_positive_quantity(api, line):
    factories.ProductFactory(sku="A")
    response = api.post(
        "/api/v1/orders", {"email": "b@example.com", "lines": [line]}, format="json"
    )
    assert response.status_code == 422
    assert response.json()["validation_errors"][0]["attribute"].startswith("lines[0]")


def test_taken_order_number_is_409(api):
    existing = factories.OrderFactory()
    product = factories.ProductFactory()
    response = api.post(
        "/api/v1/orders",
        {
            "email": "b@example.com",
            "number": existing.number,
            "lines": [{"product": str(product.pk)}],
        },
        format="json",
    )
    assert response.status_code == 409 and response.json()["code"] == "order.number_taken"


def test_pay_issues_grants_once_and_refunded_orders_cannot_be_paid(api):
    line = factories.OrderLineFactory(product=_product_with_file())
    order = line.order
    first = api.post(f"/api/v1/orders/{order.pk}/pay")
    assert first.status_code == 200 and first.json()["status"] == "paid"
    api.post(f"/api/v1/orders/{order.pk}/pay")
    assert order.grants.count() == 1
    api.post(f"/api/v1/orders/{order.pk}/refund")
    again = api.post(f"/api/v1/orders/{order.pk}/pay")
    assert again.status_code == 409 and again.json()["code"] == "order.invalid_state"


def test_refund_of_one_line_revokes_only_that_lines_grants(api):
    order = factories.OrderFactory()
    kept = factories.OrderLineFactory(order=order, product=_product_with_file())
    refunded = factories.OrderLineFactory(order=order, product=_product_with_file())
    api.post(f"/api/v1/orders/{order.pk}/pay")
    response = api.post(
        f"/api/v1/orders/{order.pk}/refund", {"line_ids": [str(refunded.pk)]}, format="json"
    )
    assert response.status_code == 200
    lines = {line["id"]: line for line in response.json()["lines"]}
    assert isinstance(lines[str(refunded.pk)]["refunded_at"], int)
    assert lines[str(kept.pk)]["refunded_at"] is None
    assert response.json()["status"] == "paid"
    assert DownloadGrant.objects.get(line=refunded).revoked_at is not None
    assert DownloadGrant.objects.get(line=kept).revoked_at is None


def test_refund_of_a_line_of_another_order_is_422(api):
    order = factories.OrderLineFactory(product=_product_with_file()).order
    api.post(f"/api/v1/orders/{order.pk}/pay")
    other_line = factories.OrderLineFactory()
    response = api.post(
        f"/api/v1/orders/{order.pk}/refund", {"line_ids": [str(other_line.pk)]}, format="json"
    )
    assert response.status_code == 422
    assert response.json()["validation_errors"][0]["attribute"] == "line_ids"


def test_attach_with_download_ids_on_a_paid_order_issues_grants_at_once(api):
    order = factories.OrderFactory(status=Order.Status.PAID)
    bonus = factories.DownloadFactory(product=None)
    response = api.post(
        f"/api/v1/orders/{order.pk}/attach", {"download_ids": [str(bonus.pk)]}, format="json"
    )
    assert response.status_code == 200
    assert response.json()["downloads"] == [str(bonus.pk)]
    grant = DownloadGrant.objects.get(order=order, download=bonus)
    assert grant.line_id is None and grant.revoked_at is None


def test_attach_with_fileflare_asset_ids_and_detach_revokes(api):
    order = factories.OrderFactory(status=Order.Status.PAID)
    asset = factories.LinkDownloadFactory(product=None)
    attached = api.post(
        f"/api/v1/orders/{order.pk}/attach", {"asset_ids": [str(asset.pk)]}, format="json"
    )
    assert attached.json()["downloads"] == [str(asset.pk)]
    detached = api.post(
        f"/api/v1/orders/{order.pk}/detach", {"asset_ids": [str(asset.pk)]}, format="json"
    )
    assert detached.status_code == 200 and detached.json()["downloads"] == []
    assert DownloadGrant.objects.get(order=order, download=asset).revoked_at is not None


def test_attach_on_a_pending_order_waits_for_payment(api):
    order = factories.OrderFactory()
    bonus = factories.DownloadFactory(product=None)
    api.post(f"/api/v1/orders/{order.pk}/attach", {"download_ids": [str(bonus.pk)]}, format="json")
    assert not order.grants.exists()


@pytest.mark.parametrize(
    "body", [{}, {"download_ids": []}, {"download_ids": ["00000000-0000-0000-0000-000000000000"]}]
)
def test_attach_needs_existing_downloads(api, body):
    order = factories.OrderFactory()
    response = api.post(f"/api/v1/orders/{order.pk}/attach", body, format="json")
    assert response.status_code == 422
    assert response.json()["validation_errors"][0]["attribute"] == "download_ids"


def test_send_email_sends_the_order_page_link_and_records_the_time(api):
    order = factories.OrderLineFactory(
        order__status=Order.Status.PAID, product=_product_with_file()
    ).order
    response = api.post(f"/api/v1/orders/{order.pk}/send_email")
    assert response.status_code == 200
    assert isinstance(response.json()["email_sent_at"], int)
    assert len(mail.outbox) == 1 and order.access_token in mail.outbox[0].body


def test_send_email_of_a_pending_order_is_409(api):
    order = factories.OrderFactory()
    response = api.post(f"/api/v1/orders/{order.pk}/send_email")
    assert response.status_code == 409


def test_cancel_a_pending_order(api):
    order = factories.OrderFactory()
    assert api.post(f"/api/v1/orders/{order.pk}/cancel").json()["status"] == "cancelled"


def test_order_filters_and_search(api, customer):
    mine = factories.OrderFactory(email=customer.email, customer=customer, status=Order.Status.PAID)
    factories.OrderFactory(email="else@example.com")
    for query in (
        f"number={mine.number}",
        f"email={customer.email.upper()}",
        "status=paid",
        f"customer_ids[]={customer.pk}",
        f"search={mine.number}",
        f"search={customer.email[:6]}",
    ):
        ids = [row["id"] for row in api.get(f"/api/v1/orders?{query}").json()["data"]]
        assert ids == [str(mine.pk)], query


def test_orders_cannot_be_deleted_or_patched(api):
    order = factories.OrderFactory()
    assert api.delete(f"/api/v1/orders/{order.pk}").status_code == 405
    response = api.patch(f"/api/v1/orders/{order.pk}", {}, format="json")
    assert response.status_code == 405
    assert response.json()["code"] == "request.method_not_allowed"


# --- Money ----------------------------------------------------------------------------------------


def _create(api, **body):
    body.setdefault("email", "b@example.com")
    body.setdefault("send_email", False)
    return api.post("/api/v1/orders", body, format="json")


def test_create_prices_lines_from_the_catalogue_or_the_body_and_totals_with_tax(api):
    product = factories.ProductFactory(price=2500)
    inheriting = factories.VariantFactory(price=None, product__price=1800)
    response = _create(
        api,
        tax=630,
        lines=[
            {"product": str(product.pk), "quantity": 2},
            {"variant": str(inheriting.pk)},
            {"product": str(product.pk), "price": 1000, "external_id": "li-3"},
        ],
    )
    assert response.status_code == 201, response.json()
    body = response.json()
    assert [(line["price"], line["total"]) for line in body["lines"]] == [
        (2500, 5000),
        (1800, 1800),
        (1000, 1000),
    ]
    assert [line["external_id"] for line in body["lines"]] == ["", "", "li-3"]
    assert (body["currency"], body["subtotal"], body["tax"], body["total"]) == (
        "USD",
        7800,
        630,
        8430,
    )
    assert (body["channel"], body["external_id"], body["refunded_total"]) == ("api", None, 0)
    order = Order.objects.get(pk=body["id"])
    assert (order.subtotal, order.total, order.channel) == (7800, 8430, "api")


def test_a_yen_order_takes_whole_yen_and_a_lower_case_code(api):
    product = factories.ProductFactory(price=2500)
    response = _create(
        api, currency="jpy", lines=[{"product": str(product.pk), "price": 4900, "quantity": 3}]
    )
    assert response.status_code == 201, response.json()
    body = response.json()
    assert (body["currency"], body["subtotal"], body["total"]) == ("JPY", 14700, 14700)
    assert body["lines"][0]["price"] == 4900


def test_a_store_in_yen_charges_its_catalogue_prices_in_yen(api, settings):
    settings.DOWNLOADS_CURRENCY = "JPY"
    product = factories.ProductFactory(price=4900)
    body = _create(api, lines=[{"product": str(product.pk)}]).json()
    assert (body["currency"], body["total"]) == ("JPY", 4900)


def test_an_order_in_another_currency_names_every_lines_price(api):
    product = factories.ProductFactory(price=2500)
    response = _create(
        api,
        currency="EUR",
        lines=[{"product": str(product.pk), "price": 2300}, {"product": str(product.pk)}],
    )
    assert response.status_code == 422
    body = response.json()
    assert body["code"] == "order.invalid"
    assert body["validation_errors"][0]["attribute"] == "lines"
    assert not Order.objects.exists()


@pytest.mark.parametrize("currency", ["XYZ", "US", "dollars", "", 840, None])
def test_a_currency_that_is_not_iso_4217_is_422_naming_it(api, currency):
    product = factories.ProductFactory()
    response = _create(api, currency=currency, lines=[{"product": str(product.pk)}])
    assert response.status_code == 422
    body = response.json()
    assert body["http_status"] == "unprocessable_entity" and body["code"] == "order.invalid"
    assert [error["attribute"] for error in body["validation_errors"]] == ["currency"]
    assert not Order.objects.exists()


@pytest.mark.parametrize(
    ("change", "attribute"),
    [
        ({"tax": -1}, "tax"),
        ({"tax": MAX_AMOUNT + 1}, "tax"),
        ({"tax": 10**30}, "tax"),
        ({"tax": 1.5}, "tax"),
        ({"tax": "ten"}, "tax"),
        ({"price": -1}, "lines[0].price"),
        ({"price": MAX_AMOUNT + 1}, "lines[0].price"),
        ({"price": 0.99}, "lines[0].price"),
        ({"price": "9.99"}, "lines[0].price"),
        # Each amount in bounds, their sum not: the service refuses the total.
        ({"price": MAX_AMOUNT, "quantity": 2}, "total"),
        ({"price": MAX_AMOUNT, "tax": 1}, "total"),
    ],
)
def test_amounts_that_are_negative_huge_or_not_whole_are_422_not_500(api, change, attribute):
    product = factories.ProductFactory()
    line = {"product": str(product.pk), "quantity": change.pop("quantity", 1)}
    if "price" in change:
        line["price"] = change.pop("price")
    response = _create(api, lines=[line], **change)
    assert response.status_code == 422, response.json()
    assert response.json()["validation_errors"][0]["attribute"] == attribute
    assert not Order.objects.exists()


def test_the_order_shows_its_channel_amounts_payment_and_dispute(api):
    paid_at = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
    order = factories.OrderFactory(
        status=Order.Status.PAID,
        channel=Order.Channel.SHOPIFY,
        external_id="820982911946154508",
        currency="EUR",
        subtotal=4000,
        tax=760,
        total=4760,
        refunded_total=1000,
        payment_method="card",
        paid_at=paid_at,
        disputed_at=paid_at,
    )
    factories.OrderLineFactory(
        order=order,
        price=2000,
        quantity=2,
        total=4000,
        external_id="466157049",
        refunded_quantity=1,
    )
    body = api.get(f"/api/v1/orders/{order.pk}").json()
    assert {key: body[key] for key in ("channel", "external_id", "currency", "payment_method")} == {
        "channel": "shopify",
        "external_id": "820982911946154508",
        "currency": "EUR",
        "payment_method": "card",
    }
    assert (body["subtotal"], body["tax"], body["total"], body["refunded_total"]) == (
        4000,
        760,
        4760,
        1000,
    )
    assert body["paid_at"] == body["disputed_at"] == int(paid_at.timestamp())
    [line] = body["lines"]
    assert (line["price"], line["total"], line["quantity"], line["refunded_quantity"]) == (
        2000,
        4000,
        2,
        1,
    )
    assert line["external_id"] == "466157049" and line["refunded_at"] is None


# --- One order per external_id --------------------------------------------------------------------


def test_the_same_external_id_twice_answers_201_then_200_with_the_first_order(
    api, django_capture_on_commit_callbacks
):
    product = _product_with_file()
    first = _create(api, external_id="cart-42", lines=[{"product": str(product.pk)}])
    assert first.status_code == 201, first.json()
    assert first.json()["external_id"] == "cart-42" and first.json()["status"] == "pending"
    with django_capture_on_commit_callbacks(execute=True):
        again = _create(
            api,
            external_id="cart-42",
            email="other@example.com",
            status="paid",
            send_email=True,
            lines=[{"product": str(product.pk), "quantity": 5}],
        )
    assert again.status_code == 200, again.json()
    assert again.json()["id"] == first.json()["id"]
    assert again.json() == api.get(f"/api/v1/orders/{first.json()['id']}").json()
    order = Order.objects.get()
    assert (order.status, order.email, order.lines.get().quantity) == (
        "pending",
        "b@example.com",
        1,
    )
    assert not order.grants.exists() and mail.outbox == []


def test_an_external_id_of_another_channel_is_another_order(api):
    shopify = factories.OrderFactory(channel=Order.Channel.SHOPIFY, external_id="1001")
    product = factories.ProductFactory()
    response = _create(api, external_id="1001", lines=[{"product": str(product.pk)}])
    assert response.status_code == 201 and response.json()["id"] != str(shopify.pk)
    assert Order.objects.filter(external_id="1001").count() == 2


def test_a_blank_external_id_is_422(api):
    product = factories.ProductFactory()
    response = _create(api, external_id="  ", lines=[{"product": str(product.pk)}])
    assert response.status_code == 422
    assert response.json()["validation_errors"][0]["attribute"] == "external_id"


# --- Refunds by amount ----------------------------------------------------------------------------


def _paid(api, *products, **body):
    lines = [{"product": str(product.pk)} for product in products]
    response = _create(api, status="paid", lines=lines, **body)
    assert response.status_code == 201, response.json()
    return Order.objects.get(pk=response.json()["id"])


def test_refund_of_an_amount_alone_records_it_and_revokes_nothing(api):
    order = _paid(api, _product_with_file(price=2500), tax=500)
    response = api.post(f"/api/v1/orders/{order.pk}/refund", {"amount": 700}, format="json")
    assert response.status_code == 200, response.json()
    body = response.json()
    assert (body["status"], body["refunded_total"], body["total"]) == ("paid", 700, 3000)
    assert body["lines"][0]["refunded_at"] is None
    assert not order.grants.filter(revoked_at__isnull=False).exists()


def test_refund_of_a_line_records_its_total_or_the_amount_named(api):
    order = _paid(api, _product_with_file(price=2500), _product_with_file(price=1000))
    first, second = order.lines.order_by("position")
    by_line = api.post(
        f"/api/v1/orders/{order.pk}/refund", {"line_ids": [str(first.pk)]}, format="json"
    ).json()
    assert (by_line["status"], by_line["refunded_total"]) == ("paid", 2500)
    assert by_line["lines"][0]["refunded_quantity"] == 1
    with_amount = api.post(
        f"/api/v1/orders/{order.pk}/refund",
        {"line_ids": [str(second.pk)], "amount": 400},
        format="json",
    ).json()
    assert (with_amount["status"], with_amount["refunded_total"]) == ("refunded", 2900)
    assert not order.grants.filter(revoked_at__isnull=True).exists()


def test_refund_of_the_whole_order_records_what_is_left_of_the_total(api):
    order = _paid(api, _product_with_file(price=2500), tax=500)
    api.post(f"/api/v1/orders/{order.pk}/refund", {"amount": 1000}, format="json")
    body = api.post(f"/api/v1/orders/{order.pk}/refund").json()
    assert (body["status"], body["refunded_total"]) == ("refunded", 3000)


@pytest.mark.parametrize("amount", [-1, MAX_AMOUNT + 1, 10**30, 2.5, "all", None])
def test_a_refund_amount_that_is_not_a_whole_amount_is_422_not_500(api, amount):
    order = _paid(api, _product_with_file(price=2500))
    response = api.post(f"/api/v1/orders/{order.pk}/refund", {"amount": amount}, format="json")
    assert response.status_code == 422
    assert response.json()["validation_errors"][0]["attribute"] == "amount"
    order.refresh_from_db()
    assert (order.status, order.refunded_total) == ("paid", 0)


# --- Filters --------------------------------------------------------------------------------------


def test_orders_filter_by_channel_and_external_id(api):
    api_order = factories.OrderFactory(external_id="A-1")
    shopify = factories.OrderFactory(channel=Order.Channel.SHOPIFY, external_id="A-1")
    stripe = factories.OrderFactory(channel=Order.Channel.STRIPE, external_id="cs_test_1")
    for query, expected in (
        ("channel=shopify", [shopify]),
        ("channel=stripe", [stripe]),
        ("external_id=cs_test_1", [stripe]),
        ("channel=api&external_id=A-1", [api_order]),
        ("channel=admin", []),
        ("external_id=nope", []),
    ):
        ids = {row["id"] for row in api.get(f"/api/v1/orders?{query}").json()["data"]}
        assert ids == {str(order.pk) for order in expected}, query


@pytest.mark.parametrize("query", ["channel=ebay", "external_id=" + "x" * 256])
def test_a_bad_channel_or_external_id_filter_is_400(api, query):
    response = api.get(f"/api/v1/orders?{query}")
    assert response.status_code == 400
    assert response.json()["code"] == "parameter.invalid"
