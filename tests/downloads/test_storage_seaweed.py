"""storage against an S3 server that checks signatures (SeaweedFS, `s3_checking`): the app's
own S3 operations, and presigned download URLs that S3 accepts only as they were signed.

moto accepts any URL; these tests show the refusals a real store makes (tests/seaweed.py).
"""

import hashlib
import io
import os
from urllib.parse import quote

import pytest
import requests

from downloads import storage

pytestmark = pytest.mark.django_db

MIB = 1024 * 1024


def _stored(content: bytes, name: str = "media/seaweed/book.pdf") -> str:
    return storage.store_file(name, io.BytesIO(content))


class TestS3Operations:
    def test_store_file_then_size_chunks_hash_and_delete_round_trip(self, s3_checking):
        content = os.urandom(2 * MIB + 123)
        key = _stored(content)
        assert key == "media/seaweed/book.pdf"
        head = s3_checking.client.head_object(Bucket=s3_checking.bucket, Key=key)
        assert head["ContentLength"] == len(content)
        assert storage.stored_size(key) == len(content)
        chunks = list(storage.stored_chunks(key, chunk_size=MIB))
        assert b"".join(chunks) == content
        assert all(len(chunk) <= MIB for chunk in chunks) and len(chunks) >= 3
        assert storage.stored_sha256(key) == hashlib.sha256(content).hexdigest()

        storage.delete_stored(key)
        assert storage.stored_size(key) is None
        listed = s3_checking.client.list_objects_v2(Bucket=s3_checking.bucket)
        assert listed.get("Contents", []) == []

    def test_stored_size_of_a_missing_object_is_none(self, s3_checking):
        assert storage.stored_size("media/nothing/here.bin") is None

    def test_store_file_never_overwrites_a_taken_key(self, s3_checking):
        first = _stored(b"first")
        second = _stored(b"second")
        assert second != first
        assert b"".join(storage.stored_chunks(first)) == b"first"
        assert b"".join(storage.stored_chunks(second)) == b"second"

    def test_the_bucket_is_private_an_unsigned_get_is_refused(self, s3_checking):
        key = _stored(b"private bytes")
        response = requests.get(f"{s3_checking.endpoint}/{s3_checking.bucket}/{key}", timeout=10)
        assert response.status_code == 403
        assert b"private bytes" not in response.content


class TestPresignedDownloadUrl:
    CONTENT = b"%PDF-1.7 " + bytes(range(256)) * 8

    def _url(self, key: str, **kwargs) -> str:
        return storage.presigned_download_url(
            key=key, filename="Guía rápida.pdf", content_type="application/pdf", **kwargs
        )

    def test_is_accepted_and_serves_the_bytes_as_an_attachment_under_the_original_name(
        self, s3_checking
    ):
        key = _stored(self.CONTENT)
        response = requests.get(self._url(key), timeout=10)
        assert response.status_code == 200
        assert response.content == self.CONTENT
        assert response.headers["Content-Disposition"] == storage.content_disposition(
            "Guía rápida.pdf"
        )
        assert response.headers["Content-Type"] == "application/pdf"

    def test_a_tampered_signature_is_refused(self, s3_checking):
        url = self._url(_stored(self.CONTENT))
        signature = url.split("X-Amz-Signature=", 1)[1][:64]
        flipped = ("0" if signature[0] != "0" else "1") + signature[1:]
        response = requests.get(url.replace(signature, flipped), timeout=10)
        assert response.status_code == 403
        assert self.CONTENT not in response.content

    def test_a_changed_parameter_is_refused(self, s3_checking):
        # The response headers S3 sets are signed too: a buyer cannot rename or inline it.
        url = self._url(_stored(self.CONTENT))
        inline = url.replace(
            "response-content-disposition=attachment", "response-content-disposition=inline"
        )
        assert inline != url
        assert requests.get(inline, timeout=10).status_code == 403

    def test_the_signature_of_one_key_does_not_open_another(self, s3_checking):
        mine = _stored(self.CONTENT, "media/mine/file.pdf")
        _stored(b"someone else's file", "media/theirs/file.pdf")
        url = self._url(mine)
        other = url.replace(quote(mine), quote("media/theirs/file.pdf"))
        assert other != url
        response = requests.get(other, timeout=10)
        assert response.status_code == 403
        assert b"someone else" not in response.content

    def test_a_url_signed_for_a_range_serves_only_that_range(self, s3_checking):
        key = _stored(self.CONTENT)
        url = self._url(key, byte_range="bytes=100-")
        part = requests.get(url, headers={"Range": "bytes=100-"}, timeout=10)
        assert part.status_code == 206
        assert part.content == self.CONTENT[100:]
        # Without the signed Range header, or with another, the URL is not a whole copy.
        assert requests.get(url, timeout=10).status_code == 403
        assert requests.get(url, headers={"Range": "bytes=0-"}, timeout=10).status_code == 403

    def test_a_url_signed_for_head_cannot_get_the_file(self, s3_checking):
        key = _stored(self.CONTENT)
        url = self._url(key, http_method="HEAD")
        head = requests.head(url, timeout=10)
        assert head.status_code == 200
        assert head.headers["Content-Length"] == str(len(self.CONTENT))
        assert requests.get(url, timeout=10).status_code == 403
