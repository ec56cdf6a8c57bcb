"""Stripe Checkout: selling one product or variant through Stripe's hosted payment page.

`checkout_start` makes a pending order (channel `stripe`, the catalogue price, the buyer's
email optional) and a Checkout Session for it through the `stripe` library, and links the
session to the order; `stripe_event_receive` verifies Stripe's webhook and puts it in the
channel inbox (services/channels.py); `event_process` is the inbox's handler for Stripe.

Rules owned here:
- Checkout exists only when STRIPE_SECRET_KEY is set, and sells only what is not archived.
- The session charges exactly the order's lines at the order's prices, in the order's
  currency (lower-case, minor units as stored); `client_reference_id` and
  `metadata[order_id]` are the order's id, the session id becomes the order's
  `external_id`, and Stripe sends the buyer back to the order page.
- When Stripe cannot make the session (down, slow, or refusing), the pending order is
  cancelled and `checkout.unavailable` is raised: nothing was charged, nothing is left open.
- Nothing from Stripe is stored before `stripe.Webhook.construct_event` verified it.
- A session's events act only on the stripe order whose id is its `client_reference_id`
  and whose `external_id` is the session's id; refunds and disputes find the order by its
  PaymentIntent (`payment_id`). Paid (`checkout.session.completed` with `payment_status`
  paid or no_payment_required, `checkout.session.async_payment_succeeded`): the order is
  paid with the email the buyer typed at Checkout, the tax Stripe charged, the payment
  method and the PaymentIntent; an unpaid completion leaves it pending until the async
  result. Failed or expired: a pending order is cancelled. `charge.refunded`: a charge
  refunded in full refunds the whole order; a partial refund adds what Stripe refunded
  beyond the order's `refunded_total` (Stripe's `amount_refunded` is cumulative, so a
  repeated event adds nothing) and revokes nothing. `charge.dispute.created`: the order's
  grants are revoked and the order is flagged. A refund or dispute delivered before its
  session's completion waits `unmatched` and is processed again once the order is paid.
  Every handler is idempotent.
"""

import logging
import uuid
from dataclasses import dataclass

import stripe
from django.conf import settings
from django.urls import reverse

from .. import money
from ..emails import order_page_url, site_url
from ..errors import ServiceError
from ..models import ChannelEvent, Order, Product, Variant
from .channels import Outcome, channel_event_receive, channel_events_wake
from .orders import (
    LineInput,
    order_cancel,
    order_create,
    order_dispute,
    order_link_external,
    order_pay,
    order_refund,
)

logger = logging.getLogger(__name__)

Status = ChannelEvent.Status

# Seconds to wait for Stripe while the buyer waits for the page (connect, read).
STRIPE_TIMEOUT = (5, 20)

PAID_SESSION_STATUSES = ("paid", "no_payment_required")


def checkout_enabled() -> bool:
    """Whether the store sells through Stripe Checkout (STRIPE_SECRET_KEY is set)."""
    return bool(settings.STRIPE_SECRET_KEY)


def webhooks_enabled() -> bool:
    """Whether Stripe's webhooks are accepted (STRIPE_WEBHOOK_SECRET is set)."""
    return bool(settings.STRIPE_WEBHOOK_SECRET)


@dataclass(frozen=True)
class CheckoutItem:
    """What one Checkout sells: a product, or one of its variants, at the catalogue price."""

    product: Product
    variant: Variant | None = None

    @property
    def id(self):
        return self.variant.pk if self.variant else self.product.pk

    @property
    def name(self) -> str:
        return self.product.name

    @property
    def variant_name(self) -> str:
        return self.variant.name if self.variant else ""

    @property
    def price(self) -> int:
        return self.variant.effective_price if self.variant else self.product.price

    @property
    def currency(self) -> str:
        return money.store_currency()


def checkout_item_get(*, item_id) -> CheckoutItem | None:
    """The product or variant with this id when it is on sale (its product not archived)."""
    variant = (
        Variant.objects.select_related("product")
        .filter(pk=item_id, product__archived=False)
        .first()
    )
    if variant is not None:
        return CheckoutItem(product=variant.product, variant=variant)
    product = Product.objects.filter(pk=item_id, archived=False).first()
    return CheckoutItem(product=product) if product is not None else None


@dataclass(frozen=True)
class CheckoutStart:
    """A pending order and the Checkout page where its buyer pays."""

    order: Order
    url: str


def _client() -> stripe.StripeClient:
    return stripe.StripeClient(
        settings.STRIPE_SECRET_KEY,
        base_addresses={"api": settings.STRIPE_API_BASE},
        http_client=stripe.RequestsClient(timeout=STRIPE_TIMEOUT),
    )


def _session_params(order: Order, *, cancel_url: str, request=None) -> dict:
    currency = order.currency.lower()
    line_items = [
        {
            "price_data": {
                "currency": currency,
                "unit_amount": line.price,
                "product_data": {
                    "name": f"{line.name} – {line.variant_name}" if line.variant_name else line.name
                },
            },
            "quantity": line.quantity,
        }
        for line in order.lines.all()
    ]
    params = {
        "mode": "payment",
        "line_items": line_items,
        "client_reference_id": str(order.pk),
        "metadata": {"order_id": str(order.pk), "order_number": str(order.number)},
        "success_url": order_page_url(order, request),
        "cancel_url": cancel_url,
    }
    if order.email:
        params["customer_email"] = order.email
    return params


def checkout_start(*, item: CheckoutItem, email: str = "", request=None) -> CheckoutStart:
    """A pending stripe order for one `item` and its Checkout Session; the buyer goes to the
    returned `url`. Stripe failing cancels the order and raises `checkout.unavailable`."""
    if not checkout_enabled():
        raise ServiceError("Stripe Checkout is not configured.", code="checkout.unavailable")
    order = order_create(
        email=email,
        lines=[LineInput(product=item.product, variant=item.variant)],
        currency=item.currency,
        channel=Order.Channel.STRIPE,
        allow_blank_email=True,
    )
    cancel_url = site_url(request) + reverse("buy", args=[item.id])
    try:
        session = _client().v1.checkout.sessions.create(
            params=_session_params(order, cancel_url=cancel_url, request=request),
            options={"idempotency_key": f"checkout-{order.pk}"},
        )
        session_id, url = getattr(session, "id", None), getattr(session, "url", None)
        if not session_id or not url:
            raise stripe.APIError("The Checkout Session has no id or url.")
    except stripe.StripeError as exc:
        logger.warning("Stripe Checkout failed for order %s: %s", order.pk, exc)
        order_cancel(order=order)
        raise ServiceError(
            "The payment provider is unavailable; nothing was charged. Please try again later.",
            code="checkout.unavailable",
        ) from exc
    order_link_external(order=order, external_id=session_id)
    return CheckoutStart(order=order, url=url)


def stripe_event_receive(*, payload: bytes, signature: str | None) -> tuple[ChannelEvent, bool]:
    """Verify a webhook from Stripe (`Stripe-Signature` over the raw body, with
    STRIPE_WEBHOOK_SECRET) and store it in the inbox once; (event, created). A bad or
    missing signature raises `stripe_event.unverified` and stores nothing."""
    try:
        event = stripe.Webhook.construct_event(payload, signature, settings.STRIPE_WEBHOOK_SECRET)
    except stripe.SignatureVerificationError as exc:
        raise ServiceError(
            "The Stripe-Signature header is missing or does not match the payload.",
            code="stripe_event.unverified",
        ) from exc
    except ValueError as exc:  # signed, but not a JSON event
        raise ServiceError(
            "The payload is not a Stripe event.", code="stripe_event.malformed"
        ) from exc
    data = event.to_dict(for_json=True)
    if not data.get("id") or not data.get("type") or not isinstance(data.get("data"), dict):
        raise ServiceError("The payload is not a Stripe event.", code="stripe_event.malformed")
    return channel_event_receive(
        channel=Order.Channel.STRIPE,
        event_id=data["id"],
        event_type=data["type"],
        payload=data,
    )


# --- The inbox's handler ----------------------------------------------------------------------


def event_process(event: ChannelEvent) -> Outcome:
    """Act on one stored Stripe event (see the module's rules); idempotent."""
    obj = (event.payload.get("data") or {}).get("object") or {}
    handler = _HANDLERS.get(event.type)
    if handler is None:
        return Outcome(Status.IGNORED, error=f"Not an event the store acts on: {event.type}.")
    return handler(obj)


def _session_order(session: dict) -> Order | None:
    """The stripe order the session was made for: its id is the session's
    client_reference_id and its external_id the session's id."""
    try:
        order_id = uuid.UUID(str(session.get("client_reference_id")))
    except ValueError:
        return None
    return Order.objects.filter(
        pk=order_id, channel=Order.Channel.STRIPE, external_id=str(session.get("id"))
    ).first()


def _no_session_order(session: dict) -> Outcome:
    return Outcome(
        Status.UNMATCHED,
        error=(
            f"No stripe order {session.get('client_reference_id')!r} "
            f"with Checkout Session {session.get('id')!r}."
        ),
    )


def _payment_intent_id(value) -> str:
    if isinstance(value, dict):  # expanded
        value = value.get("id")
    return str(value or "")


def _session_paid(session: dict) -> Outcome:
    order = _session_order(session)
    if order is None:
        return _no_session_order(session)
    if session.get("payment_status") not in PAID_SESSION_STATUSES:
        return Outcome(Status.PROCESSED, order=order)  # paid later (async payment methods)
    details = session.get("customer_details") or {}
    types = session.get("payment_method_types") or []
    order_pay(
        order=order,
        email=details.get("email") or session.get("customer_email") or "",
        tax=(session.get("total_details") or {}).get("amount_tax") or 0,
        payment_method=str(types[0]) if types else "card",
        payment_id=_payment_intent_id(session.get("payment_intent")),
    )
    # A refund or dispute delivered before this completion waited unmatched: now it matches.
    if order.payment_id:
        channel_events_wake(
            channel=Order.Channel.STRIPE,
            types=["charge.refunded", "charge.dispute.created"],
            payload__data__object__payment_intent=order.payment_id,
        )
    return Outcome(Status.PROCESSED, order=order)


def _session_failed(session: dict) -> Outcome:
    order = _session_order(session)
    if order is None:
        return _no_session_order(session)
    if order.status == Order.Status.PENDING:
        order_cancel(order=order)
    return Outcome(Status.PROCESSED, order=order)


def _payment_order(payment_intent) -> Order | None:
    payment_id = _payment_intent_id(payment_intent)
    if not payment_id:
        return None
    return Order.objects.filter(channel=Order.Channel.STRIPE, payment_id=payment_id).first()


def _no_payment_order(obj: dict) -> Outcome:
    return Outcome(
        Status.UNMATCHED,
        error=f"No stripe order paid by PaymentIntent {obj.get('payment_intent')!r}.",
    )


def _charge_refunded(charge: dict) -> Outcome:
    order = _payment_order(charge.get("payment_intent"))
    if order is None:
        return _no_payment_order(charge)
    amount = charge.get("amount")
    refunded = charge.get("amount_refunded") or 0
    if charge.get("refunded") or (amount is not None and refunded >= amount):
        order_refund(order=order)
    elif refunded > order.refunded_total:
        order_refund(order=order, amount=refunded - order.refunded_total)
    return Outcome(Status.PROCESSED, order=order)


def _dispute_created(dispute: dict) -> Outcome:
    order = _payment_order(dispute.get("payment_intent"))
    if order is None:
        return _no_payment_order(dispute)
    order_dispute(order=order)
    return Outcome(Status.PROCESSED, order=order)


_HANDLERS = {
    "checkout.session.completed": _session_paid,
    "checkout.session.async_payment_succeeded": _session_paid,
    "checkout.session.async_payment_failed": _session_failed,
    "checkout.session.expired": _session_failed,
    "charge.refunded": _charge_refunded,
    "charge.dispute.created": _dispute_created,
}
