"""downloads/storage.py, where files meet faults: the Content-Type a stored file is served
with, the headers of every served file, a direct upload written whole or not at all (a body
that ends early, stalls or meets an unusable folder), and storage faults turned into
StorageUnavailable."""

import io
import socket
from urllib.parse import parse_qs, urlsplit

import pytest
from django.core.files.storage import default_storage

from downloads import storage, storage_health


class TestServedContentType:
    @pytest.mark.parametrize(
        "stored",
        ["application/pdf", "text/plain; charset=utf-8", 'audio/mpeg; name="a b.mp3"'],
    )
    def test_a_media_type_is_served_as_stored(self, stored):
        assert storage.served_content_type(stored) == stored

    @pytest.mark.parametrize(
        "stored",
        [
            None,
            "",
            "text/html\r\nSet-Cookie: a=b",
            "text/html\nX: y",
            "text/plain; name=файл",
            "image/\u00e9",
            "pdf",
            "text/plain\x00",
            "a/" + "b" * 300,
        ],
    )
    def test_anything_else_is_octet_stream(self, stored):
        assert storage.served_content_type(stored) == "application/octet-stream"

    def test_the_presigned_url_asks_s3_for_the_served_type(self, s3):
        url = storage.presigned_download_url(
            key="media/x/a.txt", filename="a.txt", content_type="text/plain\r\nX: y"
        )
        query = parse_qs(urlsplit(url).query)
        assert query["response-content-type"] == ["application/octet-stream"]


def test_a_zip_of_stored_files_is_sandboxed_and_never_sniffed():
    response = storage.zip_response(filename="order-1.zip", files=(), texts=[("a.txt", b"a")])
    assert response["Content-Security-Policy"] == "sandbox; default-src 'none'"
    assert response["X-Content-Type-Options"] == "nosniff"
    assert response.serves_stored_file


def stalled_stream(sent: bytes, timeout: float = 0.2):
    """A real socket's file that delivers `sent`, then nothing (the client stopped sending)
    until its read timeout: what a server reads a stalled body from."""
    client, server = socket.socketpair()
    client.sendall(sent)
    server.settimeout(timeout)
    return client, server, server.makefile("rb")


class TestReceiveUpload:
    KEY = "media/0f0f/pack.zip"

    def test_writes_exactly_the_announced_bytes(self):
        storage.receive_upload(key=self.KEY, stream=io.BytesIO(b"x" * 10 + b"extra"), byte_size=10)
        with default_storage.open(self.KEY, "rb") as handle:
            assert handle.read() == b"x" * 10

    def test_a_body_that_ends_early_leaves_nothing(self):
        with pytest.raises(EOFError):
            storage.receive_upload(key=self.KEY, stream=io.BytesIO(b"x" * 9), byte_size=10)
        assert not default_storage.exists(self.KEY)

    def test_a_body_that_stalls_leaves_nothing(self):
        client, server, stream = stalled_stream(b"x" * 100)
        with client, server, stream, pytest.raises(storage.UploadStalled):
            storage.receive_upload(key=self.KEY, stream=stream, byte_size=1000)
        assert not default_storage.exists(self.KEY)

    def test_a_broken_connection_is_the_end_of_the_body(self):
        client, server, stream = stalled_stream(b"x" * 100)
        client.close()  # the client went away
        with server, stream, pytest.raises(EOFError):
            storage.receive_upload(key=self.KEY, stream=stream, byte_size=1000)
        assert not default_storage.exists(self.KEY)

    def test_a_taken_key_is_refused_before_a_byte_is_read_and_is_kept(self):
        storage.receive_upload(key=self.KEY, stream=io.BytesIO(b"first"), byte_size=5)
        second = io.BytesIO(b"other")
        with pytest.raises(FileExistsError):
            storage.receive_upload(key=self.KEY, stream=second, byte_size=5)
        assert second.tell() == 0
        with default_storage.open(self.KEY, "rb") as handle:
            assert handle.read() == b"first"

    def test_an_unusable_folder_is_storage_unavailable(self, settings, tmp_path):
        blocker = tmp_path / "file"
        blocker.write_bytes(b"")
        settings.STORAGES = {
            **settings.STORAGES,
            "default": {
                "BACKEND": "django.core.files.storage.FileSystemStorage",
                "OPTIONS": {"location": blocker / "media", "base_url": None},
            },
        }
        with pytest.raises(storage.StorageUnavailable) as raised:
            storage.receive_upload(key=self.KEY, stream=io.BytesIO(b"x"), byte_size=1)
        assert raised.value.code == "storage.unavailable" and raised.value.retry_after >= 1
        with pytest.raises(storage.StorageUnavailable):
            storage.stored_size(self.KEY)
        with pytest.raises(storage.StorageUnavailable):
            storage.store_file(self.KEY, io.BytesIO(b"x"))


class TestStorageFaults:
    def test_a_missing_local_file_is_an_answer_not_a_fault(self):
        assert storage.stored_size("media/none/missing.pdf") is None
        with pytest.raises(FileNotFoundError):
            list(storage.stored_chunks("media/none/missing.pdf"))

    def test_other_errors_pass_unchanged(self):
        with pytest.raises(ValueError), storage.reaching_storage("a bug"):
            raise ValueError("a bug")

    @pytest.mark.django_db
    def test_every_s3_operation_that_cannot_reach_the_store_marks_it_down(self, s3, settings):
        with socket.socket() as closed:  # a port nothing listens on
            closed.bind(("127.0.0.1", 0))
            port = closed.getsockname()[1]
        default = settings.STORAGES["default"]
        options = {**default["OPTIONS"], "endpoint_url": f"http://127.0.0.1:{port}"}
        settings.STORAGES = {**settings.STORAGES, "default": {**default, "OPTIONS": options}}
        operations = [
            lambda: storage.stored_size("media/a"),
            lambda: list(storage.stored_chunks("media/a")),
            lambda: storage.stored_sha256("media/a"),
            lambda: storage.store_file("media/a", io.BytesIO(b"x")),
            lambda: storage.delete_stored("media/a"),
        ]
        for operation in operations:
            storage_health.reset()
            with pytest.raises(storage.StorageUnavailable):
                operation()
            assert not storage_health.is_up()
