"""GET /api/v2/customer-account-orders?id=<access token>: Fileflare's shape, no auth."""

import json
from datetime import timedelta
from pathlib import Path

import pytest
from django.db import connection
from django.utils import timezone

from downloads import storage
from downloads.api.storefront import compact_size
from downloads.models import LicenseKey
from downloads.services.licences import license_key_activate
from downloads.services.orders import LineInput, order_refund
from tests import factories

pytestmark = pytest.mark.django_db


def storefront_statements() -> int:
    """The storefront's reads: one statement on PostgreSQL, two elsewhere."""
    return 1 if connection.vendor == "postgresql" else 2


URL = "/api/v2/customer-account-orders"
SEED_NAME = "fileflare-customer-account-orders-v2.txt"
# A copy of the vendor page kept with the tests, so the suite runs from the repository alone;
# the spec of record is in shared/seeds/ beside the repository (checked below when present).
SEED = Path(__file__).resolve().parent / "seeds" / SEED_NAME
SHARED_SEED = Path(__file__).resolve().parents[4] / "shared" / "seeds" / SEED_NAME


def seed_response() -> dict:
    """The example response of the seed, parsed out of its text."""
    text = SEED.read_text()
    start = text.index("{", text.index("Response"))
    return json.JSONDecoder().raw_decode(text[start:])[0]


def shape(value):
    """The keys at every level: dicts become {key: shape}, a list the merged shape of its
    items (an empty list stands for any list), anything else None."""
    if isinstance(value, dict):
        return {key: shape(item) for key, item in value.items()}
    if isinstance(value, list):
        merged = []
        for item in value:
            merged = merge(merged, [shape(item)])
        return merged
    return None


def merge(a, b):
    """Two shapes of items of one list must agree; an empty list matches any list."""
    if isinstance(a, list) and isinstance(b, list):
        return [merge(a[0], b[0])] if a and b else a or b
    if isinstance(a, dict) and isinstance(b, dict):
        assert set(a) == set(b), f"items of one list differ in keys: {set(a) ^ set(b)}"
        return {key: merge(a[key], b[key]) for key in a}
    assert a == b, f"items of one list differ in shape: {a!r} != {b!r}"
    return a


def with_stamped(seed_shape: dict) -> dict:
    """The seed's shape with our one addition every asset carries: `data.stamped`."""
    seed_shape = json.loads(json.dumps(seed_shape))
    order = seed_shape["order"]
    for assets in (*(line["assets"] for line in order["lines"]), order["assets"]):
        for item in assets:
            item["data"]["stamped"] = None
    return seed_shape


def test_the_answer_has_exactly_the_seeds_keys_at_every_level_and_stamped(client):
    order = factories.paid_order_with_files(lines=3, attached=1)
    response = client.get(URL, {"id": order.access_token})
    assert response.status_code == 200
    assert response["Content-Type"] == "application/json"
    got, seed = shape(response.json()), with_stamped(shape(seed_response()))
    assert got == seed
    # Every list of the seed is non-empty in the answer too, so every level was compared.
    assert got["order"]["lines"][0]["assets"] and got["order"]["assets"]


def test_the_kept_copy_of_the_seed_matches_the_spec_of_record_when_it_is_beside_us():
    if SHARED_SEED.exists():
        assert SEED.read_bytes() == SHARED_SEED.read_bytes()
    assert SEED.read_text().count('"order_number"') == 1


def test_the_seed_itself_parses_to_the_documented_shape():
    seed = seed_response()
    assert set(seed) == {"order", "text"}
    assert set(seed["order"]["lines"][0]["product"]) == {
        "id", "name", "variant_name", "sku", "product_id", "variant_id", "vendor", "tags"
    }  # fmt: skip


def test_values_come_from_the_order_its_lines_and_grants(client):
    order = factories.paid_order_with_files(lines=3, attached=1)
    data = client.get(URL, {"id": order.access_token}).json()
    assert data["order"]["order_number"] == order.number
    assert data["text"] == {"title": "Download files for your orders", "text": None}
    lines = list(order.lines.select_related("product", "variant").prefetch_related("grants"))
    for got, line in zip(data["order"]["lines"], lines, strict=True):
        grant = line.grants.get()
        assert got["product"] == {
            "id": str(line.product.id),
            "name": line.name,
            "variant_name": line.variant_name,
            "sku": line.sku,
            "product_id": line.product.external_id,
            "variant_id": line.variant.external_id,
            "vendor": line.product.vendor,
            "tags": line.product.tags,
        }
        (asset,) = got["assets"]
        assert asset["limits"] == {"downloaded": grant.download_count, "limit": 10}
        assert asset["data"]["id"] == str(grant.download.id)
        assert asset["data"]["url"] == f"http://testserver/downloads/{grant.token}/"
        assert asset["data"]["is_file"] is grant.download.is_file
        assert asset["data"]["is_link"] is not grant.download.is_file
        assert asset["data"]["filename"] == grant.download.display_name
    file_asset = data["order"]["lines"][0]["assets"][0]["data"]
    assert file_asset["size"] == f"{lines[0].grants.get().download.media.byte_size}B"
    link_asset = data["order"]["lines"][2]["assets"][0]["data"]
    assert (link_asset["is_link"], link_asset["size"]) == (True, "")
    (attached,) = data["order"]["assets"]
    assert attached["limits"] == {"downloaded": 0, "limit": None}  # unlimited


@pytest.mark.parametrize(
    ("size", "text"),
    [(0, "0B"), (20, "20B"), (1536, "1.5KB"), (10 * 1024**2, "10MB"), (3 * 1024**3, "3GB")],
)
def test_sizes_are_written_like_fileflares(size, text):
    assert compact_size(size) == text


def test_urls_use_the_configured_site_url(client, settings):
    settings.DOWNLOADS_SITE_URL = "https://files.example.com"
    order = factories.paid_order_with_files(lines=1, attached=0)
    data = client.get(URL, {"id": order.access_token}).json()
    assert data["order"]["lines"][0]["assets"][0]["data"]["url"].startswith(
        "https://files.example.com/downloads/"
    )


def test_one_buyers_id_never_shows_another_buyers_order(client):
    mine = factories.paid_order_with_files(lines=1, email="me@example.com")
    theirs = factories.paid_order_with_files(lines=2, email="them@example.com")
    data = client.get(URL, {"id": mine.access_token}).json()
    assert data["order"]["order_number"] == mine.number
    tokens = {grant.token for grant in theirs.grants.all()}
    assert not any(token in json.dumps(data) for token in tokens)


@pytest.mark.parametrize(
    "token", ["0c732eb6fd9802a0821a9d29888baee8", "x" * 5000, "abc\x00def", "é", " "]
)
def test_an_unknown_id_is_a_404_in_the_error_envelope(client, token):
    factories.paid_order_with_files(lines=1)
    response = client.get(URL, {"id": token})
    assert response.status_code == 404
    assert response.json() == {
        "http_status": "not_found",
        "code": "order.not_found",
        "message": "No order has this id.",
        "validation_errors": [],
    }
    assert "no-store" in response["Cache-Control"]


@pytest.mark.parametrize("query", ["", "?id="])
def test_a_missing_id_is_a_400_in_the_api_envelope_naming_it(client, query):
    response = client.get(URL + query)
    assert response.status_code == 400
    assert response.json() == {
        "http_status": "bad_request",
        "code": "parameter.invalid",
        "message": "id: The id query parameter is required.",
        "validation_errors": [
            {
                "attribute": "id",
                "code": "required",
                "message": "The id query parameter is required.",
            }
        ],
    }
    assert "no-store" in response["Cache-Control"]


@pytest.mark.parametrize("query", ["?other=1", "?id=x&order_id=1", "?ids[]=x"])
def test_an_unknown_query_parameter_is_a_400_naming_it_as_the_api_does(client, query):
    order = factories.paid_order_with_files(lines=1)
    response = client.get(URL + query.replace("id=x", f"id={order.access_token}"))
    assert response.status_code == 400
    body = response.json()
    assert (body["http_status"], body["code"]) == ("bad_request", "parameter.invalid")
    unknown = query.split("&")[-1].lstrip("?").split("=")[0]
    assert body["validation_errors"] == [
        {"attribute": unknown, "code": "unknown_parameter", "message": "Unknown query parameter."}
    ]
    assert "no-store" in response["Cache-Control"]


def test_writes_are_405_in_the_api_envelope(client):
    order = factories.paid_order_with_files(lines=1)
    response = client.post(f"{URL}?id={order.access_token}")
    assert response.status_code == 405
    assert response["Allow"] == "GET, HEAD"
    body = response.json()
    assert set(body) == {"http_status", "code", "message", "validation_errors"}
    assert (body["http_status"], body["code"]) == (
        "method_not_allowed",
        "request.method_not_allowed",
    )


def test_the_trailing_slash_answers_the_same(client):
    order = factories.paid_order_with_files(lines=1)
    plain = client.get(URL, {"id": order.access_token})
    slashed = client.get(URL + "/", {"id": order.access_token})
    assert (plain.status_code, slashed.status_code) == (200, 200)
    assert plain.json() == slashed.json()


def test_answers_are_never_cached(client):
    order = factories.paid_order_with_files(lines=1)
    assert "no-store" in client.get(URL, {"id": order.access_token})["Cache-Control"]


def test_cors_allows_only_the_configured_storefront_origins(client, settings):
    settings.CORS_ALLOWED_ORIGINS = ["https://my-store.com"]
    order = factories.paid_order_with_files(lines=1)
    allowed = client.get(URL, {"id": order.access_token}, HTTP_ORIGIN="https://my-store.com")
    assert allowed["Access-Control-Allow-Origin"] == "https://my-store.com"
    other = client.get(URL, {"id": order.access_token}, HTTP_ORIGIN="https://evil.example")
    assert "Access-Control-Allow-Origin" not in other
    preflight = client.options(
        URL,
        HTTP_ORIGIN="https://my-store.com",
        HTTP_ACCESS_CONTROL_REQUEST_METHOD="GET",
    )
    assert preflight.status_code == 200
    assert preflight["Access-Control-Allow-Origin"] == "https://my-store.com"
    assert "GET" in preflight["Access-Control-Allow-Methods"]


# --- Licence keys: each line's `license_keys`, beside the seed's keys ---------------------------


def licensed(limit=3, days=None, **kwargs):
    product = factories.ProductFactory(
        license_keys=True, license_activation_limit=limit, license_expiry_days=days, **kwargs
    )
    factories.DownloadFactory(product=product)
    return product


def without_license_keys(body: dict) -> dict:
    """The answer with the lines' `license_keys` taken out."""
    body = json.loads(json.dumps(body))
    for line in body["order"]["lines"]:
        line.pop("license_keys", None)
    return body


def test_a_line_with_keys_lists_them_in_the_licence_apis_names(client, paid_order):
    app = licensed(limit=3, days=365)
    order = paid_order(LineInput(product=app, quantity=2), licensed(limit=None))
    first, second = order.license_keys.filter(product=app).order_by("unit")
    for name in ("Laptop", "Desktop"):
        license_key_activate(key_text=first.key, instance_name=name)
    unlimited = order.license_keys.exclude(product=app).get()
    lines = client.get(URL, {"id": order.access_token}).json()["order"]["lines"]
    expires_at = int(first.expires_at.timestamp())
    assert lines[0]["license_keys"] == [
        {
            "key": first.key,
            "status": "active",
            "activation_limit": 3,
            "activation_usage": 2,
            "expires_at": expires_at,
        },
        {
            "key": second.key,
            "status": "inactive",
            "activation_limit": 3,
            "activation_usage": 0,
            "expires_at": expires_at,
        },
    ]
    assert lines[1]["license_keys"] == [
        {
            "key": unlimited.key,
            "status": "inactive",
            "activation_limit": None,
            "activation_usage": 0,
            "expires_at": None,
        }
    ]
    assert len(lines[0]["assets"]) == 1  # the files are still there


def test_a_keys_status_is_the_models_expired_and_disabled_too(client, paid_order):
    order = paid_order(LineInput(product=licensed(days=30), quantity=3))
    one, two, three = order.license_keys.order_by("unit")
    LicenseKey.objects.filter(pk=one.pk).update(expires_at=timezone.now() - timedelta(days=1))
    order_refund(order=order, quantities={order.lines.get().pk: 1}, amount=2500)
    keys = client.get(URL, {"id": order.access_token}).json()["order"]["lines"][0]["license_keys"]
    assert [key["key"] for key in keys] == [one.key, two.key, three.key]
    now = timezone.now()
    assert [key["status"] for key in keys] == [
        LicenseKey.objects.get(pk=key.pk).status_at(now) for key in (one, two, three)
    ]
    assert [key["status"] for key in keys] == ["expired", "inactive", "disabled"]


def test_the_seeds_keys_are_unchanged_and_lines_without_keys_carry_none(client, paid_order):
    order = paid_order(
        licensed(), factories.DownloadFactory().product, downloads=[factories.DownloadFactory()]
    )
    body = client.get(URL, {"id": order.access_token}).json()
    assert "license_keys" in body["order"]["lines"][0]
    assert "license_keys" not in body["order"]["lines"][1]  # not a licence product
    assert shape(without_license_keys(body)) == with_stamped(shape(seed_response()))
    for line in body["order"]["lines"]:
        assert set(line) - {"license_keys"} == {"product", "assets"}


def test_one_buyers_id_never_shows_another_buyers_keys(client, paid_order):
    app = licensed()
    mine = paid_order(LineInput(product=app, quantity=2), email="me@example.com")
    theirs = paid_order(LineInput(product=app, quantity=2), email="them@example.com")
    text = client.get(URL, {"id": mine.access_token}).content.decode()
    assert all(key.key in text for key in mine.license_keys.all())
    assert not any(key.key in text for key in theirs.license_keys.all())


@pytest.mark.parametrize("lines", [1, 10, 50])
def test_keys_cost_no_statement_of_their_own(client, paid_order, django_assert_num_queries, lines):
    order = paid_order(
        *(LineInput(product=licensed(), quantity=2) for _ in range(lines)),
        factories.DownloadFactory().product,
        downloads=[factories.DownloadFactory()],
    )
    # lines (+order, product, variant, their licence keys) and every grant of the order:
    # one statement on PostgreSQL (CompiledQuery.together), two elsewhere
    with django_assert_num_queries(storefront_statements()) as queries:
        response = client.get(URL, {"id": order.access_token})
    body = response.json()
    counts = [len(line.get("license_keys", ())) for line in body["order"]["lines"]]
    assert counts == [2] * lines + [0]
    assert len(body["order"]["lines"][-1]["assets"]) == 1 and len(body["order"]["assets"]) == 1
    (with_keys,) = [query for query in queries.captured_queries if "licensekey" in query["sql"]]
    assert "orderline" in with_keys["sql"]  # folded into the lines' statement


@pytest.mark.parametrize("lines", [1, 10, 50])
def test_query_count_is_the_same_for_1_10_and_50_lines_and_nothing_is_presigned(
    client, s3, monkeypatch, django_assert_num_queries, lines
):
    order = factories.paid_order_with_files(lines=lines, attached=2)
    presigned = []
    original = storage.presigned_download_url
    monkeypatch.setattr(
        storage, "presigned_download_url", lambda **k: presigned.append(k) or original(**k)
    )
    assert storage.is_s3()
    # lines (+order, product, variant) and every grant of the order (+download, media)
    with django_assert_num_queries(storefront_statements()):
        response = client.get(URL, {"id": order.access_token})
    assert response.status_code == 200
    assert len(response.json()["order"]["lines"]) == lines
    assert presigned == []
