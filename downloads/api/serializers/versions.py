"""What comes after the sale for a download: its versions (a new file) and backfills
(files and emails for existing orders)."""

from rest_framework import serializers

from downloads.models import Media
from downloads.services.versions import CHANGELOG_MAX_LENGTH

from .common import ConstantField, UnixTimeField, UUIDRelatedField, text


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
