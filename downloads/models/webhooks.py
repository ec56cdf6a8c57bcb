"""Webhooks out: the merchants' endpoints, the outbox of deliveries and each attempt."""

import uuid

from django.db import models
from django.utils import timezone

from .base import TimeStamped
from .grants import new_grant_token


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
        LICENSE_KEY_CREATED = "license_key.created"
        LICENSE_KEY_ACTIVATED = "license_key.activated"
        LICENSE_KEY_DEACTIVATED = "license_key.deactivated"

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
