"""The buyers' right to download: grants with a limit and an expiry, the log of every
attempt, and the one definition of a grant's availability and of the words for a refusal.

Rules the database keeps: counts never go negative, a limit is at least 1 or null, one grant
per order line and download; the log is PROTECTed.
"""

import secrets
import uuid
from dataclasses import dataclass
from pathlib import PurePosixPath

from django.db import models
from django.db.models import F, Q
from django.utils import timezone
from django.utils.text import get_valid_filename
from django.utils.translation import gettext_lazy as _

from .base import TimeStamped
from .catalogue import Download, Media
from .orders import Order, OrderLine


def new_grant_token() -> str:
    """256 bits from `secrets`, URL-safe."""
    return secrets.token_urlsafe(32)


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
    # The free resume of the last counted download (services/consume.py): a Range request
    # not starting at byte 0 is free until `resume_until` while its bytes fit in
    # `resume_bytes_left`, which the same conditional UPDATE decrements.
    resume_until = models.DateTimeField(null=True, blank=True, editable=False)
    resume_bytes_left = models.PositiveBigIntegerField(default=0, editable=False)

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
    # tests/downloads/models/test_grants.py proves all of them agree on every state, on SQLite and
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
# The words are translatable (the buyers' catalogue, locale/); `filter` is a URL parameter.
REFUSAL_LABELS = {
    DownloadEvent.Outcome.REVOKED: RefusalLabels(
        state=_("revoked"),
        filter="revoked",
        title=_("Access revoked"),
        reason=_("Access revoked"),
    ),
    DownloadEvent.Outcome.EXPIRED: RefusalLabels(
        state=_("expired"),
        filter="expired",
        title=_("Download expired"),
        reason=_("Download period ended"),
    ),
    DownloadEvent.Outcome.LIMIT_REACHED: RefusalLabels(
        state=_("used up"),
        filter="used_up",
        title=_("Download limit reached"),
        reason=_("Download limit reached"),
    ),
}


def stamped_upload_to(instance: "StampedCopy", filename: str) -> str:
    """A stamped copy's own key, apart from the media it was made from."""
    name = get_valid_filename(PurePosixPath(filename).name)[-120:] or "file.pdf"
    return f"stamped/{uuid.uuid4().hex}/{name}"


class StampedCopy(models.Model):
    """One buyer's copy of one version (media) of a stamped Download: made in the background,
    kept private on the same storage under its own key, served in place of the media.

    `unstampable` marks a PDF that could not be stamped (encrypted, broken): the buyer gets
    the file as it is, and the merchant sees why.
    """

    class Status(models.TextChoices):
        PENDING = "pending", "Being prepared"
        READY = "ready", "Ready"
        UNSTAMPABLE = "unstampable", "Delivered unstamped"

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    grant = models.ForeignKey(
        DownloadGrant, on_delete=models.CASCADE, related_name="stamped_copies"
    )
    source = models.ForeignKey(
        Media,
        on_delete=models.CASCADE,
        related_name="stamped_copies",
        help_text="The version of the file this copy was made from.",
    )
    status = models.CharField(
        max_length=12, choices=Status.choices, default=Status.PENDING, db_index=True
    )
    file = models.FileField(upload_to=stamped_upload_to, max_length=255, blank=True)
    byte_size = models.PositiveBigIntegerField(default=0)
    sha256 = models.CharField(max_length=64, blank=True)
    error = models.CharField(max_length=500, blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    ready_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]
        verbose_name_plural = "stamped copies"
        constraints = [
            models.UniqueConstraint(fields=["grant", "source"], name="stamped_copy_once")
        ]

    def __str__(self):
        return f"{self.grant} ({self.get_status_display()})"
