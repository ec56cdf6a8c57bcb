"""The download endpoint: `GET /downloads/<grant token>/`, the product's hot path.

A served download of a file on S3 costs ONE SQL statement on PostgreSQL
(`grant_consume_by_token`): the grant's lookup, the conditional UPDATE that takes the count
and the INSERT of its event, after which the URL is presigned (a local signature that cannot
fail to be sent; should it fail, the download is given back). Everything else (local files,
links, stamped files, HEAD, Range, a subscriber to the served events, SQLite) takes two: the
lookup (`grant_get_for_delivery`), then the count with its event (`grant_consume`; three
statements in one transaction on SQLite), with the response prepared first, so a failure to
serve takes nothing.

What is served is what `services.stamping.file_to_deliver` says: the file itself, or the
buyer's stamped copy of a PDF (served the same way, under the same counting rule; one more
SELECT, for stamped files only). A copy not made yet answers 503 with `Retry-After` and takes
nothing, logs nothing: nothing was delivered.

A Range request not starting at byte 0 goes through the same `grant_consume`, which decides
whether it is a free resume of the last counted download (one conditional UPDATE of the
grant's resume budget) or counts like a new download: services/consume.py owns the rule.

A file whose store cannot be reached (`storage.reachable()`, a memory read kept fresh by
downloads/storage_health.py) answers 503 with `Retry-After` and takes nothing: no count, no
log entry, no resume budget; the buyer is sent nowhere. A file that cannot be opened or
signed (missing, unreadable) answers 503 too, logged as a failed attempt.
"""

import hmac
import ipaddress
import logging
from functools import wraps
from urllib.parse import urlsplit

from django.core.exceptions import DisallowedRedirect
from django.http import HttpResponseRedirect
from django.shortcuts import render
from django.urls import reverse
from django.utils import timezone
from django.utils.formats import date_format
from django.utils.translation import gettext, ngettext
from django.views.decorators.http import require_http_methods

from downloads.api.throttling import client_address
from downloads.services import consume
from downloads.services.consume import download_event_create, grant_consume, resume_may_be_free
from downloads.services.stamping import file_to_deliver

from .. import selectors, storage, storage_health
from ..models import REFUSAL_LABELS, DownloadEvent, DownloadGrant
from .order_access import order_page_opened

logger = logging.getLogger(__name__)


def delivery_headers(view):
    """Download responses, refusals included, are never cached and never leak a Referer:
    a cached 302 or a Referer header would hand the presigned URL or the token to others.
    A response carrying a stored file keeps the files' sandbox policy, even where a page's
    policy was put around it (the download-all's `page_headers`, for its problem pages)."""

    @wraps(view)
    def wrapped(request, *args, **kwargs):
        response = view(request, *args, **kwargs)
        response["Cache-Control"] = "private, no-store"
        response["Referrer-Policy"] = "no-referrer"
        response["X-Robots-Tag"] = "noindex, nofollow"
        if getattr(response, "serves_stored_file", False):
            storage.file_headers(response)
        return response

    return wrapped


@require_http_methods(["GET", "HEAD"])
@delivery_headers
def download(request, token: str):
    """Take one download from the grant and deliver the file.

    HEAD takes no count but is refused like a GET when nothing is left. A range that starts
    past byte 0 is free only as a resume of the last counted download, within its window and
    byte budget (even when that download was the last one), and counts otherwise. A stamped
    copy still being prepared is a 503 for any request, with nothing taken or logged.
    """
    grant = None
    ip, user_agent = client_of(request)
    if request.method == "GET" and "Range" not in request.headers and consume.consumes_by_token():
        # The hot path on PostgreSQL with S3: one statement finds the grant and takes the
        # download; the presigned URL is made after (it is local and cannot fail to be sent).
        taken = consume.grant_consume_by_token(token=token, ip=ip, user_agent=user_agent)
        if taken is not None:
            grant = taken.grant
            if taken.consumption is not None:
                return _served_by_token(request, taken)
    else:
        grant = selectors.grant_get_for_delivery(token=token)
    if grant is None:
        return _problem(
            request,
            status=404,
            title=gettext("Download link not found"),
            message=gettext(
                "This download link is not valid. Open your order page for working links."
            ),
        )
    refusal = grant.refusal()
    if request.method == "GET" and refusal == DownloadEvent.Outcome.LIMIT_REACHED:
        # The last download may still be resumed for free: prepare it, the UPDATE decides.
        asked = storage.parse_range(request.headers.get("Range"))
        if asked is not None and asked.resumes and resume_may_be_free(grant):
            refusal = None
    # A refused grant is answered without asking for its file (no query for a stamped one).
    deliverable = None if refusal else file_to_deliver(grant=grant)
    file = deliverable.file if deliverable is not None else grant.download.media
    byte_range = storage.request_range(request, file)
    if request.method == "HEAD":
        if refusal:
            return _refused(request, grant, refusal)
        if deliverable.pending:
            return _being_prepared(request, grant)
        if file is not None and not storage.reachable():
            return _storage_unreachable(request, grant)
        try:
            return _deliver(request, grant, file, byte_range)
        except storage.ServeError:
            return _unavailable(request, grant)

    if refusal:  # refused by the row this request just read: log it, take nothing
        download_event_create(grant=grant, outcome=refusal, ip=ip, user_agent=user_agent)
        return _refused(request, grant, refusal)
    if deliverable.pending:  # nothing delivered, so nothing taken and nothing logged
        return _being_prepared(request, grant)
    if file is not None and not storage.reachable():  # likewise: the buyer is sent nowhere
        return _storage_unreachable(request, grant)
    # The response is ready (URL presigned, file opened) before the count is taken, so a
    # failure to serve takes nothing and the count needs no open transaction.
    try:
        response = _deliver(request, grant, file, byte_range)
    except storage.ServeError:
        download_event_create(
            grant=grant, outcome=DownloadEvent.Outcome.FAILED, ip=ip, user_agent=user_agent
        )
        return _unavailable(request, grant)
    consumption = grant_consume(
        grant=grant,
        ip=ip,
        user_agent=user_agent,
        size=getattr(response, "file_size", None),
        length=getattr(response, "span_length", None),
        resume=byte_range is not None and byte_range.resumes,
    )
    if consumption.allowed:
        return response
    _discard(response)  # lost a race to the limit
    return _refused(request, grant, consumption.outcome)


def _served_by_token(request, taken):
    """The answer to a download `grant_consume_by_token` decided: the file, or the refusal."""
    grant = taken.grant
    if not taken.consumption.allowed:
        return _refused(request, grant, taken.consumption.outcome)
    try:
        return _deliver(request, grant, grant.download.media, None)
    except storage.ServeError:
        consume.grant_consume_undo(taken=taken)
        return _unavailable(request, grant)


def _discard(response) -> None:
    """Release what an unsent response holds (an opened file). Not `response.close()`: that
    also announces the end of the request (`request_finished`) in the middle of it."""
    stream = getattr(response, "file_to_stream", None)
    if stream is not None:
        stream.close()


def client_of(request) -> tuple[str | None, str]:
    """The client's address and user agent, as the download log records them."""
    # The same client address the API throttles by: X-Forwarded-For is trusted only as far as
    # DOWNLOADS_NUM_PROXIES proxies (0: REMOTE_ADDR), so a buyer cannot forge the log.
    ip = client_address(request)
    try:
        ip = str(ipaddress.ip_address(ip)) if ip else None
    except ValueError:
        ip = None
    return ip, request.META.get("HTTP_USER_AGENT", "")


def _deliver(request, grant: DownloadGrant, file, byte_range: storage.ByteRange | None):
    """The response that delivers `file` (the media or the buyer's stamped copy), or the
    download's link."""
    download = grant.download
    if download.media_id is None:
        try:
            return HttpResponseRedirect(download.url)
        except DisallowedRedirect as exc:
            logger.error("Download %s has an unsafe URL", download.pk)
            raise storage.ServeError from exc
    return storage.media_response(request, file, byte_range)


# --- Pages for the buyer -----------------------------------------------------------------------


def _problem(request, *, status: int, title: str, message: str, order_url: str | None = None):
    return render(
        request,
        "downloads/problem.html",
        {"title": title, "message": message, "order_url": order_url},
        status=status,
    )


def _refused(request, grant: DownloadGrant, reason: str):
    words = {"name": grant.download.display_name, "limit": grant.download_limit}
    if reason == DownloadEvent.Outcome.REVOKED:
        message = gettext(
            "Access to “%(name)s” has been revoked, for example because the order was "
            "refunded. Contact the store if you think this is a mistake."
        )
    elif reason == DownloadEvent.Outcome.EXPIRED:
        words["when"] = date_format(timezone.localtime(grant.expires_at), "j F Y")
        message = gettext("The download period for “%(name)s” ended on %(when)s.")
    elif grant.download.media_id is None:  # an external link is visited, not downloaded
        message = ngettext(
            "You have used your %(limit)s visit of “%(name)s”. Contact the store if you need more.",
            "You have used all %(limit)s visits of “%(name)s”. Contact the store if you need more.",
            grant.download_limit,
        )
    else:
        message = ngettext(
            "You have used your %(limit)s download of “%(name)s”. Contact the store if you "
            "need more.",
            "You have used all %(limit)s downloads of “%(name)s”. Contact the store if you "
            "need more.",
            grant.download_limit,
        )
    return _problem(
        request,
        status=410,
        title=REFUSAL_LABELS[reason].title,
        message=message % words,
        order_url=_order_url_for(request, grant),
    )


def _unavailable(request, grant: DownloadGrant):
    return _problem(
        request,
        status=503,
        title=gettext("File temporarily unavailable"),
        message=gettext(
            "“%(name)s” could not be delivered right now. Your download was not counted. "
            "Please try again later or contact the store."
        )
        % {"name": grant.download.display_name},
        order_url=_order_url_for(request, grant),
    )


def _storage_unreachable(request, grant: DownloadGrant):
    """503: the store holding the file cannot be reached; nothing was taken."""
    response = _problem(
        request,
        status=503,
        title=gettext("Downloads are paused for a moment"),
        message=gettext(
            "“%(name)s” cannot be delivered right now: the store's file storage is not "
            "answering. Your download was not counted. Please try again in a few minutes."
        )
        % {"name": grant.download.display_name},
        order_url=_order_url_for(request, grant),
    )
    response["Retry-After"] = str(storage_health.retry_after())
    return response


# Seconds a client is asked to wait before trying a copy being prepared again.
PREPARING_RETRY_AFTER = 10


def _being_prepared(request, grant: DownloadGrant):
    """503: the buyer's stamped copy is not made yet (a background task makes it)."""
    response = _problem(
        request,
        status=503,
        title=gettext("Your copy is being prepared"),
        message=gettext(
            "“%(name)s” is stamped with your email, and your personalised copy is being "
            "prepared. Please try again in a minute. Your download was not counted."
        )
        % {"name": grant.download.display_name},
        order_url=_order_url_for(request, grant),
    )
    response["Retry-After"] = str(PREPARING_RETRY_AFTER)
    return response


def _order_url_for(request, grant: DownloadGrant) -> str | None:
    """The order page, for a visitor who already holds it: the logged-in owner, a buyer who
    came from it, or a browser that opened it (`order_access`, for a guest whose browser
    sent no Referer). A download link shared on its own must not open the whole order (all
    its files), so anyone else gets no link."""
    order = grant.order
    order_url = reverse("accounts:order_detail", args=[order.access_token])
    referer = urlsplit(request.headers.get("Referer", ""))
    if referer.netloc == request.get_host() and hmac.compare_digest(
        referer.path.encode(), order_url.encode()
    ):
        return order_url
    if order_page_opened(request, order) or order.is_owned_by(request.user):
        return order_url
    return None
