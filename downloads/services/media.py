"""Media: stored files, uploaded through the app or directly to the storage.

Rules owned here: no file above DOWNLOADS_MAX_UPLOAD_SIZE; a file is hashed (SHA-256) by
streaming it, never whole in memory; the original filename is kept for Content-Disposition;
a direct upload's token is signed, expiring and names its upload, its body is exactly the
announced size and is received once; completing twice returns the same media; a file a
download still uses is not deleted.
"""

import hashlib
import mimetypes
import re
from datetime import timedelta
from urllib.parse import quote

from django.conf import settings
from django.core import signing
from django.core.files import File
from django.db import transaction
from django.urls import reverse
from django.utils import timezone

from .. import storage
from ..errors import ServiceError
from ..models import (
    Media,
    MediaUpload,
    media_upload_to,
)
from .common import delete_or_refuse, required_text

# RFC 9110 §8.3.1: media-type = type "/" subtype parameters, with
# parameters = *( OWS ";" OWS [ parameter ] ) and parameter = token "=" ( token / quoted-string ).
# ASCII only (no obs-text): the value is sent back as the Content-Type of every download.
_TCHARS = r"[!#$%&'*+.^_`|~0-9A-Za-z-]+"
_QUOTED_STRING = r'"(?:[\t \x21\x23-\x5b\x5d-\x7e]|\\[\t \x21-\x7e])*"'
_PARAMETER = rf"{_TCHARS}=(?:{_TCHARS}|{_QUOTED_STRING})"
_MEDIA_TYPE = re.compile(rf"{_TCHARS}/{_TCHARS}(?:[ \t]*;[ \t]*(?:{_PARAMETER})?)*")
CONTENT_TYPE_MAX_LENGTH = 255


def clean_content_type(content_type: str | None, filename: str) -> str:
    """The media type to store for `filename`: `content_type` when given (it must be an RFC
    9110 media type, ASCII, at most 255 characters), else a guess from the filename, else
    application/octet-stream. Every path that sets a content type goes through here."""
    if not content_type:
        return mimetypes.guess_type(filename)[0] or "application/octet-stream"
    if len(content_type) > CONTENT_TYPE_MAX_LENGTH:
        raise ServiceError(
            f"content_type is limited to {CONTENT_TYPE_MAX_LENGTH} characters.",
            code="media.invalid",
            reason="max_length",
            attribute="content_type",
        )
    if not _MEDIA_TYPE.fullmatch(content_type):
        raise ServiceError(
            "content_type must be a media type such as text/plain or "
            'application/pdf; name="file.pdf" (RFC 9110, ASCII).',
            code="media.invalid",
            reason="invalid",
            attribute="content_type",
        )
    return content_type


def media_create(
    *, file: File, filename: str | None = None, content_type: str | None = None
) -> Media:
    """Store an uploaded file and record its original name, size, type and SHA-256.

    The file is read in chunks (never whole into memory) to hash it, then streamed to storage.
    """
    original = (filename or getattr(file, "name", "") or "file").rsplit("/", 1)[-1][:255]
    size = getattr(file, "size", None)
    limit = settings.DOWNLOADS_MAX_UPLOAD_SIZE
    if size is not None and size > limit:
        raise ServiceError(
            f"The file is {size} bytes, larger than the {limit} byte limit.",
            code="media.too_large",
        )
    content_type = clean_content_type(content_type, original)
    digest = hashlib.sha256()
    byte_size = 0
    for chunk in file.chunks():
        digest.update(chunk)
        byte_size += len(chunk)
    file.seek(0)
    media = Media(
        filename=original,
        content_type=content_type,
        byte_size=byte_size,
        sha256=digest.hexdigest(),
    )
    with storage.reaching_storage("storing an upload"):  # unreachable: 503, no row
        media.file.save(original, file, save=False)
    media.save()
    return media


def media_delete(*, media: Media) -> None:
    """Delete a media row and its stored file, unless a download still uses it."""
    name = media.file.name
    storage = media.file.storage
    delete_or_refuse(media, code="media.in_use", noun="file")
    if name:
        # Robust: a storage that is down must not turn the committed delete into an error;
        # Django logs the failure, and the object left behind stays private.
        transaction.on_commit(lambda: storage.delete(name), robust=True)


MEDIA_UPLOAD_SALT = "downloads.media_upload"


def _upload_signer() -> signing.TimestampSigner:
    # HMAC-SHA256 under SECRET_KEY: the token cannot be forged, and it names its upload.
    return signing.TimestampSigner(salt=MEDIA_UPLOAD_SALT, algorithm="sha256")


def _too_large(size: int, attribute: str | None = None) -> ServiceError:
    limit = settings.DOWNLOADS_MAX_UPLOAD_SIZE
    return ServiceError(
        f"{size} bytes is larger than the {limit} byte limit.",
        code="media.too_large",
        attribute=attribute,
    )


def media_upload_start(
    *, filename: str, byte_size: int, content_type: str | None = None, site_url: str
) -> tuple[MediaUpload, dict]:
    """Open a direct upload of `byte_size` bytes; return it and how to send the bytes:
    {upload_url, method, fields, headers} (see `storage.direct_upload_instructions`).

    `site_url` is the absolute base of the app's own upload endpoint (local storage)."""
    if not storage.reachable():  # the client's upload would fail: say so now
        raise storage.StorageUnavailable()
    if byte_size < 0:
        raise ServiceError(
            "byte_size cannot be negative.",
            code="media.invalid",
            reason="min_value",
            attribute="byte_size",
        )
    if byte_size > settings.DOWNLOADS_MAX_UPLOAD_SIZE:
        raise _too_large(byte_size, "byte_size")
    original = required_text(
        (filename or "").replace("\\", "/").rsplit("/", 1)[-1],
        attribute="filename",
        noun="file",
        entity="media",
    )[:255]
    content_type = clean_content_type(content_type, original)
    ttl = settings.DOWNLOADS_UPLOAD_URL_TTL
    upload = MediaUpload.objects.create(
        key=media_upload_to(None, original),
        filename=original,
        content_type=content_type,
        byte_size=byte_size,
        expires_at=timezone.now() + timedelta(seconds=ttl),
    )
    token = _upload_signer().sign(str(upload.pk))
    local_url = (
        site_url
        + reverse("api:media-upload-content", args=[upload.pk])
        + "?token="
        + quote(token, safe="")
    )
    instructions = storage.direct_upload_instructions(
        key=upload.key,
        byte_size=byte_size,
        content_type=content_type,
        expires_in=ttl,
        local_url=local_url,
    )
    return upload, instructions


def media_upload_receive(*, upload_id, token: str, stream, content_length: int) -> MediaUpload:
    """Local storage: take the bytes of a direct upload (the signed URL's PUT), streamed in
    chunks to its key. The token must be valid, unexpired and for this upload; the body must
    be exactly the announced size; an upload is received once."""
    if not storage.receives_uploads():
        raise ServiceError("Uploads go straight to S3.", code="media_upload.not_local")
    try:
        signed_id = _upload_signer().unsign(token or "", max_age=settings.DOWNLOADS_UPLOAD_URL_TTL)
    except signing.SignatureExpired as exc:
        raise ServiceError("This upload URL has expired.", code="media_upload.expired") from exc
    except signing.BadSignature as exc:
        raise ServiceError("Invalid upload token.", code="media_upload.forbidden") from exc
    if signed_id != str(upload_id):
        raise ServiceError("Invalid upload token.", code="media_upload.forbidden")
    upload = MediaUpload.objects.filter(pk=signed_id).first()
    if upload is None:
        raise ServiceError("No such upload.", code="media_upload.not_found")
    if upload.completed_at is not None or storage.stored_size(upload.key) is not None:
        raise ServiceError("This upload was already received.", code="media_upload.received")
    if content_length < 0:
        raise ServiceError("Send a Content-Length.", code="media_upload.length_required")
    if content_length > upload.byte_size:
        # This upload's limit is the size announced when it was started.
        raise ServiceError(
            f"{content_length} bytes sent; this upload takes exactly the {upload.byte_size} "
            "bytes announced when it was started.",
            code="media.too_large",
        )
    if content_length != upload.byte_size:
        raise ServiceError(
            f"Send exactly {upload.byte_size} bytes, as announced.",
            code="media_upload.size_mismatch",
        )
    try:
        storage.receive_upload(key=upload.key, stream=stream, byte_size=upload.byte_size)
    except FileExistsError as exc:
        raise ServiceError(
            "This upload was already received.", code="media_upload.received"
        ) from exc
    except EOFError as exc:
        raise ServiceError(
            "The body ended before the announced size.", code="media_upload.incomplete"
        ) from exc
    except storage.UploadStalled as exc:
        raise ServiceError(
            "The body stopped arriving before the announced size; nothing was kept. "
            "Send the file again.",
            code="media_upload.timeout",
        ) from exc
    return upload


def media_upload_complete(*, upload: MediaUpload) -> Media:
    """Finish a direct upload: the object must exist with the announced size; it is hashed
    by streaming it (outside any lock: it can be gigabytes) and becomes a Media. Completing
    twice returns the same media."""
    if upload.media_id is not None:
        return upload.media
    if upload.completed_at is not None:
        raise ServiceError("This upload's media was deleted.", code="media_upload.completed")
    size = storage.stored_size(upload.key)
    if size is None:
        raise ServiceError(
            "Nothing was uploaded yet: send the file to upload_url first.",
            code="media_upload.missing",
        )
    if size != upload.byte_size:
        storage.delete_stored(upload.key)
        raise ServiceError(
            f"{size} bytes arrived, {upload.byte_size} were announced; start a new upload.",
            code="media_upload.size_mismatch",
        )
    sha256 = storage.stored_sha256(upload.key)
    with transaction.atomic():
        locked = MediaUpload.objects.select_for_update().get(pk=upload.pk)
        if locked.media_id is not None:
            return locked.media
        media = Media(
            filename=locked.filename,
            content_type=locked.content_type,
            byte_size=size,
            sha256=sha256,
        )
        media.file.name = locked.key
        media.save()
        locked.media, locked.completed_at = media, timezone.now()
        locked.save(update_fields=["media", "completed_at"])
    upload.media, upload.completed_at = media, locked.completed_at
    return media
