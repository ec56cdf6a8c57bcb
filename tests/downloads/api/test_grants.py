"""Grants (EasyCart's DownloadItem) through /api/v1/grants; events and customers."""

from datetime import timedelta

import pytest
from django.utils import timezone
from django.utils.dateparse import parse_datetime

from downloads.models import DownloadGrant, Order
from tests import factories

pytestmark = pytest.mark.django_db

EASYCART_FIELDS = {
    "download_id",
    "date_created",
    "product_id",
    "order_id",
    "download_count",
    "download_file_name",
    "is_amazon",
    "amazon_key",
}


def test_grant_has_easycart_fields_and_our_limit_expiry_and_url(api):
    grant = factories.GrantFactory(download_count=2, download_limit=5)
    body = api.get(f"/api/v1/grants/{grant.pk}").json()
    assert set(body) >= EASYCART_FIELDS
    assert body["download_id"] == body["id"] == str(grant.pk)
    assert parse_datetime(body["date_created"]) == grant.created_at
    assert body["product_id"] == str(grant.line.product_id)
    assert body["order_id"] == str(grant.order_id)
    assert body["download_file_name"] == grant.download.media.filename
    assert body["is_amazon"] is False and body["amazon_key"] is None
    assert body["download_count"] == 2 and body["downloads_remaining"] == 3
    assert body["revoked"] is False and body["expires_at"] is None
    assert body["url"] == f"http://testserver/downloads/{grant.token}/"


def test_grant_on_s3_media_reports_is_amazon_and_the_key(api, s3):
    grant = factories.GrantFactory()
    body = api.get(f"/api/v1/grants/{grant.pk}").json()
    assert body["is_amazon"] is True and body["amazon_key"] == grant.download.media.key


def test_create_grant_by_hand(api):
    order = factories.OrderFactory(status=Order.Status.PAID)
    download = factories.DownloadFactory(product=None)
    expires = int((timezone.now() + timedelta(days=3)).timestamp())
    response = api.post(
        "/api/v1/grants",
        {
            "order_id": str(order.pk),
            "download": str(download.pk),
            "download_limit": 2,
            "expires_at": expires,
        },
        format="json",
    )
    assert response.status_code == 201, response.json()
    body = response.json()
    assert body["download_limit"] == 2 and body["expires_at"] == expires
    again = api.post(
        "/api/v1/grants", {"order_id": str(order.pk), "download": str(download.pk)}, format="json"
    )
    assert again.status_code == 409 and again.json()["code"] == "grant.exists"


@pytest.mark.parametrize("method", ["put", "patch"])
def test_update_count_limit_and_expiry_with_put_or_patch(api, method):
    grant = factories.GrantFactory(expires_at=timezone.now())
    response = getattr(api, method)(
        f"/api/v1/grants/{grant.pk}",
        {"download_count": 4, "download_limit": None, "expires_at": None},
        format="json",
    )
    assert response.status_code == 200, response.json()
    body = response.json()
    assert body["download_count"] == 4 and body["download_limit"] is None
    assert body["expires_at"] is None and body["downloads_remaining"] is None


@pytest.mark.parametrize(
    "body", [{"download_limit": 0}, {"download_count": -1}, {"expires_at": 10**12}]
)
def test_update_refuses_out_of_range_values(api, body):
    grant = factories.GrantFactory()
    response = api.patch(f"/api/v1/grants/{grant.pk}", body, format="json")
    assert response.status_code == 422
    assert response.json()["validation_errors"][0]["attribute"] == next(iter(body))


def test_reset_extend_revoke_restore(api):
    grant = factories.GrantFactory(download_count=5, expires_at=timezone.now() - timedelta(days=1))
    assert api.post(f"/api/v1/grants/{grant.pk}/reset").json()["download_count"] == 0
    extended = api.post(f"/api/v1/grants/{grant.pk}/extend", {"days": 7}, format="json").json()
    assert extended["expires_at"] >= int((timezone.now() + timedelta(days=7)).timestamp()) - 5
    revoked = api.post(f"/api/v1/grants/{grant.pk}/revoke").json()
    assert revoked["revoked"] is True and isinstance(revoked["revoked_at"], int)
    restored = api.post(f"/api/v1/grants/{grant.pk}/restore").json()
    assert restored["revoked"] is False and restored["revoked_at"] is None


@pytest.mark.parametrize("body", [{}, {"days": 0}, {"days": 1, "expires_at": 0}])
def test_extend_needs_days_or_expires_at(api, body):
    grant = factories.GrantFactory()
    response = api.post(f"/api/v1/grants/{grant.pk}/extend", body, format="json")
    assert response.status_code == 422


def test_extend_with_expires_at_sets_it(api):
    grant = factories.GrantFactory()
    body = api.post(
        f"/api/v1/grants/{grant.pk}/extend", {"expires_at": 4102444800}, format="json"
    ).json()
    assert body["expires_at"] == 4102444800


def test_extend_past_the_representable_future_is_refused(api):
    grant = factories.GrantFactory(expires_at=timezone.now().replace(year=8950))
    response = api.post(f"/api/v1/grants/{grant.pk}/extend", {"days": 36500}, format="json")
    assert (
        response.status_code == 422
        and response.json()["validation_errors"][0]["attribute"] == "days"
    )


def test_delete_unused_grant_but_not_one_with_events(api):
    unused = factories.GrantFactory()
    assert api.delete(f"/api/v1/grants/{unused.pk}").json()["deleted"] is True
    used = factories.EventFactory().grant
    response = api.delete(f"/api/v1/grants/{used.pk}")
    assert response.status_code == 409 and response.json()["code"] == "grant.in_use"
    assert DownloadGrant.objects.filter(pk=used.pk).exists()


def test_easycart_list_parameters_page_perpage_sortby_sortdir_search(api):
    order = factories.OrderFactory(status=Order.Status.PAID, email="find.me@example.com")
    grants = [
        factories.GrantFactory(order=order, line__order=order, download_count=count)
        for count in (3, 1, 2)
    ]
    factories.GrantFactory()
    response = api.get(
        "/api/v1/grants?page=1&perpage=2&sortby=download_count&sortdir=desc&search=find.me"
    )
    body = response.json()
    assert body["pagination"] == {
        "count": 3, "count_is_estimate": False, "limit": 2, "page": 1, "url": "/api/v1/grants",
    }  # fmt: skip
    assert [row["download_count"] for row in body["data"]] == [3, 2]
    second = api.get("/api/v1/grants?page=2&perpage=2&sort=download_count:desc&search=find.me")
    assert [row["id"] for row in second.json()["data"]] == [str(grants[1].pk)]
    by_date = api.get("/api/v1/grants?sortby=date_created&sortdir=ASC&search=find.me").json()
    assert [row["id"] for row in by_date["data"]] == [str(grant.pk) for grant in grants]


def test_grant_filters_order_product_and_revoked(api):
    grant = factories.GrantFactory(revoked_at=timezone.now())
    other = factories.GrantFactory()
    for query in (
        f"order_ids[]={grant.order_id}",
        f"product_ids[]={grant.line.product_id}",
        "revoked=true",
    ):
        ids = [row["id"] for row in api.get(f"/api/v1/grants?{query}").json()["data"]]
        assert ids == [str(grant.pk)], query
    assert [row["id"] for row in api.get("/api/v1/grants?revoked=false").json()["data"]] == [
        str(other.pk)
    ]


def test_events_are_read_only_and_filter_by_grant_order_and_time(api):
    old = factories.EventFactory(at=timezone.now() - timedelta(days=2))
    new = factories.EventFactory(outcome="limit_reached")
    body = api.get(f"/api/v1/events/{new.pk}").json()
    assert body["object"] == "event" and body["grant"] == str(new.grant_id)
    assert body["order"] == str(new.grant.order_id) and body["download"] == str(
        new.grant.download_id
    )
    assert body["outcome"] == "limit_reached" and body["ip"] == "203.0.113.7"
    day_ago = int((timezone.now() - timedelta(days=1)).timestamp())
    for query, expected in (
        (f"grant_ids[]={old.grant_id}", old),
        (f"order_ids[]={new.grant.order_id}", new),
        (f"after={day_ago}", new),
        (f"before={day_ago}", old),
        ("outcome=limit_reached", new),
    ):
        ids = [row["id"] for row in api.get(f"/api/v1/events?{query}").json()["data"]]
        assert ids == [str(expected.pk)], query
    assert api.post("/api/v1/events", {}, format="json").status_code == 405


def test_customers_list_with_orders_count_and_email_filter(api, customer, staff):
    factories.OrderFactory(customer=customer, email=customer.email)
    factories.OrderFactory(customer=customer, email=customer.email)
    body = api.get(f"/api/v1/customers?email={customer.email.upper()}").json()
    assert body["data"] == [
        {
            "id": str(customer.pk),
            "object": "customer",
            "email": customer.email,
            "name": "",
            "orders_count": 2,
            "created_at": int(customer.date_joined.timestamp()),
        }
    ]
    emails = [row["email"] for row in api.get("/api/v1/customers").json()["data"]]
    assert staff.email not in emails
    assert api.get(f"/api/v1/customers/{customer.pk}").json()["orders_count"] == 2
    assert api.get(f"/api/v1/customers/{staff.pk}").status_code == 404
    assert api.get("/api/v1/customers/99999999999999999999999").status_code == 404
    assert api.get("/api/v1/customers/not-a-uuid").status_code == 404
