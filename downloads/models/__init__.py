"""The domain's tables, one module per model family, and the rules the database enforces.

Rules that protect buyers live in the database as constraints (a Download has exactly one
of media or url, counts never go negative, one grant per order line and download, one order
per channel and external id) and in `on_delete=PROTECT` wherever a cascade would lose a
buyer's access or the download log. Everything is importable from `downloads.models`
(Django finds the models here; migrations name the token and path functions here).
"""

from .base import TimeStamped
from .catalogue import (
    Backfill,
    Download,
    DownloadVersion,
    Media,
    MediaUpload,
    Product,
    StampPosition,
    Variant,
    media_upload_to,
)
from .grants import (
    REFUSAL_LABELS,
    REFUSAL_ORDER,
    DownloadEvent,
    DownloadGrant,
    RefusalLabels,
    StampedCopy,
    new_grant_token,
    stamped_upload_to,
)
from .licences import LicenseInstance, LicenseKey, canonical_key, key_digest, new_license_key
from .orders import ChannelEvent, Order, OrderLine, OrderNotification, new_order_token
from .webhooks import WebhookAttempt, WebhookDelivery, WebhookEndpoint
from .workers import WorkerHeartbeat

__all__ = [
    "REFUSAL_LABELS",
    "REFUSAL_ORDER",
    "Backfill",
    "ChannelEvent",
    "Download",
    "DownloadEvent",
    "DownloadGrant",
    "DownloadVersion",
    "LicenseInstance",
    "LicenseKey",
    "Media",
    "MediaUpload",
    "Order",
    "OrderLine",
    "OrderNotification",
    "Product",
    "RefusalLabels",
    "StampPosition",
    "StampedCopy",
    "TimeStamped",
    "Variant",
    "WebhookAttempt",
    "WebhookDelivery",
    "WebhookEndpoint",
    "WorkerHeartbeat",
    "canonical_key",
    "key_digest",
    "media_upload_to",
    "new_grant_token",
    "new_license_key",
    "new_order_token",
    "stamped_upload_to",
]
