"""GET /downloads/<grant token>/ on an S3 server that checks signatures and expiry
(SeaweedFS, `s3_checking`): the presigned URL of the 302 is accepted as signed, refused when
tampered with, for another key or once its TTL has passed, and serves signed Range resumes.

moto accepts any URL; these tests follow the redirect to a store that refuses as S3 does.
"""

import time
from urllib.parse import parse_qs, quote, urlsplit

import pytest
import requests
from django.core.files.base import ContentFile
from django.urls import reverse

from downloads import storage
from downloads.models import DownloadGrant
from downloads.services.media import media_create
from tests import factories

pytestmark = pytest.mark.django_db

CONTENT = b"%PDF-1.7 " + bytes(range(256)) * 16  # distinct-enough bytes, so ranges are checkable


def s3_grant(*, filename: str = "Field Guide.pdf", content: bytes = CONTENT, **kwargs):
    media = media_create(file=ContentFile(content), filename=filename)
    line = factories.OrderLineFactory(order=factories.OrderFactory(status="paid"))
    download = factories.DownloadFactory(product=line.product, media=media)
    kwargs.setdefault("download_limit", 5)
    return factories.GrantFactory(order=line.order, line=line, download=download, **kwargs)


def presigned(client, grant, **headers) -> str:
    """The presigned URL the download endpoint redirects to."""
    response = client.get(reverse("downloads:download", args=[grant.token]), **headers)
    assert response.status_code == 302, response.status_code
    return response["Location"]


def count_of(grant) -> int:
    return DownloadGrant.objects.get(pk=grant.pk).download_count


def test_the_redirect_is_accepted_and_delivers_the_exact_bytes_under_the_original_name(
    client, s3_checking
):
    grant = s3_grant(filename="Guía rápida 2024.pdf")
    delivered = requests.get(presigned(client, grant), timeout=10)
    assert delivered.status_code == 200
    assert delivered.content == CONTENT
    assert delivered.headers["Content-Disposition"] == storage.content_disposition(
        "Guía rápida 2024.pdf"
    )
    assert delivered.headers["Content-Type"] == "application/pdf"
    assert count_of(grant) == 1


def test_a_tampered_signature_is_refused(client, s3_checking):
    url = presigned(client, s3_grant())
    signature = parse_qs(urlsplit(url).query)["X-Amz-Signature"][0]
    flipped = ("0" if signature[0] != "0" else "1") + signature[1:]
    refused = requests.get(url.replace(signature, flipped), timeout=10)
    assert refused.status_code == 403
    assert CONTENT not in refused.content


def test_the_url_of_one_grant_does_not_open_another_file(client, s3_checking):
    mine = s3_grant(content=b"my copy of the book")
    theirs = s3_grant(content=b"another buyer's other file")
    url = presigned(client, mine)
    other = url.replace(quote(mine.download.media.key), quote(theirs.download.media.key))
    assert other != url
    refused = requests.get(other, timeout=10)
    assert refused.status_code == 403
    assert b"another buyer" not in refused.content


def test_the_url_is_refused_once_its_ttl_has_passed(client, s3_checking, settings):
    # 4 s: the signing time is whole seconds, so the first GET has at least 3 s, slack for
    # a loaded machine; the polling below waits only as long as the store still accepts it.
    settings.DOWNLOADS_URL_TTL = 4
    grant = s3_grant()
    url = presigned(client, grant)
    assert parse_qs(urlsplit(url).query)["X-Amz-Expires"] == ["4"]
    assert requests.get(url, timeout=10).status_code == 200
    # Ask again until the store refuses it; the deadline is far past the TTL.
    deadline = time.monotonic() + 30
    while (response := requests.get(url, timeout=10)).status_code == 200:
        assert time.monotonic() < deadline, "the expired URL was still accepted"
        time.sleep(0.2)
    assert response.status_code == 403
    assert b"expired" in response.content
    # A fresh link from the endpoint works again (and takes a download, as any GET).
    assert requests.get(presigned(client, grant), timeout=10).status_code == 200
    assert count_of(grant) == 2


@pytest.mark.parametrize(
    ("header", "first", "last"),
    [("bytes=100-", 100, None), ("bytes=100-1099", 100, 1099), ("bytes=4000-", 4000, None)],
)
def test_a_resume_through_the_presigned_url_is_206_with_the_right_bytes(
    client, s3_checking, header, first, last
):
    grant = s3_grant()
    presigned(client, grant)  # the counted download being resumed
    url = presigned(client, grant, HTTP_RANGE=header)
    assert parse_qs(urlsplit(url).query)["X-Amz-SignedHeaders"] == ["host;range"]
    part = requests.get(url, headers={"Range": header}, timeout=10)
    assert part.status_code == 206
    end = len(CONTENT) - 1 if last is None else last
    assert part.content == CONTENT[first : end + 1]
    assert part.headers["Content-Range"] == f"bytes {first}-{end}/{len(CONTENT)}"
    # The free resume's URL is no whole copy: without its Range header S3 refuses it.
    assert requests.get(url, timeout=10).status_code == 403
    assert count_of(grant) == 1


def test_a_head_redirect_answers_head_but_cannot_get_the_file(client, s3_checking):
    grant = s3_grant()
    response = client.head(reverse("downloads:download", args=[grant.token]))
    assert response.status_code == 302
    head = requests.head(response["Location"], timeout=10)
    assert head.status_code == 200
    assert head.headers["Content-Length"] == str(len(CONTENT))
    assert requests.get(response["Location"], timeout=10).status_code == 403
    assert count_of(grant) == 0
