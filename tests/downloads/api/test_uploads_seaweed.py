"""Direct uploads (POST /api/v1/media/uploads, then …/complete) on an S3 server that enforces
presigned POST policies (SeaweedFS, `s3_checking`): the store takes exactly the announced
file under its key and type, refuses anything else, and `complete` then finds nothing.

moto stores whatever is posted (tests/downloads/api/test_uploads_s3.py relies on the app's
own size check on complete); here the store itself refuses.
"""

import base64
import hashlib
import json
import os
import time
from datetime import UTC, datetime, timedelta

import pytest
import requests

from downloads.models import Media, MediaUpload

pytestmark = pytest.mark.django_db

CONTENT = os.urandom(256 * 1024 + 7)


def start(api, *, byte_size: int = len(CONTENT), content_type: str = "application/zip") -> dict:
    response = api.post(
        "/api/v1/media/uploads",
        {"filename": "Stems.zip", "byte_size": byte_size, "content_type": content_type},
        format="json",
    )
    assert response.status_code == 201, response.json()
    upload = response.json()
    assert upload["method"] == "POST"
    return upload


def post(upload: dict, *, fields: dict | None = None, content: bytes = CONTENT):
    """Send the file as a browser would: the form's fields, then the file."""
    return requests.post(
        upload["upload_url"],
        data=fields if fields is not None else upload["fields"],
        files={"file": ("Stems.zip", content)},
        timeout=30,
    )


def objects(s3_checking) -> list[str]:
    listed = s3_checking.client.list_objects_v2(Bucket=s3_checking.bucket)
    return [item["Key"] for item in listed.get("Contents", [])]


def test_an_upload_within_the_policy_is_stored_and_completes_into_media(api, s3_checking):
    upload = start(api)
    stored = post(upload)
    assert stored.status_code in (200, 201, 204), stored.text
    assert objects(s3_checking) == [upload["fields"]["key"]]

    done = api.post(f"/api/v1/media/uploads/{upload['id']}/complete")
    assert done.status_code == 200, done.json()
    media = done.json()
    assert media["storage"] == "s3" and media["key"] == upload["fields"]["key"]
    assert media["byte_size"] == len(CONTENT)
    assert media["sha256"] == hashlib.sha256(CONTENT).hexdigest()
    assert media["content_type"] == "application/zip"
    head = s3_checking.client.head_object(Bucket=s3_checking.bucket, Key=media["key"])
    assert head["ContentLength"] == len(CONTENT) and head["ContentType"] == "application/zip"
    assert Media.objects.get(pk=media["id"]).sha256 == media["sha256"]


def _widened_policy(fields: dict) -> str:
    # The policy as the client got it, with its size condition opened up to 1 GiB.
    policy = json.loads(base64.b64decode(fields["policy"]))
    policy["conditions"] = [
        ["content-length-range", 0, 1024**3]
        if isinstance(condition, list) and condition[0] == "content-length-range"
        else condition
        for condition in policy["conditions"]
    ]
    return base64.b64encode(json.dumps(policy).encode()).decode()


# What the client changes (fields, file) and how S3 answers: the status and its error code.
REFUSED = {
    "one byte too large": (lambda f: f, CONTENT + b"x", 400, "EntityTooLarge"),
    "one byte too small": (lambda f: f, CONTENT[:-1], 400, "EntityTooSmall"),
    "an empty file": (lambda f: f, b"", 400, "EntityTooSmall"),
    "under another key": (
        lambda f: {**f, "key": "media/elsewhere/Stems.zip"},
        CONTENT,
        403,
        "AccessDenied",
    ),
    "another content type": (
        lambda f: {**f, "Content-Type": "text/html"},
        CONTENT,
        403,
        "AccessDenied",
    ),
    "a policy widened by the client": (
        lambda f: {**f, "policy": _widened_policy(f)},
        CONTENT + b"more",
        403,
        "SignatureDoesNotMatch",
    ),
}


@pytest.mark.parametrize("case", list(REFUSED))
def test_an_upload_that_breaks_the_policy_is_refused_by_the_store_and_makes_no_media(
    api, s3_checking, case
):
    change_fields, content, status, code = REFUSED[case]
    upload = start(api)
    refused = post(upload, fields=change_fields(upload["fields"]), content=content)
    assert refused.status_code == status, refused.text
    assert f"<Code>{code}</Code>" in refused.text
    assert objects(s3_checking) == []

    done = api.post(f"/api/v1/media/uploads/{upload['id']}/complete")
    assert done.status_code == 409 and done.json()["code"] == "media_upload.missing"
    assert not Media.objects.exists()
    assert MediaUpload.objects.get(pk=upload["id"]).media_id is None
    # The form as given still works: the refusal was the store's, not a broken upload.
    assert post(upload).status_code in (200, 201, 204)
    assert api.post(f"/api/v1/media/uploads/{upload['id']}/complete").status_code == 200


def test_an_upload_after_the_policy_expired_is_refused(api, s3_checking, settings):
    settings.DOWNLOADS_UPLOAD_URL_TTL = 1
    upload = start(api)
    policy = json.loads(base64.b64decode(upload["fields"]["policy"]))
    expires = datetime.strptime(policy["expiration"], "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)
    # Wait until this machine's clock (the store's too) is a whole second past it.
    deadline = time.monotonic() + 30
    while datetime.now(UTC) < expires + timedelta(seconds=1):
        assert time.monotonic() < deadline, f"the clock never passed {expires}"
        time.sleep(0.1)
    refused = post(upload)
    assert refused.status_code == 403, refused.text
    assert "<Code>AccessDenied</Code>" in refused.text and "expired" in refused.text
    assert objects(s3_checking) == []
    done = api.post(f"/api/v1/media/uploads/{upload['id']}/complete")
    assert 400 <= done.status_code < 500 and not Media.objects.exists()
