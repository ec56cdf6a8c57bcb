"""The only module that knows whether media lives on the local disk or on S3.

Everyone else asks it for what they need: a response that delivers a file (`media_response`:
a 302 to a presigned URL on S3, the file streamed with Range support locally), the byte range
a request may be served (`request_range`), an upload form (`direct_upload_instructions`),
whether the app itself receives uploads (`receives_uploads`), a stored object's bytes as
chunks (`stored_chunks`: boto3's streaming body on S3), and many stored files as one ZIP
streamed while it is read (`zip_response`). The storage object is Django's
`default_storage`, built once per process (django-storages builds its boto3 client on first
use and keeps it), never per request.

Rules owned here: RFC 6266 Content-Disposition with the original filename, in one place; one
byte range per request (anything else serves the whole file); a resume of another version of
a file (If-Range not matching) gets the whole current file; S3 media never passes through the
app for a single download, and a ZIP of several reads each object as a stream, never whole.
"""

import hashlib
import logging
import re
import string
import unicodedata
from dataclasses import dataclass
from urllib.parse import quote

from botocore.exceptions import ClientError
from django.conf import settings
from django.core.files import File
from django.core.files.storage import default_storage
from django.http import FileResponse, HttpResponse, HttpResponseRedirect, StreamingHttpResponse
from zipstream import ZIP_STORED, ZipStream

logger = logging.getLogger(__name__)

# What may stand in the quoted ASCII `filename="…"` fallback: letters, digits and harmless
# punctuation. Never a quote or backslash (they end or escape the quoted string), nor `;`,
# `=`, `*` or `%`, which naive parsers mistake for parameters or percent-decode.
_ASCII_SAFE = set(string.ascii_letters + string.digits + " ._-()[]+,!#&'@~")


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


def preview_note() -> str:
    """How the back office's preview link delivers a file, for its help text."""
    if is_s3():
        return f": a presigned URL valid for {settings.DOWNLOADS_URL_TTL} seconds"
    return ""


def clean_filename(filename: str) -> str:
    """The filename a buyer should see: the original, without control characters (CR, LF,
    NUL, tabs, Unicode line separators) or path separators, never empty."""
    cleaned = "".join(
        "_" if ch in "/\\" else ch for ch in filename if ch.isprintable() and ch not in "\r\n"
    ).strip()
    return cleaned or "download"


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
    """
    parameters = {"ResponseContentDisposition": content_disposition(filename)}
    if content_type:
        parameters["ResponseContentType"] = content_type
    if byte_range:
        parameters["Range"] = byte_range
    return default_storage.url(
        key, parameters=parameters, expire=settings.DOWNLOADS_URL_TTL, http_method=http_method
    )


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
    """The size of a stored object, or None when there is none."""
    if is_s3():
        try:
            head = _s3_client().head_object(Bucket=default_storage.bucket_name, Key=_s3_key(key))
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in ("404", "NoSuchKey", "NotFound"):
                return None
            raise
        return int(head["ContentLength"])
    try:
        return default_storage.size(key)
    except OSError:
        return None


def stored_sha256(key: str) -> str:
    """SHA-256 of a stored object, streamed in chunks (see `stored_chunks`)."""
    digest = hashlib.sha256()
    for chunk in stored_chunks(key):
        digest.update(chunk)
    return digest.hexdigest()


def delete_stored(key: str) -> None:
    default_storage.delete(key)


def stored_chunks(key: str, chunk_size: int = STREAM_CHUNK):
    """The bytes of a stored object as chunks, never the whole object in memory: boto3's
    streaming body on S3 (django-storages' files would read it all), the file locally."""
    if is_s3():
        body = _s3_client().get_object(Bucket=default_storage.bucket_name, Key=_s3_key(key))["Body"]
        try:
            yield from body.iter_chunks(chunk_size)
        finally:
            body.close()
    else:
        with default_storage.open(key, "rb") as handle:
            yield from iter(lambda: handle.read(chunk_size), b"")


def store_file(key: str, fileobj) -> str:
    """Store an open file under `key` (a fresh key: never overwrites); returns its name."""
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


def receive_upload(*, key: str, stream, byte_size: int) -> None:
    """Local storage only: write exactly `byte_size` bytes of `stream` to `key`, in chunks.

    Raises FileExistsError when `key` is taken and EOFError when the stream ends early (the
    partial file is removed either way)."""
    reader = _BoundedReader(stream, byte_size)
    saved = default_storage.save(key, File(reader, name=key))
    if saved != key:
        default_storage.delete(saved)
        raise FileExistsError(key)
    if reader.read_bytes != byte_size:
        default_storage.delete(saved)
        raise EOFError(f"{reader.read_bytes} of {byte_size} bytes received")


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
        return response
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
    response["Content-Type"] = media.content_type or "application/octet-stream"
    response["Content-Length"] = str(length)
    response["Content-Disposition"] = content_disposition(media.filename)
    response["Accept-Ranges"] = "bytes"
    if media.sha256:
        response["ETag"] = _etag(media)
    return response


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
    return response


def _chunks_when_reached(key: str):
    # A generator: the object is opened at the first chunk the ZIP asks for, never before
    # (and never for HEAD); closing the response closes it.
    yield from stored_chunks(key)
