"""The order email: the files a buyer bought, linking to the order page.

It never links straight to /downloads/…: mail scanners follow links, and each visit would
use up one of the buyer's downloads.
"""

from django.conf import settings
from django.core.mail import EmailMultiAlternatives
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils import timezone

from .models import Order
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


def order_send_email(*, order: Order, request=None) -> Order:
    """Send the order email (text and HTML) and record `email_sent_at`."""
    full = order_get_by_token(access_token=order.access_token) or order
    context = {
        "order": full,
        "store_name": settings.DOWNLOADS_STORE_NAME,
        "order_url": order_page_url(full, request),
        "files": [
            grant.download.display_name for line in full.lines.all() for grant in line.grants.all()
        ]
        + [grant.download.display_name for grant in getattr(full, "order_grants", [])],
    }
    subject = f"{settings.DOWNLOADS_STORE_NAME}: your downloads for order #{order.number}"
    message = EmailMultiAlternatives(
        subject=subject,
        body=render_to_string("emails/order_paid.txt", context),
        to=[order.email],
    )
    message.attach_alternative(render_to_string("emails/order_paid.html", context), "text/html")
    message.send()
    order.email_sent_at = timezone.now()
    Order.objects.filter(pk=order.pk).update(email_sent_at=order.email_sent_at)
    return order
