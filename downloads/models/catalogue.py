"""What is sold and what is delivered: products, variants, stored files (media and their
uploads), downloads, a download's versions and its backfills to existing orders.

Rules the database keeps: a Download has exactly one of media or url, a url needs a name, a
variant's download belongs to its product; media in use is PROTECTed.
"""

import uuid
from pathlib import PurePosixPath

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils import timezone
from django.utils.text import get_valid_filename

from .base import TimeStamped


def media_upload_to(instance: "Media", filename: str) -> str:
    """Storage keys that cannot collide: a fresh UUID folder per stored file."""
    name = get_valid_filename(PurePosixPath(filename).name)[-120:] or "file"
    return f"media/{uuid.uuid4().hex}/{name}"


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
    license_keys = models.BooleanField(
        default=False, help_text="Issue a licence key for each unit bought."
    )
    license_activation_limit = models.PositiveIntegerField(
        null=True, blank=True, help_text="Activations per licence key. Empty: unlimited."
    )
    license_expiry_days = models.PositiveIntegerField(
        null=True,
        blank=True,
        help_text="Days from payment until a licence key expires. Empty: never.",
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


DEFAULT_STAMP_TEXT = "Licensed to {email} · Order #{order_number} · {date}"


class StampPosition(models.TextChoices):
    """Where the stamp sits on each page."""

    BOTTOM = "bottom", "Bottom of the page"
    TOP = "top", "Top of the page"


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
    stamp = models.BooleanField(
        default=False,
        help_text="Deliver each buyer a copy of the PDF stamped on every page with stamp_text.",
    )
    stamp_text = models.CharField(
        max_length=255,
        default=DEFAULT_STAMP_TEXT,
        help_text="Placeholders: {email}, {name}, {order_number}, {date}.",
    )
    stamp_position = models.CharField(
        max_length=10, choices=StampPosition.choices, default=StampPosition.BOTTOM
    )
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
