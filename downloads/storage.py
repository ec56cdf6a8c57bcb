"""The only module that knows whether media lives on the local disk or on S3.

The storage object is Django's `default_storage`, built once per process (django-storages
builds its boto3 client on first use and keeps it), never per request.
"""

from urllib.parse import quote

from django.conf import settings
from django.core.files.storage import default_storage


def is_s3() -> bool:
    """True when media is on S3 (or any S3-compatible store) through django-storages."""
    return hasattr(default_storage, "bucket_name")


def storage_kind() -> str:
    return "s3" if is_s3() else "local"


def content_disposition(filename: str, disposition: str = "attachment") -> str:
    """An RFC 6266 header value: the original name (spaces, non-ASCII kept) as filename*, and
    an ASCII fallback; quotes, backslashes and control characters can never get through."""
    cleaned = "".join(ch for ch in filename if ch.isprintable() and ch not in "\r\n") or "download"
    ascii_fallback = (
        cleaned.encode("ascii", "replace").decode().replace("?", "_").replace('"', "_")
    ).replace("\\", "_")
    return (
        f"{disposition}; filename=\"{ascii_fallback}\"; filename*=UTF-8''{quote(cleaned, safe='')}"
    )


def presigned_download_url(*, key: str, filename: str, content_type: str | None = None) -> str:
    """A short-lived (DOWNLOADS_URL_TTL seconds) URL that makes S3 serve the file as an
    attachment under its original name."""
    parameters = {"ResponseContentDisposition": content_disposition(filename)}
    if content_type:
        parameters["ResponseContentType"] = content_type
    return default_storage.url(key, parameters=parameters, expire=settings.DOWNLOADS_URL_TTL)
