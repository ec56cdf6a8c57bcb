"""The only module that knows whether media lives on the local disk or on S3.

The storage object is Django's `default_storage`, built once per process (django-storages
builds its boto3 client on first use and keeps it), never per request.
"""

import hashlib
import string
import unicodedata
from urllib.parse import quote

from django.conf import settings
from django.core.files import File
from django.core.files.storage import default_storage

# What may stand in the quoted ASCII `filename="…"` fallback: letters, digits and harmless
# punctuation. Never a quote or backslash (they end or escape the quoted string), nor `;`,
# `=`, `*` or `%`, which naive parsers mistake for parameters or percent-decode.
_ASCII_SAFE = set(string.ascii_letters + string.digits + " ._-()[]+,!#&'@~")


def is_s3() -> bool:
    """True when media is on S3 (or any S3-compatible store) through django-storages."""
    return hasattr(default_storage, "bucket_name")


def storage_kind() -> str:
    return "s3" if is_s3() else "local"


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
        from botocore.exceptions import ClientError

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
    """SHA-256 of a stored object, streamed in chunks (django-storages' S3 files would read
    the whole object into memory, hence boto3's streaming body here)."""
    digest = hashlib.sha256()
    if is_s3():
        body = _s3_client().get_object(Bucket=default_storage.bucket_name, Key=_s3_key(key))["Body"]
        try:
            for chunk in body.iter_chunks(STREAM_CHUNK):
                digest.update(chunk)
        finally:
            body.close()
    else:
        with default_storage.open(key, "rb") as handle:
            for chunk in iter(lambda: handle.read(STREAM_CHUNK), b""):
                digest.update(chunk)
    return digest.hexdigest()


def delete_stored(key: str) -> None:
    default_storage.delete(key)


class _ExactReader:
    """Reads at most `size` bytes of a stream and counts them."""

    def __init__(self, stream, size: int):
        self.stream, self.left, self.read_bytes = stream, size, 0

    def read(self, n: int = -1) -> bytes:
        if self.left <= 0:
            return b""
        n = self.left if n is None or n < 0 else min(n, self.left)
        data = self.stream.read(n)
        self.left -= len(data)
        self.read_bytes += len(data)
        return data


def receive_upload(*, key: str, stream, byte_size: int) -> None:
    """Local storage only: write exactly `byte_size` bytes of `stream` to `key`, in chunks.

    Raises FileExistsError when `key` is taken and EOFError when the stream ends early (the
    partial file is removed either way)."""
    reader = _ExactReader(stream, byte_size)
    saved = default_storage.save(key, File(reader, name=key))
    if saved != key:
        default_storage.delete(saved)
        raise FileExistsError(key)
    if reader.read_bytes != byte_size:
        default_storage.delete(saved)
        raise EOFError(f"{reader.read_bytes} of {byte_size} bytes received")
