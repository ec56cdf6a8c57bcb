"""GET /api/v2/customer-account-orders?id=<access token>: Fileflare's shape, no auth."""

import json
from pathlib import Path

import pytest
from storages.backends.s3 import S3Storage

from downloads import storage
from downloads.api.storefront import compact_size
from tests import factories

pytestmark = pytest.mark.django_db

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


def test_the_answer_has_exactly_the_seeds_keys_at_every_level(client):
    order = factories.paid_order_with_files(lines=3, attached=1)
    response = client.get(URL, {"id": order.access_token})
    assert response.status_code == 200
    assert response["Content-Type"] == "application/json"
    got, seed = shape(response.json()), shape(seed_response())
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
    }


@pytest.mark.parametrize("query", ["", "?id=", "?other=1"])
def test_a_missing_id_is_a_400_in_the_error_envelope(client, query):
    response = client.get(URL + query)
    assert response.status_code == 400
    body = response.json()
    assert (body["http_status"], body["code"]) == ("bad_request", "required")
    assert "id" in body["message"]


def test_writes_are_405(client):
    order = factories.paid_order_with_files(lines=1)
    response = client.post(f"{URL}?id={order.access_token}")
    assert response.status_code == 405
    assert response.json()["code"] == "method_not_allowed"


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


@pytest.mark.parametrize("lines", [1, 10, 50])
def test_query_count_is_the_same_for_1_10_and_50_lines_and_nothing_is_presigned(
    client, s3, monkeypatch, django_assert_num_queries, lines
):
    order = factories.paid_order_with_files(lines=lines, attached=2)
    presigned = []
    original = S3Storage.url
    monkeypatch.setattr(
        S3Storage, "url", lambda self, *a, **k: presigned.append(a) or original(self, *a, **k)
    )
    assert storage.is_s3()
    # lines (+order, product, variant), then every grant of the order (+download, media)
    with django_assert_num_queries(2):
        response = client.get(URL, {"id": order.access_token})
    assert response.status_code == 200
    assert len(response.json()["order"]["lines"]) == lines
    assert presigned == []
