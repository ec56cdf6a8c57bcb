"""Licence keys through the merchant API: `license_keys` (list, get, PATCH the activation
limit, the expiry or whether the key is disabled; keys are issued by payment, never created
or deleted here), `license_keys/{id}/instances` (a key's activations: list, get, DELETE
deactivates one and gives its activation back) and `license_instances` (every activation,
read-only). A key's status is `LicenseKey.status_at`, filtered by `LicenseKey.status_q`."""

from django.db.models import Q
from django.utils import timezone
from drf_spectacular.utils import extend_schema, extend_schema_view

from downloads.models import LicenseInstance, LicenseKey
from downloads.services.licences import license_instance_delete, license_key_update

from .. import filters
from ..schema import api_docs
from ..serializers import licences as s
from ..serializers.common import DeletedSerializer
from .base import ApiViewSet


class LicenceViewSet(ApiViewSet):
    # One instant per answer for every status it renders, so a page agrees with itself. (No
    # docstring: the subclasses' describe their resource in the schema.)

    def get_serializer_context(self):
        context = super().get_serializer_context()
        context["now"] = timezone.now()
        return context


@api_docs("license_key", s.LicenseKeySerializer)
class LicenseKeyViewSet(LicenceViewSet):
    """Licence keys: one per unit bought of a product with `license_keys` on, issued when the
    order is paid. PATCH changes the activation limit, the expiry or `disabled`."""

    object_name = "license_key"
    queryset = LicenseKey.objects.select_related("order")
    filterset_class = filters.LicenseKeyFilterSet
    output_serializer_class = s.LicenseKeySerializer
    update_serializer_class = s.LicenseKeyUpdateSerializer
    search_description = (
        "the key (whole or its beginning, any case, spaces allowed), the order's email or number"
    )
    sort_fields = {
        "created_at": "created_at",
        "updated_at": "updated_at",
        "expires_at": "expires_at",
        "activation_usage": "activation_usage",
    }
    http_method_names = ["get", "patch", "head", "options"]

    def search_q(self, term: str) -> Q:
        condition = filters.or_license_key(Q(order__email__icontains=term), term)
        return filters.or_order_number(condition, term, "order__number")

    @extend_schema(
        summary="Update a license_key",
        tags=["license_keys"],
        request=s.LicenseKeyUpdateSerializer,
        responses=s.LicenseKeySerializer,
        description="A limit below the key's activation_usage answers 409 "
        "(`license_key.limit_below_usage`): deactivate instances first.",
    )
    def partial_update(self, request, pk=None):
        key = self.get_object()
        data = self.validated(s.LicenseKeyUpdateSerializer, partial=True)
        license_key_update(key=key, **data)
        return self.render_fresh(key)


@extend_schema_view(
    list=extend_schema(
        summary="List a license_key's instances",
        tags=["license_keys"],
        responses=s.LicenseInstanceSerializer(many=True),
    ),
    retrieve=extend_schema(
        summary="Get a license_key's instance",
        tags=["license_keys"],
        responses=s.LicenseInstanceSerializer,
    ),
    destroy=extend_schema(
        summary="Deactivate an instance",
        tags=["license_keys"],
        responses={200: DeletedSerializer},
        description="Deletes the instance and gives its activation back to the key "
        "(webhook `license_key.deactivated`).",
    ),
)
class LicenseKeyInstanceViewSet(LicenceViewSet):
    """A key's instances (activations), oldest first; DELETE deactivates one."""

    object_name = "license_instance"
    filterset_class = filters.ApiFilterSet
    output_serializer_class = s.LicenseInstanceSerializer
    search_fields = ("name",)
    sort_fields = {"created_at": "created_at", "name": "name"}
    http_method_names = ["get", "delete", "head", "options"]

    def license_key(self) -> LicenseKey:
        if not hasattr(self, "_license_key"):
            self._license_key = self.find(
                LicenseKey.objects.all(),
                self.kwargs.get("license_key_id"),
                object_name="license_key",
                noun="licence key",
            )
        return self._license_key

    def get_queryset(self):
        return LicenseInstance.objects.filter(license_key=self.license_key())

    def destroy(self, request, license_key_id=None, pk=None):
        instance = self.get_object()
        instance.license_key = self.license_key()
        license_instance_delete(instance=instance)
        return self.deleted(pk)


@extend_schema_view(
    list=extend_schema(
        summary="List license_instances",
        tags=["license_instances"],
        responses=s.LicenseInstanceSerializer(many=True),
    ),
    retrieve=extend_schema(
        summary="Get a license_instance",
        tags=["license_instances"],
        responses=s.LicenseInstanceSerializer,
    ),
)
class LicenseInstanceViewSet(LicenceViewSet):
    """Every licence instance (activation), read-only; deactivate one at
    license_keys/{id}/instances/{instance_id}."""

    object_name = "license_instance"
    queryset = LicenseInstance.objects.all()
    filterset_class = filters.LicenseInstanceFilterSet
    output_serializer_class = s.LicenseInstanceSerializer
    search_fields = ("name",)
    sort_fields = {"created_at": "created_at", "name": "name"}
    http_method_names = ["get", "head", "options"]
