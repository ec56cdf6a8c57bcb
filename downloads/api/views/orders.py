"""Orders through the merchant API: create (lines by variant, product or SKU, resolved by the
input serializer; once per `external_id` on the `api` channel), search by email or number,
filter by channel and external id, pay, cancel, refund (whole, by line or an amount), attach
and detach downloads (Fileflare's assets), and send the order email again."""

from django.db.models import Prefetch, Q
from drf_spectacular.utils import extend_schema
from rest_framework import status
from rest_framework.decorators import action

from downloads import selectors
from downloads.models import Download, LicenseKey, Order, OrderLine
from downloads.services.orders import (
    order_attach_downloads,
    order_cancel,
    order_detach_downloads,
    order_intake,
    order_pay,
    order_refund,
    order_send_email,
)

from .. import filters
from ..schema import api_docs
from ..serializers import orders as s
from .base import ApiViewSet


@api_docs(
    "order",
    s.OrderSerializer,
    s.OrderCreateSerializer,
    updatable=False,
    create_existing=(
        "An order with this `external_id` exists (a retried create): that order, unchanged."
    ),
)
class OrderViewSet(ApiViewSet):
    """Orders: a paid order grants its buyer the downloads of its lines and attachments."""

    object_name = "order"
    queryset = Order.objects.prefetch_related(
        Prefetch(
            "lines",
            queryset=OrderLine.objects.order_by(*selectors.LINES_SHOWN_ORDER).prefetch_related(
                Prefetch(
                    "license_keys",
                    queryset=LicenseKey.objects.order_by(*selectors.KEYS_SHOWN_ORDER),
                )
            ),
        ),
        Prefetch("downloads", queryset=Download.objects.only("id").order_by("position", "id")),
    )
    filterset_class = filters.OrderFilterSet
    output_serializer_class = s.OrderSerializer
    input_serializer_class = s.OrderCreateSerializer
    sort_fields = {
        "created_at": "created_at",
        "placed_at": "placed_at",
        "number": "number",
        "email": "email",
    }
    search_description = "email, or the order number"
    http_method_names = ["get", "post", "head", "options"]

    def search_q(self, term: str) -> Q:
        return filters.or_order_number(Q(email__icontains=term), term, "number")

    def create(self, request):
        data = dict(self.validated(s.OrderCreateSerializer))
        order, created = order_intake(
            channel=Order.Channel.API, external_id=data.pop("external_id", None), **data
        )
        return self.render_fresh(order, status.HTTP_201_CREATED if created else status.HTTP_200_OK)

    @extend_schema(request=None, responses=s.OrderSerializer)
    @action(detail=True, methods=["post"])
    def pay(self, request, pk=None):
        """Mark paid and issue the grants (idempotent); emails the buyer the first time."""
        return self.render_fresh(order_pay(order=self.get_object()))

    @extend_schema(request=None, responses=s.OrderSerializer)
    @action(detail=True, methods=["post"])
    def cancel(self, request, pk=None):
        """Cancel a pending order."""
        return self.render_fresh(order_cancel(order=self.get_object()))

    @extend_schema(request=s.RefundSerializer, responses=s.OrderSerializer)
    @action(detail=True, methods=["post"])
    def refund(self, request, pk=None):
        """Refund the whole order, or only `line_ids` (revoking only those lines' grants),
        and/or record an `amount` (alone, a partial refund that revokes nothing)."""
        order = self.get_object()
        data = self.validated(s.RefundSerializer)
        refunded = order_refund(
            order=order, line_ids=data.get("line_ids"), amount=data.get("amount")
        )
        return self.render_fresh(refunded)

    def _with_downloads(self, service):
        """Run `service` (attach or detach) on this order with the body's downloads."""
        order = self.get_object()
        downloads = self.validated(s.AttachSerializer)["downloads"]
        return self.render_fresh(service(order=order, downloads=downloads))

    @extend_schema(request=s.AttachSerializer, responses=s.OrderSerializer)
    @action(detail=True, methods=["post"])
    def attach(self, request, pk=None):
        """Attach downloads to this order (Fileflare's assets); a paid order gets them now."""
        return self._with_downloads(order_attach_downloads)

    @extend_schema(request=s.AttachSerializer, responses=s.OrderSerializer)
    @action(detail=True, methods=["post"])
    def detach(self, request, pk=None):
        """Detach downloads from this order and revoke the grants they gave."""
        return self._with_downloads(order_detach_downloads)

    @extend_schema(request=None, responses=s.OrderSerializer)
    @action(detail=True, methods=["post"])
    def send_email(self, request, pk=None):
        """Send (again) the order email with the link to the buyer's order page."""
        order = order_send_email(order=self.get_object(), request=request)
        return self.render_fresh(order)
