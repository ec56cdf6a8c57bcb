"""PDF stamping through the merchant API: a download's `stamp`, `stamp_text` and
`stamp_position` (read and written, checked by the service), and each grant's `stamped`
(null when the file is not stamped, else where the buyer's copy stands)."""

import pytest
import yaml
from django.test import Client
from django.utils import timezone

from accounts.models import ApiKey
from downloads.models import Download, StampedCopy
from downloads.models.catalogue import DEFAULT_STAMP_TEXT
from downloads.services.orders import LineInput, order_create
from downloads.services.stamping import stamped_copy_make
from tests import factories, pdfs

pytestmark = pytest.mark.django_db


def pdf_download(content=None, filename="Guide.pdf", **fields):
    media = factories.MediaFactory(content=content or pdfs.book(2), filename=filename)
    return factories.DownloadFactory(media=media, **fields)


def pay(download, email="ada@example.com"):
    return order_create(
        email=email, lines=[LineInput(product=download.product)], status="paid", send_email=False
    )


# --- Downloads: the stamp settings ----------------------------------------------------------------


def test_a_download_shows_its_stamp_settings_with_their_defaults(api):
    download = pdf_download()
    body = api.get(f"/api/v1/downloads/{download.pk}").json()
    assert (body["stamp"], body["stamp_text"], body["stamp_position"]) == (
        False,
        DEFAULT_STAMP_TEXT,
        "bottom",
    )


def test_a_download_is_created_stamped_with_its_text_and_position(api):
    media, product = factories.MediaFactory(filename="Guide.pdf"), factories.ProductFactory()
    response = api.post(
        "/api/v1/downloads",
        {
            "download": {
                "media": str(media.pk),
                "product": str(product.pk),
                "stamp": True,
                "stamp_text": "  For {name} <{email}>, order {order_number}  ",
                "stamp_position": "top",
            }
        },
        format="json",
    )
    assert response.status_code == 201, response.json()
    body = response.json()
    assert (body["stamp"], body["stamp_text"], body["stamp_position"]) == (
        True,
        "For {name} <{email}>, order {order_number}",
        "top",
    )
    stored = Download.objects.get(pk=body["id"])
    assert (stored.stamp, stored.stamp_position) == (True, "top")


@pytest.mark.parametrize(
    ("stamp_text", "reason"),
    [
        ("Hi {customer}", "invalid"),
        ("Hi {email", "invalid"),
        ("   ", "blank"),
        ("x" * 256, "max_length"),
    ],
)
def test_a_stamp_text_the_service_refuses_is_a_422_on_stamp_text(api, stamp_text, reason):
    download = pdf_download()
    response = api.patch(
        f"/api/v1/downloads/{download.pk}", {"stamp_text": stamp_text}, format="json"
    )
    assert response.status_code == 422, response.json()
    body = response.json()
    assert body["code"] == "download.invalid"
    (error,) = body["validation_errors"]
    assert (error["attribute"], error["code"]) == ("stamp_text", reason)
    download.refresh_from_db()
    assert download.stamp_text == DEFAULT_STAMP_TEXT


def test_an_unknown_placeholder_is_refused_on_create_too(api):
    media = factories.MediaFactory()
    response = api.post(
        "/api/v1/downloads",
        {"media": str(media.pk), "stamp": True, "stamp_text": "{password}"},
        format="json",
    )
    assert response.status_code == 422
    assert response.json()["validation_errors"][0]["attribute"] == "stamp_text"
    assert "password" in response.json()["validation_errors"][0]["message"]
    assert not Download.objects.exists()


@pytest.mark.parametrize(("field", "value"), [("stamp_position", "middle"), ("stamp", "maybe")])
def test_a_bad_position_or_flag_is_a_422_on_its_field(api, field, value):
    download = pdf_download()
    response = api.patch(f"/api/v1/downloads/{download.pk}", {field: value}, format="json")
    assert response.status_code == 422
    assert response.json()["validation_errors"][0]["attribute"] == field


def test_turning_stamp_on_for_a_download_with_grants_requests_a_copy_for_each(api):
    download = pdf_download()
    orders = [pay(download, email=f"buyer{n}@example.com") for n in range(3)]
    assert not StampedCopy.objects.exists()
    response = api.patch(f"/api/v1/downloads/{download.pk}", {"stamp": True}, format="json")
    assert response.status_code == 200 and response.json()["stamp"] is True
    copies = StampedCopy.objects.all()
    assert {copy.grant.order_id for copy in copies} == {order.pk for order in orders}
    assert {copy.status for copy in copies} == {"pending"}


def test_changing_the_text_makes_every_copy_again(api):
    download = pdf_download(stamp=True)
    pay(download)
    first = stamped_copy_make(copy_id=StampedCopy.objects.get().pk)
    response = api.patch(
        f"/api/v1/downloads/{download.pk}",
        {"download": {"stamp_text": "Personal copy of {email}"}},
        format="json",
    )
    assert response.status_code == 200
    again = StampedCopy.objects.get()
    assert again.pk != first.pk and again.status == "pending"


# --- Grants: `stamped` ---------------------------------------------------------------------------


def stamped_of(api, grant):
    return api.get(f"/api/v1/grants/{grant.pk}").json()["stamped"]


def test_a_grant_of_a_file_that_is_not_stamped_has_stamped_null(api):
    assert stamped_of(api, factories.GrantFactory()) is None
    not_pdf = factories.DownloadFactory(
        stamp=True, media=factories.MediaFactory(filename="a.zip", content_type="application/zip")
    )
    assert stamped_of(api, pay(not_pdf).grants.get()) is None


def test_a_grant_of_a_stamped_pdf_shows_its_copy_pending_then_ready(api):
    grant = pay(pdf_download(stamp=True)).grants.get()
    assert stamped_of(api, grant) == {"status": "pending", "error": "", "ready_at": None}
    copy = stamped_copy_make(copy_id=StampedCopy.objects.get().pk)
    assert stamped_of(api, grant) == {
        "status": "ready",
        "error": "",
        "ready_at": int(copy.ready_at.timestamp()),
    }


def test_an_encrypted_pdf_shows_unstampable_with_the_reason(api):
    grant = pay(pdf_download(pdfs.encrypted(), stamp=True)).grants.get()
    stamped_copy_make(copy_id=StampedCopy.objects.get().pk)
    stamped = stamped_of(api, grant)
    assert stamped["status"] == "unstampable" and "encrypted" in stamped["error"]
    assert stamped["ready_at"] is None


def test_a_copy_of_an_older_version_is_not_the_grants_copy(api):
    download = pdf_download(stamp=True)
    grant = pay(download).grants.get()
    stamped_copy_make(copy_id=StampedCopy.objects.get().pk)
    # The download's file changes under the copy (as a new version does before its copy).
    Download.objects.filter(pk=download.pk).update(media=factories.MediaFactory(filename="b.pdf"))
    assert stamped_of(api, grant)["status"] == "pending"


@pytest.fixture
def warm_api(api, write_key):
    ApiKey.objects.filter(pk=write_key[0].pk).update(last_used_at=timezone.now())
    return api


@pytest.mark.parametrize("rows", [1, 30])
def test_listing_stamped_grants_takes_the_same_queries_as_any(
    warm_api, django_assert_num_queries, rows
):
    download = pdf_download(stamp=True)
    for n in range(rows):
        pay(download, email=f"buyer{n}@example.com")
    for pk in StampedCopy.objects.values_list("pk", flat=True)[: rows // 2]:
        stamped_copy_make(copy_id=pk)
    # key lookup + count + the page's keys + its rows (their copies joined in)
    with django_assert_num_queries(4):
        body = warm_api.get("/api/v1/grants?limit=100").json()
    assert len(body["data"]) == rows
    statuses = [row["stamped"]["status"] for row in body["data"]]
    assert statuses.count("ready") == rows // 2
    assert statuses.count("pending") == rows - rows // 2


# --- Schema ----------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def schemas() -> dict:
    # Serving the schema touches no database (as in test_schema.py).
    response = Client().get("/api/schema/")
    assert response.status_code == 200
    return yaml.safe_load(response.content)["components"]["schemas"]


def test_the_schema_documents_the_stamp_fields_and_a_grants_stamped_object(schemas):
    download = schemas["Download"]["properties"]
    assert download["stamp"]["type"] == "boolean"
    assert download["stamp_text"]["type"] == "string"
    assert download["stamp_position"]["enum"] == ["bottom", "top"]
    for name in ("stamp", "stamp_text", "stamp_position"):
        assert name in schemas["Download"]["required"]
        assert name in schemas["DownloadInputRequest"]["properties"]
    stamped = schemas["Grant"]["properties"]["stamped"]
    # Null or the state, in OpenAPI 3.0's terms (schema.openapi_30_nullables).
    assert stamped["oneOf"] == [
        {"$ref": "#/components/schemas/StampedState"},
        {"type": "object", "nullable": True, "enum": [None]},
    ]
    state = schemas["StampedState"]
    assert set(state["properties"]) == set(state["required"]) == {"status", "error", "ready_at"}
    assert state["properties"]["status"]["enum"] == ["pending", "ready", "unstampable"]
    assert state["properties"]["ready_at"]["nullable"] is True
