"""Template helpers for the buyer's pages and emails."""

from datetime import datetime, timedelta
from functools import lru_cache
from pathlib import PurePosixPath

from django import template
from django.conf import settings
from django.utils import timezone
from django.utils.translation import pgettext

from downloads import selectors

register = template.Library()


@register.simple_tag
def store_name() -> str:
    return settings.DOWNLOADS_STORE_NAME


@register.filter
def file_kind(download) -> str:
    """A short label for a file's type: its extension ("PDF", "ZIP"), or "Link"."""
    if download.media_id is None:
        return pgettext("the kind of a download", "Link")
    return _extension(download.media.filename) or pgettext("the kind of a download", "File")


# Asked for every file each time an order page is shown; a pure function of the name.
@lru_cache(maxsize=4096)
def _extension(filename: str) -> str:
    """The file's extension as its kind ("PDF"), at most 4 characters; "" when it has none
    or it is not letters and digits."""
    suffix = PurePosixPath(filename).suffix.lstrip(".").upper()
    return suffix[:4] if suffix.isalnum() else ""


@register.filter
def days_left(moment: datetime | None) -> int | None:
    """Whole days from now until `moment` ("3 days left"), 0 within the last day; None when
    there is no moment or it has passed."""
    if moment is None:
        return None
    left = moment - timezone.now()
    if left <= timedelta(0):
        return None
    return left.days


@register.filter
def payment_state(order) -> selectors.PaymentState:
    """The order's badge (`selectors.order_payment_state`, the one rule): `.key`, `.label`."""
    return selectors.order_payment_state(order)
