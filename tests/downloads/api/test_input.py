"""What a client sends that the API must refuse, not store or crash on: malformed media
types, JSON nested too deep, text no column can hold (lone surrogates, NULs), unknown list
parameters; and answers no cache keeps."""

import time
import uuid

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from downloads.api.parsers import MAX_JSON_DEPTH, json_depth_exceeds
from downloads.models import Media, MediaUpload, Product
from tests import factories

pytestmark = pytest.mark.django_db

ENVELOPE_KEYS = {"http_status", "code", "message", "validation_errors"}
BAD_CONTENT_TYPES = [
    "text/plain\r\nX-Injected: 1",
    "text/plain;\ncharset=utf-8",
    "text/plain; charset=\u00e9",
    "text/\u65e5\u672c",
    "application/pdf\x00",
    "textplain",
    'text/plain; name="unterminated',
    "text/plain x",
    "a/" + "b" * 300,
]


def post_json(client, path, raw: str):
    """POST `raw` as it is (the test client would re-encode a dict, refusing surrogates)."""
    return client.generic("POST", path, raw.encode("utf-8", "surrogatepass"), "application/json")


def assert_refused(response, status, code, attribute=None):
    assert response.status_code == status, response.content
    body = response.json()
    assert set(body) == ENVELOPE_KEYS and body["code"] == code
    if attribute is not None:
        assert body["validation_errors"][0]["attribute"] == attribute
    return body


# --- 1. Media types -----------------------------------------------------------------------


@pytest.mark.parametrize("content_type", BAD_CONTENT_TYPES)
def test_multipart_media_with_a_malformed_content_type_is_422(api, content_type):
    response = api.post(
        "/api/v1/media",
        {"file": SimpleUploadedFile("a.txt", b"hello"), "content_type": content_type},
        format="multipart",
    )
    assert_refused(response, 422, "media.invalid", "content_type")
    assert not Media.objects.exists()


@pytest.mark.parametrize("content_type", BAD_CONTENT_TYPES)
def test_direct_upload_with_a_malformed_content_type_is_422(api, content_type):
    response = api.post(
        "/api/v1/media/uploads",
        {"filename": "a.zip", "byte_size": 5, "content_type": content_type},
        format="json",
    )
    assert_refused(response, 422, "media.invalid", "content_type")
    assert not MediaUpload.objects.exists()


def test_a_media_type_with_parameters_is_kept_as_sent(api):
    content_type = 'text/plain; charset=utf-8;format="flowed \\"x\\""'
    response = api.post(
        "/api/v1/media",
        {"file": SimpleUploadedFile("a.txt", b"hello"), "content_type": content_type},
        format="multipart",
    )
    assert response.status_code == 201, response.json()
    assert response.json()["content_type"] == content_type


# --- 2. JSON depth ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "raw",
    ["[" * 1000 + "]" * 1000, '{"a":' * 1000 + "1" + "}" * 1000, "[" * 100_000],
    ids=["arrays", "objects", "unclosed"],
)
def test_json_nested_too_deep_is_400_not_500(api, raw):
    assert_refused(post_json(api, "/api/v1/products", raw), 400, "request.malformed")


def test_json_depth_counts_brackets_outside_strings_only():
    assert not json_depth_exceeds("[" * MAX_JSON_DEPTH + "]" * MAX_JSON_DEPTH)
    assert json_depth_exceeds("[" * (MAX_JSON_DEPTH + 1) + "]" * (MAX_JSON_DEPTH + 1))
    assert not json_depth_exceeds('{"a": "' + "[{" * 1000 + '\\"[[["}')


def test_the_depth_scan_is_linear_on_unterminated_strings():
    # `"\"\"\"…` with no closing quote: a backtracking string pattern is quadratic here.
    started = time.monotonic()
    assert not json_depth_exceeds('"' + '\\"' * 50_000 + "[" * 10)
    assert time.monotonic() - started < 1


def test_brackets_inside_strings_are_plain_text(api):
    name = "[{" * 100 + '\\"'
    response = post_json(api, "/api/v1/products", f'{{"name": "{name}"}}')
    assert response.status_code == 201, response.json()
    assert Product.objects.get().name == "[{" * 100 + '"'


# --- 3. Text no column can hold -----------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "attribute"),
    [
        ('{"name": "\\ud800"}', "name"),
        ('{"name": "a\\udfffb"}', "name"),
        ('{"name": "a\\u0000b"}', "name"),
        ('{"name": "P", "tags": ["ok", "\\ud800"]}', "tags[1]"),
        ('{"name": "P", "\\ud800": 1}', "\\ud800"),
        ('{"name": "P", "tags": [{"a\\ud800": 1}]}', "tags[0].a\\ud800"),
    ],
)
def test_lone_surrogates_and_nuls_in_json_are_422_naming_the_attribute(api, raw, attribute):
    body = assert_refused(post_json(api, "/api/v1/products", raw), 422, "product.invalid")
    assert body["validation_errors"][0]["attribute"] == attribute
    assert not Product.objects.exists()


def test_lone_surrogate_in_a_choice_field_is_422(api):
    download = factories.DownloadFactory()
    raw = '{"stamp_position": "\\ud800"}'
    response = api.generic(
        "PATCH", f"/api/v1/downloads/{download.pk}", raw.encode(), "application/json"
    )
    assert_refused(response, 422, "download.invalid", "stamp_position")


def test_a_surrogate_pair_is_a_character_and_is_stored(api):
    response = post_json(api, "/api/v1/products", '{"name": "Smile \\ud83d\\ude00"}')
    assert response.status_code == 201, response.json()
    assert Product.objects.get().name == "Smile \U0001f600"


def test_nul_in_a_query_value_is_400(api):
    response = api.get("/api/v1/orders", {"email": "a\x00@example.com"})
    assert_refused(response, 400, "parameter.invalid", "email")


# --- 5. Unknown list parameters -----------------------------------------------------------


def test_an_unknown_list_parameter_is_400_naming_it(api):
    grant = factories.GrantFactory()
    response = api.get("/api/v1/grants", {"order_id": str(grant.order_id)})
    assert_refused(response, 400, "parameter.invalid", "order_id")
    assert api.get("/api/v1/grants", {"order_id[]": str(grant.order_id)}).status_code == 400


def test_every_documented_list_parameter_is_known(api):
    grant = factories.GrantFactory()
    query = {
        "order_ids[]": str(grant.order_id),
        "product_ids": str(uuid.uuid4()),
        "ids[]": str(grant.pk),
        "revoked": "false",
        "page": "1",
        "limit": "5",
        "perpage": "5",
        "sort": "created_at:desc",
        "sortdir": "desc",
        "search": "",
        "format": "json",
    }
    response = api.get("/api/v1/grants", query)
    assert response.status_code == 200, response.json()
    assert [item["id"] for item in response.json()["data"]] == []  # product_ids matches none
    del query["product_ids"]
    assert [item["id"] for item in api.get("/api/v1/grants", query).json()["data"]] == [
        str(grant.pk)
    ]


def test_expand_is_known_on_lists(api):
    factories.DownloadFactory()
    response = api.get("/api/v1/downloads", {"expand[]": "product"})
    assert response.status_code == 200, response.json()


def test_a_non_list_filter_takes_no_brackets(api):
    response = api.get("/api/v1/orders", {"email[]": "a@example.com"})
    assert_refused(response, 400, "parameter.invalid", "email[]")


# --- 6. No caching -------------------------------------------------------------------------


def test_api_answers_are_not_cached(api, anonymous):
    order = factories.paid_order_with_files()
    response = api.get(f"/api/v1/orders/{order.pk}")
    assert response.status_code == 200 and "customer_page_url" in response.json()
    assert response["Cache-Control"] == "no-store, private"
    assert api.get("/api/v1/orders")["Cache-Control"] == "no-store, private"
    assert anonymous.get("/api/v1/orders")["Cache-Control"] == "no-store, private"
