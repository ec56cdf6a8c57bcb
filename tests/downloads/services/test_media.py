"""Media (services.media): stored files."""

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from downloads.errors import ServiceError
from downloads.models import Media, MediaUpload
from downloads.services.media import (
    clean_content_type,
    media_create,
    media_delete,
    media_upload_start,
)
from tests import factories

pytestmark = pytest.mark.django_db


class TestDeletion:
    def test_media_used_by_a_download_cannot_be_deleted(self):
        download = factories.DownloadFactory()
        with pytest.raises(ServiceError):
            media_delete(media=download.media)


class TestContentType:
    """A media type is stored only when it is one (RFC 9110, ASCII): it is served back as
    the Content-Type of every download, where CR/LF or non-Latin-1 text is a 500."""

    @pytest.mark.parametrize(
        "value",
        [
            "application/pdf",
            "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
            "text/plain;charset=utf-8",
            "text/plain ; charset=utf-8 ;",
            'multipart/mixed; boundary="a b\\"c"',
            "application/x-foo+zip; a=1;\tb=2",
        ],
    )
    def test_valid_media_types_are_kept(self, value):
        assert clean_content_type(value, "a.bin") == value

    @pytest.mark.parametrize(
        "value",
        [
            "text/plain\r\nSet-Cookie: a=b",
            "text/plain\rx",
            "text/plain;\n a=b",
            "text/pl\u00e4in",
            "text/plain; name=\u00e9t\u00e9",
            'text/plain; name="\u00e9"',
            'text/plain; name="x',
            "text",
            "/plain",
            "text/",
            "text/plain/x",
            "text/pl ain",
            " text/plain",
            "text/plain; =x",
            "text/plain; a=",
            "text/plain; a b=c",
            "text/plain\x00",
            "text/" + "x" * 300,
        ],
    )
    def test_anything_else_is_media_invalid_on_content_type(self, value):
        with pytest.raises(ServiceError) as refused:
            clean_content_type(value, "a.bin")
        assert refused.value.code == "media.invalid"
        assert refused.value.attribute == "content_type"

    def test_no_content_type_is_guessed_from_the_name(self):
        assert clean_content_type(None, "Book.pdf") == "application/pdf"
        assert clean_content_type("", "noext") == "application/octet-stream"

    def test_media_create_refuses_a_header_breaking_type_and_stores_nothing(self):
        upload = SimpleUploadedFile("a.txt", b"hello")
        with pytest.raises(ServiceError) as refused:
            media_create(file=upload, content_type="text/plain\r\nX-Injected: 1")
        assert refused.value.attribute == "content_type"
        assert not Media.objects.exists()

    def test_a_direct_upload_refuses_a_non_ascii_type(self):
        with pytest.raises(ServiceError) as refused:
            media_upload_start(
                filename="a.zip",
                byte_size=5,
                content_type="application/zip; name=\u65e5\u672c",
                site_url="http://testserver",
            )
        assert refused.value.attribute == "content_type"
        assert not MediaUpload.objects.exists()
