"""Orders through /api/v1/orders: create, pay, refund, attach/detach, send_email."""

import pytest
from django.core import mail

from downloads.models import DownloadGrant, Order
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
