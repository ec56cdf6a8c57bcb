"""Media through the merchant API: multipart uploads streamed to the storage, and direct
uploads (`media/uploads`: the client sends the bytes to a presigned S3 URL, or to
`media_upload_content`, the local-storage stand-in, then completes the upload).

A store that cannot be reached answers 503 `storage.unavailable` with `Retry-After`, and
nothing is kept. A request body is read with DOWNLOADS_UPLOAD_READ_TIMEOUT seconds allowed
between bytes: a client that announces a length and stops sending gets 408, and the server
thread is free again."""

import socket
from contextlib import contextmanager, suppress

from django.conf import settings
from django.http import HttpResponse, JsonResponse
from django.views.decorators.csrf import csrf_exempt
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import status
from rest_framework.decorators import action
from rest_framework.exceptions import APIException
from rest_framework.parsers import MultiPartParser

from downloads import storage
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
from ..exceptions import (
    PayloadTooLarge,
    error_body,
    service_error_body,
    service_error_status,
    storage_unavailable_answer,
)
from ..schema import api_docs
from ..serializers import media as s
from .base import ApiViewSet, content_length

# A multipart body carries boundaries and part headers around the file.
MULTIPART_OVERHEAD = 1024 * 1024


class BodyTimeout(APIException):
    status_code = status.HTTP_408_REQUEST_TIMEOUT
    default_detail = "The request body stopped arriving; nothing was kept. Send it again."
    default_code = "request.timeout"


def _client_socket(request):
    """The socket the request's body arrives on, or None. gunicorn hands it to the app
    (`gunicorn.socket`); Django's own server (runserver, the tests' live server) reads the
    body from a buffered file over it, reachable through its input stream."""
    sock = request.environ.get("gunicorn.socket")
    if sock is not None:
        return sock
    stream = request.environ.get("wsgi.input")
    # django.core.handlers.wsgi.LimitedStream keeps the file's bound read method.
    rfile = getattr(getattr(stream, "_read", None), "__self__", None)
    return getattr(getattr(rfile, "raw", None), "_sock", None)


@contextmanager
def body_read_timeout(request):
    """Reads of the request's body within give up after DOWNLOADS_UPLOAD_READ_TIMEOUT seconds
    without a byte (TimeoutError), instead of holding the server's thread until the worker's
    own timeout. Under a server that hides its socket, its own timeouts apply."""
    sock = _client_socket(request)
    if sock is None or not hasattr(sock, "settimeout"):
        yield
        return
    previous = sock.gettimeout()
    sock.settimeout(settings.DOWNLOADS_UPLOAD_READ_TIMEOUT)
    try:
        yield
    except BaseException as exc:
        if storage.read_timed_out(exc):
            # The rest of this body is not wanted: nothing (a server draining it before the
            # connection's next request) may wait for it again.
            with suppress(OSError):
                sock.shutdown(socket.SHUT_RD)
        raise
    finally:
        sock.settimeout(previous)


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
    # Beyond the usual errors: a body that stops arriving (408) and a storage that cannot be
    # reached (503, with Retry-After), as the schema documents them.
    error_statuses = {
        "create": {408, 503},
        "upload_start": {503},
        "upload_complete": {503},
    }

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
        sent = content_length(request)
        # Refuse before reading a byte of the body.
        if sent > limit + MULTIPART_OVERHEAD:
            raise PayloadTooLarge(
                f"The request is {sent} bytes; files are limited to {limit} bytes "
                f"(and the form around one to {MULTIPART_OVERHEAD} more).",
                code="media.too_large",
            )
        try:
            with body_read_timeout(request):
                data = self.validated(s.MediaCreateSerializer)
        except OSError as exc:
            if storage.read_timed_out(exc):
                raise BodyTimeout() from exc
            raise
        media = media_create(**data)
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
        with body_read_timeout(request):
            media_upload_receive(
                upload_id=upload_id,
                token=request.GET.get("token", ""),
                stream=request,
                content_length=content_length(request, -1),
            )
    except storage.StorageUnavailable as exc:  # a ServiceError with a Retry-After
        return JsonResponse(**storage_unavailable_answer(exc))
    except ServiceError as exc:
        return JsonResponse(service_error_body(exc), status=service_error_status(exc))
    return HttpResponse(status=204)
