"""Backfills: files added or changed after the sale, delivered to existing orders.

Rules owned here: a new file on a product goes to every paid order with an unrefunded line
of it (and of its variant), one grant per such line, expiry running from now; a new version's
email goes to every paid order holding an unrevoked grant of the file, once per order
(OrderNotification); orders are walked in batches by number, each batch one transaction that
moves the cursor, so a crash loses at most the batch in flight and a rerun repeats nothing.
"""

import logging

from django.conf import settings
from django.core.mail import get_connection
from django.db import transaction
from django.db.models import Exists, F, OuterRef, Value
from django.db.models.functions import Coalesce
from django.utils import timezone

from .. import tasks
from ..emails import notification_message
from ..errors import ServiceError
from ..models import (
    Backfill,
    Download,
    DownloadGrant,
    DownloadVersion,
    Order,
    OrderLine,
    OrderNotification,
)
from . import webhooks
from .common import enqueue_in_transaction
from .grants import default_expiry, default_limit
from .stamping import stamped_copies_request

logger = logging.getLogger(__name__)


NOTIFICATION_CHUNK = 100


def backfill_start(
    *, download: Download, version: DownloadVersion | None = None, notify_buyers: bool = False
) -> Backfill:
    backfill = Backfill.objects.create(
        download=download, version=version, notify_buyers=notify_buyers
    )
    enqueue_in_transaction(tasks.backfill_run, str(backfill.pk))
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
        raise ServiceError(
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
            backfill = backfill_start(download=locked, notify_buyers=notify_buyers)
    download.deliver_to_existing_orders = True
    return backfill


def backfill_resume(*, backfill: Backfill) -> Backfill:
    """Queue a stopped backfill (failed, or left running by a crashed worker) again."""
    if backfill.status == Backfill.Status.DONE:
        raise ServiceError("This backfill is finished.", code="backfill.done")
    with transaction.atomic():
        enqueue_in_transaction(tasks.backfill_run, str(backfill.pk))
    return backfill


def backfill_run(*, backfill: Backfill, batch_size: int | None = None) -> Backfill:
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
        batch_size = settings.DOWNLOADS_BACKFILL_BATCH_SIZE
    if batch_size < 1:
        raise ServiceError(
            "batch_size must be at least 1.", code="backfill.invalid", reason="min_value"
        )
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
            limit = default_limit(product.download_limit)
            # A file that arrives later runs its expiry from now, not from the payment.
            expires_at = default_expiry(product.download_expiry_days, timezone.now())
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
            stamped_copies_request(grants=new)
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
