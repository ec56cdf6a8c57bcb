"""storage: the Content-Disposition header and presigned S3 download URLs."""

from urllib.parse import parse_qs, unquote, urlsplit

import pytest
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage

from downloads import storage


class TestContentDisposition:
    @pytest.mark.parametrize(
        ("filename", "fallback", "encoded"),
        [
            ("report.pdf", "report.pdf", "report.pdf"),
            (
                "My Book (2nd edition).pdf",
                "My Book (2nd edition).pdf",
                "My%20Book%20%282nd%20edition%29.pdf",
            ),
            (
                "Résumé – final.pdf",
                "Resume _ final.pdf",
                "R%C3%A9sum%C3%A9%20%E2%80%93%20final.pdf",
            ),
            ("日本語.zip", "___.zip", "%E6%97%A5%E6%9C%AC%E8%AA%9E.zip"),
        ],
    )
    def test_keeps_the_original_name_and_gives_an_ascii_fallback(self, filename, fallback, encoded):
        value = storage.content_disposition(filename)
        assert value == f"attachment; filename=\"{fallback}\"; filename*=UTF-8''{encoded}"
        assert unquote(value.split("filename*=UTF-8''")[1]) == filename
        value.encode("ascii")  # a header value must be ASCII

    @pytest.mark.parametrize(
        "filename",
        [
            'evil".pdf',
            "evil\r\nSet-Cookie: a=b.pdf",
            "back\\slash.pdf",
            "x\"; filename*=UTF-8''hacked.exe",
            "nul\x00byte.pdf",
            "line\u2028sep.pdf",
        ],
    )
    def test_quotes_backslashes_and_line_breaks_can_never_get_through(self, filename):
        value = storage.content_disposition(filename)
        fallback = value.split('filename="', 1)[1].split('"; filename*=', 1)[0]
        assert '"' not in fallback and "\\" not in fallback
        assert not any(ch in value for ch in "\r\n\x00\u2028")
        assert value.count("filename*=") == 1
        assert value.count('"') == 2

    def test_an_empty_or_unprintable_name_becomes_download(self):
        assert 'filename="download"' in storage.content_disposition("\r\n")
        assert 'filename="download"' in storage.content_disposition("")

    def test_path_separators_cannot_choose_a_folder(self):
        assert storage.clean_filename("../../etc/passwd") == ".._.._etc_passwd"


@pytest.mark.django_db
class TestPresignedDownloadUrl:
    def test_is_sigv4_with_the_configured_ttl_and_the_attachment_name(self, s3, settings):
        settings.DOWNLOADS_URL_TTL = 90
        key = default_storage.save("media/x/file.pdf", ContentFile(b"%PDF"))
        url = storage.presigned_download_url(
            key=key, filename="Ünïcode name.pdf", content_type="application/pdf"
        )
        query = {k: v[0] for k, v in parse_qs(urlsplit(url).query).items()}
        assert query["X-Amz-Algorithm"] == "AWS4-HMAC-SHA256"
        assert query["X-Amz-Expires"] == "90"
        assert query["X-Amz-Credential"].endswith("/us-east-1/s3/aws4_request")
        assert query["response-content-disposition"] == storage.content_disposition(
            "Ünïcode name.pdf"
        )
        assert query["response-content-type"] == "application/pdf"
        assert query["X-Amz-SignedHeaders"] == "host"

    def test_a_range_is_signed_so_the_url_serves_only_that_range(self, s3):
        key = default_storage.save("media/x/file.bin", ContentFile(b"0123456789"))
        url = storage.presigned_download_url(key=key, filename="f.bin", byte_range="bytes=4-")
        assert parse_qs(urlsplit(url).query)["X-Amz-SignedHeaders"] == ["host;range"]

    def test_a_url_signed_for_head_differs_from_the_one_for_get(self, s3):
        key = default_storage.save("media/x/file.bin", ContentFile(b"0123456789"))
        get = storage.presigned_download_url(key=key, filename="f.bin")
        head = storage.presigned_download_url(key=key, filename="f.bin", http_method="HEAD")
        signature = lambda url: parse_qs(urlsplit(url).query)["X-Amz-Signature"]  # noqa: E731
        assert signature(get) != signature(head)
