"""Orders: create (once per channel and external id), pay, cancel, refund, dispute, attach
and detach downloads, send the email.

Rules owned here: the store's order numbers are sequential from FIRST_ORDER_NUMBER and
unique (a Shopify order keeps Shopify's number, unique among Shopify's); one order per
(channel, external_id), so a retried create returns the first (`order_intake`); a line costs
its catalogue price unless the caller names one (catalogue prices are in the store's
currency, so an order in another names every line's price), its total is price × quantity
less its discount, and the order's total is the lines' subtotal plus tax, in one currency;
a new order is pending or paid; an order is paid once (grants and licence keys issued
idempotently, the email sent after commit); only a pending order is cancelled and a
cancelled one keeps its history; a refund of lines revokes exactly those lines' grants and
disables their keys (a line is refunded once all its units are; a unit's key as soon as it
is), the refunded amount never exceeds the total, and refunding the last line refunds the
order and the grants of its attached files; a dispute revokes every grant, disables every
key and flags the order; only a paid order's email is sent.
"""

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from functools import partial

from django.core.exceptions import ValidationError
from django.core.validators import validate_email
from django.db import IntegrityError, transaction
from django.db.models import F, Max, Q
from django.db.models.functions import Least
from django.utils import timezone

from accounts.models import User, normalize_email

from .. import money
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
from .common import UNSET, save_fields
from .grants import grants_issue
from .licences import license_keys_disable, license_keys_disable_refunded, license_keys_issue

FIRST_ORDER_NUMBER = 1001
Channel = Order.Channel


@dataclass(frozen=True)
class LineInput:
    """One line to put on a new order. `price` is the unit price in minor units (None: the
    catalogue's); `discount` comes off the line's total; `external_id` is the channel's."""

    product: Product
    variant: Variant | None = None
    quantity: int = 1
    price: int | None = None
    discount: int = 0
    external_id: str = ""

    @property
    def unit_price(self) -> int:
        if self.price is not None:
            return self.price
        return self.variant.effective_price if self.variant else self.product.price

    @property
    def total(self) -> int:
        return max(self.unit_price * self.quantity - self.discount, 0)


def _numbering(channel: str) -> Q:
    """The orders whose numbers must differ from a new one on `channel` (see Order.Meta)."""
    return Q(channel=Channel.SHOPIFY) if channel == Channel.SHOPIFY else ~Q(channel=Channel.SHOPIFY)


def _next_order_number() -> int:
    last = Order.objects.filter(_numbering(Channel.API)).aggregate(last=Max("number"))["last"]
    return max(last or 0, FIRST_ORDER_NUMBER - 1) + 1


def _check_amount(value, *, attribute: str) -> None:
    money.check_amount(value, entity="order", attribute=attribute)


def order_intake(*, channel: str, external_id: str | None, **fields) -> tuple[Order, bool]:
    """The order for (channel, external_id), creating it with `fields` (see `order_create`)
    when there is none: a retried API create or a redelivered webhook gets the first order.
    Returns (order, created). Safe under concurrency: the unique constraint decides."""
    if external_id is None:
        return order_create(channel=channel, **fields), True
    external_id = str(external_id)
    existing = Order.objects.filter(channel=channel, external_id=external_id).first()
    if existing is not None:
        return existing, False
    try:
        with transaction.atomic():
            return order_create(channel=channel, external_id=external_id, **fields), True
    except ServiceError:
        # A concurrent intake of the same order won (its number or its external id is now
        # taken): answer with that order. Any other refusal stands.
        existing = Order.objects.filter(channel=channel, external_id=external_id).first()
        if existing is None:
            raise
    return existing, False


def order_create(
    *,
    email: str,
    lines: Sequence[LineInput],
    number: int | None = None,
    status: str = Order.Status.PENDING,
    placed_at: datetime | None = None,
    downloads: Iterable[Download] = (),
    send_email: bool = True,
    currency: str | None = None,
    tax: int = 0,
    channel: str = Channel.API,
    external_id: str | None = None,
    access_token: str | None = None,
    payment_method: str = "",
    allow_blank_email: bool = False,
) -> Order:
    """Create an order with its lines and amounts. A paid status pays it at once (grants,
    email). `allow_blank_email` is for a pending Checkout order, whose buyer types the
    address at the payment page."""
    email = normalize_email(email or "")
    if email or not allow_blank_email or status != Order.Status.PENDING:
        try:
            validate_email(email)
        except ValidationError as exc:
            raise ServiceError(
                "Enter a valid email address.",
                code="order.invalid",
                reason="invalid",
                attribute="email",
            ) from exc
    currency = money.check_currency(currency or money.store_currency())
    _check_amount(tax, attribute="tax")
    if channel not in Channel.values:
        raise ServiceError(
            f"Unknown channel {channel!r}.",
            code="order.invalid",
            reason="invalid_choice",
            attribute="channel",
        )
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
        if line.price is not None:
            _check_amount(line.price, attribute="lines")
        elif currency != money.store_currency():
            raise ServiceError(
                f"An order in {currency} names each line's price: the catalogue's prices "
                f"are in {money.store_currency()}.",
                code="order.invalid",
                reason="required",
                attribute="lines",
            )
        _check_amount(line.discount, attribute="lines")
    subtotal = sum(line.total for line in lines)
    _check_amount(subtotal + tax, attribute="total")
    numbering = Order.objects.filter(_numbering(channel))
    if number is not None and numbering.filter(number=number).exists():
        raise ServiceError(
            f"Order number {number} is taken.", code="order.number_taken", attribute="number"
        )

    customer = User.objects.filter(email=email).first() if email else None
    fields = {
        "email": email,
        "customer": customer,
        "placed_at": placed_at or timezone.now(),
        "channel": channel,
        "external_id": None if external_id is None else str(external_id),
        "currency": currency,
        "subtotal": subtotal,
        "tax": tax,
        "total": subtotal + tax,
        "payment_method": payment_method,
    }
    if access_token:
        fields["access_token"] = access_token
    with transaction.atomic():
        order = _order_insert(number=number, fields=fields)
        OrderLine.objects.bulk_create(
            _line_row(order, line, position) for position, line in enumerate(lines)
        )
        downloads = list(downloads)
        if downloads:
            order.downloads.add(*downloads)
        webhooks.emit("order.created", partial(webhooks.order_data, order))
        if status == Order.Status.PAID:
            order_pay(order=order, send_email=send_email)
    return order


def _order_insert(*, number, fields) -> Order:
    # Sequential numbers without a lock: take max + 1 and retry if another order won the race.
    # Which constraint failed decides the answer: a (channel, external_id) that exists is the
    # caller's retry (`order.exists`, see order_intake), a taken number is a conflict.
    numbering = Order.objects.filter(_numbering(fields["channel"]))
    for _attempt in range(20):
        candidate = number if number is not None else _next_order_number()
        try:
            with transaction.atomic():
                return Order.objects.create(number=candidate, **fields)
        except IntegrityError as exc:
            if (
                fields["external_id"] is not None
                and Order.objects.filter(
                    channel=fields["channel"], external_id=fields["external_id"]
                ).exists()
            ):
                raise ServiceError(
                    "An order with this external_id exists.",
                    code="order.exists",
                    attribute="external_id",
                ) from exc
            if (
                "access_token" in fields
                and Order.objects.filter(access_token=fields["access_token"]).exists()
            ):
                raise ServiceError(
                    "Another order has this access token.", code="order.token_taken"
                ) from exc
            if number is not None or not numbering.filter(number=candidate).exists():
                raise ServiceError(
                    f"Order number {candidate} is taken.",
                    code="order.number_taken",
                    attribute="number" if number is not None else None,
                ) from exc
    raise ServiceError("Could not allocate an order number; try again.", code="order.busy")


def order_lines_add(*, order: Order, lines: Sequence[LineInput]) -> list[OrderLine]:
    """Add lines that an order from a channel lacks (a product mapped after the sale): lines
    whose `external_id` the order already has are skipped, the amounts follow the lines, and
    a paid order's buyer gets the new lines' files at once. Returns the lines added."""
    with transaction.atomic():
        locked = _lock(order)
        have = set(locked.lines.exclude(external_id="").values_list("external_id", flat=True))
        new = [line for line in lines if not line.external_id or line.external_id not in have]
        if not new:
            return []
        for line in new:
            if line.variant is not None and line.variant.product_id != line.product.pk:
                raise ServiceError(
                    "The variant belongs to another product.",
                    code="order.invalid",
                    reason="invalid",
                    attribute="lines",
                )
        start = (locked.lines.aggregate(last=Max("position"))["last"] or 0) + 1
        added = OrderLine.objects.bulk_create(
            _line_row(locked, line, position) for position, line in enumerate(new, start)
        )
        subtotal = locked.subtotal + sum(line.total for line in new)
        save_fields(locked, {"subtotal": subtotal, "total": subtotal + locked.tax})
        if locked.status == Order.Status.PAID:
            grants_issue(order=locked)
            license_keys_issue(order=locked)
    _refresh(order, locked)
    return added


def order_link_external(*, order: Order, external_id: str) -> Order:
    """Record the channel's id of an order made here first (a Checkout Session made for a
    pending order). Refused when another order of the channel has it."""
    try:
        with transaction.atomic():
            Order.objects.filter(pk=order.pk).update(
                external_id=str(external_id), updated_at=timezone.now()
            )
    except IntegrityError as exc:
        raise ServiceError(
            "Another order has this external_id.", code="order.exists", attribute="external_id"
        ) from exc
    order.external_id = str(external_id)
    return order


def _line_row(order: Order, line: LineInput, position: int) -> OrderLine:
    return OrderLine(
        order=order,
        product=line.product,
        variant=line.variant,
        name=line.product.name,
        variant_name=line.variant.name if line.variant else "",
        sku=(line.variant.sku if line.variant and line.variant.sku else line.product.sku),
        price=line.unit_price,
        total=line.total,
        quantity=line.quantity,
        external_id=line.external_id,
        position=position,
    )


def _lock(order: Order) -> Order:
    return Order.objects.select_for_update().get(pk=order.pk)


def order_pay(
    *,
    order: Order,
    send_email: bool = True,
    email=UNSET,
    tax=UNSET,
    payment_method=UNSET,
    payment_id=UNSET,
) -> Order:
    """Mark an order paid and issue its grants. Idempotent: paying twice issues nothing new.

    A channel that learns more at payment passes it: the buyer's `email` (typed at
    Checkout), the `tax` charged (the total follows), how it was paid and the payment's id.
    """
    with transaction.atomic():
        locked = _lock(order)
        if locked.status in (Order.Status.REFUNDED, Order.Status.CANCELLED):
            raise ServiceError(
                f"A {locked.status} order cannot be paid.", code="order.invalid_state"
            )
        newly_paid = locked.status != Order.Status.PAID
        if newly_paid:
            _record_payment(
                locked, email=email, tax=tax, payment_method=payment_method, payment_id=payment_id
            )
        if not locked.email:
            raise ServiceError(
                "An order needs the buyer's email before it is paid.",
                code="order.invalid",
                reason="required",
                attribute="email",
            )
        if newly_paid:
            locked.status = Order.Status.PAID
            locked.paid_at = timezone.now()
            locked.save(update_fields=["status", "paid_at", "updated_at"])
            # Causal order: the payment's event is queued before the grants and keys it
            # causes, so a receiver sees `order.paid` before their `*.created`.
            webhooks.emit("order.paid", partial(webhooks.order_data, locked))
        grants_issue(order=locked)
        license_keys_issue(order=locked)
        if newly_paid and send_email:
            order_id = locked.pk
            # Robust: a mail server that is down must not turn a committed payment into an
            # error for the caller; the failure is logged and the email can be resent.
            transaction.on_commit(lambda: order_send_email_by_id(order_id=order_id), robust=True)
    _refresh(order, locked)
    return order


def _record_payment(locked: Order, *, email, tax, payment_method, payment_id) -> None:
    changes = {}
    if email is not UNSET and email:
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
        if email != locked.email:
            # The address typed where the buyer paid is the order's, and so is its account.
            changes["email"] = email
            changes["customer"] = User.objects.filter(email=email).first()
    if tax is not UNSET:
        _check_amount(tax, attribute="tax")
        changes.update(tax=tax, total=locked.subtotal + tax)
    if payment_method is not UNSET:
        changes["payment_method"] = payment_method[:100]
    if payment_id is not UNSET:
        changes["payment_id"] = payment_id[:255]
    save_fields(locked, changes)


def order_actions(*, order: Order) -> frozenset[str]:
    """What would change the order in its state now, by verb: `pay` and `cancel` (pending),
    `send_email` and `refund` (paid), `attach` (pending or paid), `detach` (files attached).
    The admin offers only these; each service still checks under its row lock (paying a paid
    order changes nothing, so `pay` is not offered on one). One query (`detach`)."""
    actions = set()
    if order.status == Order.Status.PENDING:
        actions |= {"pay", "cancel", "attach"}
    elif order.status == Order.Status.PAID:
        actions |= {"send_email", "refund", "attach"}
    if order.downloads.exists():
        actions.add("detach")
    return frozenset(actions)


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


def order_refund(
    *,
    order: Order,
    line_ids: Iterable | None = None,
    quantities: dict | None = None,
    amount: int | None = None,
) -> Order:
    """Refund the whole order (revoke every grant), some lines (revoke only theirs), some
    units of lines, or only an amount.

    - `line_ids`: these lines are refunded whole.
    - `quantities`: {line id: units refunded now}; a line is refunded once all its units are
      (Shopify refunds name line items and quantities).
    - `amount`: minor units refunded now, added to `refunded_total` (never past the total);
      without it, the refunded lines' totals (or, for the whole order, what is left) count.
      An amount with no lines records a partial refund and revokes nothing.
    Refunding the last unrefunded line refunds the order, which also revokes the grants of
    files attached to the order itself.
    """
    now = timezone.now()
    whole = line_ids is None and quantities is None and amount is None
    with transaction.atomic():
        locked = _lock(order)
        if locked.status not in (Order.Status.PAID, Order.Status.REFUNDED):
            raise ServiceError("Only a paid order can be refunded.", code="order.invalid_state")
        if amount is not None:
            _check_amount(amount, attribute="amount")
        lines = locked.lines.all()
        if line_ids is not None:
            lines = _refund_lines_named(lines, line_ids)
        elif quantities is not None:
            lines = _refund_units(lines, quantities)
        elif not whole:
            lines = lines.none()
        refunded_now = list(lines.filter(refunded_at__isnull=True))
        lines.filter(refunded_at__isnull=True).update(
            refunded_at=now, refunded_quantity=F("quantity")
        )
        DownloadGrant.objects.filter(
            order=locked, line__in=lines.values("pk"), revoked_at__isnull=True
        ).update(revoked_at=now, updated_at=now)
        named_amount = amount is not None
        if not named_amount:
            amount = sum(line.total for line in refunded_now)
        if not locked.lines.filter(refunded_at__isnull=True).exists():
            locked.grants.filter(revoked_at__isnull=True).update(revoked_at=now, updated_at=now)
            if locked.status != Order.Status.REFUNDED:
                locked.status = Order.Status.REFUNDED
                locked.refunded_at = now
                if not named_amount:  # the whole order is refunded: tax included
                    amount = locked.total - locked.refunded_total
        license_keys_disable_refunded(order=locked, at=now)
        refunded_total = min(locked.refunded_total + amount, locked.total)
        changed_total = refunded_total != locked.refunded_total
        locked.refunded_total = refunded_total
        locked.save(update_fields=["status", "refunded_at", "refunded_total", "updated_at"])
        if refunded_now or locked.refunded_at == now or changed_total:
            _emit_refunded(order=locked, at=now)
    _refresh(order, locked)
    return order


def _refund_lines_named(lines, line_ids):
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
    return lines.filter(pk__in=wanted)


def _refund_units(lines, quantities: dict):
    """Add refunded units to lines (conditional UPDATEs, capped at the quantity) and return
    the lines now refunded in full."""
    by_id = {str(line.pk): line for line in lines}
    for line_id, units in quantities.items():
        line = by_id.get(str(line_id))
        if line is None or not isinstance(units, int) or units < 1:
            raise ServiceError(
                f"Not a refundable quantity of a line of this order: {line_id}.",
                code="order.invalid",
                reason="invalid",
                attribute="quantities",
            )
        lines.filter(pk=line.pk).update(
            refunded_quantity=Least(F("refunded_quantity") + units, F("quantity"))
        )
    return lines.filter(pk__in=list(by_id), refunded_quantity__gte=F("quantity"))


def order_dispute(*, order: Order) -> Order:
    """A payment dispute (chargeback): revoke every grant of the order and flag it. The
    grants can be restored from the admin or the API once the dispute is won."""
    now = timezone.now()
    with transaction.atomic():
        locked = _lock(order)
        if locked.disputed_at is None:
            locked.disputed_at = now
            locked.save(update_fields=["disputed_at", "updated_at"])
        locked.grants.filter(revoked_at__isnull=True).update(revoked_at=now, updated_at=now)
        license_keys_disable(keys=locked.license_keys.all(), at=now)
        _emit_revoked(order=locked, at=now)
    order.disputed_at = locked.disputed_at
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
        for field in (
            "status",
            "paid_at",
            "refunded_at",
            "refunded_total",
            "email",
            "customer_id",
            "tax",
            "total",
            "payment_method",
            "payment_id",
            "updated_at",
        ):
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
