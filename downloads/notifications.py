"""Emails that tell buyers about files changed or added after their order.

Like the order email, they link to the order page (`downloads.emails.order_page_url`), never
to /downloads/…: a mail scanner following the link must not use up a download. Which orders
get one, and the rule that each gets it once, live in `services` (OrderNotification).
"""

from django.conf import settings
from django.core.mail import EmailMultiAlternatives
from django.template.loader import render_to_string

from .emails import order_page_url
from .models import Download, DownloadVersion, Order, OrderNotification

TEMPLATES = {
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
    }
    if kind == OrderNotification.Kind.NEW_VERSION:
        subject = f"{store}: a new version of {download.display_name} (order #{order.number})"
    else:
        subject = f"{store}: a new file for your order #{order.number}"
    template = TEMPLATES[kind]
    message = EmailMultiAlternatives(
        subject=subject,
        body=render_to_string(f"{template}.txt", context),
        to=[order.email],
        connection=connection,
    )
    message.attach_alternative(render_to_string(f"{template}.html", context), "text/html")
    return message
