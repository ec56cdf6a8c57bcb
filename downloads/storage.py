"""The only module that knows whether media lives on the local disk or on S3.

Everyone else asks it for what they need: a response that delivers a file (`media_response`:
a 302 to a presigned URL on S3, the file streamed with Range support locally), the byte range
a request may be served (`request_range`), an upload form (`direct_upload_instructions`),
whether the app itself receives uploads (`receives_uploads`), a stored object's bytes as
chunks (`stored_chunks`: boto3's streaming body on S3), and many stored files as one ZIP
streamed while it is read (`zip_response`). The storage object is Django's
`default_storage`, built once per process (django-storages builds its boto3 client on first
use and keeps it), never per request.

Whether the store can be reached is `reachable()`, a memory read (downloads/storage_health.py
keeps it fresh): every operation here that reaches the store and fails to (a connection
error, a timeout, a 5xx; on local storage an I/O error) marks it down and raises
`StorageUnavailable`, which the API answers 503 with `Retry-After`.

Rules owned here: RFC 6266 Content-Disposition with the original filename, in one place; one
byte range per request (anything else serves the whole file); a resume of another version of
a file (If-Range not matching) gets the whole current file; S3 media never passes through the
app for a single download, and a ZIP of several reads each object as a stream, never whole;
a served file carries a sandbox Content-Security-Policy and `nosniff`, and a Content-Type
that is a valid media type (`served_content_type`); a direct upload to local storage is
written whole or not at all.
"""

import functools
import hashlib
import logging
import os
import re
import string
import threading
import unicodedata
from contextlib import contextmanager
from dataclasses import dataclass
from urllib.parse import quote

from botocore.exceptions import ClientError
from django.conf import settings
from django.core.files import File
from django.core.files.storage import default_storage, storages
from django.http import FileResponse, HttpResponse, HttpResponseRedirect, StreamingHttpResponse
from storages.utils import clean_name
from zipstream import ZIP_STORED, ZipStream

from . import presign, storage_health
from .errors import ServiceError

logger = logging.getLogger(__name__)

# What may stand in the quoted ASCII `filename="…"` fallback: letters, digits and harmless
# punctuation. Never a quote or backslash (they end or escape the quoted string), nor `;`,
# `=`, `*` or `%`, which naive parsers mistake for parameters or percent-decode.
_ASCII_SAFE = set(string.ascii_letters + string.digits + " ._-()[]+,!#&'@~")


class StorageUnavailable(ServiceError):
    """The store could not be reached (S3 down, or the local media folder unusable): nothing
    was stored or served; try again after `retry_after` seconds. A ServiceError, so every
    surface that shows a refused rule (admin forms and actions, the API) shows this too."""

    def __init__(self, message: str | None = None):
        self.retry_after = storage_health.retry_after()
        super().__init__(
            message
            or (
                "The file storage cannot be reached right now; nothing was stored. "
                f"Try again in {self.retry_after} seconds."
            ),
            code="storage.unavailable",
        )


def _is_local_fault(exc: BaseException) -> bool:
    # The local media folder cannot be used (permissions, a full disk, a path that is not a
    # folder): a fault of the storage. A missing file is the caller's answer, not a fault.
    return isinstance(exc, OSError) and not isinstance(exc, FileNotFoundError | FileExistsError)


@contextmanager
def reaching_storage(what: str = "storage"):
    """Run storage operations (`what` names them for the log): a failure to reach the store
    marks it down (S3) and becomes StorageUnavailable; any other error passes unchanged."""
    try:
        yield
    except StorageUnavailable:
        raise
    except Exception as exc:
        if is_s3() and storage_health.is_unreachable(exc):
            storage_health.mark_down(f"{what}: {exc}")
        elif is_s3() or not _is_local_fault(exc):
            raise
        else:
            logger.error("Local storage failed (%s): %s", what, exc)
        raise StorageUnavailable() from exc


def reachable() -> bool:
    """Whether a download may be sent to the store now: a memory read, no network call (see
    downloads/storage_health.py). Local storage is checked where each file is opened."""
    return storage_health.available()


def is_s3() -> bool:
    """True when media is on S3 (or any S3-compatible store) through django-storages."""
    return hasattr(default_storage, "bucket_name")


def storage_kind() -> str:
    """ "s3" or "local": what the API's media objects report as their `storage`."""
    return "s3" if is_s3() else "local"


def on_s3(media) -> bool:
    """Whether `media` (None for an external link) is delivered from S3 (EasyCart's
    `is_amazon`)."""
    return media is not None and is_s3()


def receives_uploads() -> bool:
    """Whether direct uploads are sent to the app itself (local storage) rather than
    straight to the store with a presigned POST (S3)."""
    return not is_s3()


def upload_destination() -> str:
    """Where a direct upload's bytes go, in words for the back office."""
    return "S3" if is_s3() else "storage"


def clean_filename(filename: str) -> str:
    """The filename a buyer should see: the original, without control characters (CR, LF,
    NUL, tabs, Unicode line separators) or path separators, never empty."""
    cleaned = "".join(
        "_" if ch in "/\\" else ch for ch in filename if ch.isprintable() and ch not in "\r\n"
    ).strip()
    return cleaned or "download"


# Asked for on every download of a file (the presigned URL carries it): a pure function.
@functools.lru_cache(maxsize=4096)
def content_disposition(filename: str, disposition: str = "attachment") -> str:
    """An RFC 6266 header value: the original name (spaces, non-ASCII kept) percent-encoded
    as `filename*`, and an ASCII `filename` fallback for old clients (accents stripped,
    anything else replaced by `_`). Quotes, backslashes and CR/LF can never get through."""
    cleaned = clean_filename(filename)
    decomposed = unicodedata.normalize("NFKD", cleaned)
    ascii_fallback = "".join(
        ch if ch in _ASCII_SAFE else "_" for ch in decomposed if not unicodedata.combining(ch)
    )
    return (
        f"{disposition}; filename=\"{ascii_fallback}\"; filename*=UTF-8''{quote(cleaned, safe='')}"
    )


# What every response carrying a stored file says, whatever the file holds: an HTML or SVG
# upload opened in a browser runs no script, loads nothing and is its own unique origin (no
# cookies, no access to the store's pages), and its Content-Type is never sniffed.
FILE_CONTENT_SECURITY_POLICY = "sandbox; default-src 'none'"


def file_headers(response: HttpResponse) -> HttpResponse:
    """Put the served-file headers on `response` (and mark it as serving a stored file, so
    a page's policy applied around it can be replaced by this one: see `delivery_headers`)."""
    response["Content-Security-Policy"] = FILE_CONTENT_SECURITY_POLICY
    response["X-Content-Type-Options"] = "nosniff"
    response.serves_stored_file = True
    return response


def served_content_type(content_type: str | None) -> str:
    """The Content-Type a stored file is served with: its stored media type when it is one
    (the RFC 9110 grammar of services/media.clean_content_type), else
    application/octet-stream. Rows stored before content types were checked may hold CR/LF
    or non-Latin-1 characters, which no header can carry. Every served file's type (local
    responses, presigned S3 URLs) comes from here."""
    if content_type and _is_media_type(content_type):
        return content_type
    return "application/octet-stream"


@functools.lru_cache(maxsize=512)
def _is_media_type(value: str) -> bool:
    # Imported here: services/media.py imports this module. Cached: a store has few types.
    from .services.media import clean_content_type

    try:
        clean_content_type(value, "")
    except ServiceError:
        return False
    return True


def presigned_download_url(
    *,
    key: str,
    filename: str,
    content_type: str | None = None,
    byte_range: str | None = None,
    http_method: str = "GET",
) -> str:
    """A short-lived (DOWNLOADS_URL_TTL seconds, SigV4) URL that makes S3 serve the file as an
    attachment under its original name. No network call: boto3 signs locally.

    `byte_range` (a `Range` header value such as "bytes=100-") is signed into the URL, so the
    URL is good only for a request that sends exactly that header: a resumed download that
    took no count cannot be turned into a whole new copy of the file. Likewise a URL signed
    for HEAD (`http_method`) cannot be used to GET the file.

    S3 lets a presigned URL set only Content-Type, Content-Disposition, Cache-Control,
    Content-Language, Content-Encoding and Expires: the sandbox Content-Security-Policy and
    `nosniff` of local files cannot travel with it (the attachment disposition and the
    bucket's own origin are what keep a file from running as a page of the store).
    """
    # The URL django-storages' `url()` would make (same name normalization, same signature,
    # tests/downloads/test_presign.py), signed by presign.UrlSigner at a tenth of the cost.
    return _url_signer().url(
        _object_key(storages["default"], key),
        expires=settings.DOWNLOADS_URL_TTL,
        disposition=content_disposition(filename),
        content_type=served_content_type(content_type),
        byte_range=byte_range or None,
        method=http_method,
    )


@functools.lru_cache(maxsize=4096)
def _object_key(storage, key: str) -> str:
    # The object key the storage's `url()` signs for `key` (its location prefix included):
    # cached per storage instance, which changes with the STORAGES setting, as a key's URL is
    # signed again for each of its downloads.
    return storage._normalize_name(clean_name(key))


_signers = threading.local()


def _url_signer() -> presign.UrlSigner:
    """This thread's signer for the default storage's client (django-storages keeps one
    client per thread); made again when the storage or its client changes."""
    client = default_storage.connection.meta.client
    signer = getattr(_signers, "signer", None)
    if signer is None or signer.client is not client:
        signer = _signers.signer = presign.UrlSigner.for_client(client, default_storage.bucket_name)
    return signer


def open_local(key: str):
    """Open a locally stored media file for reading; FileNotFoundError when it is gone."""
    return default_storage.open(key, "rb")


# --- Direct uploads: the client sends the bytes straight to the storage --------------------------
# On S3 to a presigned POST (size and type fixed by its policy); on local storage to the app's
# upload endpoint with a signed, expiring token, which streams the body to disk in chunks.

STREAM_CHUNK = 1024 * 1024


def _s3_client():
    return default_storage.connection.meta.client


def _s3_key(name: str) -> str:
    # The object key django-storages uses for `name` (its `location` prefix included).
    return default_storage._normalize_name(name)


def direct_upload_instructions(
    *, key: str, byte_size: int, content_type: str, expires_in: int, local_url: str
) -> dict:
    """How a client sends a file to `key`: {upload_url, method, fields, headers}.

    S3: POST a form with `fields` then the `file`, to a presigned POST whose policy pins the
    key, the Content-Type and the exact size. Local: PUT the raw bytes to `local_url`."""
    if is_s3():
        post = _s3_client().generate_presigned_post(
            Bucket=default_storage.bucket_name,
            Key=_s3_key(key),
            Fields={"Content-Type": content_type},
            Conditions=[
                {"Content-Type": content_type},
                ["content-length-range", byte_size, byte_size],
            ],
            ExpiresIn=expires_in,
        )
        return {
            "upload_url": post["url"],
            "method": "POST",
            "fields": post["fields"],
            "headers": {},
        }
    return {
        "upload_url": local_url,
        "method": "PUT",
        "fields": {},
        "headers": {"Content-Type": content_type},
    }


def stored_size(key: str) -> int | None:
    """The size of a stored object, or None when there is none. StorageUnavailable when the
    store cannot be reached."""
    with reaching_storage("reading a file's size"):
        if not is_s3():
            try:
                return default_storage.size(key)
            except FileNotFoundError:
                return None
        try:
            head = _s3_client().head_object(Bucket=default_storage.bucket_name, Key=_s3_key(key))
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in ("404", "NoSuchKey", "NotFound"):
                return None
            raise
        return int(head["ContentLength"])


def stored_sha256(key: str) -> str:
    """SHA-256 of a stored object, streamed in chunks (see `stored_chunks`)."""
    digest = hashlib.sha256()
    for chunk in stored_chunks(key):
        digest.update(chunk)
    return digest.hexdigest()


def delete_stored(key: str) -> None:
    with reaching_storage("deleting a file"):
        default_storage.delete(key)


def stored_chunks(key: str, chunk_size: int = STREAM_CHUNK):
    """The bytes of a stored object as chunks, never the whole object in memory: boto3's
    streaming body on S3 (django-storages' files would read it all), the file locally."""
    with reaching_storage("reading a file"):
        if is_s3():
            found = _s3_client().get_object(Bucket=default_storage.bucket_name, Key=_s3_key(key))
            body = found["Body"]
            try:
                yield from body.iter_chunks(chunk_size)
            finally:
                body.close()
        else:
            with default_storage.open(key, "rb") as handle:
                yield from iter(lambda: handle.read(chunk_size), b"")


def store_file(key: str, fileobj) -> str:
    """Store an open file under `key` (a fresh key: never overwrites); returns its name."""
    with reaching_storage("storing a file"):
        return default_storage.save(key, File(fileobj))


class _BoundedReader:
    """Reads at most `limit` bytes of a stream, then reports end of file, and counts what it
    read. It has no fileno, so a WSGI server cannot sendfile() past the limit of a range."""

    def __init__(self, stream, limit: int):
        self._stream, self._left, self.read_bytes = stream, limit, 0

    def read(self, size: int = -1) -> bytes:
        if self._left <= 0:
            return b""
        size = self._left if size is None or size < 0 else min(size, self._left)
        data = self._stream.read(size)
        self._left -= len(data)
        self.read_bytes += len(data)
        return data

    def close(self) -> None:
        self._stream.close()


class UploadStalled(Exception):
    """The body of an upload stopped arriving: nothing came for the read timeout the server
    set on its connection (DOWNLOADS_UPLOAD_READ_TIMEOUT). Nothing was stored."""


def read_timed_out(exc: BaseException | None) -> bool:
    """Whether a failed read of a request's body was its socket's read timeout, however
    wrapped on its way up (Django's UnreadablePostError, UploadStalled, a ServiceError)."""
    for _ in range(6):
        if exc is None:
            return False
        if isinstance(exc, TimeoutError):
            return True
        exc = exc.__cause__ or exc.__context__
    return False


def _read_body(stream, size: int) -> bytes:
    # A fault of the client's connection is not a fault of the storage: a stall is its own
    # error, a broken connection the end of the body.
    try:
        return stream.read(size)
    except OSError as exc:
        if read_timed_out(exc):
            raise UploadStalled(str(exc) or "timed out") from exc
        return b""


def receive_upload(*, key: str, stream, byte_size: int) -> None:
    """Local storage only: write exactly `byte_size` bytes of `stream` to `key`, in chunks,
    whole or not at all.

    Raises FileExistsError when `key` is taken (before a byte is read), EOFError when the
    body ends early, UploadStalled when it stops arriving and StorageUnavailable when the
    media folder cannot be written; whatever was written is removed in every case."""
    path = default_storage.path(key)
    with reaching_storage("receiving an upload"):
        _make_folder(os.path.dirname(path))
        # Exclusive creation: a second upload to the same key fails here, never overwrites.
        handle = open(path, "xb")  # noqa: SIM115 - closed below, removed on any failure
    received = 0
    try:
        with handle, reaching_storage("receiving an upload"):
            while received < byte_size:
                chunk = _read_body(stream, min(STREAM_CHUNK, byte_size - received))
                if not chunk:
                    break
                handle.write(chunk)
                received += len(chunk)
        if received != byte_size:
            raise EOFError(f"{received} of {byte_size} bytes received")
        if default_storage.file_permissions_mode is not None:
            os.chmod(path, default_storage.file_permissions_mode)
    except BaseException:
        try:
            os.remove(path)
        except OSError:
            logger.exception("Could not remove the partial upload %s", key)
        raise


def _make_folder(directory: str) -> None:
    # As FileSystemStorage does before a save: intermediate folders get the configured mode.
    mode = default_storage.directory_permissions_mode
    try:
        if mode is None:
            os.makedirs(directory, exist_ok=True)
            return
        old_umask = os.umask(0o777 & ~mode)
        try:
            os.makedirs(directory, mode, exist_ok=True)
        finally:
            os.umask(old_umask)
    except FileExistsError as exc:  # a file where the folder should be: a storage fault
        raise NotADirectoryError(f"{directory} exists and is not a folder") from exc


# --- Serving a file -------------------------------------------------------------------------

# One range only: `bytes=first-[last]` or the suffix form `bytes=-length`. Anything else
# (several ranges, other units, garbage) is ignored and the whole file is served.
_RANGE_RE = re.compile(r"^\s*bytes\s*=\s*(\d{0,18})\s*-\s*(\d{0,18})\s*$", re.IGNORECASE)
STREAM_BLOCK_SIZE = 64 * 1024


@dataclass(frozen=True)
class ByteRange:
    """A parsed `Range` header: `first` is None for a suffix range (the last `last` bytes)."""

    first: int | None
    last: int | None
    header: str

    @property
    def resumes(self) -> bool:
        """True when the range starts past byte 0: a resumed download, free within the
        resume rule of services/consume.py. A suffix range may cover the whole file, so it
        counts like a plain GET."""
        return self.first is not None and self.first > 0

    def resolve(self, size: int) -> tuple[int, int] | None:
        """(start, end) inclusive within a file of `size` bytes, or None if unsatisfiable."""
        if self.first is None:
            length = min(self.last or 0, size)
            return (size - length, size - 1) if length else None
        if self.first >= size:
            return None
        last = size - 1 if self.last is None else min(self.last, size - 1)
        return self.first, last


def parse_range(header: str | None) -> ByteRange | None:
    """The single byte range of a `Range` header, or None (absent, invalid or several)."""
    if not header:
        return None
    match = _RANGE_RE.match(header)
    if match is None:
        return None
    first, last = (int(value) if value else None for value in match.groups())
    if first is None and not last:  # "bytes=-" or "bytes=-0"
        return None
    if first is not None and last is not None and last < first:
        return None
    # The header as sent: S3 checks a signed Range against exactly what the client sends.
    return ByteRange(first=first, last=last, header=header.strip())


class ServeError(Exception):
    """The file could not be delivered (missing locally, or the URL could not be signed)."""


def request_range(request, media) -> ByteRange | None:
    """The byte range this GET may be served: its single `Range`, or None for the whole file.

    Local files are served by the app: a resume of another version of the file (If-Range not
    matching the current ETag) gets, and pays for, the whole current file. S3 checks If-Range
    itself against the signed request.
    """
    byte_range = parse_range(request.headers.get("Range"))
    if byte_range is None or request.method == "HEAD":
        return None
    if media is not None and not is_s3():
        if_range = request.headers.get("If-Range")
        if if_range is not None and not (media.sha256 and if_range == _etag(media)):
            return None
    return byte_range


def media_response(request, media, byte_range: ByteRange | None = None) -> HttpResponse:
    """The response that delivers `media`: on S3 a 302 to a presigned URL (the file never
    passes through the app), locally the file streamed (200, 206 for a range, 416 past the
    end). Raises ServeError when it cannot be delivered; nothing has been sent then.

    The response says what it may deliver, for the resume rule (services/consume.py):
    `file_size` (bytes, None when unknown) and `span_length` (the most bytes it may send).
    On S3 that is the whole file even for a range: S3 applies If-Range itself, and a
    mismatched If-Range widens any range to the whole file."""
    if is_s3():
        try:
            url = presigned_download_url(
                key=media.key,
                filename=media.filename,
                content_type=media.content_type,
                byte_range=byte_range.header if byte_range else None,
                http_method=request.method,
            )
        except Exception as exc:  # botocore raises many kinds (credentials, configuration)
            logger.exception("Could not presign media %s", media.pk)
            raise ServeError from exc
        response = HttpResponseRedirect(url)
        response.file_size = response.span_length = media.byte_size or None
        return response
    return _local_file_response(request, media, byte_range)


def _etag(media) -> str:
    return f'"{media.sha256}"'


def _local_file_response(request, media, byte_range: ByteRange | None):
    """Stream a local file: 200 whole, 206 one range, 416 a range past the end."""
    try:
        file = open_local(media.key)
        size = file.size
    except OSError as exc:
        logger.error("Media %s is missing from local storage (%s)", media.pk, media.key)
        raise ServeError from exc

    span = byte_range.resolve(size) if byte_range is not None else None
    if byte_range is not None and span is None and byte_range.resumes:
        file.close()
        response = HttpResponse(status=416)
        response["Content-Range"] = f"bytes */{size}"
        response.file_size, response.span_length = size, 0
        return file_headers(response)
    # A range from byte 0 that cannot be satisfied (an empty file) gets the whole file.

    if request.method == "HEAD":
        file.close()
        response = HttpResponse()
        length = size
    elif span is None:
        response = FileResponse(file)
        length = size
    else:
        start, end = span
        file.seek(start)
        response = FileResponse(_BoundedReader(file, end - start + 1), status=206)
        response["Content-Range"] = f"bytes {start}-{end}/{size}"
        length = end - start + 1
    response.block_size = STREAM_BLOCK_SIZE
    response.file_size, response.span_length = size, 0 if request.method == "HEAD" else length
    response["Content-Type"] = served_content_type(media.content_type)
    response["Content-Length"] = str(length)
    response["Content-Disposition"] = content_disposition(media.filename)
    response["Accept-Ranges"] = "bytes"
    if media.sha256:
        response["ETag"] = _etag(media)
    return file_headers(response)


# --- Many files as one ZIP (download all) ------------------------------------------------------


def zip_response(*, filename: str, files, texts=(), head: bool = False) -> HttpResponse:
    """One ZIP of stored files, streamed as it is read: every member is added as a generator
    over `stored_chunks` (boto3's streaming body on S3, never django-storages' open), so the
    app holds one chunk at a time whatever the sizes, and nothing goes to a temporary file.

    `files` are members read from storage (each with `key`, `name` inside the ZIP and its
    `size` in bytes); `texts` are small members made by the caller, as (name, bytes). Members
    are stored, not compressed (PDFs, audio and video do not shrink), so the archive's length
    is known before its first byte: it is sent as Content-Length, which lets clients show
    progress. A member's object is opened only when the stream reaches it. `head` answers the
    headers a GET would get now, reading nothing.
    """
    archive = ZipStream(compress_type=ZIP_STORED, sized=True)
    for member in files:
        archive.add(_chunks_when_reached(member.key), member.name, size=member.size)
    for name, data in texts:
        archive.add(data, name)
    response = HttpResponse() if head else StreamingHttpResponse(iter(archive))
    response["Content-Type"] = "application/zip"
    response["Content-Length"] = str(len(archive))
    response["Content-Disposition"] = content_disposition(filename)
    return file_headers(response)


def _chunks_when_reached(key: str):
    # A generator: the object is opened at the first chunk the ZIP asks for, never before
    # (and never for HEAD); closing the response closes it.
    yield from stored_chunks(key)
