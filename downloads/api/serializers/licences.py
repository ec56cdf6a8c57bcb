"""Licence key serializers: the key as the merchant sees it (its status derived by
`LicenseKey.status_at`, its order, line, product and buyer), the PATCH body (limit, expiry,
disabled), its instances (activations), and the short form shown on each order line."""

from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from downloads.models import LicenseKey

from .common import ConstantField, TimestampsMixin, UnixTimeField, bounded_int

STATUS_HELP = (
    "Derived: disabled, else expired (expires_at passed), else active (activated at least "
    "once), else inactive."
)


def status_of(key: LicenseKey, context) -> str:
    """The key's status at the request's `now` (one instant for a whole page)."""
    return key.status_at(context.get("now"))


class LicenseKeySerializer(TimestampsMixin, serializers.Serializer):
    id = serializers.UUIDField()
    object = ConstantField("license_key")
    key = serializers.CharField(read_only=True, help_text="XXXXXXX-XXXXXXX-XXXXXXX-XXXXXXX.")
    status = serializers.SerializerMethodField(help_text=STATUS_HELP)
    order = serializers.UUIDField(source="order_id")
    order_number = serializers.IntegerField(source="order.number", read_only=True)
    line = serializers.UUIDField(source="line_id")
    product = serializers.UUIDField(source="product_id")
    variant = serializers.UUIDField(source="variant_id", allow_null=True)
    customer_email = serializers.EmailField(
        source="order.email", read_only=True, help_text="The order's email."
    )
    activation_limit = serializers.IntegerField(allow_null=True, help_text="Null: unlimited.")
    activation_usage = serializers.IntegerField(
        read_only=True, help_text="Instances activated now."
    )
    activations_left = serializers.IntegerField(
        read_only=True, allow_null=True, help_text="Null: unlimited."
    )
    expires_at = UnixTimeField(allow_null=True, help_text="Null: never.")
    disabled = serializers.SerializerMethodField()
    disabled_at = UnixTimeField(allow_null=True)

    @extend_schema_field(serializers.ChoiceField(choices=LicenseKey.Status.choices))
    def get_status(self, key) -> str:
        return status_of(key, self.context)

    def get_disabled(self, key) -> bool:
        return key.disabled_at is not None


class LicenseKeyUpdateSerializer(serializers.Serializer):
    """PATCH: any of the three; what is left out is kept."""

    activation_limit = bounded_int(
        1,
        allow_null=True,
        required=False,
        help_text="At least 1, and not below activation_usage (409); null: unlimited.",
    )
    expires_at = UnixTimeField(allow_null=True, required=False, help_text="Null: never.")
    disabled = serializers.BooleanField(
        required=False, help_text="True: every activation and validation is refused."
    )


class LicenseInstanceSerializer(serializers.Serializer):
    id = serializers.UUIDField()
    object = ConstantField("license_instance")
    name = serializers.CharField(help_text="The instance_name the software activated with.")
    created_at = UnixTimeField()
    license_key = serializers.UUIDField(source="license_key_id")


class LineLicenseKeySerializer(serializers.Serializer):
    """A key in an order line's `license_keys`."""

    id = serializers.UUIDField()
    key = serializers.CharField()
    status = serializers.SerializerMethodField(help_text=STATUS_HELP)
    activation_usage = serializers.IntegerField()
    activation_limit = serializers.IntegerField(allow_null=True, help_text="Null: unlimited.")

    @extend_schema_field(serializers.ChoiceField(choices=LicenseKey.Status.choices))
    def get_status(self, key) -> str:
        return status_of(key, self.context)
