"""Grants: issue, create, update, reset, extend, revoke, restore, delete.

Rules owned here: a paid order is owed one grant per deliverable (each unrefunded line gets
the unarchived Downloads of its product and variant, the order one per attached Download),
issued idempotently; limits and expiry come from the product, else the store defaults
(`default_limit`, `default_expiry`: 0 means unlimited / never); a limit is at least 1 or
null; extending never makes a never-expiring grant expire; a grant with download events is
revoked, never deleted (the log is kept for support and disputes).
"""

from datetime import datetime, timedelta

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import F, ProtectedError, QuerySet, Value
from django.db.models.functions import Greatest
from django.utils import timezone

from ..errors import ServiceError
from ..models import (
    Download,
    DownloadGrant,
    Order,
    OrderLine,
)
from . import webhooks
from .common import LATEST_EXPIRY, UNSET, check_expires_at, check_expiry_days
from .stamping import stamped_copies_request


def default_limit(value: int | None) -> int | None:
    """A product's limit, or the store default; 0 means unlimited (None on the grant)."""
    limit = settings.DOWNLOADS_DEFAULT_LIMIT if value is None else value
    return limit or None


def default_expiry(value: int | None, start: datetime) -> datetime | None:
    days = settings.DOWNLOADS_DEFAULT_EXPIRY_DAYS if value is None else value
    return start + timedelta(days=days) if days else None


def grants_issue(*, order: Order) -> list[DownloadGrant]:
    """Issue the grants a paid order is owed and has not got yet; return the new ones.

    One grant per deliverable: each unrefunded line gets the unarchived Downloads of its
    product (those without a variant, plus those of the line's variant); the order gets one
    per attached Download. Limits and expiry come from the product, else the store defaults.
    Call it with the order locked (as `order_pay` does), so two calls cannot race.
    """
    start = order.paid_at or timezone.now()
    lines = list(order.lines.filter(refunded_at__isnull=True).select_related("product"))
    product_ids = {line.product_id for line in lines}
    by_product: dict = {}
    for download in Download.objects.filter(product_id__in=product_ids, archived=False):
        by_product.setdefault(download.product_id, []).append(download)
    existing = set(order.grants.values_list("line_id", "download_id"))

    new: list[DownloadGrant] = []
    for line in lines:
        for download in by_product.get(line.product_id, ()):
            if download.variant_id not in (None, line.variant_id):
                continue
            if (line.pk, download.pk) in existing:
                continue
            new.append(
                DownloadGrant(
                    order=order,
                    line=line,
                    download=download,
                    download_limit=default_limit(line.product.download_limit),
                    expires_at=default_expiry(line.product.download_expiry_days, start),
                )
            )
    for download in order.downloads.select_related("product"):
        if (None, download.pk) in existing:
            continue
        product = download.product
        new.append(
            DownloadGrant(
                order=order,
                download=download,
                download_limit=default_limit(product.download_limit if product else None),
                expires_at=default_expiry(product.download_expiry_days if product else None, start),
            )
        )
    DownloadGrant.objects.bulk_create(new)
    webhooks.emit_grants("grant.created", new)
    stamped_copies_request(grants=new)
    return new


def _check_limit(download_limit: int | None) -> None:
    """A grant's limit is at least 1, or None for unlimited (the database checks it too)."""
    if download_limit is not None and download_limit < 1:
        raise ServiceError(
            "download_limit must be at least 1, or null for unlimited.",
            code="grant.invalid",
            reason="min_value",
            attribute="download_limit",
        )


def grant_create(
    *,
    order: Order,
    download: Download,
    line: OrderLine | None = None,
    download_limit: int | None = None,
    expires_at: datetime | None = None,
    download_count: int = 0,
) -> DownloadGrant:
    """Give one order a grant by hand (support, goodwill). One per order, line and download."""
    if line is not None and line.order_id != order.pk:
        raise ServiceError(
            "The line belongs to another order.",
            code="grant.invalid",
            reason="invalid",
            attribute="line",
        )
    check_expires_at(expires_at)
    _check_limit(download_limit)
    try:
        with transaction.atomic():
            grant = DownloadGrant.objects.create(
                order=order,
                line=line,
                download=download,
                download_limit=download_limit,
                expires_at=expires_at,
                download_count=download_count,
            )
            stamped_copies_request(grants=[grant])
            return grant
    except IntegrityError as exc:
        raise ServiceError(
            "This order already has a grant for this download.", code="grant.exists"
        ) from exc


def grant_update(
    *,
    grant: DownloadGrant,
    download_count=UNSET,
    download_limit=UNSET,
    expires_at=UNSET,
) -> DownloadGrant:
    """Change a grant's count, limit (None: unlimited) or expiry (None: never)."""
    fields = []
    if download_count is not UNSET:
        if download_count is None or download_count < 0:
            raise ServiceError(
                "download_count cannot be negative.",
                code="grant.invalid",
                reason="min_value",
                attribute="download_count",
            )
        grant.download_count = download_count
        fields.append("download_count")
    if download_limit is not UNSET:
        _check_limit(download_limit)
        grant.download_limit = download_limit
        fields.append("download_limit")
    if expires_at is not UNSET:
        check_expires_at(expires_at)
        grant.expires_at = expires_at
        fields.append("expires_at")
    if fields:
        grant.save(update_fields=[*fields, "updated_at"])
    return grant


def grants_reset(*, grants: QuerySet) -> int:
    """Set the download count of these grants back to zero; return how many changed."""
    return grants.exclude(download_count=0).update(download_count=0, updated_at=timezone.now())


def grants_extend(*, grants: QuerySet, days: int | None = None, expires_at=UNSET) -> int:
    """Extend expiry by `days` (from now if already expired) or set `expires_at`.

    Grants that never expire keep never expiring when extended by days.
    """
    now = timezone.now()
    if expires_at is not UNSET:
        check_expires_at(expires_at)
        return grants.update(expires_at=expires_at, updated_at=now)
    if days is None:
        raise ServiceError(
            "Give days or expires_at.", code="grant.invalid", reason="required", attribute="days"
        )
    check_expiry_days(days, attribute="days", entity="grant", minimum=1)
    if grants.filter(expires_at__gt=LATEST_EXPIRY - timedelta(days=days)).exists():
        raise ServiceError(
            "That would extend a grant too far into the future.",
            code="grant.invalid",
            reason="max_value",
            attribute="days",
        )
    return grants.filter(expires_at__isnull=False).update(
        expires_at=Greatest(F("expires_at"), Value(now)) + timedelta(days=days), updated_at=now
    )


def grants_revoke(*, grants: QuerySet) -> int:
    now = timezone.now()
    with transaction.atomic():
        count = grants.filter(revoked_at__isnull=True).update(revoked_at=now, updated_at=now)
        if count:
            webhooks.emit_grants("grant.revoked", grants.filter(revoked_at=now))
    return count


def grants_restore(*, grants: QuerySet) -> int:
    return grants.filter(revoked_at__isnull=False).update(
        revoked_at=None, updated_at=timezone.now()
    )


def grant_delete(*, grant: DownloadGrant) -> None:
    """Delete a grant that was never used; one with download events is kept for the log
    (409): revoke it instead."""
    try:
        with transaction.atomic():
            grant.delete()
    except ProtectedError as exc:
        raise ServiceError(
            "This grant has download events, which are kept for support and disputes; "
            "revoke it instead.",
            code="grant.in_use",
        ) from exc


def grant_extend(
    *, grant: DownloadGrant, days: int | None = None, expires_at=UNSET
) -> DownloadGrant:
    """Extend one grant by `days` (from now when already expired; never-expiring grants
    stay so) or set `expires_at` (None: never); the rules are those of `grants_extend`."""
    grants_extend(
        grants=DownloadGrant.objects.filter(pk=grant.pk), days=days, expires_at=expires_at
    )
    grant.refresh_from_db(fields=["expires_at", "updated_at"])
    return grant
