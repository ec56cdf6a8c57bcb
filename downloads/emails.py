"""The emails buyers get: the order email, and the notices of files changed or added after
their order. This module builds messages; the services decide who gets one and when
(`services.orders.order_send_email`, `services.backfills`).

Rule owned here: an email links to the buyer's order page, never straight to /downloads/…:
mail scanners follow links, and each visit would use up one of the buyer's downloads.
"""

from django.conf import settings
from django.core.mail import EmailMultiAlternatives
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils.translation import gettext

from .models import Download, DownloadVersion, LicenseKey, Order, OrderNotification
from .selectors import order_get_by_token


def site_url(request=None) -> str:
    """The absolute base URL: DOWNLOADS_SITE_URL, else the request's, else localhost."""
    if settings.DOWNLOADS_SITE_URL:
        return settings.DOWNLOADS_SITE_URL
    if request is not None:
        return request.build_absolute_uri("/").rstrip("/")
    return "http://127.0.0.1:8000"


def order_page_url(order: Order, request=None) -> str:
    return site_url(request) + reverse("accounts:order_detail", args=[order.access_token])


def order_email_message(*, order: Order, request=None, connection=None) -> EmailMultiAlternatives:
    """The order email (text and HTML): what was bought at what price and the total, in the
    order's currency; each item with its files and its licence keys (with the activations
    each allows; disabled keys left out, like revoked files); and the order page link."""
    full = order_get_by_token(access_token=order.access_token) or order
    bought = list(full.lines.all())
    lines = [
        {
            "line": line,
            "grants": [grant for grant in line.grants.all() if not grant.is_revoked],
            "keys": [
                key
                for key in line.license_keys.all()
                if key.status_at() != LicenseKey.Status.DISABLED
            ],
        }
        for line in bought
        if line.refunded_at is None
    ]
    order_grants = [grant for grant in getattr(full, "order_grants", []) if not grant.is_revoked]
    store = settings.DOWNLOADS_STORE_NAME
    context = {
        "order": full,
        "store_name": store,
        "order_url": order_page_url(full, request),
        "bought": bought,
        "lines": lines,
        "order_grants": order_grants,
        "has_files": bool(order_grants) or any(item["grants"] for item in lines),
        "has_keys": any(item["keys"] for item in lines),
    }
    message = EmailMultiAlternatives(
        subject=gettext("%(store)s: your downloads for order #%(number)s")
        % {"store": store, "number": full.number},
        body=render_to_string("emails/order_paid.txt", context),
        to=[full.email],
        connection=connection,
    )
    message.attach_alternative(render_to_string("emails/order_paid.html", context), "text/html")
    return message


NOTIFICATION_TEMPLATES = {
    OrderNotification.Kind.NEW_VERSION: "emails/file_updated",
    OrderNotification.Kind.NEW_FILE: "emails/file_added",
}


def notification_message(
    *,
    order: Order,
    kind: str,
    download: Download,
    version: DownloadVersion | None = None,
    connection=None,
) -> EmailMultiAlternatives:
    """The email (text and HTML) for one order about one new version or new file."""
    store = settings.DOWNLOADS_STORE_NAME
    context = {
        "order": order,
        "store_name": store,
        "order_url": order_page_url(order),
        "file_name": download.display_name,
        "changelog": version.changelog if version is not None else "",
        "is_link": download.media_id is None,
    }
    words = {"store": store, "name": download.display_name, "number": order.number}
    if kind == OrderNotification.Kind.NEW_VERSION:
        subject = gettext("%(store)s: a new version of %(name)s (order #%(number)s)") % words
    else:
        subject = gettext("%(store)s: a new file for your order #%(number)s") % words
    template = NOTIFICATION_TEMPLATES[kind]
    message = EmailMultiAlternatives(
        subject=subject,
        body=render_to_string(f"{template}.txt", context),
        to=[order.email],
        connection=connection,
    )
    message.attach_alternative(render_to_string(f"{template}.html", context), "text/html")
    return message
