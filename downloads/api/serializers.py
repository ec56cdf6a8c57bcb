"""Input and output serializers of the merchant API, for every resource: the catalogue,
media, orders, grants and events, customers, and what comes after the sale (webhook
endpoints and deliveries, a download's versions, backfills).

Inputs are plain serializers that validate and bound every value (so nothing a client sends
can make the database fail) and resolve ids to objects (order lines through
`selectors.line_target`), so a view hands the service objects; outputs render the
vendors' shapes: SureCart's download, EasyCart's DownloadItem (our grant), times as Unix
seconds.
"""

from datetime import UTC, datetime

from django.urls import NoReverseMatch, reverse
from rest_framework import serializers

from downloads import storage
from downloads.emails import order_page_url, site_url
from downloads.models import (
    Download,
    DownloadEvent,
    DownloadGrant,
    Media,
    Order,
    OrderLine,
    Product,
    Variant,
)
from downloads.selectors import line_target
from downloads.services.catalogue import MAX_TAG_LENGTH, MAX_TAGS
from downloads.services.common import MAX_EXPIRY_DAYS
from downloads.services.orders import LineInput
from downloads.services.versions import CHANGELOG_MAX_LENGTH
from downloads.services.webhooks import EVENT_TYPES

from .filters import BIGINT_MAX, BIGINT_MIN, UNIX_MAX, UNIX_MIN

INT_MAX = 2**31 - 1


# --- Fields -------------------------------------------------------------------------------------


class ConstantField(serializers.Field):
    """The `object` of every resource: always the same string."""

    def __init__(self, value: str, **kwargs):
        self.value = value
        kwargs.setdefault("source", "*")
        kwargs.setdefault("read_only", True)
        super().__init__(**kwargs)

    def to_representation(self, value):
        return self.value


class UnixTimeField(serializers.Field):
    """A datetime as Unix seconds (an integer), in and out."""

    default_error_messages = {
        "invalid": "A Unix time in seconds is required.",
        "range": f"Must be between {UNIX_MIN} and {UNIX_MAX}.",
    }

    def to_representation(self, value):
        return int(value.timestamp())

    def to_internal_value(self, data):
        if isinstance(data, bool) or not isinstance(data, int | str):
            self.fail("invalid")
        try:
            seconds = int(data)
        except ValueError:
            self.fail("invalid")
        if not UNIX_MIN <= seconds <= UNIX_MAX:
            self.fail("range")
        return datetime.fromtimestamp(seconds, tz=UTC)


class UUIDRelatedField(serializers.PrimaryKeyRelatedField):
    """A related object by its UUID; a malformed id is a clear 422, not a database error."""

    def __init__(self, **kwargs):
        kwargs.setdefault("pk_field", serializers.UUIDField())
        super().__init__(**kwargs)


def bounded_int(minimum=0, maximum=INT_MAX, **kwargs):
    return serializers.IntegerField(min_value=minimum, max_value=maximum, **kwargs)


def text(max_length=255, **kwargs):
    return serializers.CharField(max_length=max_length, **kwargs)


# --- Errors (schema only) -----------------------------------------------------------------------


class ValidationErrorSerializer(serializers.Serializer):
    attribute = serializers.CharField(allow_null=True)
    code = serializers.CharField()
    message = serializers.CharField()


class ErrorSerializer(serializers.Serializer):
    """The error envelope of every 4xx/5xx answer."""

    http_status = serializers.CharField(help_text="e.g. unprocessable_entity")
    code = serializers.CharField(help_text="Machine-readable, e.g. download.invalid")
    message = serializers.CharField()
    validation_errors = ValidationErrorSerializer(many=True)


class DeletedSerializer(serializers.Serializer):
    id = serializers.CharField()
    object = serializers.CharField()
    deleted = serializers.BooleanField()


# --- Products and variants ----------------------------------------------------------------------


class TimestampsMixin(serializers.Serializer):
    created_at = UnixTimeField()
    updated_at = UnixTimeField()


class ProductSerializer(TimestampsMixin, serializers.Serializer):
    id = serializers.UUIDField()
    object = ConstantField("product")
    name = serializers.CharField()
    sku = serializers.CharField()
    vendor = serializers.CharField()
    tags = serializers.ListField(child=serializers.CharField())
    description = serializers.CharField()
    external_id = serializers.IntegerField(allow_null=True)
    download_limit = serializers.IntegerField(allow_null=True)
    download_expiry_days = serializers.IntegerField(allow_null=True)
    archived = serializers.BooleanField()
    archived_at = UnixTimeField(allow_null=True)


class ProductInputSerializer(serializers.Serializer):
    name = text()
    sku = text(100, allow_blank=True, required=False)
    vendor = text(allow_blank=True, required=False)
    tags = serializers.ListField(
        child=text(MAX_TAG_LENGTH, allow_blank=False), max_length=MAX_TAGS, required=False
    )
    description = text(100_000, allow_blank=True, required=False)
    external_id = bounded_int(BIGINT_MIN, BIGINT_MAX, allow_null=True, required=False)
    download_limit = bounded_int(
        allow_null=True, required=False, help_text="Null: the store default; 0: unlimited."
    )
    download_expiry_days = bounded_int(
        0,
        MAX_EXPIRY_DAYS,
        allow_null=True,
        required=False,
        help_text="Null: store default; 0: never.",
    )
    archived = serializers.BooleanField(required=False)


class VariantSerializer(TimestampsMixin, serializers.Serializer):
    id = serializers.UUIDField()
    object = ConstantField("variant")
    product = serializers.UUIDField(source="product_id")
    name = serializers.CharField()
    sku = serializers.CharField()
    external_id = serializers.IntegerField(allow_null=True)
    price = serializers.IntegerField(help_text="In minor units (cents).")
    position = serializers.IntegerField()


class VariantInputSerializer(serializers.Serializer):
    product = UUIDRelatedField(queryset=Product.objects.all())
    name = text()
    sku = text(100, allow_blank=True, required=False)
    external_id = bounded_int(BIGINT_MIN, BIGINT_MAX, allow_null=True, required=False)
    price = bounded_int(0, BIGINT_MAX, required=False, help_text="In minor units (cents).")
    position = bounded_int(required=False)


class VariantUpdateSerializer(VariantInputSerializer):
    """A variant stays on its product (its downloads and order lines depend on it)."""

    product = None


# --- Media --------------------------------------------------------------------------------------


class MediaSerializer(TimestampsMixin, serializers.Serializer):
    id = serializers.UUIDField()
    object = ConstantField("media")
    filename = serializers.CharField()
    content_type = serializers.CharField()
    byte_size = serializers.IntegerField()
    sha256 = serializers.CharField()
    storage = serializers.SerializerMethodField()
    key = serializers.CharField()

    def get_storage(self, media) -> str:
        return storage.storage_kind()


class MediaCreateSerializer(serializers.Serializer):
    file = serializers.FileField(allow_empty_file=True, use_url=False)
    filename = text(required=False, help_text="Defaults to the uploaded file's name.")
    content_type = text(required=False, help_text="Defaults to a guess from the filename.")

    def validate(self, attrs):
        # Unnamed, the file keeps the name and the type its multipart part was sent with.
        attrs["filename"] = attrs.get("filename") or attrs["file"].name
        attrs["content_type"] = attrs.get("content_type") or attrs["file"].content_type
        return attrs


class MediaUploadStartSerializer(serializers.Serializer):
    filename = text()
    byte_size = bounded_int(0, BIGINT_MAX)
    content_type = text(required=False)


class MediaUploadSerializer(serializers.Serializer):
    """How to send the bytes of a direct upload: `method` to `upload_url` with `fields` as
    form fields before the `file` (POST), or the raw body with `headers` (PUT)."""

    id = serializers.UUIDField()
    object = ConstantField("media_upload")
    upload_url = serializers.URLField()
    method = serializers.ChoiceField(choices=["POST", "PUT"])
    fields = serializers.DictField(child=serializers.CharField())
    headers = serializers.DictField(child=serializers.CharField())
    expires_at = UnixTimeField()


# --- Downloads ----------------------------------------------------------------------------------

DOWNLOAD_EXPANDABLE = ("media", "product", "variant")


class ExpandableField(serializers.Field):
    """An id, or the object itself when the request asked `expand[]=<field>`."""

    def __init__(self, serializer_class, **kwargs):
        self.serializer_class = serializer_class
        kwargs.setdefault("source", "*")
        kwargs.setdefault("allow_null", True)
        super().__init__(**kwargs)

    def to_representation(self, instance):
        related_id = getattr(instance, f"{self.field_name}_id")
        if related_id is None:
            return None
        if self.field_name in self.context.get("expand", ()):
            return self.serializer_class(
                getattr(instance, self.field_name), context=self.context
            ).data
        return str(related_id)


class DownloadSerializer(TimestampsMixin, serializers.Serializer):
    """SureCart's download object."""

    id = serializers.UUIDField()
    object = ConstantField("download")
    alt = serializers.CharField(allow_null=True)
    archived = serializers.BooleanField()
    archived_at = UnixTimeField(allow_null=True)
    name = serializers.CharField(allow_null=True)
    title = serializers.CharField(allow_null=True)
    url = serializers.CharField(allow_null=True)
    media = ExpandableField(MediaSerializer, help_text="Expandable: the media id or object.")
    product = ExpandableField(ProductSerializer, help_text="Expandable: the product id or object.")
    variant = ExpandableField(VariantSerializer, help_text="Expandable: the variant id or object.")
    position = serializers.IntegerField()
    deliver_to_existing_orders = serializers.BooleanField(
        help_text="Also given to the product's existing paid orders (see backfills)."
    )
    file_updated_at = UnixTimeField(
        allow_null=True, help_text="When the file was last replaced by a new version."
    )


class DownloadInputSerializer(serializers.Serializer):
    """Exactly one of `media` or `url`; a `url` needs a `name`."""

    media = UUIDRelatedField(queryset=Media.objects.all(), allow_null=True, required=False)
    url = serializers.URLField(max_length=2048, allow_null=True, allow_blank=True, required=False)
    name = text(allow_null=True, allow_blank=True, required=False)
    title = text(allow_null=True, allow_blank=True, required=False)
    alt = text(allow_null=True, allow_blank=True, required=False)
    product = UUIDRelatedField(queryset=Product.objects.all(), allow_null=True, required=False)
    variant = UUIDRelatedField(
        queryset=Variant.objects.select_related("product"), allow_null=True, required=False
    )
    position = bounded_int(required=False)
    archived = serializers.BooleanField(required=False)
    deliver_to_existing_orders = serializers.BooleanField(
        required=False,
        help_text="true: give this product file to every paid, unrefunded order of the "
        "product, in the background.",
    )


class DownloadCreateSerializer(serializers.Serializer):
    """Schema only: SureCart's `{"download": {...}}`, or the bare object (see schema.py)."""


# --- Orders -------------------------------------------------------------------------------------


class OrderLineSerializer(serializers.Serializer):
    id = serializers.UUIDField()
    object = ConstantField("order_line")
    product = serializers.UUIDField(source="product_id")
    variant = serializers.UUIDField(source="variant_id", allow_null=True)
    name = serializers.CharField()
    variant_name = serializers.CharField()
    sku = serializers.CharField()
    quantity = serializers.IntegerField()
    price = serializers.IntegerField(help_text="Unit price in minor units.")
    refunded_at = UnixTimeField(allow_null=True)


class OrderSerializer(TimestampsMixin, serializers.Serializer):
    id = serializers.UUIDField()
    object = ConstantField("order")
    number = serializers.IntegerField()
    email = serializers.EmailField()
    customer = serializers.UUIDField(source="customer_id", allow_null=True)
    status = serializers.ChoiceField(choices=Order.Status.choices)
    placed_at = UnixTimeField()
    paid_at = UnixTimeField(allow_null=True)
    refunded_at = UnixTimeField(allow_null=True)
    email_sent_at = UnixTimeField(allow_null=True)
    customer_page_url = serializers.SerializerMethodField()
    lines = OrderLineSerializer(many=True)
    downloads = serializers.SerializerMethodField(help_text="Downloads attached to this order.")

    def get_customer_page_url(self, order) -> str:
        return order_page_url(order, self.context.get("request"))

    def get_downloads(self, order) -> list[str]:
        # Read from the prefetch cache (no query per order).
        return [str(download.pk) for download in order.downloads.all()]


def existing_downloads(ids, attribute: str) -> list[Download]:
    """The downloads of `ids`, in their order, or a 422 on `attribute` naming the unknown."""
    found = {download.pk: download for download in Download.objects.filter(pk__in=ids)}
    if missing := [str(pk) for pk in ids if pk not in found]:
        raise serializers.ValidationError(
            {attribute: [f"No such download: {', '.join(missing)}."]}, code="does_not_exist"
        )
    return [found[pk] for pk in ids]


class LineInputSerializer(serializers.Serializer):
    """One of `variant`, `product` or `sku` says what is sold."""

    variant = serializers.UUIDField(required=False, allow_null=True)
    product = serializers.UUIDField(required=False, allow_null=True)
    sku = text(100, required=False, allow_blank=False)
    quantity = bounded_int(1, 1_000_000, required=False, default=1)

    def validate(self, attrs):
        given = [name for name in ("variant", "product", "sku") if attrs.get(name)]
        if len(given) != 1:
            raise serializers.ValidationError(
                "Give exactly one of variant, product or sku.", code="invalid"
            )
        return attrs


class OrderCreateSerializer(serializers.Serializer):
    email = serializers.EmailField(max_length=254)
    number = bounded_int(1, BIGINT_MAX, allow_null=True, required=False)
    status = serializers.ChoiceField(
        choices=[Order.Status.PENDING, Order.Status.PAID], required=False, default="pending"
    )
    placed_at = UnixTimeField(required=False, allow_null=True)
    lines = LineInputSerializer(many=True, allow_empty=False, max_length=500)
    downloads = serializers.ListField(
        child=serializers.UUIDField(), max_length=100, required=False, help_text="Attach these."
    )
    send_email = serializers.BooleanField(required=False, default=True)

    def validate(self, attrs):
        """Resolve the lines to LineInputs and the downloads to objects, in that order."""
        lines = attrs["lines"]
        targets = [
            line_target(
                product_id=line.get("product"), variant_id=line.get("variant"), sku=line.get("sku")
            )
            for line in lines
        ]
        errors = {}
        for index, (line, target) in enumerate(zip(lines, targets, strict=True)):
            if target is None:
                given = next(name for name in ("variant", "product", "sku") if line.get(name))
                errors[index] = {given: [f"No {given} {line[given]}."]}
        if errors:
            raise serializers.ValidationError({"lines": errors}, code="does_not_exist")
        attrs["lines"] = [
            LineInput(product=product, variant=variant, quantity=line["quantity"])
            for line, (product, variant) in zip(lines, targets, strict=True)
        ]
        attrs["downloads"] = existing_downloads(attrs.get("downloads", []), "downloads")
        return attrs


class RefundSerializer(serializers.Serializer):
    line_ids = serializers.ListField(
        child=serializers.UUIDField(),
        max_length=500,
        required=False,
        help_text="Refund only these lines (revoking only their grants); omit for the order.",
    )


class AttachSerializer(serializers.Serializer):
    """`download_ids`, or Fileflare's `asset_ids`."""

    download_ids = serializers.ListField(
        child=serializers.UUIDField(), max_length=100, required=False
    )
    asset_ids = serializers.ListField(
        child=serializers.UUIDField(), max_length=100, required=False, help_text="Fileflare's name."
    )

    def validate(self, attrs):
        ids = [*attrs.get("download_ids", ()), *attrs.get("asset_ids", ())]
        if not ids:
            raise serializers.ValidationError(
                {"download_ids": ["Name at least one download."]}, code="required"
            )
        attrs["downloads"] = existing_downloads(list(dict.fromkeys(ids)), "download_ids")
        return attrs


# --- Grants (EasyCart's DownloadItem) ----------------------------------------------------------


def grant_download_url(grant: DownloadGrant, request=None) -> str:
    """The absolute URL that serves a grant's file (`/downloads/<token>/`)."""
    try:
        path = reverse("downloads:download", args=[grant.token])
    except NoReverseMatch:
        path = f"/downloads/{grant.token}/"
    return site_url(request) + path


class GrantSerializer(TimestampsMixin, serializers.Serializer):
    """EasyCart's DownloadItem fields, plus limit, expiry and revocation."""

    id = serializers.UUIDField()
    object = ConstantField("grant")
    download_id = serializers.CharField(source="id", help_text="EasyCart's name of the id.")
    date_created = serializers.DateTimeField(source="created_at", help_text="ISO 8601 (EasyCart).")
    product_id = serializers.SerializerMethodField()
    order_id = serializers.UUIDField()
    download_count = serializers.IntegerField()
    download_file_name = serializers.SerializerMethodField()
    is_amazon = serializers.SerializerMethodField(help_text="The file is on S3.")
    amazon_key = serializers.SerializerMethodField(help_text="The S3 key, when on S3.")
    download = serializers.UUIDField(source="download_id")
    line = serializers.UUIDField(source="line_id", allow_null=True)
    download_limit = serializers.IntegerField(allow_null=True, help_text="Null: unlimited.")
    downloads_remaining = serializers.IntegerField(allow_null=True)
    expires_at = UnixTimeField(allow_null=True, help_text="Null: never.")
    revoked = serializers.SerializerMethodField()
    revoked_at = UnixTimeField(allow_null=True)
    last_downloaded_at = UnixTimeField(allow_null=True)
    url = serializers.SerializerMethodField(help_text="Serves the file (takes one download).")

    def get_product_id(self, grant) -> str | None:
        product_id = grant.line.product_id if grant.line_id else grant.download.product_id
        return str(product_id) if product_id else None

    def get_download_file_name(self, grant) -> str:
        download = grant.download
        return download.media.filename if download.media_id else (download.name or "")

    def get_is_amazon(self, grant) -> bool:
        return storage.on_s3(grant.download.media if grant.download.media_id else None)

    def get_amazon_key(self, grant) -> str | None:
        return grant.download.media.key if self.get_is_amazon(grant) else None

    def get_revoked(self, grant) -> bool:
        return grant.revoked_at is not None

    def get_url(self, grant) -> str:
        return grant_download_url(grant, self.context.get("request"))


class GrantCreateSerializer(serializers.Serializer):
    order_id = UUIDRelatedField(queryset=Order.objects.all(), source="order")
    download = UUIDRelatedField(queryset=Download.objects.all())
    line = UUIDRelatedField(queryset=OrderLine.objects.all(), required=False, allow_null=True)
    download_count = bounded_int(required=False, default=0)
    download_limit = bounded_int(1, allow_null=True, required=False, help_text="Null: unlimited.")
    expires_at = UnixTimeField(allow_null=True, required=False, help_text="Null: never.")


class GrantUpdateSerializer(serializers.Serializer):
    download_count = bounded_int(required=False)
    download_limit = bounded_int(1, allow_null=True, required=False, help_text="Null: unlimited.")
    expires_at = UnixTimeField(allow_null=True, required=False, help_text="Null: never.")


class GrantExtendSerializer(serializers.Serializer):
    """Either `days` (added to the expiry, or to now when already expired) or `expires_at`."""

    days = bounded_int(1, MAX_EXPIRY_DAYS, required=False)
    expires_at = UnixTimeField(allow_null=True, required=False, help_text="Null: never.")

    def validate(self, attrs):
        if ("days" in attrs) == ("expires_at" in attrs):
            raise serializers.ValidationError(
                {"days": ["Give either days or expires_at."]}, code="required"
            )
        return attrs


# --- Events and customers -----------------------------------------------------------------------


class EventSerializer(serializers.Serializer):
    id = serializers.UUIDField()
    object = ConstantField("event")
    grant = serializers.UUIDField(source="grant_id")
    order = serializers.UUIDField(source="grant.order_id")
    download = serializers.UUIDField(source="grant.download_id")
    at = UnixTimeField()
    ip = serializers.CharField(allow_null=True)
    user_agent = serializers.CharField()
    outcome = serializers.ChoiceField(choices=DownloadEvent.Outcome.choices)


class CustomerSerializer(serializers.Serializer):
    id = serializers.UUIDField()
    object = ConstantField("customer")
    email = serializers.EmailField()
    name = serializers.CharField()
    orders_count = serializers.IntegerField()
    created_at = UnixTimeField(source="date_joined")


# --- After the sale: webhooks, a download's versions, backfills -------------------------------


class WebhookEndpointSerializer(serializers.Serializer):
    id = serializers.UUIDField()
    object = ConstantField("webhook_endpoint")
    url = serializers.URLField()
    description = serializers.CharField()
    event_types = serializers.ListField(
        child=serializers.CharField(), help_text="Empty: every event type."
    )
    is_active = serializers.BooleanField()
    created_at = UnixTimeField()
    updated_at = UnixTimeField()


class WebhookEndpointWithSecretSerializer(WebhookEndpointSerializer):
    """Shown when the endpoint is created and when its secret is rotated, never in lists."""

    secret = serializers.CharField(help_text="The HMAC-SHA256 signing key (Webhook-Signature).")


class WebhookEndpointInputSerializer(serializers.Serializer):
    # The service validates the URL scheme and the event types, with its own codes.
    url = text(max_length=2048)
    description = text(required=False, allow_blank=True)
    event_types = serializers.ListField(
        child=serializers.ChoiceField(choices=EVENT_TYPES),
        required=False,
        max_length=len(EVENT_TYPES) * 2,
    )
    is_active = serializers.BooleanField(required=False)


class WebhookAttemptSerializer(serializers.Serializer):
    object = ConstantField("webhook_attempt")
    at = UnixTimeField()
    status_code = serializers.IntegerField(allow_null=True)
    error = serializers.CharField()
    duration_ms = serializers.IntegerField()


class WebhookDeliverySerializer(serializers.Serializer):
    id = serializers.UUIDField(help_text="Also the Webhook-Id header: the idempotency key.")
    object = ConstantField("webhook_delivery")
    endpoint = serializers.UUIDField(source="endpoint_id")
    event_type = serializers.CharField()
    status = serializers.CharField()
    attempts = serializers.IntegerField()
    created_at = UnixTimeField()
    next_attempt_at = UnixTimeField(allow_null=True)
    delivered_at = UnixTimeField(allow_null=True)
    payload = serializers.JSONField(help_text="The JSON body sent.")
    attempt_log = WebhookAttemptSerializer(many=True, help_text="Every attempt, oldest first.")


class DownloadVersionSerializer(serializers.Serializer):
    id = serializers.UUIDField()
    object = ConstantField("download_version")
    download = serializers.UUIDField(source="download_id")
    media = serializers.UUIDField(source="media_id", allow_null=True)
    filename = serializers.SerializerMethodField()
    url = serializers.CharField(allow_null=True)
    changelog = serializers.CharField()
    created_by = serializers.SerializerMethodField()
    notify_buyers = serializers.BooleanField()
    current = serializers.SerializerMethodField()
    created_at = UnixTimeField()

    def get_filename(self, version) -> str | None:
        return version.media.filename if version.media_id else None

    def get_created_by(self, version) -> str | None:
        return version.created_by.email if version.created_by_id else None

    def get_current(self, version) -> bool:
        download = version.download
        return version.media_id is not None and version.media_id == download.media_id


class DownloadVersionInputSerializer(serializers.Serializer):
    media = UUIDRelatedField(queryset=Media.objects.all(), help_text="The new file.")
    changelog = text(max_length=CHANGELOG_MAX_LENGTH, required=False, allow_blank=True)
    notify_buyers = serializers.BooleanField(
        required=False, help_text="Email every order holding this file, once."
    )


class BackfillSerializer(serializers.Serializer):
    id = serializers.UUIDField()
    object = ConstantField("backfill")
    download = serializers.UUIDField(source="download_id")
    version = serializers.UUIDField(source="version_id", allow_null=True)
    kind = serializers.SerializerMethodField()
    status = serializers.CharField()
    notify_buyers = serializers.BooleanField()
    cursor = serializers.IntegerField(help_text="The last order number done.")
    orders_seen = serializers.IntegerField()
    grants_created = serializers.IntegerField()
    emails_sent = serializers.IntegerField()
    error = serializers.CharField()
    created_at = UnixTimeField()
    started_at = UnixTimeField(allow_null=True)
    finished_at = UnixTimeField(allow_null=True)

    def get_kind(self, backfill) -> str:
        return "new_version_emails" if backfill.version_id else "deliver_to_existing_orders"


class BackfillInputSerializer(serializers.Serializer):
    notify_buyers = serializers.BooleanField(
        required=False, help_text="Email each order that receives the file, once."
    )
