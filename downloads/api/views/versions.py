"""A download's file history and its backfills through the merchant API:
`downloads/{id}/versions` (list; create replaces the file), `downloads/{id}/backfills`
(deliver a product's file to the product's existing paid orders, and list the runs), and
`backfills` (every run, resumable in batches; the counters show progress)."""

from drf_spectacular.utils import extend_schema
from rest_framework import status
from rest_framework.decorators import action

from downloads.models import Backfill, Download, DownloadVersion
from downloads.services.backfills import backfill_resume, download_deliver_to_existing_orders
from downloads.services.versions import download_replace_media

from .. import filters
from ..schema import api_docs
from ..serializers import versions as s
from .base import ApiViewSet


@api_docs("backfill", s.BackfillSerializer)
class BackfillViewSet(ApiViewSet):
    """Backfills: a file delivered to existing orders, or buyers told of a new version, in
    resumable batches; the counters show progress."""

    object_name = "backfill"
    queryset = Backfill.objects.all()
    filterset_class = filters.BackfillFilterSet
    output_serializer_class = s.BackfillSerializer
    sort_fields = {"created_at": "created_at"}
    http_method_names = ["get", "post", "head", "options"]

    @extend_schema(
        summary="Resume a stopped backfill",
        tags=["backfills"],
        request=None,
        responses={202: s.BackfillSerializer},
    )
    @action(detail=True, methods=["post"])
    def resume(self, request, pk=None):
        backfill = backfill_resume(backfill=self.get_object())
        return self.render(backfill, status.HTTP_202_ACCEPTED)


class DownloadChildViewSet(ApiViewSet):
    """Lists and creates objects of one download, at downloads/{download_id}/<children>."""

    http_method_names = ["get", "post", "head", "options"]

    def download(self) -> Download:
        if not hasattr(self, "_download"):
            self._download = self.find(
                Download.objects.all(), self.kwargs.get("download_id"), object_name="download"
            )
        return self._download


class DownloadVersionViewSet(DownloadChildViewSet):
    """A download's file history, newest first; creating a version replaces the file."""

    object_name = "download_version"
    filterset_class = filters.ApiFilterSet
    output_serializer_class = s.DownloadVersionSerializer
    input_serializer_class = s.DownloadVersionInputSerializer
    sort_fields = {"created_at": "created_at"}

    def get_queryset(self):
        return (
            DownloadVersion.objects.filter(download=self.download())
            .select_related("media", "created_by", "download")
            .order_by("-created_at", "-id")
        )

    @extend_schema(
        summary="List a download's versions",
        tags=["downloads"],
        responses=s.DownloadVersionSerializer(many=True),
    )
    def list(self, request, *args, **kwargs):
        return super().list(request, *args, **kwargs)

    @extend_schema(
        summary="Replace a download's file (a new version)",
        tags=["downloads"],
        request=s.DownloadVersionInputSerializer,
        responses={201: s.DownloadVersionSerializer},
    )
    def create(self, request, *args, **kwargs):
        # The service keeps no author for an API key (a user without a row).
        version = download_replace_media(
            download=self.download(),
            created_by=request.user,
            **self.validated(s.DownloadVersionInputSerializer),
        )
        return self.render_fresh(version, status.HTTP_201_CREATED)


class DownloadBackfillViewSet(DownloadChildViewSet):
    """Deliver a product's file to the product's existing paid orders (and list the runs)."""

    object_name = "backfill"
    filterset_class = filters.BackfillFilterSet
    output_serializer_class = s.BackfillSerializer
    input_serializer_class = s.BackfillInputSerializer

    def get_queryset(self):
        return Backfill.objects.filter(download=self.download()).order_by("-created_at", "-id")

    @extend_schema(
        summary="List a download's backfills",
        tags=["downloads"],
        responses=s.BackfillSerializer(many=True),
    )
    def list(self, request, *args, **kwargs):
        return super().list(request, *args, **kwargs)

    @extend_schema(
        summary="Deliver a file to the existing orders of its product",
        tags=["downloads"],
        request=s.BackfillInputSerializer,
        responses={202: s.BackfillSerializer},
    )
    def create(self, request, *args, **kwargs):
        backfill = download_deliver_to_existing_orders(
            download=self.download(), **self.validated(s.BackfillInputSerializer)
        )
        return self.render(backfill, status.HTTP_202_ACCEPTED)
