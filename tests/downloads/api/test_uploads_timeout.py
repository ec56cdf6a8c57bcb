"""Upload bodies that stop arriving or end early, sent over a raw socket to the live server:
the request answers 408 (stalled) or 400 (ended) with a code after DOWNLOADS_UPLOAD_READ_TIMEOUT
seconds without a byte, instead of holding the server's thread, and nothing is stored."""

import json
import socket
from urllib.parse import urlsplit

import pytest
from django.core.files.storage import default_storage

from accounts.models import ApiKey
from downloads.models import Media, MediaUpload
from downloads.services.media import media_upload_start
from tests import factories

pytestmark = pytest.mark.django_db(transaction=True)

ANNOUNCED = 100 * 1024


@pytest.fixture(autouse=True)
def _short_read_timeout(settings):
    settings.DOWNLOADS_UPLOAD_READ_TIMEOUT = 1


def read_response(sock) -> tuple[int, dict, bytes]:
    """One HTTP response from `sock`: status, headers (lower-case names), body."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        assert chunk, f"the server closed the connection without answering: {data!r}"
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    headers = {
        name.strip().lower(): value.strip()
        for name, _, value in (line.partition(":") for line in lines[1:])
    }
    length = int(headers.get("content-length", 0))
    while len(body) < length:
        chunk = sock.recv(65536)
        assert chunk, "the server closed the connection in the middle of its answer"
        body += chunk
    return status, headers, body


def send_partial(live_server, path: str, headers: dict, body: bytes, *, end: bool):
    """Send the request line and headers, then `body` (less than the announced length); then
    wait (`end=False`: a stalled client) or close our side (`end=True`: a body that ended)."""
    url = urlsplit(live_server.url)
    with socket.create_connection((url.hostname, url.port), timeout=30) as sock:
        lines = [f"{headers.pop('method')} {path} HTTP/1.1", f"Host: {url.netloc}"]
        lines += [f"{name}: {value}" for name, value in headers.items()]
        sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body)
        if end:
            sock.shutdown(socket.SHUT_WR)
        return read_response(sock)


def local_upload():
    upload, instructions = media_upload_start(
        filename="Pack.zip", byte_size=ANNOUNCED, site_url="http://testserver"
    )
    target = urlsplit(instructions["upload_url"])
    return upload, f"{target.path}?{target.query}"


def put_headers():
    return {
        "method": "PUT",
        "Content-Type": "application/zip",
        "Content-Length": str(ANNOUNCED),
    }


def test_a_stalled_local_upload_answers_408_after_the_read_timeout_and_keeps_nothing(
    live_server,
):
    upload, path = local_upload()
    status, _, body = send_partial(live_server, path, put_headers(), b"x" * 1000, end=False)
    assert status == 408
    assert json.loads(body)["code"] == "media_upload.timeout"
    assert not default_storage.exists(upload.key)

    # Nothing half-written stands in the way: the same upload can be sent again, whole.
    url = urlsplit(live_server.url)
    with socket.create_connection((url.hostname, url.port), timeout=30) as sock:
        request = f"PUT {path} HTTP/1.1\r\nHost: {url.netloc}\r\nContent-Length: {ANNOUNCED}\r\n"
        sock.sendall(request.encode() + b"\r\n" + b"y" * ANNOUNCED)
        assert read_response(sock)[0] == 204
    assert default_storage.size(upload.key) == ANNOUNCED


def test_a_local_upload_body_that_ends_early_answers_400_and_keeps_nothing(live_server):
    upload, path = local_upload()
    status, _, body = send_partial(live_server, path, put_headers(), b"x" * 1000, end=True)
    assert status == 400
    assert json.loads(body)["code"] == "media_upload.incomplete"
    assert not default_storage.exists(upload.key)
    assert MediaUpload.objects.get(pk=upload.pk).completed_at is None


def test_a_stalled_multipart_upload_answers_408_and_creates_nothing(live_server):
    _, raw_key = factories.api_key(ApiKey.Scope.WRITE)
    boundary = "----stall"
    start = (
        f"--{boundary}\r\n"
        'Content-Disposition: form-data; name="file"; filename="Book.pdf"\r\n'
        "Content-Type: application/pdf\r\n\r\n"
    ).encode() + b"%PDF-1.7 " * 100
    headers = {
        "method": "POST",
        "Authorization": f"Bearer {raw_key}",
        "Content-Type": f"multipart/form-data; boundary={boundary}",
        "Content-Length": str(ANNOUNCED),
    }
    status, _, body = send_partial(live_server, "/api/v1/media", headers, start, end=False)
    assert status == 408
    assert json.loads(body)["code"] == "request.timeout"
    assert not Media.objects.exists()
