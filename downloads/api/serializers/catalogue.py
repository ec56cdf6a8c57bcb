"""The catalogue's serializers: products, variants, and downloads (SureCart's download).
Prices are integers in minor units of the store's currency (DOWNLOADS_CURRENCY)."""

from rest_framework import serializers

from downloads.models import Media, Product, StampPosition, Variant
from downloads.models.catalogue import DEFAULT_STAMP_TEXT
from downloads.services.catalogue import MAX_TAG_LENGTH, MAX_TAGS
from downloads.services.common import MAX_EXPIRY_DAYS

from ..filters import BIGINT_MAX, BIGINT_MIN
from .common import (
    ConstantField,
    ExpandableField,
    TimestampsMixin,
    UnixTimeField,
    UUIDRelatedField,
    amount_input,
    bounded_int,
    text,
)
from .media import MediaSerializer

PRODUCT_PRICE_HELP = (
    "Unit price in minor units of the store's currency (DOWNLOADS_CURRENCY): 4900 is "
    "$49.00 in USD, ¥4900 in JPY."
)
VARIANT_PRICE_HELP = "Unit price in minor units; null: the product's price."
EFFECTIVE_PRICE_HELP = "What one unit costs: `price`, or the product's price when that is null."

# --- Products and variants ----------------------------------------------------------------------


class ProductSerializer(TimestampsMixin, serializers.Serializer):
    id = serializers.UUIDField()
    object = ConstantField("product")
    name = serializers.CharField()
    sku = serializers.CharField()
    vendor = serializers.CharField()
    tags = serializers.ListField(child=serializers.CharField())
    description = serializers.CharField()
    price = serializers.IntegerField(help_text=PRODUCT_PRICE_HELP)
    external_id = serializers.IntegerField(allow_null=True)
    download_limit = serializers.IntegerField(allow_null=True)
    download_expiry_days = serializers.IntegerField(allow_null=True)
    archived = serializers.BooleanField()
    archived_at = UnixTimeField(allow_null=True)


class ProductInputSerializer(serializers.Serializer):
    name = text()
    sku = text(100, allow_blank=True, required=False)
    vendor = text(allow_blank=True, required=False)
    tags = serializers.ListField(
        child=text(MAX_TAG_LENGTH, allow_blank=False), max_length=MAX_TAGS, required=False
    )
    description = text(100_000, allow_blank=True, required=False)
    price = amount_input(required=False, help_text=PRODUCT_PRICE_HELP)
    external_id = bounded_int(BIGINT_MIN, BIGINT_MAX, allow_null=True, required=False)
    download_limit = bounded_int(
        allow_null=True, required=False, help_text="Null: the store default; 0: unlimited."
    )
    download_expiry_days = bounded_int(
        0,
        MAX_EXPIRY_DAYS,
        allow_null=True,
        required=False,
        help_text="Null: store default; 0: never.",
    )
    archived = serializers.BooleanField(required=False)


class VariantSerializer(TimestampsMixin, serializers.Serializer):
    id = serializers.UUIDField()
    object = ConstantField("variant")
    product = serializers.UUIDField(source="product_id")
    name = serializers.CharField()
    sku = serializers.CharField()
    external_id = serializers.IntegerField(allow_null=True)
    price = serializers.IntegerField(allow_null=True, help_text=VARIANT_PRICE_HELP)
    effective_price = serializers.IntegerField(read_only=True, help_text=EFFECTIVE_PRICE_HELP)
    position = serializers.IntegerField()


class VariantInputSerializer(serializers.Serializer):
    product = UUIDRelatedField(queryset=Product.objects.all())
    name = text()
    sku = text(100, allow_blank=True, required=False)
    external_id = bounded_int(BIGINT_MIN, BIGINT_MAX, allow_null=True, required=False)
    price = amount_input(allow_null=True, required=False, help_text=VARIANT_PRICE_HELP)
    position = bounded_int(required=False)


class VariantUpdateSerializer(VariantInputSerializer):
    """A variant stays on its product (its downloads and order lines depend on it)."""

    product = None


DOWNLOAD_EXPANDABLE = ("media", "product", "variant")

STAMP_HELP = (
    "true: each buyer gets their own copy of the PDF stamped on every page with stamp_text "
    "(made in the background; until it is ready the download answers 503 with Retry-After). "
    "Only PDFs are stamped: any other file is delivered as it is."
)
STAMP_TEXT_HELP = (
    "1 to 255 characters; placeholders {email}, {name}, {order_number} and {date} only "
    "(anything else: 422). Changing it makes every buyer's copy again."
)
STAMP_POSITION_HELP = "Where the stamp sits on each page."


class DownloadSerializer(TimestampsMixin, serializers.Serializer):
    """SureCart's download object."""

    id = serializers.UUIDField()
    object = ConstantField("download")
    alt = serializers.CharField(allow_null=True)
    archived = serializers.BooleanField()
    archived_at = UnixTimeField(allow_null=True)
    name = serializers.CharField(allow_null=True)
    title = serializers.CharField(allow_null=True)
    url = serializers.CharField(allow_null=True)
    media = ExpandableField(MediaSerializer, help_text="Expandable: the media id or object.")
    product = ExpandableField(ProductSerializer, help_text="Expandable: the product id or object.")
    variant = ExpandableField(VariantSerializer, help_text="Expandable: the variant id or object.")
    position = serializers.IntegerField()
    deliver_to_existing_orders = serializers.BooleanField(
        help_text="Also given to the product's existing paid orders (see backfills)."
    )
    file_updated_at = UnixTimeField(
        allow_null=True, help_text="When the file was last replaced by a new version."
    )
    stamp = serializers.BooleanField(help_text=STAMP_HELP)
    stamp_text = serializers.CharField(help_text=STAMP_TEXT_HELP)
    stamp_position = serializers.ChoiceField(
        choices=StampPosition.choices, help_text=STAMP_POSITION_HELP
    )


class DownloadInputSerializer(serializers.Serializer):
    """Exactly one of `media` or `url`; a `url` needs a `name`."""

    media = UUIDRelatedField(queryset=Media.objects.all(), allow_null=True, required=False)
    url = serializers.URLField(max_length=2048, allow_null=True, allow_blank=True, required=False)
    name = text(allow_null=True, allow_blank=True, required=False)
    title = text(allow_null=True, allow_blank=True, required=False)
    alt = text(allow_null=True, allow_blank=True, required=False)
    product = UUIDRelatedField(queryset=Product.objects.all(), allow_null=True, required=False)
    variant = UUIDRelatedField(
        queryset=Variant.objects.select_related("product"), allow_null=True, required=False
    )
    position = bounded_int(required=False)
    archived = serializers.BooleanField(required=False)
    deliver_to_existing_orders = serializers.BooleanField(
        required=False,
        help_text="true: give this product file to every paid, unrefunded order of the "
        "product, in the background.",
    )
    stamp = serializers.BooleanField(required=False, help_text=STAMP_HELP)
    # Checked by the service (stamping.stamp_text_check): blank, too long or an unknown
    # placeholder is a 422 on stamp_text with code download.invalid.
    stamp_text = serializers.CharField(
        required=False,
        allow_blank=True,
        trim_whitespace=False,
        help_text=f"{STAMP_TEXT_HELP} Default: `{DEFAULT_STAMP_TEXT}`.",
    )
    stamp_position = serializers.ChoiceField(
        choices=StampPosition.choices, required=False, help_text=STAMP_POSITION_HELP
    )
