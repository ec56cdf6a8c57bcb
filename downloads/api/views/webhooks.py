"""Webhooks through the merchant API: the endpoints events are POSTed to (create, update,
delete, rotate the signing secret, shown only on create and rotate) and the delivery log of
each event to each endpoint, with every attempt (retry a delivery now)."""

from django.db.models import Prefetch
from drf_spectacular.utils import extend_schema, extend_schema_view
from rest_framework import status
from rest_framework.decorators import action

from downloads.models import WebhookAttempt, WebhookDelivery, WebhookEndpoint
from downloads.services.webhooks import (
    webhook_delivery_retry,
    webhook_endpoint_create,
    webhook_endpoint_delete,
    webhook_endpoint_rotate_secret,
    webhook_endpoint_update,
)

from .. import filters
from ..schema import api_docs
from ..serializers import webhooks as s
from .base import ApiViewSet


@api_docs(
    "webhook_endpoint",
    s.WebhookEndpointSerializer,
    s.WebhookEndpointInputSerializer,
    delete=True,
    create_output=s.WebhookEndpointWithSecretSerializer,
)
class WebhookEndpointViewSet(ApiViewSet):
    """Webhook endpoints: where events are POSTed, signed with the endpoint's secret."""

    object_name = "webhook_endpoint"
    queryset = WebhookEndpoint.objects.all()
    filterset_class = filters.ApiFilterSet
    output_serializer_class = s.WebhookEndpointSerializer
    input_serializer_class = s.WebhookEndpointInputSerializer
    search_fields = ("url", "description")
    sort_fields = {"created_at": "created_at", "updated_at": "updated_at", "url": "url"}
    http_method_names = ["get", "post", "patch", "delete", "head", "options"]

    def create(self, request):
        endpoint = webhook_endpoint_create(**self.validated(s.WebhookEndpointInputSerializer))
        return self.render(
            endpoint,
            status.HTTP_201_CREATED,
            serializer_class=s.WebhookEndpointWithSecretSerializer,
        )

    def partial_update(self, request, pk=None):
        endpoint = self.get_object()
        data = self.validated(s.WebhookEndpointInputSerializer, partial=True)
        webhook_endpoint_update(endpoint=endpoint, **data)
        return self.render(endpoint)

    def destroy(self, request, pk=None):
        webhook_endpoint_delete(endpoint=self.get_object())
        return self.deleted(pk)

    @extend_schema(
        summary="Rotate the signing secret",
        tags=["webhook_endpoints"],
        request=None,
        responses=s.WebhookEndpointWithSecretSerializer,
    )
    @action(detail=True, methods=["post"])
    def rotate_secret(self, request, pk=None):
        endpoint = webhook_endpoint_rotate_secret(endpoint=self.get_object())
        return self.render(endpoint, serializer_class=s.WebhookEndpointWithSecretSerializer)


@extend_schema_view(
    list=extend_schema(
        summary="List webhook deliveries",
        tags=["webhook_deliveries"],
        responses=s.WebhookDeliverySerializer(many=True),
    ),
    retrieve=extend_schema(
        summary="Get a webhook delivery",
        tags=["webhook_deliveries"],
        responses=s.WebhookDeliverySerializer,
    ),
)
class WebhookDeliveryViewSet(ApiViewSet):
    """The delivery log: each event sent to each endpoint, with every attempt."""

    object_name = "webhook_delivery"
    queryset = WebhookDelivery.objects.prefetch_related(
        Prefetch("attempt_log", queryset=WebhookAttempt.objects.order_by("at", "id"))
    )
    filterset_class = filters.WebhookDeliveryFilterSet
    output_serializer_class = s.WebhookDeliverySerializer
    search_fields = ("event_type",)
    sort_fields = {"created_at": "created_at", "next_attempt_at": "next_attempt_at"}
    http_method_names = ["get", "post", "head", "options"]

    @extend_schema(
        summary="Retry a delivery now",
        tags=["webhook_deliveries"],
        request=None,
        responses={202: s.WebhookDeliverySerializer},
    )
    @action(detail=True, methods=["post"])
    def retry(self, request, pk=None):
        delivery = webhook_delivery_retry(delivery=self.get_object())
        return self.render_fresh(delivery, status.HTTP_202_ACCEPTED)
