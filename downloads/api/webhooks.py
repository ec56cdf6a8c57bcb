"""The merchant API for what happens after the sale: webhook endpoints and their delivery log,
a download's versions (`downloads/{id}/versions`) and its backfills to existing orders
(`downloads/{id}/backfills`, `backfills`). Thin views on downloads.services, with the
conventions of the rest of the API (envelopes, filters, throttling) from `views.ApiViewSet`."""

import django_filters
from django.db.models import Prefetch
from drf_spectacular.utils import extend_schema, extend_schema_view
from rest_framework import exceptions, serializers, status
from rest_framework.decorators import action
from rest_framework.response import Response

from downloads.models import (
    Backfill,
    Download,
    DownloadVersion,
    Media,
    WebhookAttempt,
    WebhookDelivery,
    WebhookEndpoint,
)
from downloads.services import webhooks
from downloads.services.backfills import backfill_resume, download_deliver_to_existing_orders
from downloads.services.versions import CHANGELOG_MAX_LENGTH, download_replace_media
from downloads.services.webhooks import (
    webhook_delivery_retry,
    webhook_endpoint_create,
    webhook_endpoint_delete,
    webhook_endpoint_rotate_secret,
    webhook_endpoint_update,
)

from .filters import ApiFilterSet, UUIDListFilter
from .schema import api_docs
from .serializers import ConstantField, UnixTimeField, UUIDRelatedField, text
from .views import ApiViewSet

# --- Serializers ----------------------------------------------------------------------------------


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
        child=serializers.ChoiceField(choices=webhooks.EVENT_TYPES),
        required=False,
        max_length=len(webhooks.EVENT_TYPES) * 2,
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


# --- Filters --------------------------------------------------------------------------------------


class WebhookDeliveryFilterSet(ApiFilterSet):
    endpoint_ids = UUIDListFilter(field_name="endpoint_id", help_text="Deliveries to these.")
    status = django_filters.ChoiceFilter(choices=WebhookDelivery.Status.choices)
    event_type = django_filters.ChoiceFilter(choices=WebhookEndpoint.EventType.choices)

    class Meta:
        model = WebhookDelivery
        fields: list = []


class BackfillFilterSet(ApiFilterSet):
    download_ids = UUIDListFilter(field_name="download_id", help_text="Backfills of these.")
    status = django_filters.ChoiceFilter(choices=Backfill.Status.choices)

    class Meta:
        model = Backfill
        fields: list = []


class WebhookEndpointFilterSet(ApiFilterSet):
    class Meta:
        model = WebhookEndpoint
        fields: list = []


class DownloadVersionFilterSet(ApiFilterSet):
    class Meta:
        model = DownloadVersion
        fields: list = []


# --- Views ----------------------------------------------------------------------------------------


@api_docs(
    "webhook_endpoint",
    WebhookEndpointSerializer,
    WebhookEndpointInputSerializer,
    delete=True,
)
class WebhookEndpointViewSet(ApiViewSet):
    """Webhook endpoints: where events are POSTed, signed with the endpoint's secret."""

    object_name = "webhook_endpoint"
    queryset = WebhookEndpoint.objects.all()
    filterset_class = WebhookEndpointFilterSet
    output_serializer_class = WebhookEndpointSerializer
    input_serializer_class = WebhookEndpointInputSerializer
    search_fields = ("url", "description")
    sort_fields = {"created_at": "created_at", "updated_at": "updated_at", "url": "url"}
    http_method_names = ["get", "post", "patch", "delete", "head", "options"]

    def create(self, request):
        data = self.validated(WebhookEndpointInputSerializer)
        endpoint = webhook_endpoint_create(**data)
        body = WebhookEndpointWithSecretSerializer(endpoint).data
        return self.respond(body, status.HTTP_201_CREATED)

    def partial_update(self, request, pk=None):
        endpoint = self.get_object()
        data = self.validated(WebhookEndpointInputSerializer, partial=True)
        webhook_endpoint_update(endpoint=endpoint, **data)
        return self.render(endpoint)

    def destroy(self, request, pk=None):
        webhook_endpoint_delete(endpoint=self.get_object())
        return self.deleted(pk)

    @extend_schema(
        summary="Rotate the signing secret",
        tags=["webhook_endpoints"],
        request=None,
        responses=WebhookEndpointWithSecretSerializer,
    )
    @action(detail=True, methods=["post"])
    def rotate_secret(self, request, pk=None):
        endpoint = webhook_endpoint_rotate_secret(endpoint=self.get_object())
        return self.respond(WebhookEndpointWithSecretSerializer(endpoint).data)

    def respond(self, body, status_code=status.HTTP_200_OK):
        return Response(body, status=status_code)


@extend_schema_view(
    list=extend_schema(
        summary="List webhook deliveries",
        tags=["webhook_deliveries"],
        responses=WebhookDeliverySerializer(many=True),
    ),
    retrieve=extend_schema(
        summary="Get a webhook delivery",
        tags=["webhook_deliveries"],
        responses=WebhookDeliverySerializer,
    ),
)
class WebhookDeliveryViewSet(ApiViewSet):
    """The delivery log: each event sent to each endpoint, with every attempt."""

    object_name = "webhook_delivery"
    queryset = WebhookDelivery.objects.prefetch_related(
        Prefetch("attempt_log", queryset=WebhookAttempt.objects.order_by("at", "id"))
    )
    filterset_class = WebhookDeliveryFilterSet
    output_serializer_class = WebhookDeliverySerializer
    search_fields = ("event_type",)
    sort_fields = {"created_at": "created_at", "next_attempt_at": "next_attempt_at"}
    http_method_names = ["get", "post", "head", "options"]

    @extend_schema(
        summary="Retry a delivery now",
        tags=["webhook_deliveries"],
        request=None,
        responses=WebhookDeliverySerializer,
    )
    @action(detail=True, methods=["post"])
    def retry(self, request, pk=None):
        delivery = webhook_delivery_retry(delivery=self.get_object())
        return self.render_fresh(delivery, status.HTTP_202_ACCEPTED)


@api_docs("backfill", BackfillSerializer)
class BackfillViewSet(ApiViewSet):
    """Backfills: a file delivered to existing orders, or buyers told of a new version, in
    resumable batches; the counters show progress."""

    object_name = "backfill"
    queryset = Backfill.objects.all()
    filterset_class = BackfillFilterSet
    output_serializer_class = BackfillSerializer
    sort_fields = {"created_at": "created_at"}
    http_method_names = ["get", "post", "head", "options"]

    @extend_schema(
        summary="Resume a stopped backfill",
        tags=["backfills"],
        request=None,
        responses={202: BackfillSerializer},
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
            pk = self.parse_pk(self.kwargs.get("download_id"))
            found = Download.objects.filter(pk=pk).first() if pk is not None else None
            if found is None:
                raise exceptions.NotFound(
                    f"No download with id {self.kwargs.get('download_id')!s:.64}.",
                    code="download.not_found",
                )
            self._download = found
        return self._download


class DownloadVersionViewSet(DownloadChildViewSet):
    """A download's file history, newest first; creating a version replaces the file."""

    object_name = "download_version"
    filterset_class = DownloadVersionFilterSet
    output_serializer_class = DownloadVersionSerializer
    input_serializer_class = DownloadVersionInputSerializer
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
        responses=DownloadVersionSerializer(many=True),
    )
    def list(self, request, *args, **kwargs):
        return super().list(request, *args, **kwargs)

    @extend_schema(
        summary="Replace a download's file (a new version)",
        tags=["downloads"],
        request=DownloadVersionInputSerializer,
        responses={201: DownloadVersionSerializer},
    )
    def create(self, request, *args, **kwargs):
        data = self.validated(DownloadVersionInputSerializer)
        user = request.user if getattr(request.user, "pk", None) else None
        version = download_replace_media(
            download=self.download(),
            media=data["media"],
            changelog=data.get("changelog", ""),
            created_by=user,
            notify_buyers=data.get("notify_buyers", False),
        )
        return self.render_fresh(version, status.HTTP_201_CREATED)


class DownloadBackfillViewSet(DownloadChildViewSet):
    """Deliver a product's file to the product's existing paid orders (and list the runs)."""

    object_name = "backfill"
    filterset_class = BackfillFilterSet
    output_serializer_class = BackfillSerializer
    input_serializer_class = BackfillInputSerializer

    def get_queryset(self):
        return Backfill.objects.filter(download=self.download()).order_by("-created_at", "-id")

    @extend_schema(
        summary="List a download's backfills",
        tags=["downloads"],
        responses=BackfillSerializer(many=True),
    )
    def list(self, request, *args, **kwargs):
        return super().list(request, *args, **kwargs)

    @extend_schema(
        summary="Deliver a file to the existing orders of its product",
        tags=["downloads"],
        request=BackfillInputSerializer,
        responses={202: BackfillSerializer},
    )
    def create(self, request, *args, **kwargs):
        data = self.validated(BackfillInputSerializer)
        backfill = download_deliver_to_existing_orders(
            download=self.download(), notify_buyers=data.get("notify_buyers", False)
        )
        return self.render(backfill, status.HTTP_202_ACCEPTED)
