"""The download endpoint: `GET /downloads/<grant token>/`, the product's hot path.

A served download costs two SQL statements on PostgreSQL: the grant lookup
(`grant_get_for_delivery`), then the conditional UPDATE that takes the count together with
the INSERT of its event (`grant_consume`; three statements in one transaction elsewhere).
The response is prepared first, so a failure to serve takes nothing.
"""

import hmac
import ipaddress
import logging
import re
from dataclasses import dataclass
from functools import wraps
from urllib.parse import urlsplit

from django.core.exceptions import DisallowedRedirect
from django.http import FileResponse, HttpResponse, HttpResponseRedirect
from django.shortcuts import render
from django.urls import reverse
from django.utils import timezone
from django.utils.formats import date_format
from django.views.decorators.http import require_http_methods
from rest_framework.throttling import BaseThrottle

from downloads.services.consume import download_event_create, grant_consume

from . import selectors, storage
from .models import DownloadEvent, DownloadGrant

logger = logging.getLogger(__name__)

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
        """True when the range starts past byte 0: a resumed download, which takes no count.
        A suffix range may cover the whole file, so it counts like a plain GET."""
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
    """The grant allowed the download but the file could not be delivered."""


def delivery_headers(view):
    """Download responses, refusals included, are never cached and never leak a Referer:
    a cached 302 or a Referer header would hand the presigned URL or the token to others."""

    @wraps(view)
    def wrapped(request, *args, **kwargs):
        response = view(request, *args, **kwargs)
        response["Cache-Control"] = "private, no-store"
        response["Referrer-Policy"] = "no-referrer"
        response["X-Robots-Tag"] = "noindex, nofollow"
        return response

    return wrapped


@require_http_methods(["GET", "HEAD"])
@delivery_headers
def download(request, token: str):
    """Take one download from the grant and deliver the file.

    HEAD and ranges that start past byte 0 take no count (a resumed download is not a new
    one) but are refused like a GET when nothing is left.
    """
    grant = selectors.grant_get_for_delivery(token=token)
    if grant is None:
        return _problem(
            request,
            status=404,
            title="Download link not found",
            message="This download link is not valid. Open your order page for working links.",
        )
    byte_range = _effective_range(request, grant)
    if request.method == "HEAD" or (byte_range is not None and byte_range.resumes):
        refusal = grant.refusal()
        if refusal:
            return _refused(request, grant, refusal)
        try:
            return _deliver(request, grant, byte_range)
        except ServeError:
            return _unavailable(request, grant)

    ip, user_agent = _client(request)
    refusal = grant.refusal()
    if refusal:  # refused by the row this request just read: log it, take nothing
        download_event_create(grant=grant, outcome=refusal, ip=ip, user_agent=user_agent)
        return _refused(request, grant, refusal)
    # The response is ready (URL presigned, file opened) before the count is taken, so a
    # failure to serve takes nothing and the count needs no open transaction.
    try:
        response = _deliver(request, grant, byte_range)
    except ServeError:
        download_event_create(
            grant=grant, outcome=DownloadEvent.Outcome.FAILED, ip=ip, user_agent=user_agent
        )
        return _unavailable(request, grant)
    consumption = grant_consume(grant=grant, ip=ip, user_agent=user_agent)
    if consumption.allowed:
        return response
    _discard(response)  # lost a race to the limit
    return _refused(request, grant, consumption.outcome)


def _discard(response) -> None:
    """Release what an unsent response holds (an opened file). Not `response.close()`: that
    also announces the end of the request (`request_finished`) in the middle of it."""
    stream = getattr(response, "file_to_stream", None)
    if stream is not None:
        stream.close()


def _effective_range(request, grant: DownloadGrant) -> ByteRange | None:
    byte_range = parse_range(request.headers.get("Range"))
    if byte_range is None or request.method == "HEAD":
        return None
    media = grant.download.media
    if media is not None and not storage.is_s3():
        # We serve these bytes ourselves: a resume of another version of the file (If-Range
        # not matching our ETag) gets, and pays for, the whole current file.
        if_range = request.headers.get("If-Range")
        if if_range is not None and not (media.sha256 and if_range == _etag(media)):
            return None
    return byte_range


_IDENT = BaseThrottle()


def _client(request) -> tuple[str | None, str]:
    # The same client address the API throttles by: X-Forwarded-For is trusted only as far as
    # DOWNLOADS_NUM_PROXIES proxies (0: REMOTE_ADDR), so a buyer cannot forge the log.
    ip = _IDENT.get_ident(request) or None
    try:
        ip = str(ipaddress.ip_address(ip)) if ip else None
    except ValueError:
        ip = None
    return ip, request.headers.get("User-Agent", "")


def _deliver(request, grant: DownloadGrant, byte_range: ByteRange | None):
    download = grant.download
    if download.media_id is None:
        try:
            return HttpResponseRedirect(download.url)
        except DisallowedRedirect as exc:
            logger.error("Download %s has an unsafe URL", download.pk)
            raise ServeError from exc
    media = download.media
    if storage.is_s3():
        try:
            url = storage.presigned_download_url(
                key=media.key,
                filename=media.filename,
                content_type=media.content_type,
                byte_range=byte_range.header if byte_range else None,
                http_method=request.method,
            )
        except Exception as exc:  # botocore raises many kinds (credentials, configuration)
            logger.exception("Could not presign media %s", media.pk)
            raise ServeError from exc
        return HttpResponseRedirect(url)
    return _local_file_response(request, media, byte_range)


def _etag(media) -> str:
    return f'"{media.sha256}"'


def _local_file_response(request, media, byte_range: ByteRange | None):
    """Stream a local file: 200 whole, 206 one range, 416 a range past the end."""
    try:
        file = storage.open_local(media.key)
        size = file.size
    except OSError as exc:
        logger.error("Media %s is missing from local storage (%s)", media.pk, media.key)
        raise ServeError from exc

    span = byte_range.resolve(size) if byte_range is not None else None
    if byte_range is not None and span is None and byte_range.resumes:
        file.close()
        response = HttpResponse(status=416)
        response["Content-Range"] = f"bytes */{size}"
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
    response["Content-Type"] = media.content_type or "application/octet-stream"
    response["Content-Length"] = str(length)
    response["Content-Disposition"] = storage.content_disposition(media.filename)
    response["Accept-Ranges"] = "bytes"
    if media.sha256:
        response["ETag"] = _etag(media)
    return response


class _BoundedReader:
    """Reads at most `remaining` bytes of a file, then reports end of file. It has no fileno,
    so a WSGI server cannot sendfile() past the end of the range."""

    def __init__(self, file, remaining: int):
        self._file = file
        self._remaining = remaining

    def read(self, size: int = -1) -> bytes:
        if self._remaining <= 0:
            return b""
        if size is None or size < 0 or size > self._remaining:
            size = self._remaining
        data = self._file.read(size)
        self._remaining -= len(data)
        return data

    def close(self) -> None:
        self._file.close()


# --- Pages for the buyer -----------------------------------------------------------------------


def _problem(request, *, status: int, title: str, message: str, order_url: str | None = None):
    return render(
        request,
        "downloads/problem.html",
        {"title": title, "message": message, "order_url": order_url},
        status=status,
    )


REFUSALS = {
    DownloadEvent.Outcome.LIMIT_REACHED: "Download limit reached",
    DownloadEvent.Outcome.EXPIRED: "Download expired",
    DownloadEvent.Outcome.REVOKED: "Access revoked",
}


def _refused(request, grant: DownloadGrant, reason: str):
    name = grant.download.display_name
    if reason == DownloadEvent.Outcome.REVOKED:
        message = (
            f"Access to “{name}” has been revoked, for example because the order was "
            "refunded. Contact the store if you think this is a mistake."
        )
    elif reason == DownloadEvent.Outcome.EXPIRED:
        when = date_format(timezone.localtime(grant.expires_at), "j F Y")
        message = f"The download period for “{name}” ended on {when}."
    else:
        message = (
            f"You have used all {grant.download_limit} downloads of “{name}”. "
            "Contact the store if you need more."
        )
    return _problem(
        request,
        status=410,
        title=REFUSALS.get(reason, "Download unavailable"),
        message=message,
        order_url=_order_url_for(request, grant),
    )


def _unavailable(request, grant: DownloadGrant):
    return _problem(
        request,
        status=503,
        title="File temporarily unavailable",
        message=(
            f"“{grant.download.display_name}” could not be delivered right now. Your download "
            "was not counted. Please try again later or contact the store."
        ),
        order_url=_order_url_for(request, grant),
    )


def _order_url_for(request, grant: DownloadGrant) -> str | None:
    """The order page, for a visitor who already holds it: the logged-in owner, or a buyer
    who came from it. A download link shared on its own must not open the whole order (all
    its files), so anyone else gets no link."""
    order = grant.order
    order_url = reverse("accounts:order_detail", args=[order.access_token])
    referer = urlsplit(request.headers.get("Referer", ""))
    if referer.netloc == request.get_host() and hmac.compare_digest(
        referer.path.encode(), order_url.encode()
    ):
        return order_url
    user = request.user
    if user.is_authenticated and (order.customer_id == user.pk or order.email == user.email):
        return order_url
    return None
