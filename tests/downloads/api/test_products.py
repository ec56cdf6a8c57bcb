"""Products and variants through /api/v1/."""

import pytest

from downloads.models import Product, Variant
from downloads.money import MAX_AMOUNT
from tests import factories

pytestmark = pytest.mark.django_db


def test_create_product_answers_201_with_every_field_and_unix_times(api):
    response = api.post(
        "/api/v1/products",
        {
            "name": "Field Guide",
            "sku": "FG-1",
            "vendor": "Demo Press",
            "tags": ["books", "books", " birds "],
            "external_id": 9007199254740993,
            "download_limit": 3,
            "download_expiry_days": 30,
        },
        format="json",
    )
    assert response.status_code == 201, response.json()
    body = response.json()
    product = Product.objects.get(pk=body["id"])
    assert body["object"] == "product"
    assert body["tags"] == ["books", "birds"]
    assert body["external_id"] == 9007199254740993 == product.external_id
    assert body["download_limit"] == 3 and body["download_expiry_days"] == 30
    assert body["archived"] is False and body["archived_at"] is None
    assert body["created_at"] == int(product.created_at.timestamp())


def test_create_product_without_name_is_422_naming_the_attribute(api):
    response = api.post("/api/v1/products", {"sku": "X"}, format="json")
    assert response.status_code == 422
    body = response.json()
    assert body["http_status"] == "unprocessable_entity"
    assert body["code"] == "product.invalid"
    assert body["validation_errors"][0]["attribute"] == "name"
    assert body["validation_errors"][0]["code"] == "required"


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("external_id", 2**63),
        ("download_limit", 2**31),
        ("download_limit", -1),
        ("download_expiry_days", 10**6),
        ("name", "a\x00b"),
        ("tags", ["x" * 101]),
    ],
)
def test_values_the_database_cannot_hold_are_422_not_500(api, field, value):
    response = api.post("/api/v1/products", {"name": "P", field: value}, format="json")
    assert response.status_code == 422
    assert response.json()["validation_errors"][0]["attribute"].startswith(field)


def test_patch_product_changes_only_given_fields_and_archives(api):
    product = factories.ProductFactory(name="Old", vendor="V")
    response = api.patch(
        f"/api/v1/products/{product.pk}", {"name": "New", "archived": True}, format="json"
    )
    assert response.status_code == 200
    body = response.json()
    assert body["name"] == "New" and body["vendor"] == "V"
    assert body["archived"] is True and isinstance(body["archived_at"], int)
    product.refresh_from_db()
    assert product.archived and product.archived_at is not None


def test_product_filters_sku_vendor_tag_external_id_archived(api):
    a = factories.ProductFactory(sku="A-1", vendor="North", tags=["audio"], external_id=7)
    factories.ProductFactory(sku="B-1", vendor="South", tags=["video"], archived=True)
    for query in ("sku=A-1", "vendor=North", "tag=audio", "external_id=7", "archived=false"):
        ids = [row["id"] for row in api.get(f"/api/v1/products?{query}").json()["data"]]
        assert ids == [str(a.pk)], query


def test_delete_unused_product_answers_deleted_object(api):
    product = factories.ProductFactory()
    response = api.delete(f"/api/v1/products/{product.pk}")
    assert response.status_code == 200
    assert response.json() == {"id": str(product.pk), "object": "product", "deleted": True}
    assert not Product.objects.filter(pk=product.pk).exists()


def test_delete_product_an_order_uses_is_409_suggesting_archive(api):
    line = factories.OrderLineFactory()
    response = api.delete(f"/api/v1/products/{line.product_id}")
    assert response.status_code == 409
    body = response.json()
    assert body["code"] == "product.in_use" and "archive" in body["message"]


def test_variant_create_list_by_product_update_and_delete(api):
    product, other = factories.ProductFactory(), factories.ProductFactory()
    factories.VariantFactory(product=other)
    response = api.post(
        "/api/v1/variants",
        {"product": str(product.pk), "name": "EPUB", "sku": "E-1", "price": 1299},
        format="json",
    )
    assert response.status_code == 201, response.json()
    variant_id = response.json()["id"]
    assert response.json()["product"] == str(product.pk) and response.json()["price"] == 1299

    listed = api.get(f"/api/v1/variants?product_ids[]={product.pk}").json()
    assert [row["id"] for row in listed["data"]] == [variant_id]

    patched = api.patch(f"/api/v1/variants/{variant_id}", {"price": 999}, format="json")
    assert patched.status_code == 200 and patched.json()["price"] == 999

    assert api.delete(f"/api/v1/variants/{variant_id}").json()["deleted"] is True
    assert not Variant.objects.filter(pk=variant_id).exists()


def test_variant_of_unknown_product_is_422(api):
    response = api.post(
        "/api/v1/variants",
        {"product": "00000000-0000-0000-0000-000000000000", "name": "X"},
        format="json",
    )
    assert response.status_code == 422
    assert response.json()["validation_errors"][0]["attribute"] == "product"


def test_variant_sold_on_an_order_cannot_be_deleted(api):
    variant = factories.VariantFactory()
    factories.OrderLineFactory(product=variant.product, variant=variant)
    response = api.delete(f"/api/v1/variants/{variant.pk}")
    assert response.status_code == 409 and response.json()["code"] == "variant.in_use"


# --- Prices (minor units) ------------------------------------------------------------------------


def test_product_price_defaults_to_zero_and_round_trips(api):
    free = api.post("/api/v1/products", {"name": "Free sample"}, format="json").json()
    assert free["price"] == 0
    created = api.post("/api/v1/products", {"name": "Guide", "price": 4900}, format="json")
    assert created.status_code == 201 and created.json()["price"] == 4900
    product_id = created.json()["id"]
    patched = api.patch(f"/api/v1/products/{product_id}", {"price": 5900}, format="json")
    assert patched.status_code == 200 and patched.json()["price"] == 5900
    assert api.get(f"/api/v1/products/{product_id}").json()["price"] == 5900
    assert Product.objects.get(pk=product_id).price == 5900


def test_a_variant_without_a_price_costs_the_products_until_it_names_one(api):
    product = factories.ProductFactory(price=4900)
    created = api.post(
        "/api/v1/variants", {"product": str(product.pk), "name": "EPUB"}, format="json"
    )
    assert created.status_code == 201, created.json()
    assert (created.json()["price"], created.json()["effective_price"]) == (None, 4900)
    variant_id = created.json()["id"]
    assert Variant.objects.get(pk=variant_id).price is None

    own = api.patch(f"/api/v1/variants/{variant_id}", {"price": 999}, format="json").json()
    assert (own["price"], own["effective_price"]) == (999, 999)
    back = api.patch(f"/api/v1/variants/{variant_id}", {"price": None}, format="json").json()
    assert (back["price"], back["effective_price"]) == (None, 4900)
    api.patch(f"/api/v1/products/{product.pk}", {"price": 5900}, format="json")
    assert api.get(f"/api/v1/variants/{variant_id}").json()["effective_price"] == 5900


def test_products_sort_by_price(api):
    for price in (900, 4900, 0):
        factories.ProductFactory(price=price)
    body = api.get("/api/v1/products?sort=price:desc").json()
    assert [row["price"] for row in body["data"]] == [4900, 900, 0]


def test_an_expanded_variant_shows_what_it_costs(api):
    variant = factories.VariantFactory(price=None, product__price=1200)
    factories.DownloadFactory(product=variant.product, variant=variant)
    row = api.get("/api/v1/downloads?expand[]=variant").json()["data"][0]
    assert row["variant"]["price"] is None and row["variant"]["effective_price"] == 1200


@pytest.mark.parametrize("price", [-1, MAX_AMOUNT + 1, 10**30, 12.5, "twelve", True, None])
def test_a_product_price_that_is_not_a_whole_amount_is_422_not_500(api, price):
    response = api.post("/api/v1/products", {"name": "P", "price": price}, format="json")
    assert response.status_code == 422
    body = response.json()
    assert body["code"] == "product.invalid"
    assert [error["attribute"] for error in body["validation_errors"]] == ["price"]
    assert not Product.objects.exists()


@pytest.mark.parametrize("price", [-1, MAX_AMOUNT + 1, 0.5, "1,99"])
def test_a_variant_price_that_is_not_a_whole_amount_is_422_not_500(api, price):
    variant = factories.VariantFactory(price=100)
    response = api.patch(f"/api/v1/variants/{variant.pk}", {"price": price}, format="json")
    assert response.status_code == 422
    assert response.json()["validation_errors"][0]["attribute"] == "price"
    variant.refresh_from_db()
    assert variant.price == 100
