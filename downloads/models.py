"""The domain: what is sold, the stored files, orders, and the buyers' right to download.

Rules that protect buyers live in the database as constraints (a Download has exactly one
of media or url, counts never go negative, one grant per order line and download) and in
`on_delete=PROTECT` wherever a cascade would lose a buyer's access or the download log.
"""

import secrets
import uuid
from dataclasses import dataclass
from pathlib import PurePosixPath

from django.conf import settings
from django.db import models
from django.db.models import F, Q
from django.utils import timezone
from django.utils.text import get_valid_filename

from accounts.models import normalize_email


def new_order_token() -> str:
    """128 bits from `secrets`, 32 hex characters, like the ids in Fileflare's order URLs."""
    return secrets.token_hex(16)


def new_grant_token() -> str:
    """256 bits from `secrets`, URL-safe."""
    return secrets.token_urlsafe(32)


def media_upload_to(instance: "Media", filename: str) -> str:
    """Storage keys that cannot collide: a fresh UUID folder per stored file."""
    name = get_valid_filename(PurePosixPath(filename).name)[-120:] or "file"
    return f"media/{uuid.uuid4().hex}/{name}"


class TimeStamped(models.Model):
    created_at = models.DateTimeField(default=timezone.now, editable=False, db_index=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        abstract = True


class Product(TimeStamped):
    """A thing sold. Limits left empty fall back to the store's defaults."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    name = models.CharField(max_length=255)
    sku = models.CharField(max_length=100, blank=True, db_index=True)
    vendor = models.CharField(max_length=255, blank=True, db_index=True)
    tags = models.JSONField(default=list, blank=True)
    description = models.TextField(blank=True)
    price = models.PositiveBigIntegerField(
        default=0, help_text="In minor units of the store's currency (cents; yen have none)."
    )
    external_id = models.BigIntegerField(
        null=True, blank=True, db_index=True, help_text="The upstream storefront's product id."
    )
    download_limit = models.PositiveIntegerField(
        null=True,
        blank=True,
        help_text="Downloads per file and order. Empty: the store default; 0: unlimited.",
    )
    download_expiry_days = models.PositiveIntegerField(
        null=True,
        blank=True,
        help_text="Days from payment until downloads expire. Empty: the store default; 0: never.",
    )
    archived = models.BooleanField(default=False, db_index=True)
    archived_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["name", "id"]

    def __str__(self):
        return self.name


class Variant(TimeStamped):
    """A purchasable option of a product (format, edition, licence)."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    product = models.ForeignKey(Product, on_delete=models.CASCADE, related_name="variants")
    name = models.CharField(max_length=255)
    sku = models.CharField(max_length=100, blank=True, db_index=True)
    external_id = models.BigIntegerField(null=True, blank=True, db_index=True)
    price = models.PositiveBigIntegerField(
        null=True,
        blank=True,
        help_text="In minor units. Empty: the product's price.",
    )
    position = models.PositiveIntegerField(default=0)

    class Meta:
        ordering = ["product_id", "position", "name"]

    def __str__(self):
        return f"{self.product.name} – {self.name}" if self.product_id else self.name

    @property
    def effective_price(self) -> int:
        """What one unit costs: the variant's own price, else its product's."""
        return self.product.price if self.price is None else self.price


class Media(TimeStamped):
    """One stored file. `filename` keeps the original name (storage keys are sanitised)."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    file = models.FileField(upload_to=media_upload_to, max_length=255)
    filename = models.CharField(max_length=255)
    content_type = models.CharField(max_length=255, default="application/octet-stream")
    byte_size = models.PositiveBigIntegerField(default=0)
    sha256 = models.CharField(max_length=64, blank=True)

    class Meta:
        ordering = ["-created_at"]
        verbose_name_plural = "media"

    def __str__(self):
        return self.filename

    @property
    def key(self) -> str:
        return self.file.name


class Download(TimeStamped):
    """A deliverable: a Media or an external URL, placed on a product (optionally one of its
    variants) or kept without a product for attaching to single orders."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    product = models.ForeignKey(
        Product, null=True, blank=True, on_delete=models.CASCADE, related_name="downloads"
    )
    variant = models.ForeignKey(
        Variant, null=True, blank=True, on_delete=models.CASCADE, related_name="downloads"
    )
    media = models.ForeignKey(
        Media, null=True, blank=True, on_delete=models.PROTECT, related_name="downloads"
    )
    url = models.URLField(max_length=2048, null=True, blank=True)
    name = models.CharField(
        max_length=255,
        null=True,
        blank=True,
        help_text="Shown to customers; required for a URL.",
    )
    title = models.CharField(max_length=255, null=True, blank=True)
    alt = models.CharField(max_length=255, null=True, blank=True)
    position = models.PositiveIntegerField(default=0)
    archived = models.BooleanField(default=False, db_index=True)
    archived_at = models.DateTimeField(null=True, blank=True)
    deliver_to_existing_orders = models.BooleanField(
        default=False,
        help_text="Also give this file to every paid, unrefunded order of the product.",
    )
    file_updated_at = models.DateTimeField(
        null=True, blank=True, help_text="When the file was last replaced by a new version."
    )

    class Meta:
        ordering = ["position", "created_at", "id"]
        constraints = [
            models.CheckConstraint(
                condition=(Q(media__isnull=False) & Q(url__isnull=True))
                | (Q(media__isnull=True) & Q(url__isnull=False)),
                name="download_media_xor_url",
                violation_error_message="A download has either a media file or a URL, not both.",
            ),
            models.CheckConstraint(
                condition=Q(url__isnull=True) | (Q(name__isnull=False) & ~Q(name="")),
                name="download_url_needs_name",
                violation_error_message="A download with a URL needs a name.",
            ),
            models.CheckConstraint(
                condition=Q(variant__isnull=True) | Q(product__isnull=False),
                name="download_variant_needs_product",
            ),
        ]

    def __str__(self):
        return self.display_name

    @property
    def display_name(self) -> str:
        return self.name_shown(
            name=self.name,
            filename=self.media.filename if self.media_id is not None else None,
            url=self.url,
            pk=self.id,
        )

    @staticmethod
    def name_shown(*, name, filename, url, pk) -> str:
        """What buyers see a download called: its name, else the file's name, else the URL."""
        return name or filename or url or str(pk)

    @property
    def is_file(self) -> bool:
        return self.media_id is not None


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
    # tests/downloads/test_models.py checks that they agree.

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


class DownloadGrant(TimeStamped):
    """The right of one order (line) to one Download, with a limit and an expiry.

    `download_count` only moves through the conditional UPDATE in
    `grant_consume`, so the database decides whether a download is allowed.
    """

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    token = models.CharField(max_length=64, unique=True, default=new_grant_token, editable=False)
    order = models.ForeignKey(Order, on_delete=models.CASCADE, related_name="grants")
    line = models.ForeignKey(
        OrderLine, null=True, blank=True, on_delete=models.CASCADE, related_name="grants"
    )
    download = models.ForeignKey(Download, on_delete=models.PROTECT, related_name="grants")
    download_count = models.PositiveIntegerField(default=0)
    download_limit = models.PositiveIntegerField(
        null=True, blank=True, help_text="Empty: unlimited."
    )
    expires_at = models.DateTimeField(null=True, blank=True, help_text="Empty: never.")
    revoked_at = models.DateTimeField(null=True, blank=True)
    last_downloaded_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["created_at", "id"]
        constraints = [
            models.CheckConstraint(
                condition=Q(download_count__gte=0), name="grant_count_not_negative"
            ),
            models.CheckConstraint(
                condition=Q(download_limit__isnull=True) | Q(download_limit__gte=1),
                name="grant_limit_positive",
            ),
            # NULL lines are distinct in a plain unique index, hence two partial ones.
            models.UniqueConstraint(
                fields=["order", "line", "download"],
                condition=Q(line__isnull=False),
                name="grant_unique_per_line_download",
            ),
            models.UniqueConstraint(
                fields=["order", "download"],
                condition=Q(line__isnull=True),
                name="grant_unique_per_order_download",
            ),
        ]

    def __str__(self):
        return f"{self.order} – {self.download}"

    # A grant's availability, written once. REFUSAL_ORDER lists the reasons a grant cannot be
    # downloaded, in the order they are reported (a revoked grant that also ran out says
    # "revoked"); `refusal_q` is each one as a filter (list filters, and the conditional
    # UPDATE through `available_q`) and `refusal()` the same conditions on a loaded row. The
    # PostgreSQL statement in services/consume.py must stay hand-written SQL for speed;
    # tests/downloads/test_models.py proves all of them agree on every state, on SQLite and
    # PostgreSQL. What enforces the rule is the conditional UPDATE, never a read.

    @staticmethod
    def refusal_q(reason: str, now) -> Q:
        """The grants refused for `reason` (a DownloadEvent.Outcome refusal) at `now`."""
        if reason == DownloadEvent.Outcome.REVOKED:
            return Q(revoked_at__isnull=False)
        if reason == DownloadEvent.Outcome.EXPIRED:
            return Q(expires_at__isnull=False, expires_at__lte=now)
        if reason == DownloadEvent.Outcome.LIMIT_REACHED:
            return Q(download_limit__isnull=False, download_count__gte=F("download_limit"))
        raise ValueError(f"not a refusal: {reason!r}")

    @staticmethod
    def available_q(now) -> Q:
        """The grants that may be downloaded at `now`: refused for no reason. It is the WHERE
        clause of the conditional UPDATE that takes a download."""
        available = Q()
        for reason in REFUSAL_ORDER:
            available &= ~DownloadGrant.refusal_q(reason, now)
        return available

    def refusal(self, now=None) -> str | None:
        """Why this loaded grant cannot be downloaded at `now` (a DownloadEvent.Outcome), or None."""
        if self.revoked_at is not None:
            return DownloadEvent.Outcome.REVOKED
        if self.expires_at is not None and self.expires_at <= (now or timezone.now()):
            return DownloadEvent.Outcome.EXPIRED
        if self.download_limit is not None and self.download_count >= self.download_limit:
            return DownloadEvent.Outcome.LIMIT_REACHED
        return None

    @property
    def refusal_labels(self) -> "RefusalLabels | None":
        """The words for why this grant cannot be downloaded now, or None when it can."""
        reason = self.refusal()
        return REFUSAL_LABELS[reason] if reason else None

    @property
    def is_revoked(self) -> bool:
        return self.revoked_at is not None

    @property
    def downloads_remaining(self) -> int | None:
        if self.download_limit is None:
            return None
        return max(self.download_limit - self.download_count, 0)


class DownloadEvent(models.Model):
    """One download attempt on a grant, for support and payment disputes."""

    class Outcome(models.TextChoices):
        SERVED = "served", "Served"
        LIMIT_REACHED = "limit_reached", "Limit reached"
        EXPIRED = "expired", "Expired"
        REVOKED = "revoked", "Revoked"
        FAILED = "failed", "Failed"

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    grant = models.ForeignKey(DownloadGrant, on_delete=models.PROTECT, related_name="events")
    at = models.DateTimeField(default=timezone.now, db_index=True)
    ip = models.GenericIPAddressField(null=True, blank=True)
    user_agent = models.CharField(max_length=512, blank=True)
    outcome = models.CharField(max_length=16, choices=Outcome.choices, db_index=True)

    class Meta:
        ordering = ["-at", "-id"]
        indexes = [models.Index(fields=["grant", "at"], name="event_grant_at")]

    def __str__(self):
        return f"{self.outcome} at {self.at:%Y-%m-%d %H:%M}"


# The reasons a grant is refused, in the order `DownloadGrant.refusal` reports them.
REFUSAL_ORDER = (
    DownloadEvent.Outcome.REVOKED,
    DownloadEvent.Outcome.EXPIRED,
    DownloadEvent.Outcome.LIMIT_REACHED,
)


@dataclass(frozen=True)
class RefusalLabels:
    """The words for one refusal, for each place that shows it."""

    state: str  # the back office's name of the state ("used up")
    filter: str  # the back office's list filter parameter ("used_up")
    title: str  # the title of the buyer's 410 page
    reason: str  # the buyer's order page, beside the disabled button


# The one map of refusal labels: the download endpoint, the order page and the admin read it.
REFUSAL_LABELS = {
    DownloadEvent.Outcome.REVOKED: RefusalLabels(
        state="revoked", filter="revoked", title="Access revoked", reason="Access revoked"
    ),
    DownloadEvent.Outcome.EXPIRED: RefusalLabels(
        state="expired",
        filter="expired",
        title="Download expired",
        reason="Download period ended",
    ),
    DownloadEvent.Outcome.LIMIT_REACHED: RefusalLabels(
        state="used up",
        filter="used_up",
        title="Download limit reached",
        reason="Download limit reached",
    ),
}


class MediaUpload(models.Model):
    """A direct upload in progress: the client sends the bytes straight to the storage (a
    presigned S3 POST, or the app's signed upload endpoint on local storage), then completes."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    key = models.CharField(max_length=255, unique=True)
    filename = models.CharField(max_length=255)
    content_type = models.CharField(max_length=255, default="application/octet-stream")
    byte_size = models.PositiveBigIntegerField()
    created_at = models.DateTimeField(default=timezone.now, editable=False)
    expires_at = models.DateTimeField()
    completed_at = models.DateTimeField(null=True, blank=True)
    media = models.OneToOneField(
        Media, null=True, blank=True, on_delete=models.SET_NULL, related_name="upload"
    )

    class Meta:
        ordering = ["-created_at"]

    def __str__(self):
        return self.filename


class DownloadVersion(models.Model):
    """One past or current file of a Download: which media (or URL), when, by whom, and why."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    download = models.ForeignKey(Download, on_delete=models.CASCADE, related_name="versions")
    media = models.ForeignKey(
        Media, null=True, blank=True, on_delete=models.PROTECT, related_name="versions"
    )
    url = models.URLField(max_length=2048, null=True, blank=True)
    changelog = models.CharField(max_length=500, blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL
    )
    created_at = models.DateTimeField(default=timezone.now, db_index=True)
    notify_buyers = models.BooleanField(default=False)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self):
        return f"{self.download} @ {self.created_at:%Y-%m-%d %H:%M}"


class Backfill(models.Model):
    """Delivering a Download to the existing orders of its product, in resumable batches.

    `cursor` is the last order number processed, so a crashed run resumes where it stopped.
    """

    class Status(models.TextChoices):
        PENDING = "pending", "Pending"
        RUNNING = "running", "Running"
        DONE = "done", "Done"
        FAILED = "failed", "Failed"

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    download = models.ForeignKey(Download, on_delete=models.CASCADE, related_name="backfills")
    # Set: a run that emails the buyers holding this Download about a new version (no grants).
    version = models.ForeignKey(
        "DownloadVersion",
        null=True,
        blank=True,
        on_delete=models.CASCADE,
        related_name="backfills",
    )
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.PENDING)
    notify_buyers = models.BooleanField(default=False)
    cursor = models.PositiveBigIntegerField(default=0)
    orders_seen = models.PositiveIntegerField(default=0)
    grants_created = models.PositiveIntegerField(default=0)
    emails_sent = models.PositiveIntegerField(default=0)
    error = models.TextField(blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self):
        return f"Backfill of {self.download} ({self.status})"


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


class WebhookEndpoint(TimeStamped):
    """A merchant's receiver of events, signed with its own secret (HMAC-SHA256)."""

    class EventType(models.TextChoices):
        ORDER_CREATED = "order.created"
        ORDER_PAID = "order.paid"
        ORDER_REFUNDED = "order.refunded"
        GRANT_CREATED = "grant.created"
        GRANT_LIMIT_REACHED = "grant.limit_reached"
        GRANT_REVOKED = "grant.revoked"
        DOWNLOAD_SERVED = "download.served"
        DOWNLOAD_VERSION_CREATED = "download.version_created"

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    url = models.URLField(max_length=2048)
    description = models.CharField(max_length=255, blank=True)
    secret = models.CharField(max_length=100, default=new_grant_token, editable=False)
    event_types = models.JSONField(default=list, help_text="Empty: every event.")
    is_active = models.BooleanField(default=True)

    class Meta:
        ordering = ["created_at"]

    def __str__(self):
        return self.url


class WebhookDelivery(models.Model):
    """One event for one endpoint; its id is the idempotency key receivers see."""

    class Status(models.TextChoices):
        PENDING = "pending", "Pending"
        DELIVERED = "delivered", "Delivered"
        FAILED = "failed", "Failed (gave up)"

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    endpoint = models.ForeignKey(
        WebhookEndpoint, on_delete=models.CASCADE, related_name="deliveries"
    )
    event_type = models.CharField(max_length=40, db_index=True)
    payload = models.JSONField()
    status = models.CharField(
        max_length=10, choices=Status.choices, default=Status.PENDING, db_index=True
    )
    attempts = models.PositiveIntegerField(default=0)
    created_at = models.DateTimeField(default=timezone.now, db_index=True)
    next_attempt_at = models.DateTimeField(null=True, blank=True)
    delivered_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]
        verbose_name_plural = "webhook deliveries"

    def __str__(self):
        return f"{self.event_type} → {self.endpoint}"


class WebhookAttempt(models.Model):
    """One HTTP attempt of a delivery, for the delivery log."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    delivery = models.ForeignKey(
        WebhookDelivery, on_delete=models.CASCADE, related_name="attempt_log"
    )
    at = models.DateTimeField(default=timezone.now)
    status_code = models.PositiveSmallIntegerField(null=True, blank=True)
    error = models.CharField(max_length=500, blank=True)
    duration_ms = models.PositiveIntegerField(default=0)

    class Meta:
        ordering = ["-at"]

    def __str__(self):
        return f"{self.status_code or self.error} at {self.at:%Y-%m-%d %H:%M:%S}"


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
