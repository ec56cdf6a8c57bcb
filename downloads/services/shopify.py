"""Shopify: the sales channel's webhooks, verified, then turned into orders by the inbox.

`webhook_verify` is what the receiver (views/shopify.py) asks before it stores anything;
`event_process` is the inbox's handler for Shopify (services/channels.py runs it in the
background); `line_items_map` turns Shopify's line items into order lines.

Rules owned here:
- A webhook is Shopify's when `X-Shopify-Hmac-Sha256` is base64(HMAC-SHA256(secret, raw
  body)), compared in constant time, and, when SHOPIFY_SHOP_DOMAIN is set, its
  `X-Shopify-Shop-Domain` is that shop. Without SHOPIFY_WEBHOOK_SECRET nothing is Shopify's.
- A Shopify order is the store's order for ("shopify", str(order id)), made once
  (`order_intake`) whatever the order and number of deliveries. It keeps Shopify's `token` as
  its access token and Shopify's `order_number` as its number; its currency is the payload's,
  and every amount (Shopify's decimal strings) converts exactly in it (`money.to_minor`): a
  line's unit price, its discount (the sum of its discount allocations), the order's tax.
- A line item is the variant whose `external_id` is its `variant_id`, else the product whose
  `external_id` is its `product_id`, else the variant, then the product, with its SKU. An
  order whose line items do not all map is kept with those that did and its event stays
  `unmatched`, naming the others, until it is processed again (the missing lines are then
  added, and their files granted if the order is paid). No line that maps: no order yet.
  A line item refunded in full is never added later.
- Topics: `orders/create` makes the order pending (paid if its financial status is already
  `paid`); `orders/paid` pays it (grants, email); `orders/cancelled` cancels a pending order
  and revokes a paid one's access (a `refunded` or `voided` one is refunded whole, any other
  has all its lines refunded with no amount); `refunds/create` refunds exactly the units of
  the line items it names and adds its successful refund transactions to `refunded_total`,
  once per Shopify refund. A refund whose order has not arrived or is not paid yet waits
  `unmatched`, and is processed again as soon as an event of its order is. Other topics are
  kept and `ignored`.
"""

import base64
import hashlib
import hmac

from django.conf import settings
from django.db.models import F, Q
from django.utils.dateparse import parse_datetime

from .. import money
from ..errors import ServiceError
from ..models import ChannelEvent, Order, Product, Variant
from .channels import Outcome, channel_events_wake
from .common import UNSET
from .orders import (
    LineInput,
    order_cancel,
    order_intake,
    order_lines_add,
    order_pay,
    order_refund,
)

Status = ChannelEvent.Status
SHOPIFY = Order.Channel.SHOPIFY

ORDER_CREATE = "orders/create"
ORDER_PAID = "orders/paid"
ORDER_CANCELLED = "orders/cancelled"
REFUND_CREATE = "refunds/create"
# A cancelled order with these financial statuses gave its money back in full.
MONEY_RETURNED = ("refunded", "voided")


# --- Verifying a delivery ----------------------------------------------------------------------


def webhook_configured() -> bool:
    """Whether the store takes Shopify's webhooks (SHOPIFY_WEBHOOK_SECRET is set)."""
    return bool(settings.SHOPIFY_WEBHOOK_SECRET)


def webhook_signature(*, body: bytes, secret: str) -> str:
    """Shopify's `X-Shopify-Hmac-Sha256` for `body`: base64(HMAC-SHA256(secret, body))."""
    digest = hmac.new(secret.encode(), body, hashlib.sha256).digest()
    return base64.b64encode(digest).decode("ascii")


def webhook_verify(*, body: bytes, hmac_header: str | None, shop_domain: str | None) -> bool:
    """Whether a delivery is Shopify's: its HMAC over the raw body is right (constant-time)
    and, when SHOPIFY_SHOP_DOMAIN is set, it comes from that shop."""
    secret = settings.SHOPIFY_WEBHOOK_SECRET
    if not secret or not hmac_header:
        return False
    expected = webhook_signature(body=body, secret=secret).encode("ascii")
    if not hmac.compare_digest(expected, hmac_header.strip().encode("utf-8", "replace")):
        return False
    shop = settings.SHOPIFY_SHOP_DOMAIN
    return not shop or (shop_domain or "").strip().lower() == shop.strip().lower()


# --- Line items ---------------------------------------------------------------------------------


def _int(value) -> int | None:
    """Shopify's numeric ids as ints (they come as JSON numbers, now and then as strings)."""
    if isinstance(value, bool):
        return None
    try:
        number = int(value)
    except (TypeError, ValueError):
        return None
    return number if 0 < number < 2**63 else None


def _amount(value, currency: str, attribute: str) -> int:
    return money.to_minor(
        "0" if value in (None, "") else value, currency, entity="channel_event", attribute=attribute
    )


def _by_id_and_sku(queryset, ids: set, skus: set) -> tuple[dict, dict]:
    """({external id: row}, {sku: row}) in one query; unarchived first, then the oldest, so
    two rows sharing an id or a SKU always resolve to the same one."""
    if not ids and not skus:
        return {}, {}
    rows = queryset.filter(Q(external_id__in=ids) | Q(sku__in=skus)).order_by(
        "archived_first", "created_at", "pk"
    )
    by_id: dict = {}
    by_sku: dict = {}
    for row in rows:
        if row.external_id in ids:
            by_id.setdefault(row.external_id, row)
        if row.sku in skus:
            by_sku.setdefault(row.sku, row)
    return by_id, by_sku


def line_items_map(*, line_items, currency: str) -> tuple[list[LineInput], list[dict]]:
    """Shopify line items as order lines: (the lines that map to the catalogue, the line
    items that do not). Two queries, whatever the number of items."""
    items = [item for item in line_items or () if isinstance(item, dict)]
    variant_ids = {_int(item.get("variant_id")) for item in items} - {None}
    product_ids = {_int(item.get("product_id")) for item in items} - {None}
    skus = {str(item["sku"]).strip() for item in items if item.get("sku")} - {""}
    variant_by_id, variant_by_sku = _by_id_and_sku(
        Variant.objects.select_related("product").annotate(archived_first=F("product__archived")),
        variant_ids,
        skus,
    )
    product_by_id, product_by_sku = _by_id_and_sku(
        Product.objects.annotate(archived_first=F("archived")), product_ids, skus
    )

    lines: list[LineInput] = []
    unmapped: list[dict] = []
    for index, item in enumerate(items):
        quantity = _int(item.get("quantity"))
        if quantity is None:
            continue  # nothing bought (a line item removed by an order edit)
        sku = str(item.get("sku") or "").strip()
        variant = variant_by_id.get(_int(item.get("variant_id")))
        product = product_by_id.get(_int(item.get("product_id")))
        if variant is None and sku:
            candidate = variant_by_sku.get(sku)
            if candidate is not None and product in (None, candidate.product):
                variant = candidate
        if variant is not None and product is not None and variant.product_id != product.pk:
            variant = None  # Shopify's product wins over a variant of another one
        if product is None:
            product = variant.product if variant is not None else product_by_sku.get(sku)
        if product is None:
            unmapped.append(item)
            continue
        where = f"line_items[{index}]"
        if item.get("id") in (None, ""):  # the line's id makes adding it later idempotent
            raise ServiceError(
                f"{where} has no id.",
                code="channel_event.invalid",
                reason="required",
                attribute=f"{where}.id",
            )
        discount = sum(
            (
                _amount(allocation.get("amount"), currency, f"{where}.discount_allocations")
                for allocation in item.get("discount_allocations") or ()
                if isinstance(allocation, dict)
            ),
            0,
        )
        lines.append(
            LineInput(
                product=product,
                variant=variant,
                quantity=quantity,
                price=_amount(item.get("price"), currency, f"{where}.price"),
                discount=discount,
                external_id=str(item["id"])[:255],
            )
        )
    return lines, unmapped


def _describe(items: list[dict]) -> str:
    named = []
    for item in items:
        parts = [f"product {item.get('product_id')}", f"variant {item.get('variant_id')}"]
        if item.get("sku"):
            parts.append(f"SKU {item['sku']!r}")
        title = str(item.get("title") or item.get("name") or "")
        named.append(f"{item.get('id')} ({', '.join(parts)}{': ' + title if title else ''})")
    return "Line items not in the catalogue: " + "; ".join(named) + "."


# --- Orders -------------------------------------------------------------------------------------


def _order_id(payload: dict, key: str = "id") -> int:
    order_id = _int(payload.get(key))
    if order_id is None:
        raise ServiceError(
            f"The payload has no Shopify id in {key!r}.",
            code="channel_event.invalid",
            reason="required",
            attribute=key,
        )
    return order_id


def _order_of(order_id: int) -> Order | None:
    return Order.objects.filter(channel=SHOPIFY, external_id=str(order_id)).first()


def _email(payload: dict) -> str:
    customer = payload.get("customer") if isinstance(payload.get("customer"), dict) else {}
    return str(payload.get("email") or payload.get("contact_email") or customer.get("email") or "")


def _payment_method(payload: dict) -> str:
    names = payload.get("payment_gateway_names") or ()
    if isinstance(names, str):
        names = [names]
    return ", ".join(str(name) for name in names if name)[:100]


def _placed_at(payload: dict):
    try:
        placed = parse_datetime(str(payload.get("created_at") or ""))
    except ValueError:
        return None
    return placed if placed is not None and placed.tzinfo is not None else None


def _refunded_units(order: Order) -> dict[str, int]:
    """{line item id: units} that the order's processed refunds took back."""
    units: dict[str, int] = {}
    refunds = ChannelEvent.objects.filter(
        order=order, channel=SHOPIFY, type=REFUND_CREATE, status=Status.PROCESSED
    ).values_list("payload", flat=True)
    for payload in refunds:
        for item in payload.get("refund_line_items") or ():
            if isinstance(item, dict):
                key = str(item.get("line_item_id"))
                units[key] = units.get(key, 0) + (_int(item.get("quantity")) or 0)
    return units


def _order_upsert(event: ChannelEvent, *, pay: bool) -> tuple[Order | None, list[dict]]:
    """The order of an orders/* event, made or completed from its payload, paid if `pay`;
    (order, the line items that did not map). No order when no line item maps."""
    payload = event.payload
    order_id = _order_id(payload)
    currency = money.check_currency(
        payload.get("currency") or money.store_currency(), entity="channel_event"
    )
    lines, unmapped = line_items_map(line_items=payload.get("line_items"), currency=currency)
    tax = _amount(payload.get("total_tax"), currency, "total_tax")
    email = _email(payload)
    payment_method = _payment_method(payload)
    if not lines:
        order, created = _order_of(order_id), False
        if order is None:
            return None, unmapped
    else:  # order_intake finds the order, or makes it: one lookup either way
        token = payload.get("token")
        order, created = order_intake(
            channel=SHOPIFY,
            external_id=str(order_id),
            email=email,
            lines=lines,
            number=_int(payload.get("order_number")),
            status=Order.Status.PAID if pay else Order.Status.PENDING,
            placed_at=_placed_at(payload),
            currency=currency,
            tax=tax,
            access_token=token if isinstance(token, str) and 0 < len(token) <= 64 else None,
            payment_method=payment_method,
            allow_blank_email=True,
        )
    if not created:
        refunded = _refunded_units(order)
        order_lines_add(
            order=order,
            lines=[line for line in lines if refunded.get(line.external_id, 0) < line.quantity],
        )
        if pay and order.status == Order.Status.PENDING:
            order_pay(order=order, email=email or UNSET, tax=tax, payment_method=payment_method)
    _refunds_waiting(order_id)
    return order, unmapped


def _order_event(event: ChannelEvent, *, pay: bool) -> Outcome:
    order, unmapped = _order_upsert(event, pay=pay)
    if unmapped:
        return Outcome(Status.UNMATCHED, order=order, error=_describe(unmapped))
    if order is None:
        return Outcome(Status.UNMATCHED, error="The order has no line items.")
    return Outcome(Status.PROCESSED, order=order)


def _order_created(event: ChannelEvent) -> Outcome:
    return _order_event(event, pay=event.payload.get("financial_status") == "paid")


def _order_paid(event: ChannelEvent) -> Outcome:
    return _order_event(event, pay=True)


def _order_cancelled(event: ChannelEvent) -> Outcome:
    payload = event.payload
    order_id = _order_id(payload)
    order = _order_of(order_id)
    if order is None:  # cancelled before its orders/create arrived: kept, then cancelled
        order, unmapped = _order_upsert(event, pay=False)
        if order is None:
            return Outcome(Status.UNMATCHED, error=_describe(unmapped))
    else:
        _refunds_waiting(order_id)  # a refund waiting for payment is now moot: ignored
    locked = Order.objects.select_for_update().get(pk=order.pk)
    if locked.status == Order.Status.PENDING:
        order_cancel(order=locked)
    elif locked.status == Order.Status.PAID:
        if payload.get("financial_status") in MONEY_RETURNED:
            order_refund(order=locked)
        else:  # cancelled but the money kept (for now): access ends, nothing is refunded
            order_refund(order=locked, line_ids=locked.lines.values_list("pk", flat=True), amount=0)
    return Outcome(Status.PROCESSED, order=locked)


# --- Refunds ------------------------------------------------------------------------------------


def _refunds_waiting(order_id: int) -> None:
    """Process again the order's refunds that wait for it (see `channel_events_wake`)."""
    channel_events_wake(channel=SHOPIFY, types=[REFUND_CREATE], payload__order_id=order_id)


def _refund_applied(event: ChannelEvent, order: Order, refund_id) -> bool:
    """Whether this Shopify refund was applied already (this event, or another delivery of
    the same refund). Asked with the order locked, so two cannot both say no."""
    if event.status == Status.PROCESSED:
        return True
    if refund_id is None:
        return False
    return (
        ChannelEvent.objects.filter(
            order=order, channel=SHOPIFY, type=REFUND_CREATE, status=Status.PROCESSED
        )
        .exclude(pk=event.pk)
        .filter(payload__id=refund_id)
        .exists()
    )


def _refund_created(event: ChannelEvent) -> Outcome:
    payload = event.payload
    order_id = _order_id(payload, "order_id")
    order = _order_of(order_id)
    if order is None:
        return Outcome(Status.UNMATCHED, error=f"Shopify order {order_id} has not arrived yet.")
    order = Order.objects.select_for_update().get(pk=order.pk)
    if _refund_applied(event, order, _int(payload.get("id"))):
        return Outcome(Status.PROCESSED, order=order)
    if order.status == Order.Status.PENDING:
        return Outcome(
            Status.UNMATCHED, order=order, error=f"Shopify order {order_id} is not paid here yet."
        )
    if order.status == Order.Status.CANCELLED:
        return Outcome(Status.IGNORED, order=order, error="The order is cancelled.")

    lines = {line.external_id: line.pk for line in order.lines.exclude(external_id="")}
    quantities: dict = {}
    absent = []
    for item in payload.get("refund_line_items") or ():
        if not isinstance(item, dict):
            continue
        units = _int(item.get("quantity"))
        line = lines.get(str(item.get("line_item_id")))
        if line is None:
            absent.append(str(item.get("line_item_id")))
        elif units:
            quantities[line] = quantities.get(line, 0) + units
    amount = 0
    foreign = []
    for index, transaction_ in enumerate(payload.get("transactions") or ()):
        if not isinstance(transaction_, dict):
            continue
        if transaction_.get("kind") != "refund" or transaction_.get("status") != "success":
            continue
        currency = str(transaction_.get("currency") or order.currency).upper()
        if currency != order.currency:
            foreign.append(f"{transaction_.get('amount')} {currency}")
            continue
        amount += _amount(transaction_.get("amount"), order.currency, f"transactions[{index}]")
    if quantities or amount:
        order_refund(order=order, quantities=quantities or None, amount=amount)
    notes = []
    if absent:
        notes.append(f"Line items not on the order (never mapped): {', '.join(absent)}.")
    if foreign:
        notes.append(
            f"Refunds in another currency than {order.currency}, not counted: {', '.join(foreign)}."
        )
    return Outcome(Status.PROCESSED, order=order, error=" ".join(notes))


# --- The inbox's handler ------------------------------------------------------------------------

TOPICS = {
    ORDER_CREATE: _order_created,
    ORDER_PAID: _order_paid,
    ORDER_CANCELLED: _order_cancelled,
    REFUND_CREATE: _refund_created,
}


def event_process(event: ChannelEvent) -> Outcome:
    """What a Shopify event does to the store (see the module's rules); idempotent."""
    handler = TOPICS.get(event.type)
    if handler is None:
        return Outcome(Status.IGNORED, error=f"The store does not act on {event.type!r}.")
    if not isinstance(event.payload, dict):
        raise ServiceError("The payload is not a JSON object.", code="channel_event.invalid")
    return handler(event)
