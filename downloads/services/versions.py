"""Versions: a new file for a download, keeping the previous ones as history.

Rules owned here: grants point at the Download, not the file, so a new version reaches every
buyer on their next download; the first replacement records the original file as version
one; a changelog is at most CHANGELOG_MAX_LENGTH characters; buyers are told by email only
when the merchant asks (`notify_buyers`, through a backfill); a version announced to buyers
gives each of them a fresh allowance for it (`grants_renew_for_version`: one conditional
UPDATE, in the version's own transaction), so every buyer told about it can download it;
buyers of a stamped file get a stamped copy of the new version (services.stamping).
"""

from functools import partial

from django.db import transaction
from django.db.models import Case, F, Q, Value, When
from django.utils import timezone

from ..errors import ServiceError
from ..models import (
    Download,
    DownloadGrant,
    DownloadVersion,
    Media,
    Order,
)
from . import webhooks
from .backfills import backfill_start
from .grants import default_expiry, default_limit
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
    every buyer holding the file gets a fresh allowance for the new version
    (`grants_renew_for_version`), then a background run emails every order holding it, once
    (`backfill_run`). Emits `download.version_created`.
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
            grants_renew_for_version(download=locked, now=now)
            backfill_start(download=locked, version=version, notify_buyers=True)
    for field in ("media", "url", "file_updated_at", "updated_at"):
        setattr(download, field, getattr(locked, field))
    return version


def grants_renew_for_version(*, download: Download, now) -> int:
    """Give every buyer the new version of `download` is announced to a fresh allowance
    for it; return how many grants changed.

    The buyers told (`backfills`: each paid order holding an unrevoked grant of the file)
    must be able to download what they are told about, even those who had used up their
    downloads or whose period had ended. A fresh allowance is what the file's product gives
    a new buyer (its limit and expiry days, else the store's defaults), counted from now:
    at least that many downloads left (the limit becomes the count so far plus the
    allowance, so the history of downloads is kept) and an expiry no earlier than the
    allowance's. It never takes anything away: a grant with more left, a later expiry, or
    no limit or expiry keeps it. One conditional UPDATE, so it cannot race the download
    rule's own (`services.consume`): each row is read and written under its lock.
    """
    product = download.product
    allowance = default_limit(product.download_limit if product else None)
    until = default_expiry(product.download_expiry_days if product else None, now)
    # Unlimited (or never expiring) for a new buyer: the same for those told.
    if allowance is None:
        short, fresh_limit = Q(download_limit__isnull=False), None
    else:
        fresh_limit = F("download_count") + allowance
        short = Q(download_limit__lt=fresh_limit)
    ends_sooner = Q(expires_at__isnull=False) if until is None else Q(expires_at__lt=until)
    limit = Case(
        When(short, then=fresh_limit),
        default=F("download_limit"),
        output_field=DownloadGrant._meta.get_field("download_limit"),
    )
    expires_at = Case(
        When(ends_sooner, then=Value(until)),
        default=F("expires_at"),
        output_field=DownloadGrant._meta.get_field("expires_at"),
    )
    return DownloadGrant.objects.filter(
        short | ends_sooner,
        download=download,
        revoked_at__isnull=True,
        order__status=Order.Status.PAID,
    ).update(download_limit=limit, expires_at=expires_at, updated_at=now)
