"""Licence keys: one per unit bought of a product that issues them, and their activations
(instances) by the buyer's software, in Lemon Squeezy's public licence API shape.

Rules the database keeps: one key per order line and unit; `activation_usage` never goes
below 0 nor above `activation_limit`; it moves only through the conditional UPDATEs in
services/licences.py, so the limit holds under concurrency. A key's status is derived (see
`LicenseKey.status_at`), never stored, so it cannot disagree with the fields it comes from.
"""

import hashlib
import secrets
import uuid

from django.db import models
from django.db.models import F, Q
from django.utils import timezone

from .base import TimeStamped
from .catalogue import Product, Variant
from .orders import Order, OrderLine

# Crockford's base32: no I, L, O or U, so a key read aloud or typed from paper is unambiguous.
KEY_ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
KEY_GROUPS, KEY_GROUP_LENGTH = 4, 7  # 28 characters × 5 bits = 140 bits from `secrets`
_READ_AS = str.maketrans({"O": "0", "I": "1", "L": "1"})


def new_license_key() -> str:
    """`XXXXXXX-XXXXXXX-XXXXXXX-XXXXXXX`: 140 bits from `secrets`, in Crockford's base32."""
    chars = "".join(secrets.choice(KEY_ALPHABET) for _ in range(KEY_GROUPS * KEY_GROUP_LENGTH))
    return "-".join(chars[i : i + KEY_GROUP_LENGTH] for i in range(0, len(chars), KEY_GROUP_LENGTH))


def canonical_key(text) -> str | None:
    """A key as typed (any case, spaces, O for 0, I or L for 1) in its stored form, or None
    when it cannot be one. Pure string work: no database, no timing that depends on keys."""
    if not isinstance(text, str) or len(text) > 100:
        return None
    chars = "".join(ch for ch in text.upper() if ch not in " -\t\r\n").translate(_READ_AS)
    if len(chars) != KEY_GROUPS * KEY_GROUP_LENGTH or any(c not in KEY_ALPHABET for c in chars):
        return None
    return "-".join(chars[i : i + KEY_GROUP_LENGTH] for i in range(0, len(chars), KEY_GROUP_LENGTH))


def key_digest(key: str) -> str:
    """What the public endpoints look a key up by: its SHA-256, so the index lookup's timing
    says nothing about the key's characters (the key itself is then compared with
    `hmac.compare_digest`)."""
    return hashlib.sha256(key.encode()).hexdigest()


class LicenseKey(TimeStamped):
    """A licence key: the right of one unit of an order line to run the seller's software on
    up to `activation_limit` instances until `expires_at`."""

    class Status(models.TextChoices):
        INACTIVE = "inactive", "Inactive"
        ACTIVE = "active", "Active"
        EXPIRED = "expired", "Expired"
        DISABLED = "disabled", "Disabled"

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    key = models.CharField(max_length=40, unique=True, default=new_license_key, editable=False)
    key_hash = models.CharField(max_length=64, unique=True, editable=False)
    order = models.ForeignKey(Order, on_delete=models.CASCADE, related_name="license_keys")
    line = models.ForeignKey(OrderLine, on_delete=models.CASCADE, related_name="license_keys")
    unit = models.PositiveIntegerField(default=1, help_text="Which unit of the line (1, 2, …).")
    product = models.ForeignKey(Product, on_delete=models.PROTECT, related_name="issued_keys")
    variant = models.ForeignKey(
        Variant, null=True, blank=True, on_delete=models.PROTECT, related_name="issued_keys"
    )
    activation_limit = models.PositiveIntegerField(
        null=True, blank=True, help_text="Empty: unlimited."
    )
    activation_usage = models.PositiveIntegerField(default=0)
    expires_at = models.DateTimeField(null=True, blank=True, help_text="Empty: never.")
    disabled_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["created_at", "unit", "id"]
        verbose_name = "licence key"
        constraints = [
            models.UniqueConstraint(fields=["line", "unit"], name="license_key_once_per_unit"),
            models.CheckConstraint(
                condition=Q(activation_usage__gte=0), name="license_usage_not_negative"
            ),
            models.CheckConstraint(
                condition=Q(activation_limit__isnull=True)
                | Q(activation_usage__lte=F("activation_limit")),
                name="license_usage_within_limit",
            ),
        ]

    def __str__(self):
        return self.key

    def save(self, *args, **kwargs):
        self.key_hash = key_digest(self.key)
        super().save(*args, **kwargs)

    # A key's status, written once: disabled, else expired, else active once activated.
    # `status_q` is the same rule as a filter (list filters); tests/downloads/models/
    # test_licences.py proves they agree on every state.

    def status_at(self, now=None) -> str:
        """The key's status at `now`: disabled, expired, active (activated at least once)
        or inactive."""
        return self.status_of(
            disabled_at=self.disabled_at,
            expires_at=self.expires_at,
            activation_usage=self.activation_usage,
            now=now or timezone.now(),
        )

    @classmethod
    def status_of(cls, *, disabled_at, expires_at, activation_usage: int, now) -> str:
        """`status_at` for a key read as plain values (the storefront's rows), no instance."""
        if disabled_at is not None:
            return cls.Status.DISABLED
        if expires_at is not None and expires_at <= now:
            return cls.Status.EXPIRED
        return cls.Status.ACTIVE if activation_usage > 0 else cls.Status.INACTIVE

    @property
    def status(self) -> str:
        return self.status_at()

    @staticmethod
    def status_q(status: str, now) -> Q:
        """The keys whose status is `status` at `now`, as a filter."""
        disabled = Q(disabled_at__isnull=False)
        expired = ~disabled & Q(expires_at__isnull=False, expires_at__lte=now)
        usable = ~disabled & ~Q(expires_at__isnull=False, expires_at__lte=now)
        if status == LicenseKey.Status.DISABLED:
            return disabled
        if status == LicenseKey.Status.EXPIRED:
            return expired
        if status == LicenseKey.Status.ACTIVE:
            return usable & Q(activation_usage__gt=0)
        if status == LicenseKey.Status.INACTIVE:
            return usable & Q(activation_usage=0)
        raise ValueError(f"not a licence status: {status!r}")

    @staticmethod
    def refunded_q() -> Q:
        """The keys of refunded units: every key of a refunded order or line, and of a partly
        refunded line the units past what is still paid for (its highest units)."""
        return (
            Q(order__status=Order.Status.REFUNDED)
            | Q(line__refunded_at__isnull=False)
            | Q(unit__gt=F("line__quantity") - F("line__refunded_quantity"))
        )

    @staticmethod
    def activatable_q(now) -> Q:
        """The keys that may take one more activation at `now`: the WHERE clause of the
        conditional UPDATE that takes one."""
        return (
            Q(disabled_at__isnull=True)
            & (Q(expires_at__isnull=True) | Q(expires_at__gt=now))
            & (Q(activation_limit__isnull=True) | Q(activation_usage__lt=F("activation_limit")))
        )

    @property
    def activations_left(self) -> int | None:
        if self.activation_limit is None:
            return None
        return max(self.activation_limit - self.activation_usage, 0)


class LicenseInstance(models.Model):
    """One activation of a licence key: an install of the seller's software, by name."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    license_key = models.ForeignKey(LicenseKey, on_delete=models.CASCADE, related_name="instances")
    name = models.CharField(max_length=255)
    created_at = models.DateTimeField(default=timezone.now, db_index=True)

    class Meta:
        ordering = ["created_at", "id"]
        verbose_name = "activation"

    def __str__(self):
        return self.name
