"""Template helpers for the buyer's pages and emails."""

from pathlib import PurePosixPath

from django import template
from django.conf import settings

register = template.Library()


@register.simple_tag
def store_name() -> str:
    return settings.DOWNLOADS_STORE_NAME


@register.filter
def file_kind(download) -> str:
    """A short label for a file's type: its extension ("PDF", "ZIP"), or "Link"."""
    if download.media_id is None:
        return "Link"
    suffix = PurePosixPath(download.media.filename).suffix.lstrip(".").upper()
    return suffix[:4] if suffix.isalnum() else "File"
