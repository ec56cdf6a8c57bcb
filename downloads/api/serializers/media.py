"""Media serializers: stored files, the multipart create and the direct upload's steps."""

from rest_framework import serializers

from downloads import storage

from ..filters import BIGINT_MAX
from .common import ConstantField, TimestampsMixin, UnixTimeField, bounded_int, text


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
