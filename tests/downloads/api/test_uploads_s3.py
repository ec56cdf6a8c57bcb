"""Uploads to S3 (moto's server through django-storages): a 200 MB multipart upload that
never sits in memory, and the presigned direct upload."""

import hashlib
import os
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
import requests
from django.db import connection

from downloads.models import Media
from tests import factories

SERVER = Path(__file__).with_name("memory_server.py")
MIB = 1024 * 1024


def _multipart_file(path: Path, *, size: int, filename: str) -> tuple[str, str]:
    """Write a multipart body with one `file` part of `size` random bytes, in 1 MiB chunks;
    return (boundary, sha256 of the file part)."""
    boundary = uuid.uuid4().hex
    digest = hashlib.sha256()
    with path.open("wb") as body:
        body.write(
            f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="{filename}"'
            f"\r\nContent-Type: application/octet-stream\r\n\r\n".encode()
        )
        left = size
        while left:
            chunk = os.urandom(min(MIB, left))
            digest.update(chunk)
            body.write(chunk)
            left -= len(chunk)
        body.write(f"\r\n--{boundary}--\r\n".encode())
    return boundary, digest.hexdigest()


@pytest.mark.postgres
def test_200_mb_multipart_upload_lands_on_s3_without_holding_the_file_in_memory(
    postgres_only, transactional_db, s3, tmp_path, capsys
):
    size = 200 * MIB
    body_path = tmp_path / "body.multipart"
    boundary, sha256 = _multipart_file(body_path, size=size, filename="Big Pack.zip")
    raw_key = factories.api_key()[1]
    database = connection.settings_dict
    env = {
        **os.environ,
        "DOWNLOADS_DEV": "1",
        "DATABASE_URL": (
            f"postgres://{database['USER']}:{database['PASSWORD']}@{database['HOST']}:"
            f"{database['PORT']}/{database['NAME']}"
        ),
        "AWS_STORAGE_BUCKET_NAME": s3.bucket,
        "AWS_S3_ENDPOINT_URL": s3.endpoint,
        "AWS_S3_REGION_NAME": "us-east-1",
        "DOWNLOADS_VAR_DIR": str(tmp_path / "var"),
        "TMPDIR": str(tmp_path),
    }
    server = subprocess.Popen(
        [sys.executable, str(SERVER)],
        env=env,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        port = int(server.stdout.readline())
        url = f"http://127.0.0.1:{port}/api/v1/media"
        headers = {"Authorization": f"Bearer {raw_key}"}

        def serve(send):
            server.stdin.write("next\n")
            server.stdin.flush()
            response = send()
            before, peak = server.stdout.readline().split()
            return response, int(before), int(peak)

        # Warm up: imports, the database connection and the boto3 client (built by the
        # presigned POST of a direct upload) are not the upload's.
        warm, _before, _peak = serve(
            lambda: requests.post(
                f"{url}/uploads",
                json={"filename": "w.bin", "byte_size": 1},
                headers=headers,
                timeout=30,
            )
        )
        assert warm.status_code == 201
        with body_path.open("rb") as body:
            response, baseline_kib, peak_kib = serve(
                lambda: requests.post(
                    url,
                    data=body,
                    headers={
                        **headers,
                        "Content-Type": f"multipart/form-data; boundary={boundary}",
                    },
                    timeout=300,
                )
            )
    finally:
        server.stdin.close()
        server.wait(timeout=30)

    assert response.status_code == 201, response.text
    media = response.json()
    assert media["byte_size"] == size and media["sha256"] == sha256
    assert media["storage"] == "s3" and media["filename"] == "Big Pack.zip"
    head = s3.client.head_object(Bucket=s3.bucket, Key=media["key"])
    assert head["ContentLength"] == size
    assert Media.objects.get(pk=media["id"]).sha256 == sha256

    growth_mib = (peak_kib - baseline_kib) / 1024
    with capsys.disabled():
        print(
            f"\n200 MiB multipart upload to S3: peak RSS {baseline_kib / 1024:.0f} -> "
            f"{peak_kib / 1024:.0f} MiB, growth {growth_mib:.1f} MiB"
        )
    assert growth_mib < 64, f"the upload grew the server by {growth_mib:.0f} MiB"


@pytest.mark.django_db
def test_direct_upload_to_s3_with_the_presigned_post_then_complete(api, s3):
    content = os.urandom(3 * MIB + 17)
    start = api.post(
        "/api/v1/media/uploads",
        {"filename": "Stems.zip", "byte_size": len(content), "content_type": "application/zip"},
        format="json",
    )
    assert start.status_code == 201, start.json()
    upload = start.json()
    assert upload["method"] == "POST" and upload["headers"] == {}
    assert upload["upload_url"].startswith(s3.endpoint)
    fields = upload["fields"]
    assert fields["Content-Type"] == "application/zip"
    assert fields["x-amz-algorithm"] == "AWS4-HMAC-SHA256" and "policy" in fields

    stored = requests.post(
        upload["upload_url"], data=fields, files={"file": ("Stems.zip", content)}, timeout=30
    )
    assert stored.status_code in (200, 201, 204), stored.text

    done = api.post(f"/api/v1/media/uploads/{upload['id']}/complete")
    assert done.status_code == 200, done.json()
    media = done.json()
    assert media["byte_size"] == len(content)
    assert media["sha256"] == hashlib.sha256(content).hexdigest()
    assert media["storage"] == "s3" and media["key"] == fields["key"]
    assert s3.client.head_object(Bucket=s3.bucket, Key=media["key"])["ContentLength"] == len(
        content
    )


@pytest.mark.django_db
def test_direct_upload_of_the_wrong_size_is_refused_and_removed(api, s3):
    start = api.post(
        "/api/v1/media/uploads", {"filename": "a.bin", "byte_size": 10}, format="json"
    ).json()
    # moto does not enforce the policy's content-length-range; the app checks on complete.
    requests.post(
        start["upload_url"], data=start["fields"], files={"file": ("a.bin", b"123")}, timeout=30
    )
    done = api.post(f"/api/v1/media/uploads/{start['id']}/complete")
    assert done.status_code == 422 and done.json()["code"] == "media_upload.size_mismatch"
    listed = s3.client.list_objects_v2(Bucket=s3.bucket).get("Contents", [])
    assert listed == []
