"""Order serializers: the order with its lines and amounts, the create body (lines by
variant, product or SKU, resolved here to LineInputs), refund, attach and detach."""

from rest_framework import serializers

from downloads import money
from downloads.emails import order_page_url
from downloads.errors import ServiceError
from downloads.models import Download, Order
from downloads.selectors import line_target
from downloads.services.orders import LineInput

from ..filters import BIGINT_MAX
from .common import (
    ConstantField,
    TimestampsMixin,
    UnixTimeField,
    amount_input,
    amount_output,
    bounded_int,
    text,
)
from .licences import LineLicenseKeySerializer


class OrderLineSerializer(serializers.Serializer):
    id = serializers.UUIDField()
    object = ConstantField("order_line")
    product = serializers.UUIDField(source="product_id")
    variant = serializers.UUIDField(source="variant_id", allow_null=True)
    name = serializers.CharField()
    variant_name = serializers.CharField()
    sku = serializers.CharField()
    quantity = serializers.IntegerField()
    price = amount_output("Unit price in minor units of the order's currency.")
    total = amount_output("What the line cost: price × quantity less its discounts.")
    external_id = serializers.CharField(help_text="The channel's line item id; may be empty.")
    refunded_quantity = serializers.IntegerField(help_text="Units refunded so far.")
    refunded_at = UnixTimeField(allow_null=True, help_text="When all its units were refunded.")
    license_keys = LineLicenseKeySerializer(
        many=True, help_text="The line's licence keys, one per unit (empty: none issued)."
    )


class OrderSerializer(TimestampsMixin, serializers.Serializer):
    id = serializers.UUIDField()
    object = ConstantField("order")
    number = serializers.IntegerField()
    email = serializers.EmailField()
    customer = serializers.UUIDField(source="customer_id", allow_null=True)
    status = serializers.ChoiceField(choices=Order.Status.choices)
    channel = serializers.ChoiceField(
        choices=Order.Channel.choices, help_text="Where the sale happened."
    )
    external_id = serializers.CharField(
        allow_null=True, help_text="The order's id at its channel; unique per channel."
    )
    currency = serializers.CharField(help_text="ISO 4217 code of every amount of the order.")
    subtotal = amount_output("The lines' totals.")
    tax = amount_output()
    total = amount_output("subtotal + tax.")
    refunded_total = amount_output("Refunded so far (never more than the total).")
    payment_method = serializers.CharField(help_text="How the buyer paid, as the channel said.")
    placed_at = UnixTimeField()
    paid_at = UnixTimeField(allow_null=True)
    refunded_at = UnixTimeField(allow_null=True)
    disputed_at = UnixTimeField(allow_null=True, help_text="When a payment dispute was opened.")
    email_sent_at = UnixTimeField(allow_null=True)
    customer_page_url = serializers.SerializerMethodField()
    lines = OrderLineSerializer(many=True)
    downloads = serializers.SerializerMethodField(help_text="Downloads attached to this order.")

    def get_customer_page_url(self, order) -> str:
        return order_page_url(order, self.context.get("request"))

    def get_downloads(self, order) -> list[str]:
        # Read from the prefetch cache (no query per order).
        return [str(download.pk) for download in order.downloads.all()]


def existing_downloads(ids, attribute: str) -> list[Download]:
    """The downloads of `ids`, in their order, or a 422 on `attribute` naming the unknown."""
    found = {download.pk: download for download in Download.objects.filter(pk__in=ids)}
    if missing := [str(pk) for pk in ids if pk not in found]:
        raise serializers.ValidationError(
            {attribute: [f"No such download: {', '.join(missing)}."]}, code="does_not_exist"
        )
    return [found[pk] for pk in ids]


class LineInputSerializer(serializers.Serializer):
    """One of `variant`, `product` or `sku` says what is sold."""

    variant = serializers.UUIDField(required=False, allow_null=True)
    product = serializers.UUIDField(required=False, allow_null=True)
    sku = text(100, required=False, allow_blank=False)
    quantity = bounded_int(1, 1_000_000, required=False, default=1)
    price = amount_input(
        required=False,
        allow_null=True,
        help_text="Unit price in minor units of the order's currency. Default: the "
        "catalogue's (the variant's, else the product's), which is in the store's currency.",
    )
    external_id = text(required=False, allow_blank=True, help_text="Your id of this line.")

    def validate(self, attrs):
        given = [name for name in ("variant", "product", "sku") if attrs.get(name)]
        if len(given) != 1:
            raise serializers.ValidationError(
                "Give exactly one of variant, product or sku.", code="invalid"
            )
        return attrs


class OrderCreateSerializer(serializers.Serializer):
    """A new order on the `api` channel. With an `external_id` the create is idempotent: the
    order of that id, if there is one, is answered (200) and nothing is created or paid."""

    email = serializers.EmailField(max_length=254)
    external_id = text(
        required=False,
        allow_null=True,
        help_text="Your id of the order: a create naming one that exists answers that order.",
    )
    currency = text(
        3,
        min_length=3,
        required=False,
        help_text="ISO 4217 code (USD, EUR, JPY…). Default: the store's (DOWNLOADS_CURRENCY); "
        "another one needs every line's price.",
    )
    tax = amount_input(
        required=False, default=0, help_text="In minor units; total = subtotal + tax."
    )
    number = bounded_int(1, BIGINT_MAX, allow_null=True, required=False)
    status = serializers.ChoiceField(
        choices=[Order.Status.PENDING, Order.Status.PAID], required=False, default="pending"
    )
    placed_at = UnixTimeField(required=False, allow_null=True)
    lines = LineInputSerializer(many=True, allow_empty=False, max_length=500)
    downloads = serializers.ListField(
        child=serializers.UUIDField(), max_length=100, required=False, help_text="Attach these."
    )
    send_email = serializers.BooleanField(required=False, default=True)

    def validate_currency(self, value):
        try:
            return money.check_currency(value)
        except ServiceError as exc:
            raise serializers.ValidationError(exc.message, code=exc.reason) from exc

    def validate(self, attrs):
        """Resolve the lines to LineInputs and the downloads to objects, in that order."""
        lines = attrs["lines"]
        targets = [
            line_target(
                product_id=line.get("product"), variant_id=line.get("variant"), sku=line.get("sku")
            )
            for line in lines
        ]
        errors = {}
        for index, (line, target) in enumerate(zip(lines, targets, strict=True)):
            if target is None:
                given = next(name for name in ("variant", "product", "sku") if line.get(name))
                errors[index] = {given: [f"No {given} {line[given]}."]}
        if errors:
            raise serializers.ValidationError({"lines": errors}, code="does_not_exist")
        attrs["lines"] = [
            LineInput(
                product=product,
                variant=variant,
                quantity=line["quantity"],
                price=line.get("price"),
                external_id=line.get("external_id", ""),
            )
            for line, (product, variant) in zip(lines, targets, strict=True)
        ]
        attrs["downloads"] = existing_downloads(attrs.get("downloads", []), "downloads")
        return attrs


class RefundSerializer(serializers.Serializer):
    """Neither `line_ids` nor `amount`: the whole order is refunded (every grant revoked, the
    rest of the total recorded). `line_ids`: those lines are refunded and only their grants
    revoked. `amount`: what is refunded now, added to `refunded_total` (capped at the total);
    alone, it records a partial refund and revokes nothing."""

    line_ids = serializers.ListField(
        child=serializers.UUIDField(),
        max_length=500,
        required=False,
        help_text="Refund only these lines (revoking only their grants); omit for the order.",
    )
    amount = amount_input(
        required=False,
        help_text="Minor units refunded now. Default: the refunded lines' totals (the whole "
        "order: what is left of its total).",
    )


class AttachSerializer(serializers.Serializer):
    """`download_ids`, or Fileflare's `asset_ids`."""

    download_ids = serializers.ListField(
        child=serializers.UUIDField(), max_length=100, required=False
    )
    asset_ids = serializers.ListField(
        child=serializers.UUIDField(), max_length=100, required=False, help_text="Fileflare's name."
    )

    def validate(self, attrs):
        ids = [*attrs.get("download_ids", ()), *attrs.get("asset_ids", ())]
        if not ids:
            raise serializers.ValidationError(
                {"download_ids": ["Name at least one download."]}, code="required"
            )
        attrs["downloads"] = existing_downloads(list(dict.fromkeys(ids)), "download_ids")
        return attrs
