"""Orders: create, pay, cancel, refund, attach and detach downloads, send the email.

Rules owned here: order numbers are sequential from FIRST_ORDER_NUMBER and unique; a new
order is pending or paid; an order is paid once (grants issued idempotently, the email sent
after commit); only a pending order is cancelled and a cancelled one keeps its history; a
refund of lines revokes exactly those lines' grants, and refunding the last line refunds the
order and the grants of its attached files; only a paid order's email is sent.
"""

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from functools import partial

from django.core.exceptions import ValidationError
from django.core.validators import validate_email
from django.db import IntegrityError, transaction
from django.db.models import Max
from django.utils import timezone

from accounts.models import User, normalize_email

from ..emails import order_email_message
from ..errors import ServiceError
from ..models import (
    Download,
    DownloadGrant,
    Order,
    OrderLine,
    Product,
    Variant,
)
from . import webhooks
from .grants import grants_issue

FIRST_ORDER_NUMBER = 1001


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
            "Enter a valid email address.",
            code="order.invalid",
            reason="invalid",
            attribute="email",
        ) from exc
    if not lines:
        raise ServiceError(
            "An order needs at least one line.",
            code="order.invalid",
            reason="required",
            attribute="lines",
        )
    if status not in (Order.Status.PENDING, Order.Status.PAID):
        raise ServiceError(
            "A new order is pending or paid.",
            code="order.invalid",
            reason="invalid_choice",
            attribute="status",
        )
    for line in lines:
        if line.variant is not None and line.variant.product_id != line.product.pk:
            raise ServiceError(
                "The variant belongs to another product.",
                code="order.invalid",
                reason="invalid",
                attribute="lines",
            )
        if line.quantity < 1:
            raise ServiceError(
                "Quantity must be at least 1.",
                code="order.invalid",
                reason="min_value",
                attribute="lines",
            )
    if number is not None and Order.objects.filter(number=number).exists():
        raise ServiceError(
            f"Order number {number} is taken.", code="order.number_taken", attribute="number"
        )

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
                raise ServiceError(
                    f"Order number {candidate} is taken.",
                    code="order.number_taken",
                    attribute="number" if number is not None else None,
                ) from exc
    raise ServiceError("Could not allocate an order number; try again.", code="order.busy")


def _lock(order: Order) -> Order:
    return Order.objects.select_for_update().get(pk=order.pk)


def order_pay(*, order: Order, send_email: bool = True) -> Order:
    """Mark an order paid and issue its grants. Idempotent: paying twice issues nothing new."""
    with transaction.atomic():
        locked = _lock(order)
        if locked.status in (Order.Status.REFUNDED, Order.Status.CANCELLED):
            raise ServiceError(
                f"A {locked.status} order cannot be paid.", code="order.invalid_state"
            )
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
            raise ServiceError(
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
            raise ServiceError("Only a paid order can be refunded.", code="order.invalid_state")
        lines = locked.lines.all()
        if line_ids is not None:
            wanted = {str(line_id) for line_id in line_ids}
            if not wanted:
                raise ServiceError(
                    "Name at least one line.",
                    code="order.invalid",
                    reason="required",
                    attribute="line_ids",
                )
            found = {str(pk) for pk in lines.filter(pk__in=wanted).values_list("pk", flat=True)}
            if missing := wanted - found:
                raise ServiceError(
                    f"Not lines of this order: {', '.join(sorted(missing))}.",
                    code="order.invalid",
                    reason="invalid",
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
    """Send (again) a paid order's email, with the link to the buyer's order page, and
    record `email_sent_at` (only once the message was handed over)."""
    if order.status != Order.Status.PAID:
        raise ServiceError("Only a paid order's email can be sent.", code="order.invalid_state")
    return _send_email(order=order, request=request)


def order_send_email_by_id(*, order_id) -> None:
    """Send the order email after commit (the order is re-read so the email shows the truth)."""
    order = Order.objects.filter(pk=order_id).first()
    if order is not None:
        _send_email(order=order)


def _send_email(*, order: Order, request=None) -> Order:
    order_email_message(order=order, request=request).send()
    order.email_sent_at = timezone.now()
    Order.objects.filter(pk=order.pk).update(email_sent_at=order.email_sent_at)
    return order


def _refresh(order: Order, locked: Order) -> None:
    if order is not locked:
        for field in ("status", "paid_at", "refunded_at", "updated_at"):
            setattr(order, field, getattr(locked, field))


def _emit_revoked(*, order: Order, at) -> None:
    """`grant.revoked` for the order's grants revoked at `at` (this change)."""
    webhooks.emit_grants("grant.revoked", order.grants.filter(revoked_at=at))


def _emit_refunded(*, order: Order, at) -> None:
    """`order.refunded` (with the lines refunded now) and the `grant.revoked` it caused."""
    line_ids = [str(pk) for pk in order.lines.filter(refunded_at=at).values_list("pk", flat=True)]
    data = {**webhooks.order_data(order), "refunded_line_ids": line_ids}
    webhooks.emit("order.refunded", data)
    _emit_revoked(order=order, at=at)
