"""Licence keys through the merchant API: /api/v1/license_keys (list, get, filters, search by
a key as typed, PATCH limit, expiry and disabled), their instances (list, deactivate), the
keys on order lines, and webhook endpoints subscribed to the licence events."""

import uuid
from datetime import UTC, datetime, timedelta

import pytest
from django.utils import timezone

from accounts.models import ApiKey
from downloads.models import LicenseInstance, LicenseKey, WebhookDelivery, key_digest
from downloads.services.licences import license_key_activate
from downloads.services.orders import LineInput
from downloads.services.webhooks import webhook_endpoint_create
from tests import factories
from tests.conftest import paid_order

pytestmark = pytest.mark.django_db


def unix(moment) -> int | None:
    return int(moment.timestamp()) if moment else None


def activate(key: LicenseKey, name: str = "Laptop") -> LicenseInstance:
    return license_key_activate(key_text=key.key, instance_name=name).instance


def keys_of(order) -> list[LicenseKey]:
    return list(order.license_keys.order_by("unit"))


def ids(body) -> set[str]:
    return {row["id"] for row in body["data"]}


@pytest.fixture
def warm_api(api, write_key):
    # The key's last_used_at was just written: the next minute of calls only read it.
    ApiKey.objects.filter(pk=write_key[0].pk).update(last_used_at=timezone.now())
    return api


# --- List and get --------------------------------------------------------------------------------


def test_list_and_get_show_every_field_with_its_value(api):
    order = factories.licensed_order(2, email="ada@example.com")
    first, second = keys_of(order)
    activate(first)
    first.refresh_from_db()
    body = api.get("/api/v1/license_keys?sort=created_at:asc").json()
    assert body["object"] == "list" and body["pagination"]["count"] == 2
    row = next(row for row in body["data"] if row["id"] == str(first.pk))
    line = order.lines.get()
    assert row == {
        "id": str(first.pk),
        "object": "license_key",
        "key": first.key,
        "status": "active",
        "order": str(order.pk),
        "order_number": order.number,
        "line": str(line.pk),
        "product": str(line.product_id),
        "variant": None,
        "customer_email": "ada@example.com",
        "activation_limit": 3,
        "activation_usage": 1,
        "activations_left": 2,
        "expires_at": None,
        "disabled": False,
        "disabled_at": None,
        "created_at": unix(first.created_at),
        "updated_at": unix(first.updated_at),
    }
    other = next(row for row in body["data"] if row["id"] == str(second.pk))
    assert (other["status"], other["activation_usage"], other["activations_left"]) == (
        "inactive",
        0,
        3,
    )
    assert api.get(f"/api/v1/license_keys/{first.pk}").json() == row


def test_a_key_of_a_variant_names_it_and_an_unlimited_key_has_no_activations_left(api):
    variant = factories.VariantFactory(
        product=factories.ProductFactory(license_keys=True, license_activation_limit=None)
    )
    order = paid_order(LineInput(product=variant.product, variant=variant))
    key = order.license_keys.get()
    row = api.get(f"/api/v1/license_keys/{key.pk}").json()
    assert (row["variant"], row["activation_limit"], row["activations_left"]) == (
        str(variant.pk),
        None,
        None,
    )


def test_unknown_and_malformed_ids_are_404(api):
    for path in (
        f"/api/v1/license_keys/{uuid.uuid4()}",
        "/api/v1/license_keys/not-a-uuid",
        f"/api/v1/license_keys/{uuid.uuid4()}/instances",
        "/api/v1/license_keys/not-a-uuid/instances",
    ):
        response = api.get(path)
        assert response.status_code == 404, path
        assert response.json()["code"] == "license_key.not_found"
    response = api.patch(f"/api/v1/license_keys/{uuid.uuid4()}", {"disabled": True}, format="json")
    assert response.status_code == 404


def test_keys_are_neither_created_nor_deleted_nor_put_through_the_api(api):
    key = factories.licensed_order().license_keys.get()
    for response in (
        api.post("/api/v1/license_keys", {"order": str(key.order_id)}, format="json"),
        api.delete(f"/api/v1/license_keys/{key.pk}"),
        api.put(f"/api/v1/license_keys/{key.pk}", {"disabled": True}, format="json"),
    ):
        assert response.status_code == 405
        assert response.json()["code"] == "request.method_not_allowed"
    assert LicenseKey.objects.filter(pk=key.pk, disabled_at__isnull=True).exists()


# --- Filters, search and sort --------------------------------------------------------------------


def test_order_product_disabled_and_email_filters(api):
    ada = factories.licensed_order(2, email="ada@example.com")
    bob = factories.licensed_order(1, email="bob@example.com")
    ada_keys, (bob_key,) = keys_of(ada), keys_of(bob)
    LicenseKey.objects.filter(pk=ada_keys[1].pk).update(disabled_at=timezone.now())
    every = {str(k.pk) for k in [*ada_keys, bob_key]}

    assert ids(api.get(f"/api/v1/license_keys?order_ids[]={ada.pk}").json()) == {
        str(k.pk) for k in ada_keys
    }
    both = api.get(f"/api/v1/license_keys?order_ids[]={ada.pk}&order_ids[]={bob.pk}").json()
    assert ids(both) == every
    product = bob.lines.get().product_id
    assert ids(api.get(f"/api/v1/license_keys?product_ids[]={product}").json()) == {str(bob_key.pk)}
    assert ids(api.get("/api/v1/license_keys?disabled=true").json()) == {str(ada_keys[1].pk)}
    assert ids(api.get("/api/v1/license_keys?disabled=false").json()) == every - {
        str(ada_keys[1].pk)
    }
    assert ids(api.get("/api/v1/license_keys?email=BOB@example.com").json()) == {str(bob_key.pk)}
    assert ids(api.get(f"/api/v1/license_keys?ids[]={bob_key.pk}").json()) == {str(bob_key.pk)}


@pytest.mark.parametrize(
    "query",
    [
        "status=shipped",
        "disabled=maybe",
        "order_ids[]=nope",
        "product_ids[]=1",
        "sort=key:asc",
        f"search={'x' * 201}",
    ],
)
def test_bad_filters_are_400(api, query):
    response = api.get(f"/api/v1/license_keys?{query}")
    assert response.status_code == 400
    assert response.json()["code"] == "parameter.invalid"


def test_search_finds_a_key_as_a_buyer_types_it(api):
    key = factories.licensed_order(email="ada@example.com").license_keys.get()
    other = factories.licensed_order(email="bob@example.com").license_keys.get()
    # A key with the characters buyers misread (0 and 1), whatever `secrets` drew.
    text = "10ABCDE-FGH0JKM-NPQ1RST-VWXYZ01"
    LicenseKey.objects.filter(pk=key.pk).update(key=text, key_hash=key_digest(text))
    key.refresh_from_db()
    typed = key.key.lower().replace("-", " ")  # lower case, spaces for the dashes
    assert ids(api.get("/api/v1/license_keys", {"search": typed}).json()) == {str(key.pk)}
    # Read as typed from paper: O for 0, l for 1.
    misread = key.key.replace("0", "O").replace("1", "l").lower()
    assert ids(api.get("/api/v1/license_keys", {"search": misread}).json()) == {str(key.pk)}
    # The beginning of a key, across its first dash, with spaces and in lower case.
    start = key.key[:9].lower().replace("-", " ")
    found = ids(api.get("/api/v1/license_keys", {"search": f" {start} "}).json())
    assert str(key.pk) in found
    assert str(other.pk) not in found or other.key[:9] == key.key[:9]
    # The buyer's email, or the order's number.
    assert ids(api.get("/api/v1/license_keys", {"search": "bob@"}).json()) == {str(other.pk)}
    number = other.order.number
    assert str(other.pk) in ids(api.get("/api/v1/license_keys", {"search": f"#{number}"}).json())
    # Not a key, not an email: nothing.
    assert api.get("/api/v1/license_keys", {"search": "nothing-here!"}).json()["data"] == []


def test_sort_by_activation_usage(api):
    keys = keys_of(factories.licensed_order(3))
    activate(keys[2])
    activate(keys[2], "Desktop")
    activate(keys[0])
    body = api.get("/api/v1/license_keys?sort=activation_usage:desc").json()
    assert body["data"][0]["id"] == str(keys[2].pk)
    assert [row["activation_usage"] for row in body["data"]] == [2, 1, 0]


# Every state a key can be in (timedeltas from now), as field values; the status filter and the
# status field must both agree with LicenseKey.status_at on each.
KEY_STATES = {
    "fresh": {},
    "activated": {"activation_usage": 1},
    "expires later": {"expires_at": timedelta(hours=1)},
    "activated, expires later": {"activation_usage": 2, "expires_at": timedelta(hours=1)},
    "expired": {"expires_at": timedelta(seconds=-5)},
    "activated and expired": {"activation_usage": 1, "expires_at": timedelta(seconds=-5)},
    "disabled": {"disabled_at": timedelta(seconds=-5)},
    "activated and disabled": {"activation_usage": 3, "disabled_at": timedelta(0)},
    "expired and disabled": {
        "disabled_at": timedelta(seconds=-5),
        "expires_at": timedelta(seconds=-5),
    },
    "unlimited, activated": {"activation_limit": None, "activation_usage": 7},
}


def test_status_filter_and_field_match_status_at_on_every_state(api):
    now = timezone.now()
    keys = keys_of(factories.licensed_order(len(KEY_STATES)))
    for key, fields in zip(keys, KEY_STATES.values(), strict=True):
        values = {k: now + v if isinstance(v, timedelta) else v for k, v in fields.items()}
        LicenseKey.objects.filter(pk=key.pk).update(**values)
    fresh = {str(key.pk): key for key in LicenseKey.objects.all()}
    expected = {status: set() for status in LicenseKey.Status.values}
    for pk, key in fresh.items():
        expected[key.status_at(now)].add(pk)
    assert all(expected.values()), expected  # every status has at least one key
    for status in LicenseKey.Status.values:
        body = api.get(f"/api/v1/license_keys?status={status}&limit=100").json()
        assert ids(body) == expected[status], status
        assert {row["status"] for row in body["data"]} == {status}


# --- PATCH ---------------------------------------------------------------------------------------


def test_patch_the_limit_the_expiry_and_disabled(api):
    key = factories.licensed_order().license_keys.get()
    url = f"/api/v1/license_keys/{key.pk}"

    body = api.patch(url, {"activation_limit": 5}, format="json").json()
    assert (body["activation_limit"], body["activations_left"]) == (5, 5)
    body = api.patch(url, {"activation_limit": None}, format="json").json()
    assert (body["activation_limit"], body["activations_left"]) == (None, None)

    later = int((timezone.now() + timedelta(days=30)).timestamp())
    body = api.patch(url, {"expires_at": later}, format="json").json()
    assert (body["expires_at"], body["status"]) == (later, "inactive")
    past = int((timezone.now() - timedelta(days=1)).timestamp())
    body = api.patch(url, {"expires_at": past}, format="json").json()
    assert (body["expires_at"], body["status"]) == (past, "expired")
    body = api.patch(url, {"expires_at": None}, format="json").json()
    assert (body["expires_at"], body["status"]) == (None, "inactive")

    body = api.patch(url, {"disabled": True}, format="json").json()
    assert (body["disabled"], body["status"]) == (True, "disabled")
    disabled_at = body["disabled_at"]
    assert isinstance(disabled_at, int)
    # Disabling again keeps the first time.
    assert api.patch(url, {"disabled": True}, format="json").json()["disabled_at"] == disabled_at
    body = api.patch(url, {"disabled": False}, format="json").json()
    assert (body["disabled"], body["disabled_at"], body["status"]) == (False, None, "inactive")

    key.refresh_from_db()
    assert (key.activation_limit, key.expires_at, key.disabled_at) == (None, None, None)
    # An empty PATCH changes nothing.
    assert api.patch(url, {}, format="json").status_code == 200


@pytest.mark.parametrize(
    ("body", "attribute"),
    [
        ({"activation_limit": 0}, "activation_limit"),
        ({"activation_limit": -3}, "activation_limit"),
        ({"activation_limit": "many"}, "activation_limit"),
        ({"activation_limit": 2**31}, "activation_limit"),
        ({"expires_at": "tomorrow"}, "expires_at"),
        ({"expires_at": -1}, "expires_at"),
        ({"expires_at": int(datetime(9500, 1, 1, tzinfo=UTC).timestamp())}, "expires_at"),
        ({"disabled": "maybe"}, "disabled"),
    ],
)
def test_invalid_patches_are_422_naming_the_attribute(api, body, attribute):
    key = factories.licensed_order().license_keys.get()
    response = api.patch(f"/api/v1/license_keys/{key.pk}", body, format="json")
    assert response.status_code == 422
    error = response.json()
    assert error["http_status"] == "unprocessable_entity"
    assert [e["attribute"] for e in error["validation_errors"]] == [attribute]
    fresh = LicenseKey.objects.get(pk=key.pk)
    assert (fresh.activation_limit, fresh.expires_at, fresh.disabled_at) == (3, None, None)


def test_a_limit_below_the_usage_is_409_and_changes_nothing(api):
    key = factories.licensed_order().license_keys.get()
    activate(key, "Laptop")
    activate(key, "Desktop")
    url = f"/api/v1/license_keys/{key.pk}"
    response = api.patch(url, {"activation_limit": 1, "disabled": True}, format="json")
    assert response.status_code == 409
    error = response.json()
    assert (error["http_status"], error["code"]) == ("conflict", "license_key.limit_below_usage")
    assert error["validation_errors"][0]["attribute"] == "activation_limit"
    key.refresh_from_db()
    assert (key.activation_limit, key.disabled_at) == (3, None)
    # The usage itself is fine as a limit.
    assert api.patch(url, {"activation_limit": 2}, format="json").json()["activations_left"] == 0


def test_read_keys_read_but_cannot_patch_or_deactivate(read_api):
    key = factories.licensed_order().license_keys.get()
    instance = activate(key)
    assert read_api.get(f"/api/v1/license_keys/{key.pk}").status_code == 200
    assert read_api.get(f"/api/v1/license_keys/{key.pk}/instances").status_code == 200
    response = read_api.patch(f"/api/v1/license_keys/{key.pk}", {"disabled": True}, format="json")
    assert response.status_code == 403
    assert response.json()["code"] == "api_key.read_only"
    response = read_api.delete(f"/api/v1/license_keys/{key.pk}/instances/{instance.pk}")
    assert response.status_code == 403
    key.refresh_from_db()
    assert (key.disabled_at, key.activation_usage) == (None, 1)


# --- Instances -----------------------------------------------------------------------------------


def test_instances_list_and_get(api):
    key = factories.licensed_order().license_keys.get()
    laptop, desktop = activate(key, "Laptop"), activate(key, "Desktop")
    other = activate(factories.licensed_order().license_keys.get(), "Elsewhere")
    body = api.get(f"/api/v1/license_keys/{key.pk}/instances").json()
    assert body["object"] == "list" and body["pagination"]["count"] == 2
    assert body["data"] == [
        {
            "id": str(instance.pk),
            "object": "license_instance",
            "name": instance.name,
            "created_at": unix(instance.created_at),
            "license_key": str(key.pk),
        }
        for instance in (laptop, desktop)
    ]
    one = api.get(f"/api/v1/license_keys/{key.pk}/instances/{desktop.pk}").json()
    assert one == body["data"][1]
    # Another key's instance is not found under this key.
    response = api.get(f"/api/v1/license_keys/{key.pk}/instances/{other.pk}")
    assert response.status_code == 404
    assert response.json()["code"] == "license_instance.not_found"
    # The flat list, by key.
    flat = api.get(f"/api/v1/license_instances?license_key_ids[]={key.pk}").json()
    assert [row["id"] for row in flat["data"]] == [str(laptop.pk), str(desktop.pk)]
    assert api.get("/api/v1/license_instances").json()["pagination"]["count"] == 3
    assert api.get("/api/v1/license_instances?search=elsew").json()["data"][0]["id"] == str(
        other.pk
    )


def test_deleting_an_instance_deactivates_it_and_queues_the_webhook(api):
    endpoint = webhook_endpoint_create(
        url="https://hooks.example.com/keys", event_types=["license_key.deactivated"]
    )
    key = factories.licensed_order().license_keys.get()
    laptop, desktop = activate(key, "Laptop"), activate(key, "Desktop")
    url = f"/api/v1/license_keys/{key.pk}/instances/{laptop.pk}"
    response = api.delete(url)
    assert response.status_code == 200
    assert response.json() == {"id": str(laptop.pk), "object": "license_instance", "deleted": True}
    key.refresh_from_db()
    assert key.activation_usage == 1
    assert list(key.instances.values_list("pk", flat=True)) == [desktop.pk]
    row = api.get(f"/api/v1/license_keys/{key.pk}").json()
    assert (row["activation_usage"], row["activations_left"]) == (1, 2)
    delivery = WebhookDelivery.objects.get(endpoint=endpoint)
    assert delivery.event_type == "license_key.deactivated"
    assert delivery.payload["data"]["id"] == str(key.pk)
    assert delivery.payload["data"]["instance"] == {"id": str(laptop.pk)}
    # Gone: a second delete is a 404 and gives nothing back.
    response = api.delete(url)
    assert response.status_code == 404
    assert response.json()["code"] == "license_instance.not_found"
    key.refresh_from_db()
    assert key.activation_usage == 1
    assert WebhookDelivery.objects.filter(endpoint=endpoint).count() == 1


# --- Webhook endpoints and the licence events ---------------------------------------------------


def test_an_endpoint_subscribed_to_license_key_activated_gets_activations(api):
    response = api.post(
        "/api/v1/webhook_endpoints",
        {"url": "https://hooks.example.com/licences", "event_types": ["license_key.activated"]},
        format="json",
    )
    assert response.status_code == 201
    assert response.json()["event_types"] == ["license_key.activated"]
    key = factories.licensed_order().license_keys.get()  # created: not subscribed
    instance = activate(key)
    delivery = WebhookDelivery.objects.get()
    assert (str(delivery.endpoint_id), delivery.event_type) == (
        response.json()["id"],
        "license_key.activated",
    )
    assert delivery.payload["data"]["instance"]["id"] == str(instance.pk)
    listed = api.get("/api/v1/webhook_deliveries?event_type=license_key.activated").json()
    assert [row["id"] for row in listed["data"]] == [str(delivery.pk)]


def test_every_licence_event_type_is_a_choice_of_endpoints(api):
    for event_type in ("license_key.created", "license_key.activated", "license_key.deactivated"):
        response = api.post(
            "/api/v1/webhook_endpoints",
            {"url": "https://hooks.example.com/x", "event_types": [event_type]},
            format="json",
        )
        assert response.status_code == 201, event_type
    response = api.post(
        "/api/v1/webhook_endpoints",
        {"url": "https://hooks.example.com/x", "event_types": ["license_key.stolen"]},
        format="json",
    )
    assert response.status_code == 422


# --- Orders show their lines' keys -------------------------------------------------------------


def test_order_lines_show_their_keys(api):
    order = factories.licensed_order(2)
    first, second = keys_of(order)
    activate(second)
    body = api.get(f"/api/v1/orders/{order.pk}").json()
    assert body["lines"][0]["license_keys"] == [
        {
            "id": str(first.pk),
            "key": first.key,
            "status": "inactive",
            "activation_usage": 0,
            "activation_limit": 3,
        },
        {
            "id": str(second.pk),
            "key": second.key,
            "status": "active",
            "activation_usage": 1,
            "activation_limit": 3,
        },
    ]
    plain = factories.paid_order_with_files()
    assert api.get(f"/api/v1/orders/{plain.pk}").json()["lines"][0]["license_keys"] == []


# --- Query counts --------------------------------------------------------------------------------


@pytest.mark.parametrize("rows", [1, 20])
def test_the_key_list_takes_constant_queries(warm_api, django_assert_num_queries, rows):
    for key in keys_of(factories.licensed_order(rows)):
        activate(key)
    with django_assert_num_queries(4):  # api key, count, the page's ids, its rows with orders
        body = warm_api.get("/api/v1/license_keys?limit=100&status=active&search=@").json()
    assert body["pagination"]["count"] == len(body["data"]) == rows


@pytest.mark.parametrize("rows", [1, 20])
def test_the_instance_lists_take_constant_queries(warm_api, django_assert_num_queries, rows):
    key = factories.licensed_order(license_activation_limit=None).license_keys.get()
    for n in range(rows):
        activate(key, f"Machine {n}")
    with django_assert_num_queries(5):  # api key, the licence key, count, page ids, rows
        body = warm_api.get(f"/api/v1/license_keys/{key.pk}/instances?limit=100").json()
    assert len(body["data"]) == rows
    with django_assert_num_queries(4):
        body = warm_api.get(f"/api/v1/license_instances?license_key_ids[]={key.pk}").json()
    assert body["pagination"]["count"] == rows


@pytest.mark.parametrize("rows", [1, 20])
def test_orders_with_keys_take_constant_queries(warm_api, django_assert_num_queries, rows):
    for _ in range(rows):
        factories.licensed_order(2)
    with django_assert_num_queries(7):  # … + lines, their keys, attached downloads
        body = warm_api.get("/api/v1/orders?limit=100").json()
    assert len(body["data"]) == rows
    assert all(len(order["lines"][0]["license_keys"]) == 2 for order in body["data"])
