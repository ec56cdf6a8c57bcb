"""Downloads (SureCart's download object) through /api/v1/downloads."""

import pytest

from downloads.models import Download
from tests import factories

pytestmark = pytest.mark.django_db


def test_surecart_wrapped_create_body_answers_the_download_object(api):
    media, product = factories.MediaFactory(), factories.ProductFactory()
    response = api.post(
        "/api/v1/downloads",
        {"download": {"media": str(media.pk), "product": str(product.pk)}},
        format="json",
    )
    assert response.status_code == 201, response.json()
    body = response.json()
    assert set(body) >= {
        "id", "object", "alt", "archived", "archived_at", "name", "title", "url",
        "media", "product", "variant", "created_at", "updated_at",
    }  # fmt: skip
    assert body["object"] == "download"
    assert body["media"] == str(media.pk) and body["product"] == str(product.pk)
    assert body["variant"] is None and body["url"] is None and body["archived_at"] is None
    assert Download.objects.get(pk=body["id"]).media_id == media.pk


def test_bare_create_body_is_accepted(api):
    response = api.post(
        "/api/v1/downloads",
        {"url": "https://cdn.example.com/a.mp3", "name": "Track"},
        format="json",
    )
    assert response.status_code == 201
    assert response.json()["url"] == "https://cdn.example.com/a.mp3"
    assert response.json()["product"] is None


@pytest.mark.parametrize(
    ("body", "attribute", "code"),
    [
        ({}, "media", "download.invalid"),
        (
            {"url": "https://cdn.example.com/x", "name": "X", "media": "MEDIA"},
            "url",
            "download.invalid",
        ),
        ({"url": "https://cdn.example.com/x"}, "name", "blank"),
        ({"url": "not a url", "name": "X"}, "url", "invalid"),
        ({"media": "not-a-uuid"}, "media", "invalid"),
    ],
)
def test_media_versus_url_validation(api, body, attribute, code):
    if body.get("media") == "MEDIA":
        body["media"] = str(factories.MediaFactory().pk)
    response = api.post("/api/v1/downloads", {"download": body}, format="json")
    assert response.status_code == 422, response.json()
    error = response.json()["validation_errors"][0]
    assert error["attribute"] == attribute and error["code"] == code
    assert response.json()["code"] == "download.invalid"


def test_variant_of_another_product_is_refused(api):
    variant = factories.VariantFactory()
    response = api.post(
        "/api/v1/downloads",
        {
            "media": str(factories.MediaFactory().pk),
            "product": str(factories.ProductFactory().pk),
            "variant": str(variant.pk),
        },
        format="json",
    )
    assert response.status_code == 422
    assert response.json()["validation_errors"][0]["attribute"] == "variant"


def test_variant_alone_puts_the_download_on_its_product(api):
    variant = factories.VariantFactory()
    response = api.post(
        "/api/v1/downloads",
        {"media": str(factories.MediaFactory().pk), "variant": str(variant.pk)},
        format="json",
    )
    assert response.status_code == 201
    assert response.json()["product"] == str(variant.product_id)


def test_expand_replaces_ids_with_objects(api):
    download = factories.DownloadFactory()
    body = api.get(f"/api/v1/downloads/{download.pk}?expand[]=media&expand[]=product").json()
    assert body["media"]["object"] == "media" and body["media"]["id"] == str(download.media_id)
    assert body["product"]["object"] == "product"
    assert body["variant"] is None
    listed = api.get("/api/v1/downloads?expand[]=media").json()["data"][0]
    assert listed["media"]["filename"] == download.media.filename
    assert listed["product"] == str(download.product_id)


def test_expand_of_an_unknown_field_is_400(api):
    response = api.get("/api/v1/downloads?expand[]=order")
    assert response.status_code == 400 and response.json()["code"] == "parameter.invalid"


def test_filters_archived_product_ids_and_customer_ids(api, customer):
    kept = factories.DownloadFactory()
    factories.DownloadFactory(archived=True)
    grant = factories.GrantFactory(order__customer=customer)
    by_product = api.get(f"/api/v1/downloads?product_ids[]={kept.product_id}").json()["data"]
    assert [row["id"] for row in by_product] == [str(kept.pk)]
    unarchived = api.get("/api/v1/downloads?archived=false").json()["data"]
    assert {row["id"] for row in unarchived} == {str(kept.pk), str(grant.download_id)}
    of_customer = api.get(f"/api/v1/downloads?customer_ids[]={customer.pk}").json()["data"]
    assert [row["id"] for row in of_customer] == [str(grant.download_id)]


def test_patch_to_a_url_switches_the_download_to_a_link(api):
    download = factories.DownloadFactory()
    response = api.patch(
        f"/api/v1/downloads/{download.pk}",
        {"download": {"url": "https://cdn.example.com/new.zip", "name": "New"}},
        format="json",
    )
    assert response.status_code == 200, response.json()
    assert response.json()["media"] is None
    assert response.json()["url"] == "https://cdn.example.com/new.zip"


def test_patch_with_new_media_keeps_the_old_file_as_a_version(api):
    download = factories.DownloadFactory()
    old_media, new_media = download.media, factories.MediaFactory()
    response = api.patch(
        f"/api/v1/downloads/{download.pk}", {"media": str(new_media.pk)}, format="json"
    )
    assert response.status_code == 200
    assert response.json()["media"] == str(new_media.pk)
    assert set(download.versions.values_list("media_id", flat=True)) == {old_media.pk, new_media.pk}
    assert response.json()["file_updated_at"] is not None


def test_deliver_to_existing_orders_starts_a_backfill_for_the_products_paid_orders(api):
    download = factories.DownloadFactory()
    assert api.get(f"/api/v1/downloads/{download.pk}").json()["deliver_to_existing_orders"] is False
    response = api.patch(
        f"/api/v1/downloads/{download.pk}", {"deliver_to_existing_orders": True}, format="json"
    )
    assert response.status_code == 200, response.json()
    assert response.json()["deliver_to_existing_orders"] is True
    assert download.backfills.get().status == "pending"
    loose = factories.DownloadFactory(product=None)
    refused = api.patch(
        f"/api/v1/downloads/{loose.pk}", {"deliver_to_existing_orders": True}, format="json"
    )
    assert refused.status_code == 422
    assert refused.json()["code"] == "download.no_product"


def test_patch_archived_sets_archived_at(api):
    download = factories.DownloadFactory()
    body = api.patch(f"/api/v1/downloads/{download.pk}", {"archived": True}, format="json").json()
    assert body["archived"] is True and isinstance(body["archived_at"], int)


def test_delete_granted_download_is_409_and_unused_one_is_deleted(api):
    grant = factories.GrantFactory()
    response = api.delete(f"/api/v1/downloads/{grant.download_id}")
    assert response.status_code == 409 and response.json()["code"] == "download.in_use"
    unused = factories.DownloadFactory()
    assert api.delete(f"/api/v1/downloads/{unused.pk}").json() == {
        "id": str(unused.pk),
        "object": "download",
        "deleted": True,
    }
