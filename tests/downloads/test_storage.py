"""storage: the Content-Disposition header and presigned S3 download URLs."""

import io
import zipfile
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


@pytest.mark.django_db
class TestZipResponse:
    """storage.zip_response: stored files as one ZIP, streamed member by member."""

    @staticmethod
    def members(*contents: bytes):
        from types import SimpleNamespace

        return [
            SimpleNamespace(
                key=default_storage.save(f"media/z/{number}.bin", ContentFile(content)),
                name=f"file {number}.bin",
                size=len(content),
            )
            for number, content in enumerate(contents)
        ]

    @staticmethod
    def opened(response) -> zipfile.ZipFile:
        return zipfile.ZipFile(io.BytesIO(b"".join(response.streaming_content)))

    def test_streams_each_member_with_its_exact_bytes_and_a_content_length_known_up_front(self):
        files = self.members(b"first " * 100, bytes(range(256)) * 9)
        response = storage.zip_response(
            filename="order-7.zip", files=files, texts=[("Links.txt", b"a: https://x\n")]
        )
        assert response.streaming
        assert response["Content-Type"] == "application/zip"
        assert response["Content-Disposition"] == storage.content_disposition("order-7.zip")
        body = b"".join(response.streaming_content)
        assert int(response["Content-Length"]) == len(body)
        archive = zipfile.ZipFile(io.BytesIO(body))
        assert archive.testzip() is None
        assert archive.namelist() == ["file 0.bin", "file 1.bin", "Links.txt"]
        assert archive.read("file 0.bin") == b"first " * 100
        assert archive.read("file 1.bin") == bytes(range(256)) * 9
        assert archive.read("Links.txt") == b"a: https://x\n"
        # Stored, not compressed: the length could be computed before reading a byte.
        assert {info.compress_type for info in archive.infolist()} == {zipfile.ZIP_STORED}

    def test_reads_each_stored_object_only_when_the_stream_reaches_it_in_chunks(self, monkeypatch):
        files = self.members(b"a" * 10, b"b" * 10)
        opened = []
        real = storage.stored_chunks

        def spy(key, chunk_size=storage.STREAM_CHUNK):
            opened.append(key)
            yield from real(key, chunk_size=4)

        monkeypatch.setattr(storage, "stored_chunks", spy)
        stream = iter(storage.zip_response(filename="o.zip", files=files).streaming_content)
        assert opened == []  # nothing is read before the response is iterated
        chunks = [next(stream)]
        while len(opened) < 2:
            chunks.append(next(stream))
        assert opened == [files[0].key, files[1].key]
        chunks += list(stream)
        assert len(chunks) > 6  # the members came through in small pieces, never whole

    def test_head_answers_the_length_a_get_would_send_and_reads_nothing(self, monkeypatch):
        files = self.members(b"x" * 50, b"y" * 70)
        get = storage.zip_response(filename="o.zip", files=files)
        length = len(b"".join(get.streaming_content))
        monkeypatch.setattr(storage, "stored_chunks", lambda *a, **k: pytest.fail("read"))
        head = storage.zip_response(filename="o.zip", files=files, head=True)
        assert not head.streaming and head.content == b""
        assert int(head["Content-Length"]) == length

    def test_a_client_that_goes_away_closes_the_object_being_read(self, monkeypatch):
        files = self.members(b"a" * 100)
        closed = []
        real = storage.stored_chunks

        def spy(key, chunk_size=storage.STREAM_CHUNK):
            try:
                yield from real(key, chunk_size=10)
            finally:
                closed.append(key)

        monkeypatch.setattr(storage, "stored_chunks", spy)
        response = storage.zip_response(filename="o.zip", files=files)
        stream = iter(response.streaming_content)
        next(stream), next(stream)
        response.close()  # what the WSGI server calls when the client disconnects
        assert closed == [files[0].key]

    def test_on_s3_objects_are_read_as_streams_never_through_django_storages_open(
        self, s3, monkeypatch
    ):
        from storages.backends.s3 import S3Storage

        files = self.members(b"s3 object one", b"s3 object two" * 1000)
        monkeypatch.setattr(S3Storage, "_open", lambda *a, **k: pytest.fail("opened"))
        archive = self.opened(storage.zip_response(filename="o.zip", files=files))
        assert archive.read("file 0.bin") == b"s3 object one"
        assert archive.read("file 1.bin") == b"s3 object two" * 1000
