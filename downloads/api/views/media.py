"""Media through the merchant API: multipart uploads streamed to the storage, and direct
uploads (`media/uploads`: the client sends the bytes to a presigned S3 URL, or to
`media_upload_content`, the local-storage stand-in, then completes the upload)."""

from django.conf import settings
from django.http import HttpResponse, JsonResponse
from django.views.decorators.csrf import csrf_exempt
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import status
from rest_framework.decorators import action
from rest_framework.parsers import MultiPartParser

from downloads.emails import site_url
from downloads.errors import ServiceError
from downloads.models import Media, MediaUpload
from downloads.services.media import (
    media_create,
    media_delete,
    media_upload_complete,
    media_upload_receive,
    media_upload_start,
)

from .. import filters
from ..exceptions import PayloadTooLarge, error_body, service_error_body, service_error_status
from ..schema import api_docs
from ..serializers import media as s
from .base import ApiViewSet, content_length

# A multipart body carries boundaries and part headers around the file.
MULTIPART_OVERHEAD = 1024 * 1024


@api_docs("media", s.MediaSerializer, s.MediaCreateSerializer, delete=True, multipart=True)
class MediaViewSet(ApiViewSet):
    """Media: stored files, uploaded as multipart `file` or directly to the storage."""

    object_name = "media"
    queryset = Media.objects.all()
    filterset_class = filters.MediaFilterSet
    output_serializer_class = s.MediaSerializer
    input_serializer_class = s.MediaCreateSerializer
    search_fields = ("filename",)
    sort_fields = {
        "created_at": "created_at",
        "filename": "filename",
        "byte_size": "byte_size",
    }
    http_method_names = ["get", "post", "delete", "head", "options"]

    def get_parsers(self):
        action_map = getattr(self, "action_map", None) or {}
        request = getattr(self, "request", None)
        if request is not None and action_map.get(request.method.lower()) == "create":
            return [MultiPartParser()]
        return super().get_parsers()

    def create(self, request):
        """Multipart `file`: spooled to a temporary file by Django's upload handlers above
        FILE_UPLOAD_MAX_MEMORY_SIZE, hashed in chunks, streamed to the storage."""
        limit = settings.DOWNLOADS_MAX_UPLOAD_SIZE
        # Refuse before reading a byte of the body.
        if content_length(request) > limit + MULTIPART_OVERHEAD:
            raise PayloadTooLarge(
                f"The file is larger than the {limit} byte limit.", code="media.too_large"
            )
        media = media_create(**self.validated(s.MediaCreateSerializer))
        return self.render(media, status.HTTP_201_CREATED)

    def destroy(self, request, pk=None):
        media_delete(media=self.get_object())
        return self.deleted(pk)

    @extend_schema(request=s.MediaUploadStartSerializer, responses={201: s.MediaUploadSerializer})
    @action(detail=False, methods=["post"], url_path="uploads")
    def upload_start(self, request):
        """Start a direct upload: the client sends the bytes to `upload_url` itself."""
        data = self.validated(s.MediaUploadStartSerializer)
        upload, instructions = media_upload_start(**data, site_url=site_url(request))
        return self.render(
            {"id": upload.pk, **instructions, "expires_at": upload.expires_at},
            status.HTTP_201_CREATED,
            serializer_class=s.MediaUploadSerializer,
        )

    @extend_schema(
        request=None,
        responses=s.MediaSerializer,
        parameters=[OpenApiParameter("upload_id", OpenApiTypes.UUID, OpenApiParameter.PATH)],
    )
    @action(detail=False, methods=["post"], url_path=r"uploads/(?P<upload_id>[^/]+)/complete")
    def upload_complete(self, request, upload_id=None):
        """Check the uploaded object (exists, size matches), hash it, and create the media."""
        upload = self.find(
            MediaUpload.objects.all(), upload_id, object_name="media_upload", noun="upload"
        )
        return self.render(media_upload_complete(upload=upload))


@csrf_exempt
def media_upload_content(request, upload_id):
    """The local-storage stand-in for S3's presigned upload: `PUT` the raw bytes with the
    signed, expiring token of `upload_url`. Streams the body to the storage in chunks."""
    if request.method != "PUT":
        response = JsonResponse(
            error_body(405, "request.method_not_allowed", "Use PUT."), status=405
        )
        response["Allow"] = "PUT"
        return response
    try:
        media_upload_receive(
            upload_id=upload_id,
            token=request.GET.get("token", ""),
            stream=request,
            content_length=content_length(request, -1),
        )
    except ServiceError as exc:
        return JsonResponse(service_error_body(exc), status=service_error_status(exc))
    return HttpResponse(status=204)
