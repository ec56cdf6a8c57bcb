"""Orders: what was bought, by whom, through which channel, for how much; the emails about
an order's files; and the inbox of sales channels' webhooks.

Rules the database keeps: numbers are unique per numbering (the store's own, Shopify's),
one order per (channel, external_id), refunds stay within the total and the quantity, a
channel event is stored once.
"""

import secrets
import uuid

from django.conf import settings
from django.db import models
from django.db.models import F, Q
from django.utils import timezone

from accounts.models import normalize_email

from .base import TimeStamped
from .catalogue import Download, Product, Variant


def new_order_token() -> str:
    """128 bits from `secrets`, 32 hex characters, like the ids in Fileflare's order URLs."""
    return secrets.token_hex(16)


class Order(TimeStamped):
    """A purchase. `access_token` is the secret in the buyer's order page URL.

    Amounts are integers in minor units of `currency` (see downloads.money). `channel` and
    `external_id` say where the sale happened; one order per (channel, external_id).
    """

    class Status(models.TextChoices):
        PENDING = "pending", "Pending"
        PAID = "paid", "Paid"
        REFUNDED = "refunded", "Refunded"
        CANCELLED = "cancelled", "Cancelled"

    class Channel(models.TextChoices):
        API = "api", "API"
        ADMIN = "admin", "Admin"
        STRIPE = "stripe", "Stripe Checkout"
        SHOPIFY = "shopify", "Shopify"

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    # Unique per numbering: the store's own (api, admin, stripe) and Shopify's, which keeps
    # the number its buyers see (see Meta.constraints).
    number = models.PositiveBigIntegerField(db_index=True)
    customer = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="orders",
    )
    # Blank only on a pending Checkout order, until the buyer types it at Stripe.
    email = models.EmailField(db_index=True, blank=True)
    access_token = models.CharField(
        max_length=64, unique=True, default=new_order_token, editable=False
    )
    status = models.CharField(
        max_length=10, choices=Status.choices, default=Status.PENDING, db_index=True
    )
    channel = models.CharField(
        max_length=10, choices=Channel.choices, default=Channel.API, db_index=True
    )
    external_id = models.CharField(
        max_length=255,
        null=True,
        blank=True,
        help_text="The order's id where the sale happened (Shopify order id, Checkout Session).",
    )
    currency = models.CharField(max_length=3, default="USD")
    subtotal = models.PositiveBigIntegerField(default=0)
    tax = models.PositiveBigIntegerField(default=0)
    total = models.PositiveBigIntegerField(default=0)
    refunded_total = models.PositiveBigIntegerField(default=0)
    payment_method = models.CharField(
        max_length=100, blank=True, help_text="How the buyer paid, as the channel reported it."
    )
    payment_id = models.CharField(
        max_length=255,
        blank=True,
        db_index=True,
        help_text="The payment's id at the channel (Stripe PaymentIntent), to match refunds.",
    )
    placed_at = models.DateTimeField(default=timezone.now, db_index=True)
    paid_at = models.DateTimeField(null=True, blank=True)
    refunded_at = models.DateTimeField(null=True, blank=True)
    disputed_at = models.DateTimeField(null=True, blank=True)
    email_sent_at = models.DateTimeField(null=True, blank=True)
    downloads = models.ManyToManyField(
        Download,
        blank=True,
        related_name="attached_orders",
        help_text="Files for this order only, beyond those of its products.",
    )

    class Meta:
        ordering = ["-placed_at", "-number"]
        constraints = [
            models.UniqueConstraint(
                fields=["number"],
                condition=~Q(channel="shopify"),
                name="order_number_unique",
            ),
            models.UniqueConstraint(
                fields=["number"],
                condition=Q(channel="shopify"),
                name="order_number_unique_shopify",
            ),
            models.UniqueConstraint(
                fields=["channel", "external_id"],
                condition=Q(external_id__isnull=False),
                name="order_unique_per_channel_external_id",
            ),
            models.CheckConstraint(
                condition=Q(refunded_total__lte=F("total")), name="order_refund_within_total"
            ),
        ]

    def __str__(self):
        return f"#{self.number}"

    @property
    def paid_via(self) -> str:
        """How the buyer paid, for the receipt: the sales channel that took the payment and
        the method it reported ("Stripe Checkout (card)"); an order made through the API or
        the admin names only the method, if one was recorded."""
        if self.channel in (self.Channel.API, self.Channel.ADMIN):
            return self.payment_method
        label = self.get_channel_display()
        return f"{label} ({self.payment_method})" if self.payment_method else label

    # Who owns an order, written once: the customer it is linked to, or the account whose
    # email it carries (emails are stored normalised, see accounts.models.normalize_email).
    # `owned_by_q` is the rule as a filter, `is_owned_by` the same rule on a loaded order;
    # tests/downloads/models/test_orders.py checks that they agree.

    @staticmethod
    def owned_by_q(user) -> Q:
        """The orders `user` owns, as a filter (nothing for an anonymous user)."""
        if not user.is_authenticated:
            return Q(pk__in=[])
        return Q(customer_id=user.pk) | Q(email=normalize_email(user.email))

    def is_owned_by(self, user) -> bool:
        """Whether `user` owns this order (never an anonymous user)."""
        return user.is_authenticated and (
            self.customer_id == user.pk or self.email == normalize_email(user.email)
        )


class OrderLine(models.Model):
    """One line of an order; name and sku are snapshots taken when the order was placed."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    order = models.ForeignKey(Order, on_delete=models.CASCADE, related_name="lines")
    product = models.ForeignKey(Product, on_delete=models.PROTECT, related_name="order_lines")
    variant = models.ForeignKey(
        Variant, null=True, blank=True, on_delete=models.PROTECT, related_name="order_lines"
    )
    name = models.CharField(max_length=255)
    variant_name = models.CharField(max_length=255, blank=True)
    sku = models.CharField(max_length=100, blank=True)
    quantity = models.PositiveIntegerField(default=1)
    price = models.PositiveBigIntegerField(default=0, help_text="Unit price in minor units.")
    total = models.PositiveBigIntegerField(
        default=0, help_text="What the line cost: price × quantity less its discounts."
    )
    external_id = models.CharField(
        max_length=255,
        blank=True,
        help_text="The channel's line item id (Shopify refunds name it).",
    )
    position = models.PositiveIntegerField(default=0)
    refunded_quantity = models.PositiveIntegerField(default=0)
    refunded_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["order_id", "position", "id"]
        constraints = [
            models.CheckConstraint(condition=Q(quantity__gte=1), name="orderline_quantity_min_1"),
            models.CheckConstraint(
                condition=Q(refunded_quantity__lte=F("quantity")),
                name="orderline_refund_within_quantity",
            ),
        ]

    def __str__(self):
        return f"{self.quantity} × {self.name}"


class OrderNotification(models.Model):
    """An email told a buyer about a change to an order's files; unique so it is sent once."""

    class Kind(models.TextChoices):
        NEW_VERSION = "new_version", "New version of a file"
        NEW_FILE = "new_file", "New file added"

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    order = models.ForeignKey(Order, on_delete=models.CASCADE, related_name="notifications")
    kind = models.CharField(max_length=16, choices=Kind.choices)
    subject_id = models.UUIDField(help_text="The version or download the email was about.")
    created_at = models.DateTimeField(default=timezone.now)
    sent_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            models.UniqueConstraint(
                fields=["order", "kind", "subject_id"], name="notification_once_per_change"
            )
        ]
        # The sender walks the notifications of one change (kind + subject) still unsent.
        indexes = [models.Index(fields=["subject_id", "kind"], name="notification_subject")]

    def __str__(self):
        return f"{self.get_kind_display()} for {self.order}"


class ChannelEvent(models.Model):
    """One verified webhook from a sales channel, kept before it is acted on (the inbox, the
    mirror of the webhook outbox): processed in the background, idempotently, and processed
    again from the admin when it could not be matched or failed."""

    class Status(models.TextChoices):
        RECEIVED = "received", "Received"
        PROCESSED = "processed", "Processed"
        IGNORED = "ignored", "Ignored"
        UNMATCHED = "unmatched", "Unmatched"
        FAILED = "failed", "Failed"

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    channel = models.CharField(max_length=10, choices=Order.Channel.choices, db_index=True)
    event_id = models.CharField(max_length=255, help_text="The channel's id of this delivery.")
    type = models.CharField(max_length=100, db_index=True)
    payload = models.JSONField()
    status = models.CharField(
        max_length=10, choices=Status.choices, default=Status.RECEIVED, db_index=True
    )
    error = models.TextField(blank=True)
    order = models.ForeignKey(
        Order, null=True, blank=True, on_delete=models.SET_NULL, related_name="channel_events"
    )
    attempts = models.PositiveIntegerField(default=0)
    received_at = models.DateTimeField(default=timezone.now, db_index=True)
    processed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-received_at"]
        constraints = [
            models.UniqueConstraint(fields=["channel", "event_id"], name="channel_event_once")
        ]

    def __str__(self):
        return f"{self.get_channel_display()} {self.type} ({self.status})"
