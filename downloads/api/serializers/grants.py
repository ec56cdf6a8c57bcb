"""Grant serializers (EasyCart's DownloadItem) and the download events of grants."""

from django.urls import NoReverseMatch, reverse
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from downloads import storage
from downloads.emails import site_url
from downloads.models import Download, DownloadEvent, DownloadGrant, Order, OrderLine, StampedCopy
from downloads.services.common import MAX_EXPIRY_DAYS
from downloads.services.stamping import stamp_state

from .common import ConstantField, TimestampsMixin, UnixTimeField, UUIDRelatedField, bounded_int


def grant_download_url(grant: DownloadGrant, request=None) -> str:
    """The absolute URL that serves a grant's file (`/downloads/<token>/`)."""
    try:
        path = reverse("downloads:download", args=[grant.token])
    except NoReverseMatch:
        path = f"/downloads/{grant.token}/"
    return site_url(request) + path


class StampedStateSerializer(serializers.Serializer):
    """Where the buyer's stamped copy of the file stands (services.stamping.stamp_state)."""

    status = serializers.ChoiceField(
        choices=StampedCopy.Status.choices,
        help_text="pending: being made (the download answers 503 until then); ready: served "
        "in place of the file; unstampable: the PDF could not be stamped (encrypted, broken) "
        "and is delivered as it is.",
    )
    error = serializers.CharField(help_text="Why the PDF could not be stamped; empty otherwise.")
    ready_at = UnixTimeField(allow_null=True, help_text="When the copy was made.")


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
    stamped = serializers.SerializerMethodField(
        help_text="Null when the file is not stamped; else the buyer's stamped copy."
    )

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

    @extend_schema_field(StampedStateSerializer(allow_null=True))
    def get_stamped(self, grant) -> dict | None:
        state = stamp_state(grant=grant)
        return StampedStateSerializer(state).data if state is not None else None


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
