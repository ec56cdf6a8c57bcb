"""Versions: a new file for a download, keeping the previous ones as history.

Rules owned here: grants point at the Download, not the file, so a new version reaches every
buyer on their next download; the first replacement records the original file as version
one; a changelog is at most CHANGELOG_MAX_LENGTH characters; buyers are told by email only
when the merchant asks (`notify_buyers`, through a backfill); buyers of a stamped file get a
stamped copy of the new version (services.stamping).
"""

from functools import partial

from django.db import transaction
from django.utils import timezone

from ..errors import ServiceError
from ..models import (
    Download,
    DownloadVersion,
    Media,
)
from . import webhooks
from .backfills import backfill_start
from .stamping import stamped_copies_for_download

CHANGELOG_MAX_LENGTH = 500


def download_replace_media(
    *,
    download: Download,
    media: Media,
    changelog: str = "",
    created_by=None,
    notify_buyers: bool = False,
) -> DownloadVersion:
    """Make `media` the current file of a download, keeping the previous ones as history.

    Grants point at the Download, not the file, so every buyer gets the new file from their
    next download on; `file_updated_at` lets the order page say "updated on …". The first
    replacement also records the original file as the first version. With `notify_buyers`,
    a background run emails every order holding the file, once (`backfill_run`).
    Emits `download.version_created`.
    """
    if media is None:
        raise ServiceError(
            "Choose the new file.",
            code="download_version.invalid",
            reason="required",
            attribute="media",
        )
    changelog = (changelog or "").strip()
    if len(changelog) > CHANGELOG_MAX_LENGTH:
        raise ServiceError(
            f"The changelog is at most {CHANGELOG_MAX_LENGTH} characters.",
            code="download_version.invalid",
            reason="max_length",
            attribute="changelog",
        )
    # API keys act as a user without a row (pk None): the version then has no author.
    user = created_by if getattr(created_by, "pk", None) is not None else None
    with transaction.atomic():
        locked = Download.objects.select_for_update().get(pk=download.pk)
        if locked.media_id == media.pk:
            raise ServiceError(
                "This file is already the current version.",
                code="download.media_unchanged",
                attribute="media",
            )
        now = timezone.now()
        if not locked.versions.exists():
            DownloadVersion.objects.create(
                download=locked,
                media_id=locked.media_id,
                url=locked.url,
                created_at=locked.created_at,
            )
        version = DownloadVersion.objects.create(
            download=locked,
            media=media,
            changelog=changelog,
            created_by=user,
            created_at=now,
            notify_buyers=notify_buyers,
        )
        locked.media, locked.url, locked.file_updated_at = media, None, now
        locked.save(update_fields=["media", "url", "file_updated_at", "updated_at"])
        webhooks.emit("download.version_created", partial(webhooks.version_data, version))
        # Buyers of a stamped file get their copy of the new version made in the background;
        # each replaces the older copy once it is ready.
        stamped_copies_for_download(download=locked)
        if notify_buyers:
            backfill_start(download=locked, version=version, notify_buyers=True)
    for field in ("media", "url", "file_updated_at", "updated_at"):
        setattr(download, field, getattr(locked, field))
    return version
