"""Writes. Every change to the store goes through these functions, from the API and the admin.

Functions are keyword-only and named `<entity>_<action>`. They raise `ServiceError` (or a
subclass) with a machine-readable code for anything a client or merchant can get wrong.
"""

import hashlib
import logging
import mimetypes
import uuid
from collections.abc import Iterable, Sequence
from contextlib import nullcontext
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import partial
from urllib.parse import quote

from django.conf import settings
from django.core import signing
from django.core.exceptions import ValidationError
from django.core.files import File
from django.core.mail import get_connection
from django.core.validators import URLValidator, validate_email
from django.db import IntegrityError, connection, transaction
from django.db.models import Exists, F, Max, OuterRef, ProtectedError, QuerySet, Value
from django.db.models.functions import Coalesce, Greatest
from django.urls import reverse
from django.utils import timezone

from accounts.models import User, normalize_email

from . import storage, webhooks
from .models import (
    Backfill,
    Download,
    DownloadEvent,
    DownloadGrant,
    DownloadVersion,
    Media,
    MediaUpload,
    Order,
    OrderLine,
    OrderNotification,
    Product,
    Variant,
    WebhookDelivery,
    WebhookEndpoint,
    media_upload_to,
)

FIRST_ORDER_NUMBER = 1001
# Expiry in days is added to dates; a century keeps every result a valid date, and no expiry
# may run past what every database and Python can represent.
MAX_EXPIRY_DAYS = 36500
LATEST_EXPIRY = datetime(9000, 1, 1, tzinfo=UTC)


class ServiceError(Exception):
    """A rule of the store was broken by the input; `status` is the HTTP status to answer."""

    status = 422

    def __init__(self, message: str, *, code: str, attribute: str | None = None, status=None):
        super().__init__(message)
        self.message = message
        self.code = code
        self.attribute = attribute
        if status is not None:
            self.status = status


class Conflict(ServiceError):
    """The request is valid but the current state forbids it (409)."""

    status = 409


def _check_expiry_days(days: int | None, *, attribute: str, minimum: int = 0) -> None:
    if days is not None and not minimum <= days <= MAX_EXPIRY_DAYS:
        raise ServiceError(
            f"{attribute} must be between {minimum} and {MAX_EXPIRY_DAYS}.",
            code="max_value" if days > MAX_EXPIRY_DAYS else "min_value",
            attribute=attribute,
        )


def _check_expires_at(expires_at: datetime | None) -> None:
    if expires_at is not None and expires_at >= LATEST_EXPIRY:
        raise ServiceError(
            "expires_at is too far in the future.", code="max_value", attribute="expires_at"
        )


# --- Media ------------------------------------------------------------------------------------


def media_create(
    *, file: File, filename: str | None = None, content_type: str | None = None
) -> Media:
    """Store an uploaded file and record its original name, size, type and SHA-256.

    The file is read in chunks (never whole into memory) to hash it, then streamed to storage.
    """
    original = (filename or getattr(file, "name", "") or "file").rsplit("/", 1)[-1][:255]
    size = getattr(file, "size", None)
    limit = settings.DOWNLOADS_MAX_UPLOAD_SIZE
    if size is not None and size > limit:
        raise ServiceError(
            f"The file is larger than the {limit} byte limit.", code="media.too_large", status=413
        )
    digest = hashlib.sha256()
    byte_size = 0
    for chunk in file.chunks():
        digest.update(chunk)
        byte_size += len(chunk)
    file.seek(0)
    guessed = mimetypes.guess_type(original)[0]
    media = Media(
        filename=original,
        content_type=(content_type or guessed or "application/octet-stream")[:255],
        byte_size=byte_size,
        sha256=digest.hexdigest(),
    )
    media.file.save(original, file, save=False)
    media.save()
    return media


# --- Products and downloads -------------------------------------------------------------------


def _delete_or_conflict(instance, *, code: str, noun: str) -> None:
    try:
        with transaction.atomic():
            instance.delete()
    except ProtectedError as exc:
        raise Conflict(
            f"This {noun} is used by orders and cannot be deleted; archive it instead.",
            code=code,
        ) from exc


def product_delete(*, product: Product) -> None:
    """Delete a product no order uses; otherwise refuse (409) and suggest archiving."""
    _delete_or_conflict(product, code="product.in_use", noun="product")


def product_set_archived(*, product: Product, archived: bool) -> Product:
    """Archive (hide from new sales) or unarchive a product; buyers keep their downloads."""
    if product.archived != archived:
        product.archived = archived
        product.archived_at = timezone.now() if archived else None
        product.save(update_fields=["archived", "archived_at", "updated_at"])
    return product


def download_set_archived(*, download: Download, archived: bool) -> Download:
    """Archive a download: new orders no longer receive it; existing grants keep working."""
    if download.archived != archived:
        download.archived = archived
        download.archived_at = timezone.now() if archived else None
        download.save(update_fields=["archived", "archived_at", "updated_at"])
    return download


def download_delete(*, download: Download) -> None:
    _delete_or_conflict(download, code="download.in_use", noun="download")


def media_delete(*, media: Media) -> None:
    """Delete a media row and its stored file, unless a download still uses it."""
    name = media.file.name
    storage = media.file.storage
    _delete_or_conflict(media, code="media.in_use", noun="file")
    if name:
        transaction.on_commit(lambda: storage.delete(name))


def download_validate(
    *,
    product: Product | None,
    variant: Variant | None,
    media: Media | None,
    url: str | None,
    name: str | None,
) -> None:
    """The rules of a Download that the database also enforces, as clear messages."""
    if (media is None) == (not url):
        raise ServiceError(
            "A download needs exactly one of media or url.",
            code="download.invalid",
            attribute="media" if media is None else "url",
        )
    if url and not (name or "").strip():
        raise ServiceError("A download with a url needs a name.", code="blank", attribute="name")
    if variant is not None and product is not None and variant.product_id != product.pk:
        raise ServiceError(
            "The variant belongs to another product.", code="invalid", attribute="variant"
        )


# --- Orders -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class LineInput:
    """One line to put on a new order."""

    product: Product
    variant: Variant | None = None
    quantity: int = 1


def _next_order_number() -> int:
    last = Order.objects.aggregate(last=Max("number"))["last"]
    return max(last or 0, FIRST_ORDER_NUMBER - 1) + 1


def order_create(
    *,
    email: str,
    lines: Sequence[LineInput],
    number: int | None = None,
    status: str = Order.Status.PENDING,
    placed_at: datetime | None = None,
    downloads: Iterable[Download] = (),
    send_email: bool = True,
) -> Order:
    """Create an order with its lines. A paid status pays it at once (grants, email)."""
    email = normalize_email(email)
    try:
        validate_email(email)
    except ValidationError as exc:
        raise ServiceError(
            "Enter a valid email address.", code="invalid", attribute="email"
        ) from exc
    if not lines:
        raise ServiceError("An order needs at least one line.", code="required", attribute="lines")
    if status not in (Order.Status.PENDING, Order.Status.PAID):
        raise ServiceError(
            "A new order is pending or paid.", code="invalid_choice", attribute="status"
        )
    for line in lines:
        if line.variant is not None and line.variant.product_id != line.product.pk:
            raise ServiceError(
                "The variant belongs to another product.", code="invalid", attribute="lines"
            )
        if line.quantity < 1:
            raise ServiceError("Quantity must be at least 1.", code="min_value", attribute="lines")
    if number is not None and Order.objects.filter(number=number).exists():
        raise Conflict(f"Order number {number} is taken.", code="order.number_taken")

    customer = User.objects.filter(email=email).first()
    with transaction.atomic():
        order = _order_insert(
            email=email, customer=customer, number=number, placed_at=placed_at or timezone.now()
        )
        OrderLine.objects.bulk_create(
            OrderLine(
                order=order,
                product=line.product,
                variant=line.variant,
                name=line.product.name,
                variant_name=line.variant.name if line.variant else "",
                sku=(line.variant.sku if line.variant and line.variant.sku else line.product.sku),
                price=line.variant.price if line.variant else 0,
                quantity=line.quantity,
                position=position,
            )
            for position, line in enumerate(lines)
        )
        downloads = list(downloads)
        if downloads:
            order.downloads.add(*downloads)
        if status == Order.Status.PAID:
            order_pay(order=order, send_email=send_email)
    return order


def _order_insert(*, email, customer, number, placed_at) -> Order:
    # Sequential numbers without a lock: take max + 1 and retry if another order won the race.
    for _attempt in range(20):
        candidate = number if number is not None else _next_order_number()
        try:
            with transaction.atomic():
                return Order.objects.create(
                    number=candidate, email=email, customer=customer, placed_at=placed_at
                )
        except IntegrityError as exc:
            if number is not None or not Order.objects.filter(number=candidate).exists():
                raise Conflict(
                    f"Order number {candidate} is taken.", code="order.number_taken"
                ) from exc
    raise Conflict("Could not allocate an order number; try again.", code="order.busy")


def _lock(order: Order) -> Order:
    return Order.objects.select_for_update().get(pk=order.pk)


def order_pay(*, order: Order, send_email: bool = True) -> Order:
    """Mark an order paid and issue its grants. Idempotent: paying twice issues nothing new."""
    with transaction.atomic():
        locked = _lock(order)
        if locked.status in (Order.Status.REFUNDED, Order.Status.CANCELLED):
            raise Conflict(f"A {locked.status} order cannot be paid.", code="order.invalid_state")
        newly_paid = locked.status != Order.Status.PAID
        if newly_paid:
            locked.status = Order.Status.PAID
            locked.paid_at = timezone.now()
            locked.save(update_fields=["status", "paid_at", "updated_at"])
        grants_issue(order=locked)
        if newly_paid:
            webhooks.emit("order.paid", partial(webhooks.order_data, locked))
        if newly_paid and send_email:
            order_id = locked.pk
            # Robust: a mail server that is down must not turn a committed payment into an
            # error for the caller; the failure is logged and the email can be resent.
            transaction.on_commit(lambda: order_send_email_by_id(order_id=order_id), robust=True)
    _refresh(order, locked)
    return order


def order_cancel(*, order: Order) -> Order:
    """Cancel an unpaid order."""
    with transaction.atomic():
        locked = _lock(order)
        if locked.status == Order.Status.CANCELLED:
            return order
        if locked.status != Order.Status.PENDING:
            raise Conflict(
                "Only a pending order can be cancelled; refund a paid one.",
                code="order.invalid_state",
            )
        locked.status = Order.Status.CANCELLED
        locked.save(update_fields=["status", "updated_at"])
    _refresh(order, locked)
    return order


def order_refund(*, order: Order, line_ids: Iterable | None = None) -> Order:
    """Refund the whole order (revoke every grant) or some lines (revoke only theirs).

    Refunding the last unrefunded line refunds the order, which also revokes the grants of
    files attached to the order itself.
    """
    now = timezone.now()
    with transaction.atomic():
        locked = _lock(order)
        if locked.status not in (Order.Status.PAID, Order.Status.REFUNDED):
            raise Conflict("Only a paid order can be refunded.", code="order.invalid_state")
        lines = locked.lines.all()
        if line_ids is not None:
            wanted = {str(line_id) for line_id in line_ids}
            if not wanted:
                raise ServiceError("Name at least one line.", code="required", attribute="line_ids")
            found = {str(pk) for pk in lines.filter(pk__in=wanted).values_list("pk", flat=True)}
            if missing := wanted - found:
                raise ServiceError(
                    f"Not lines of this order: {', '.join(sorted(missing))}.",
                    code="invalid",
                    attribute="line_ids",
                )
            lines = lines.filter(pk__in=wanted)
        refunded = lines.filter(refunded_at__isnull=True).update(refunded_at=now)
        DownloadGrant.objects.filter(
            order=locked, line__in=lines.values("pk"), revoked_at__isnull=True
        ).update(revoked_at=now, updated_at=now)
        if not locked.lines.filter(refunded_at__isnull=True).exists():
            locked.grants.filter(revoked_at__isnull=True).update(revoked_at=now, updated_at=now)
            if locked.status != Order.Status.REFUNDED:
                locked.status = Order.Status.REFUNDED
                locked.refunded_at = now
                locked.save(update_fields=["status", "refunded_at", "updated_at"])
        if refunded or locked.refunded_at == now:
            _emit_refunded(order=locked, at=now)
    _refresh(order, locked)
    return order


def order_attach_downloads(*, order: Order, downloads: Iterable[Download]) -> Order:
    """Attach downloads to one order; on a paid order the buyer gets them at once."""
    downloads = list(downloads)
    with transaction.atomic():
        locked = _lock(order)
        locked.downloads.add(*downloads)
        if locked.status == Order.Status.PAID:
            grants_issue(order=locked)
    return order


def order_detach_downloads(*, order: Order, downloads: Iterable[Download]) -> Order:
    """Detach downloads from an order and revoke the grants they gave (the log is kept)."""
    downloads = list(downloads)
    now = timezone.now()
    with transaction.atomic():
        locked = _lock(order)
        locked.downloads.remove(*downloads)
        locked.grants.filter(
            line__isnull=True, download__in=downloads, revoked_at__isnull=True
        ).update(revoked_at=now, updated_at=now)
        _emit_revoked(order=locked, at=now)
    return order


def order_send_email(*, order: Order, request=None) -> Order:
    """Send (again) a paid order's email, with the link to the buyer's order page."""
    from .emails import order_send_email as send

    if order.status != Order.Status.PAID:
        raise Conflict("Only a paid order's email can be sent.", code="order.invalid_state")
    return send(order=order, request=request)


def order_send_email_by_id(*, order_id) -> None:
    """Send the order email after commit (the order is re-read so the email shows the truth)."""
    from .emails import order_send_email

    order = Order.objects.filter(pk=order_id).first()
    if order is not None:
        order_send_email(order=order)


def _refresh(order: Order, locked: Order) -> None:
    if order is not locked:
        for field in ("status", "paid_at", "refunded_at", "updated_at"):
            setattr(order, field, getattr(locked, field))


# --- Grants -----------------------------------------------------------------------------------


def _store_limit(value: int | None) -> int | None:
    """A product's limit, or the store default; 0 means unlimited (None on the grant)."""
    limit = settings.DOWNLOADS_DEFAULT_LIMIT if value is None else value
    return limit or None


def _store_expiry(value: int | None, start: datetime) -> datetime | None:
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
                    download_limit=_store_limit(line.product.download_limit),
                    expires_at=_store_expiry(line.product.download_expiry_days, start),
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
                download_limit=_store_limit(product.download_limit if product else None),
                expires_at=_store_expiry(product.download_expiry_days if product else None, start),
            )
        )
    DownloadGrant.objects.bulk_create(new)
    webhooks.emit_grants("grant.created", new)
    return new


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
        raise ServiceError("The line belongs to another order.", code="invalid", attribute="line")
    _check_expires_at(expires_at)
    if download_limit is not None and download_limit < 1:
        raise ServiceError(
            "download_limit must be at least 1, or null for unlimited.",
            code="min_value",
            attribute="download_limit",
        )
    try:
        with transaction.atomic():
            return DownloadGrant.objects.create(
                order=order,
                line=line,
                download=download,
                download_limit=download_limit,
                expires_at=expires_at,
                download_count=download_count,
            )
    except IntegrityError as exc:
        raise Conflict(
            "This order already has a grant for this download.", code="grant.exists"
        ) from exc


_UNSET = object()


def grant_update(
    *,
    grant: DownloadGrant,
    download_count=_UNSET,
    download_limit=_UNSET,
    expires_at=_UNSET,
) -> DownloadGrant:
    """Change a grant's count, limit (None: unlimited) or expiry (None: never)."""
    fields = []
    if download_count is not _UNSET:
        if download_count is None or download_count < 0:
            raise ServiceError(
                "download_count cannot be negative.", code="min_value", attribute="download_count"
            )
        grant.download_count = download_count
        fields.append("download_count")
    if download_limit is not _UNSET:
        if download_limit is not None and download_limit < 1:
            raise ServiceError(
                "download_limit must be at least 1, or null for unlimited.",
                code="min_value",
                attribute="download_limit",
            )
        grant.download_limit = download_limit
        fields.append("download_limit")
    if expires_at is not _UNSET:
        _check_expires_at(expires_at)
        grant.expires_at = expires_at
        fields.append("expires_at")
    if fields:
        grant.save(update_fields=[*fields, "updated_at"])
    return grant


def grants_reset(*, grants: QuerySet) -> int:
    """Set the download count of these grants back to zero; return how many changed."""
    return grants.exclude(download_count=0).update(download_count=0, updated_at=timezone.now())


def grants_extend(*, grants: QuerySet, days: int | None = None, expires_at=_UNSET) -> int:
    """Extend expiry by `days` (from now if already expired) or set `expires_at`.

    Grants that never expire keep never expiring when extended by days.
    """
    now = timezone.now()
    if expires_at is not _UNSET:
        _check_expires_at(expires_at)
        return grants.update(expires_at=expires_at, updated_at=now)
    if days is None:
        raise ServiceError("Give days or expires_at.", code="required", attribute="days")
    _check_expiry_days(days, attribute="days", minimum=1)
    if grants.filter(expires_at__gt=LATEST_EXPIRY - timedelta(days=days)).exists():
        raise ServiceError(
            "That would extend a grant too far into the future.",
            code="max_value",
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


@dataclass(frozen=True)
class Consumption:
    """What `grant_consume` decided: served, or the reason it was refused."""

    outcome: str

    @property
    def allowed(self) -> bool:
        return self.outcome == DownloadEvent.Outcome.SERVED


CONSUMED_EVENTS = frozenset({"download.served", "grant.limit_reached"})

# PostgreSQL takes the count and logs the download in ONE statement, in autocommit: no
# BEGIN/COMMIT round trips, no second statement (see bench/). The WHERE clause is
# `DownloadGrant.available_q()` written out in SQL; tests check that both agree on every
# state of a grant. The row stays locked by the UPDATE until the statement commits, so
# the count it returns is the one this download left.
_CONSUME_SQL = """
WITH taken AS (
    UPDATE downloads_downloadgrant
    SET download_count = download_count + 1,
        last_downloaded_at = %(now)s,
        updated_at = %(now)s
    WHERE id = %(grant)s
      AND revoked_at IS NULL
      AND (expires_at IS NULL OR expires_at > %(now)s)
      AND (download_limit IS NULL OR download_count < download_limit)
    RETURNING id, download_count
), logged AS (
    INSERT INTO downloads_downloadevent (id, grant_id, at, ip, user_agent, outcome)
    SELECT %(event)s, id, %(now)s, %(ip)s::inet, %(user_agent)s::text, %(outcome)s::text
    FROM taken
)
SELECT download_count FROM taken
"""


def grant_consume(
    *, grant: DownloadGrant, ip: str | None = None, user_agent: str = ""
) -> Consumption:
    """Take one download from a grant, if the database agrees, and log the attempt.

    The count moves in ONE conditional UPDATE whose WHERE clause holds the whole rule (not
    revoked, not expired, under the limit), so concurrent requests can never overshoot the
    limit. When no row changed, the reason comes from the loaded row (a row that looked
    available lost a race to the limit), without reading it again. On PostgreSQL the UPDATE
    and the event's INSERT are one statement; elsewhere they share a transaction.
    `download.served` and `grant.limit_reached` join that transaction when an endpoint wants
    them. Deliver nothing until this has answered: a served download is committed.
    """
    now = timezone.now()
    user_agent = _stored_user_agent(user_agent)
    subscribed = CONSUMED_EVENTS & webhooks.subscribed_types()
    one_statement = connection.vendor == "postgresql"
    # A single statement is atomic by itself; anything more needs a transaction around it.
    atomic = (
        transaction.atomic(savepoint=False) if subscribed or not one_statement else nullcontext()
    )
    with atomic:
        if one_statement:
            with connection.cursor() as cursor:
                cursor.execute(
                    _CONSUME_SQL,
                    {
                        "grant": grant.pk,
                        "now": now,
                        "event": uuid.uuid4(),
                        "ip": ip or None,
                        "user_agent": user_agent,
                        "outcome": DownloadEvent.Outcome.SERVED.value,
                    },
                )
                row = cursor.fetchone()
            count = row[0] if row else None
        else:
            count = _consume_in_transaction(
                grant=grant, now=now, exact="grant.limit_reached" in subscribed
            )
            if count is not None:
                event_log(
                    grant=grant,
                    outcome=DownloadEvent.Outcome.SERVED,
                    ip=ip,
                    user_agent=user_agent,
                    at=now,
                )
        if count is None:
            outcome = grant.refusal(now) or DownloadEvent.Outcome.LIMIT_REACHED
            event_log(grant=grant, outcome=outcome, ip=ip, user_agent=user_agent, at=now)
            return Consumption(outcome=outcome)
        grant.download_count = count
        grant.last_downloaded_at = now
        if subscribed:
            _emit_consumed(grant=grant, at=now, ip=ip, user_agent=user_agent, subscribed=subscribed)
    return Consumption(outcome=DownloadEvent.Outcome.SERVED)


def _consume_in_transaction(*, grant: DownloadGrant, now, exact: bool) -> int | None:
    """The count taken by the ORM's conditional UPDATE (None: refused). The count left is
    read back only when it must be `exact`: the UPDATE locked the row for our transaction."""
    taken = DownloadGrant.objects.filter(DownloadGrant.available_q(now), pk=grant.pk).update(
        download_count=F("download_count") + 1, last_downloaded_at=now, updated_at=now
    )
    if not taken:
        return None
    if exact:
        return DownloadGrant.objects.values_list("download_count", flat=True).get(pk=grant.pk)
    return grant.download_count + 1


def _stored_user_agent(user_agent: str | None) -> str:
    # NUL cannot be stored in a PostgreSQL text column; clients can send it.
    return (user_agent or "").replace("\x00", "")[:512]


def event_log(
    *, grant: DownloadGrant, outcome: str, ip: str | None = None, user_agent: str = "", at=None
) -> DownloadEvent:
    """Record one download attempt."""
    return DownloadEvent.objects.create(
        grant=grant,
        outcome=outcome,
        ip=ip or None,
        user_agent=_stored_user_agent(user_agent),
        at=at or timezone.now(),
    )


# --- Versions / Backfill / Webhooks -----------------------------------------------------------
# Files that change or are added after the sale, the emails that tell buyers, and the
# webhook events the services above emit (in their own transactions).


logger = logging.getLogger(__name__)

BACKFILL_BATCH_SIZE = 500
NOTIFICATION_CHUNK = 100
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
    a background run emails every order holding the file, once (`download_backfill_run`).
    Emits `download.version_created`.
    """
    if media is None:
        raise ServiceError("Choose the new file.", code="required", attribute="media")
    changelog = (changelog or "").strip()
    if len(changelog) > CHANGELOG_MAX_LENGTH:
        raise ServiceError(
            f"The changelog is at most {CHANGELOG_MAX_LENGTH} characters.",
            code="max_length",
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
        if notify_buyers:
            _backfill_create(download=locked, version=version, notify_buyers=True)
    for field in ("media", "url", "file_updated_at", "updated_at"):
        setattr(download, field, getattr(locked, field))
    return version


def _backfill_create(
    *, download: Download, version: DownloadVersion | None = None, notify_buyers: bool = False
) -> Backfill:
    from .tasks import backfill_run, enqueue_in_transaction

    backfill = Backfill.objects.create(
        download=download, version=version, notify_buyers=notify_buyers
    )
    enqueue_in_transaction(backfill_run, str(backfill.pk))
    return backfill


def download_deliver_to_existing_orders(
    *, download: Download, notify_buyers: bool = False
) -> Backfill:
    """Give a product's file to every paid, unrefunded order of it, in the background.

    Sets `deliver_to_existing_orders` and starts a backfill in the same transaction (or
    returns the one already pending or running). New orders need none of this: paying an
    order issues every file of its products.
    """
    if download.product_id is None:
        raise ServiceError(
            "Only a file placed on a product can go to the product's existing orders; "
            "attach it to single orders instead.",
            code="download.no_product",
            attribute="product",
        )
    if download.archived:
        raise Conflict(
            "An archived file is not delivered; unarchive it first.", code="download.archived"
        )
    with transaction.atomic():
        locked = Download.objects.select_for_update().get(pk=download.pk)
        if not locked.deliver_to_existing_orders:
            # update(), not save(): the post_save hook that calls this must not fire again.
            Download.objects.filter(pk=locked.pk).update(
                deliver_to_existing_orders=True, updated_at=timezone.now()
            )
        backfill = locked.backfills.filter(
            version__isnull=True, status__in=[Backfill.Status.PENDING, Backfill.Status.RUNNING]
        ).first()
        if backfill is None:
            backfill = _backfill_create(download=locked, notify_buyers=notify_buyers)
    download.deliver_to_existing_orders = True
    return backfill


def backfill_resume(*, backfill: Backfill) -> Backfill:
    """Queue a stopped backfill (failed, or left running by a crashed worker) again."""
    from .tasks import backfill_run, enqueue_in_transaction

    if backfill.status == Backfill.Status.DONE:
        raise Conflict("This backfill is finished.", code="backfill.done")
    with transaction.atomic():
        enqueue_in_transaction(backfill_run, str(backfill.pk))
    return backfill


def download_backfill_run(*, backfill: Backfill, batch_size: int | None = None) -> Backfill:
    """Run a backfill to the end, or resume one that stopped (crash, failure, restart).

    For a new file (no `version`): each paid order with an unrefunded line of the file's
    product (and variant) gets one grant per such line that lacks one. For a new version:
    each paid order holding an unrevoked grant of the file is queued one email. Orders are
    walked by keyset on their number from `cursor`; each batch is one short transaction that
    locks its orders, writes the grants, the notifications and the webhook events, and moves
    `cursor` and the counters together, so a crash loses at most the batch in flight and a
    rerun repeats nothing. Memory is one batch. Emails go out after each batch commits (see
    `_backfill_send_emails`). Returns the backfill, refreshed.
    """
    if batch_size is None:
        batch_size = getattr(settings, "DOWNLOADS_BACKFILL_BATCH_SIZE", BACKFILL_BATCH_SIZE)
    if batch_size < 1:
        raise ServiceError("batch_size must be at least 1.", code="min_value")
    now = timezone.now()
    claimed = (
        Backfill.objects.filter(pk=backfill.pk)
        .exclude(status=Backfill.Status.DONE)
        .update(
            status=Backfill.Status.RUNNING,
            error="",
            started_at=Coalesce(F("started_at"), Value(now)),
            finished_at=None,
        )
    )
    backfill.refresh_from_db()
    if not claimed:
        return backfill
    download = Download.objects.select_related("product").get(pk=backfill.download_id)
    version = backfill.version
    try:
        failures = _backfill_send_emails(backfill=backfill, download=download, version=version)
        done = False
        while not done:
            with transaction.atomic():
                done = _backfill_batch(
                    backfill=backfill, download=download, version=version, batch_size=batch_size
                )
            failures += _backfill_send_emails(backfill=backfill, download=download, version=version)
    except Exception as exc:
        Backfill.objects.filter(pk=backfill.pk).update(
            status=Backfill.Status.FAILED, error=f"{exc.__class__.__name__}: {exc}"[:2000]
        )
        backfill.refresh_from_db()
        raise
    if failures:
        Backfill.objects.filter(pk=backfill.pk).update(
            status=Backfill.Status.FAILED,
            error=f"{failures} email(s) could not be sent; resume to try them again.",
        )
    else:
        Backfill.objects.filter(pk=backfill.pk).update(
            status=Backfill.Status.DONE, finished_at=timezone.now()
        )
    backfill.refresh_from_db()
    return backfill


def _backfill_batch(
    *, backfill: Backfill, download: Download, version: DownloadVersion | None, batch_size: int
) -> bool:
    """One batch, inside the caller's transaction; True when it was the last one."""
    if version is None:
        holds = OrderLine.objects.filter(
            order=OuterRef("pk"), product_id=download.product_id, refunded_at__isnull=True
        )
        if download.variant_id is not None:
            holds = holds.filter(variant_id=download.variant_id)
    else:
        holds = DownloadGrant.objects.filter(
            order=OuterRef("pk"), download_id=download.pk, revoked_at__isnull=True
        )
    # Locking the batch's orders serialises with order_pay/order_refund, which lock the order.
    batch = list(
        Order.objects.filter(Exists(holds), status=Order.Status.PAID, number__gt=backfill.cursor)
        .order_by("number")
        .select_for_update()
        .values_list("pk", "number")[:batch_size]
    )
    order_ids = [pk for pk, _number in batch]
    new: list[DownloadGrant] = []
    if version is None:
        kind, subject_id = OrderNotification.Kind.NEW_FILE, download.pk
        if order_ids:
            lines = OrderLine.objects.filter(
                order_id__in=order_ids, product_id=download.product_id, refunded_at__isnull=True
            )
            if download.variant_id is not None:
                lines = lines.filter(variant_id=download.variant_id)
            have = set(
                DownloadGrant.objects.filter(
                    download_id=download.pk, order_id__in=order_ids
                ).values_list("line_id", flat=True)
            )
            product = download.product
            limit = _store_limit(product.download_limit)
            # A file that arrives later runs its expiry from now, not from the payment.
            expires_at = _store_expiry(product.download_expiry_days, timezone.now())
            new = [
                DownloadGrant(
                    order_id=order_id,
                    line_id=line_id,
                    download_id=download.pk,
                    download_limit=limit,
                    expires_at=expires_at,
                )
                for line_id, order_id in lines.values_list("pk", "order_id")
                if line_id not in have
            ]
            DownloadGrant.objects.bulk_create(new)
            webhooks.emit_grants("grant.created", new)
        notify = {grant.order_id for grant in new}
    else:
        kind, subject_id = OrderNotification.Kind.NEW_VERSION, version.pk
        notify = set(order_ids)
    if backfill.notify_buyers and notify:
        OrderNotification.objects.bulk_create(
            [
                OrderNotification(order_id=order_id, kind=kind, subject_id=subject_id)
                for order_id in notify
            ],
            ignore_conflicts=True,
        )
    if batch:
        backfill.cursor = batch[-1][1]
        backfill.orders_seen += len(batch)
        backfill.grants_created += len(new)
        Backfill.objects.filter(pk=backfill.pk).update(
            cursor=backfill.cursor,
            orders_seen=F("orders_seen") + len(batch),
            grants_created=F("grants_created") + len(new),
        )
    return len(batch) < batch_size


def _backfill_send_emails(
    *, backfill: Backfill, download: Download, version: DownloadVersion | None
) -> int:
    """Send the backfill's unsent notifications; return how many could not be sent.

    Each row is claimed (sent_at set where it was empty) before its email goes out, so two
    workers, or a rerun after a crash, never send one twice; an email that fails to send is
    unclaimed for the next run. A crash between claim and send loses that one email rather
    than risk sending it twice.
    """
    from .notifications import notification_message

    if not backfill.notify_buyers:
        return 0
    if version is None:
        kind, subject_id = OrderNotification.Kind.NEW_FILE, download.pk
    else:
        kind, subject_id = OrderNotification.Kind.NEW_VERSION, version.pk
    failures = 0
    after = 0
    while True:
        chunk = list(
            OrderNotification.objects.filter(
                kind=kind, subject_id=subject_id, sent_at__isnull=True, order__number__gt=after
            )
            .select_related("order")
            .order_by("order__number")[:NOTIFICATION_CHUNK]
        )
        if not chunk:
            return failures
        after = chunk[-1].order.number
        sent = 0
        connection = get_connection()  # one SMTP session per chunk
        with connection:
            for notification in chunk:
                mine = OrderNotification.objects.filter(
                    pk=notification.pk, sent_at__isnull=True
                ).update(sent_at=timezone.now())
                if not mine:
                    continue
                try:
                    notification_message(
                        order=notification.order,
                        kind=kind,
                        download=download,
                        version=version,
                        connection=connection,
                    ).send()
                except Exception:
                    logger.exception("Could not email order #%s", notification.order.number)
                    OrderNotification.objects.filter(pk=notification.pk).update(sent_at=None)
                    failures += 1
                else:
                    sent += 1
        if sent:
            backfill.emails_sent += sent
            Backfill.objects.filter(pk=backfill.pk).update(emails_sent=F("emails_sent") + sent)


# Webhook events emitted by the services above.


def _emit_consumed(*, grant: DownloadGrant, at, ip, user_agent, subscribed) -> None:
    """`download.served` and `grant.limit_reached` for a served download, in its transaction.

    `grant.download_count` is the count this download left, read while the UPDATE held the
    row: only the download that takes the last one sees count == limit, so
    `grant.limit_reached` is sent once.
    """
    if "download.served" in subscribed:
        webhooks.emit(
            "download.served",
            partial(webhooks.served_data, grant, at=at, ip=ip, user_agent=user_agent),
        )
    if "grant.limit_reached" in subscribed and grant.download_count == grant.download_limit:
        webhooks.emit_grants("grant.limit_reached", [grant])


def _emit_revoked(*, order: Order, at) -> None:
    """`grant.revoked` for the order's grants revoked at `at` (this change)."""
    webhooks.emit_grants("grant.revoked", order.grants.filter(revoked_at=at))


def _emit_refunded(*, order: Order, at) -> None:
    """`order.refunded` (with the lines refunded now) and the `grant.revoked` it caused."""
    line_ids = [str(pk) for pk in order.lines.filter(refunded_at=at).values_list("pk", flat=True)]
    data = {**webhooks.order_data(order), "refunded_line_ids": line_ids}
    webhooks.emit("order.refunded", data)
    _emit_revoked(order=order, at=at)


# Webhook endpoints (admin and API).


def _webhook_validate(*, url=_UNSET, event_types=_UNSET) -> dict:
    clean = {}
    if url is not _UNSET:
        url = (url or "").strip()
        try:
            URLValidator(schemes=["http", "https"])(url)
        except ValidationError as exc:
            raise ServiceError(
                "Enter a valid http or https URL.", code="invalid", attribute="url"
            ) from exc
        if len(url) > 2048:
            raise ServiceError("The URL is too long.", code="max_length", attribute="url")
        clean["url"] = url
    if event_types is not _UNSET:
        if event_types is None:
            event_types = []
        if isinstance(event_types, str) or not all(isinstance(t, str) for t in event_types):
            raise ServiceError(
                "event_types is a list of event type names.",
                code="invalid",
                attribute="event_types",
            )
        unknown = sorted(set(event_types) - set(webhooks.EVENT_TYPES))
        if unknown:
            raise ServiceError(
                f"Unknown event types: {', '.join(unknown)}. Known: "
                f"{', '.join(webhooks.EVENT_TYPES)}.",
                code="invalid_choice",
                attribute="event_types",
            )
        clean["event_types"] = list(dict.fromkeys(event_types))
    return clean


def webhook_endpoint_create(
    *, url: str, event_types=(), description: str = "", is_active: bool = True
) -> WebhookEndpoint:
    """Register a receiver; it gets a fresh 256-bit signing secret. No event types: all."""
    clean = _webhook_validate(url=url, event_types=event_types)
    return WebhookEndpoint.objects.create(
        description=(description or "")[:255], is_active=is_active, **clean
    )


def webhook_endpoint_update(
    *,
    endpoint: WebhookEndpoint,
    url=_UNSET,
    event_types=_UNSET,
    description=_UNSET,
    is_active=_UNSET,
) -> WebhookEndpoint:
    """Change an endpoint's URL, event types, description or active flag."""
    clean = _webhook_validate(url=url, event_types=event_types)
    if description is not _UNSET:
        clean["description"] = (description or "")[:255]
    if is_active is not _UNSET:
        clean["is_active"] = bool(is_active)
    _save_fields(endpoint, clean)
    return endpoint


def _save_fields(obj, fields: dict) -> None:
    """Set the already-checked `fields` on `obj` and save just them (and updated_at)."""
    for field, value in fields.items():
        setattr(obj, field, value)
    if fields:
        obj.save(update_fields=[*fields, "updated_at"])


def webhook_endpoint_rotate_secret(*, endpoint: WebhookEndpoint) -> WebhookEndpoint:
    """Give the endpoint a new signing secret; pending retries are signed with it."""
    from .models import new_grant_token

    endpoint.secret = new_grant_token()
    endpoint.save(update_fields=["secret", "updated_at"])
    return endpoint


def webhook_endpoint_delete(*, endpoint: WebhookEndpoint) -> None:
    """Delete an endpoint and its delivery log."""
    endpoint.delete()


def webhook_delivery_retry(*, delivery: WebhookDelivery) -> WebhookDelivery:
    """Queue one more attempt now (a failed delivery gets one try; a pending one is hurried)."""
    if delivery.status == WebhookDelivery.Status.DELIVERED:
        raise Conflict("This delivery already succeeded.", code="webhook_delivery.delivered")
    now = timezone.now()
    with transaction.atomic():
        WebhookDelivery.objects.filter(pk=delivery.pk).update(
            status=WebhookDelivery.Status.PENDING, next_attempt_at=now
        )
        webhooks.enqueue_delivery(delivery_id=delivery.pk)
    delivery.status, delivery.next_attempt_at = WebhookDelivery.Status.PENDING, now
    return delivery


# --- Catalogue, downloads, grants and direct uploads (the merchant API and the admin) ---------


PRODUCT_FIELDS = frozenset(
    {
        "name",
        "sku",
        "vendor",
        "tags",
        "description",
        "external_id",
        "download_limit",
        "download_expiry_days",
    }
)
VARIANT_FIELDS = frozenset({"name", "sku", "external_id", "price", "position"})
DOWNLOAD_FIELDS = frozenset(
    {"media", "url", "name", "title", "alt", "product", "variant", "position"}
)


def _required_text(value, *, attribute: str, noun: str) -> str:
    value = (value or "").strip()
    if not value:
        raise ServiceError(f"A {noun} needs a {attribute}.", code="blank", attribute=attribute)
    return value


def _clean_tags(tags) -> list[str]:
    return list(dict.fromkeys(tag.strip() for tag in tags or () if tag and tag.strip()))


def product_create(
    *,
    name: str,
    sku: str = "",
    vendor: str = "",
    tags: Iterable[str] = (),
    description: str = "",
    external_id: int | None = None,
    download_limit: int | None = None,
    download_expiry_days: int | None = None,
    archived: bool = False,
) -> Product:
    """Create a product. Limits left None fall back to the store defaults when orders pay."""
    _check_expiry_days(download_expiry_days, attribute="download_expiry_days")
    now = timezone.now()
    return Product.objects.create(
        name=_required_text(name, attribute="name", noun="product"),
        sku=sku or "",
        vendor=vendor or "",
        tags=_clean_tags(tags),
        description=description or "",
        external_id=external_id,
        download_limit=download_limit,
        download_expiry_days=download_expiry_days,
        archived=archived,
        archived_at=now if archived else None,
    )


def product_update(*, product: Product, archived=_UNSET, **fields) -> Product:
    """Change a product's fields (see PRODUCT_FIELDS); `archived` goes through
    `product_set_archived`. Existing grants keep the limits they were issued with."""
    if unknown := set(fields) - PRODUCT_FIELDS:
        raise TypeError(f"Unknown product fields: {', '.join(sorted(unknown))}")
    if "name" in fields:
        fields["name"] = _required_text(fields["name"], attribute="name", noun="product")
    if "tags" in fields:
        fields["tags"] = _clean_tags(fields["tags"])
    if "download_expiry_days" in fields:
        _check_expiry_days(fields["download_expiry_days"], attribute="download_expiry_days")
    for field in ("sku", "vendor", "description"):
        if field in fields and fields[field] is None:
            fields[field] = ""
    _save_fields(product, fields)
    if archived is not _UNSET:
        product_set_archived(product=product, archived=archived)
    return product


def variant_create(
    *,
    product: Product,
    name: str,
    sku: str = "",
    external_id: int | None = None,
    price: int = 0,
    position: int | None = None,
) -> Variant:
    """Add a variant to a product, by default after its last one."""
    if position is None:
        last = product.variants.aggregate(last=Max("position"))["last"]
        position = 0 if last is None else last + 1
    return Variant.objects.create(
        product=product,
        name=_required_text(name, attribute="name", noun="variant"),
        sku=sku or "",
        external_id=external_id,
        price=price or 0,
        position=position,
    )


def variant_update(*, variant: Variant, **fields) -> Variant:
    """Change a variant's fields (see VARIANT_FIELDS); it stays on its product."""
    if unknown := set(fields) - VARIANT_FIELDS:
        raise TypeError(f"Unknown variant fields: {', '.join(sorted(unknown))}")
    if "name" in fields:
        fields["name"] = _required_text(fields["name"], attribute="name", noun="variant")
    if "sku" in fields and fields["sku"] is None:
        fields["sku"] = ""
    _save_fields(variant, fields)
    return variant


def variant_delete(*, variant: Variant) -> None:
    """Delete a variant no order line uses (its downloads go with it, unless granted)."""
    _delete_or_conflict(variant, code="variant.in_use", noun="variant")


def _next_download_position(product: Product | None) -> int:
    if product is None:
        return 0
    last = product.downloads.aggregate(last=Max("position"))["last"]
    return 0 if last is None else last + 1


def download_create(
    *,
    media: Media | None = None,
    url: str | None = None,
    name: str | None = None,
    title: str | None = None,
    alt: str | None = None,
    product: Product | None = None,
    variant: Variant | None = None,
    position: int | None = None,
    archived: bool = False,
    deliver_to_existing_orders: bool = False,
) -> Download:
    """Create a download (SureCart's): exactly one of `media` or `url` (which needs a
    `name`), on a product, one of its variants (the product follows), or on neither, to be
    attached to single orders. `deliver_to_existing_orders` also gives it to the product's
    paid orders, in the background."""
    url = url or None
    name = (name or "").strip() or None
    if variant is not None and product is None:
        product = variant.product
    download_validate(product=product, variant=variant, media=media, url=url, name=name)
    now = timezone.now()
    with transaction.atomic():
        download = Download.objects.create(
            media=media,
            url=url,
            name=name,
            title=title or None,
            alt=alt or None,
            product=product,
            variant=variant,
            position=_next_download_position(product) if position is None else position,
            archived=archived,
            archived_at=now if archived else None,
        )
        if deliver_to_existing_orders:
            download_deliver_to_existing_orders(download=download)
    return download


def download_update(
    *,
    download: Download,
    archived=_UNSET,
    deliver_to_existing_orders=_UNSET,
    created_by=None,
    **fields,
) -> Download:
    """Change a download's fields (see DOWNLOAD_FIELDS).

    Turning `deliver_to_existing_orders` on gives the file to the product's paid orders in
    the background (`download_deliver_to_existing_orders`); turning it off stops nothing
    already delivered.

    Giving `url` alone switches a file download to a link and `media` alone the other way.
    A new media file goes through `download_replace_media`, so the old file is kept as a
    version; `archived` goes through `download_set_archived`."""
    if unknown := set(fields) - DOWNLOAD_FIELDS:
        raise TypeError(f"Unknown download fields: {', '.join(sorted(unknown))}")
    if "url" in fields:
        fields["url"] = fields["url"] or None
    if "name" in fields:
        fields["name"] = (fields["name"] or "").strip() or None
    if fields.get("url") and "media" not in fields:
        fields["media"] = None
    if fields.get("media") is not None and "url" not in fields:
        fields["url"] = None
    new_media = fields.pop("media", download.media if download.media_id else None)
    state = {
        field: fields.get(field, getattr(download, field))
        for field in ("url", "name", "product", "variant")
    }
    if fields.get("variant") is not None and "product" not in fields:
        state["product"] = fields["product"] = fields["variant"].product
    download_validate(
        product=state["product"],
        variant=state["variant"],
        media=new_media,
        url=state["url"],
        name=state["name"],
    )
    replace = new_media is not None and new_media.pk != download.media_id
    with transaction.atomic():
        if new_media is None and download.media_id is not None:
            fields["media"] = None
        for field, value in fields.items():
            setattr(download, field, value or None if field in ("title", "alt") else value)
        if fields:
            if replace and download.media_id is None:
                # A link becoming a file: the constraint wants the media in the same save.
                download.media, download.url = new_media, None
                fields.update(media=new_media, url=None)
                replace = False
            download.save(update_fields=[*fields, "updated_at"])
        if replace:
            download_replace_media(download=download, media=new_media, created_by=created_by)
        if archived is not _UNSET:
            download_set_archived(download=download, archived=archived)
        if deliver_to_existing_orders is True:
            download_deliver_to_existing_orders(download=download)
        elif deliver_to_existing_orders is False and download.deliver_to_existing_orders:
            Download.objects.filter(pk=download.pk).update(
                deliver_to_existing_orders=False, updated_at=timezone.now()
            )
            download.deliver_to_existing_orders = False
    return download


def grant_delete(*, grant: DownloadGrant) -> None:
    """Delete a grant that was never used; one with download events is kept for the log
    (409): revoke it instead."""
    try:
        with transaction.atomic():
            grant.delete()
    except ProtectedError as exc:
        raise Conflict(
            "This grant has download events, which are kept for support and disputes; "
            "revoke it instead.",
            code="grant.in_use",
        ) from exc


def grant_extend(
    *, grant: DownloadGrant, days: int | None = None, expires_at=_UNSET
) -> DownloadGrant:
    """Extend one grant by `days` (from now when already expired; never-expiring grants
    stay so) or set `expires_at` (None: never); the rules are those of `grants_extend`."""
    grants_extend(
        grants=DownloadGrant.objects.filter(pk=grant.pk), days=days, expires_at=expires_at
    )
    grant.refresh_from_db(fields=["expires_at", "updated_at"])
    return grant


# Direct uploads ------------------------------------------------------------------------------

MEDIA_UPLOAD_SALT = "downloads.media_upload"


def _upload_signer() -> signing.TimestampSigner:
    # HMAC-SHA256 under SECRET_KEY: the token cannot be forged, and it names its upload.
    return signing.TimestampSigner(salt=MEDIA_UPLOAD_SALT, algorithm="sha256")


def _too_large(size: int, attribute: str | None = None) -> ServiceError:
    limit = settings.DOWNLOADS_MAX_UPLOAD_SIZE
    return ServiceError(
        f"{size} bytes is larger than the {limit} byte limit.",
        code="media.too_large",
        attribute=attribute,
        status=413,
    )


def media_upload_start(
    *, filename: str, byte_size: int, content_type: str | None = None, site_url: str
) -> tuple[MediaUpload, dict]:
    """Open a direct upload of `byte_size` bytes; return it and how to send the bytes:
    {upload_url, method, fields, headers} (see `storage.direct_upload_instructions`).

    `site_url` is the absolute base of the app's own upload endpoint (local storage)."""
    if byte_size < 0:
        raise ServiceError("byte_size cannot be negative.", code="min_value", attribute="byte_size")
    if byte_size > settings.DOWNLOADS_MAX_UPLOAD_SIZE:
        raise _too_large(byte_size, "byte_size")
    original = _required_text(
        (filename or "").replace("\\", "/").rsplit("/", 1)[-1], attribute="filename", noun="file"
    )[:255]
    content_type = (
        content_type or mimetypes.guess_type(original)[0] or "application/octet-stream"
    )[:255]
    ttl = settings.DOWNLOADS_UPLOAD_URL_TTL
    upload = MediaUpload.objects.create(
        key=media_upload_to(None, original),
        filename=original,
        content_type=content_type,
        byte_size=byte_size,
        expires_at=timezone.now() + timedelta(seconds=ttl),
    )
    token = _upload_signer().sign(str(upload.pk))
    local_url = (
        site_url
        + reverse("api:media-upload-content", args=[upload.pk])
        + "?token="
        + quote(token, safe="")
    )
    instructions = storage.direct_upload_instructions(
        key=upload.key,
        byte_size=byte_size,
        content_type=content_type,
        expires_in=ttl,
        local_url=local_url,
    )
    return upload, instructions


def media_upload_receive(*, upload_id, token: str, stream, content_length: int) -> MediaUpload:
    """Local storage: take the bytes of a direct upload (the signed URL's PUT), streamed in
    chunks to its key. The token must be valid, unexpired and for this upload; the body must
    be exactly the announced size; an upload is received once."""
    if storage.is_s3():
        raise ServiceError("Uploads go straight to S3.", code="media_upload.not_local", status=404)
    try:
        signed_id = _upload_signer().unsign(token or "", max_age=settings.DOWNLOADS_UPLOAD_URL_TTL)
    except signing.SignatureExpired as exc:
        raise ServiceError(
            "This upload URL has expired.", code="media_upload.expired", status=403
        ) from exc
    except signing.BadSignature as exc:
        raise ServiceError(
            "Invalid upload token.", code="media_upload.forbidden", status=403
        ) from exc
    if signed_id != str(upload_id):
        raise ServiceError("Invalid upload token.", code="media_upload.forbidden", status=403)
    upload = MediaUpload.objects.filter(pk=signed_id).first()
    if upload is None:
        raise ServiceError("No such upload.", code="media_upload.not_found", status=404)
    if upload.completed_at is not None or storage.stored_size(upload.key) is not None:
        raise Conflict("This upload was already received.", code="media_upload.received")
    if content_length < 0:
        raise ServiceError(
            "Send a Content-Length.", code="media_upload.length_required", status=411
        )
    if content_length > upload.byte_size:
        raise _too_large(content_length)
    if content_length != upload.byte_size:
        raise ServiceError(
            f"Send exactly {upload.byte_size} bytes, as announced.",
            code="media_upload.size_mismatch",
        )
    try:
        storage.receive_upload(key=upload.key, stream=stream, byte_size=upload.byte_size)
    except FileExistsError as exc:
        raise Conflict("This upload was already received.", code="media_upload.received") from exc
    except EOFError as exc:
        raise ServiceError(
            "The body ended before the announced size.", code="media_upload.incomplete", status=400
        ) from exc
    return upload


def media_upload_complete(*, upload: MediaUpload) -> Media:
    """Finish a direct upload: the object must exist with the announced size; it is hashed
    by streaming it (outside any lock: it can be gigabytes) and becomes a Media. Completing
    twice returns the same media."""
    if upload.media_id is not None:
        return upload.media
    if upload.completed_at is not None:
        raise Conflict("This upload's media was deleted.", code="media_upload.completed")
    size = storage.stored_size(upload.key)
    if size is None:
        raise Conflict(
            "Nothing was uploaded yet: send the file to upload_url first.",
            code="media_upload.missing",
        )
    if size != upload.byte_size:
        storage.delete_stored(upload.key)
        raise ServiceError(
            f"{size} bytes arrived, {upload.byte_size} were announced; start a new upload.",
            code="media_upload.size_mismatch",
        )
    sha256 = storage.stored_sha256(upload.key)
    with transaction.atomic():
        locked = MediaUpload.objects.select_for_update().get(pk=upload.pk)
        if locked.media_id is not None:
            return locked.media
        media = Media(
            filename=locked.filename,
            content_type=locked.content_type,
            byte_size=size,
            sha256=sha256,
        )
        media.file.name = locked.key
        media.save()
        locked.media, locked.completed_at = media, timezone.now()
        locked.save(update_fields=["media", "completed_at"])
    upload.media, upload.completed_at = media, locked.completed_at
    return media
