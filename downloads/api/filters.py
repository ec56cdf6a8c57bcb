"""List filters (django-filter), `search` and `sort` for every list of the merchant API.

Every value is validated before it reaches the database: ids must be UUIDs, integers must fit
their columns, times must be representable; a bad value answers 400 naming the parameter.
List parameters take SureCart's array form (`ids[]=a&ids[]=b`), repeats or commas.
"""

import uuid
from datetime import UTC, datetime

import django_filters
from django import forms
from django.db.models import Q
from django.utils import timezone
from django_filters.rest_framework import DjangoFilterBackend
from rest_framework.filters import BaseFilterBackend

from accounts.models import User
from downloads import selectors
from downloads.models import (
    Backfill,
    Download,
    DownloadEvent,
    DownloadGrant,
    LicenseInstance,
    LicenseKey,
    Media,
    Order,
    Product,
    Variant,
    WebhookDelivery,
    WebhookEndpoint,
    canonical_key,
)
from downloads.models.licences import KEY_GROUP_LENGTH, KEY_GROUPS

from .exceptions import QueryParameterError

MAX_LIST_VALUES = 100
# Sort directions as published; any case is read (EasyCart writes ASC/DESC), but the schema
# lists one spelling: generated clients turn values that differ only in case into duplicate
# enum names.
DIRECTIONS = ("asc", "desc")
BIGINT_MIN, BIGINT_MAX = -(2**63), 2**63 - 1
# Unix seconds the datetime type can hold (year 1970 to 9999).
UNIX_MIN, UNIX_MAX = 0, 253402300799
KEY_CHARS = KEY_GROUPS * KEY_GROUP_LENGTH  # a licence key's characters, without its dashes


def unix_to_datetime(value: int) -> datetime:
    return datetime.fromtimestamp(value, tz=UTC)


# --- Fields and filters -----------------------------------------------------------------------


class ArrayWidget(forms.Widget):
    """Reads `name[]=a&name[]=b`, `name=a&name=b` and `name=a,b` alike."""

    def value_from_datadict(self, data, files, name):
        raw = [*data.getlist(f"{name}[]"), *data.getlist(name)]
        values = [part.strip() for item in raw for part in item.split(",") if part.strip()]
        return values or None


class UUIDListField(forms.Field):
    widget = ArrayWidget

    def to_python(self, value):
        if not value:
            return None
        if len(value) > MAX_LIST_VALUES:
            raise forms.ValidationError(f"At most {MAX_LIST_VALUES} values.", code="max_length")
        try:
            return [uuid.UUID(item) for item in value]
        except ValueError:
            raise forms.ValidationError("Each value must be a UUID.", code="invalid") from None


class UUIDListFilter(django_filters.Filter):
    """`<name>[]`: objects whose `field_name` is one of the given UUIDs."""

    field_class = UUIDListField

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("lookup_expr", "in")
        super().__init__(*args, **kwargs)


class IntegerFilter(django_filters.Filter):
    """An integer bounded to its column (`min_value`, `max_value`)."""

    field_class = forms.IntegerField


class UnixTimeFilter(django_filters.Filter):
    """Unix seconds, compared with `lookup_expr` against a datetime column."""

    field_class = forms.IntegerField

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("min_value", UNIX_MIN)
        kwargs.setdefault("max_value", UNIX_MAX)
        super().__init__(*args, **kwargs)

    def filter(self, qs, value):
        if value is None:
            return qs
        return super().filter(qs, unix_to_datetime(value))


class StrictBooleanField(forms.Field):
    """`true`/`false` (or 1/0); anything else is an error, not silently no filter."""

    values = {"true": True, "1": True, "false": False, "0": False}

    def to_python(self, value):
        if value in (None, ""):
            return None
        try:
            return self.values[str(value).lower()]
        except KeyError:
            raise forms.ValidationError("Use true or false.", code="invalid") from None


class BooleanFilter(django_filters.Filter):
    field_class = StrictBooleanField


class TextFilter(django_filters.CharFilter):
    """A string filter bounded to the column's length."""

    def __init__(self, *args, max_length=255, **kwargs):
        super().__init__(*args, max_length=max_length, **kwargs)


class ApiFilterSet(django_filters.FilterSet):
    """`ids[]` on every list; as it is, the filter set of a resource with no other filters."""

    ids = UUIDListFilter(field_name="pk", help_text="Only these ids.")


class ProductFilterSet(ApiFilterSet):
    sku = TextFilter(max_length=100)
    vendor = TextFilter()
    tag = TextFilter(method="filter_tag", max_length=100, help_text="Products carrying this tag.")
    external_id = IntegerFilter(min_value=BIGINT_MIN, max_value=BIGINT_MAX)
    archived = BooleanFilter()

    class Meta:
        model = Product
        fields: list = []

    def filter_tag(self, queryset, name, value):
        return selectors.products_with_tag(queryset, value) if value else queryset


class VariantFilterSet(ApiFilterSet):
    product_ids = UUIDListFilter(field_name="product_id", help_text="Variants of these products.")
    sku = TextFilter(max_length=100)
    external_id = IntegerFilter(min_value=BIGINT_MIN, max_value=BIGINT_MAX)

    class Meta:
        model = Variant
        fields: list = []


class MediaFilterSet(ApiFilterSet):
    sha256 = TextFilter(max_length=64)

    class Meta:
        model = Media
        fields: list = []


class DownloadFilterSet(ApiFilterSet):
    archived = BooleanFilter()
    product_ids = UUIDListFilter(field_name="product_id", help_text="Downloads of these products.")
    customer_ids = UUIDListFilter(
        method="filter_customers", help_text="Downloads granted to these customers' orders."
    )

    class Meta:
        model = Download
        fields: list = []

    def filter_customers(self, queryset, name, value):
        if not value:
            return queryset
        granted = DownloadGrant.objects.filter(order__customer_id__in=value).values("download_id")
        return queryset.filter(pk__in=granted)


class OrderFilterSet(ApiFilterSet):
    number = IntegerFilter(min_value=0, max_value=BIGINT_MAX)
    email = TextFilter(field_name="email", lookup_expr="iexact", max_length=254)
    status = django_filters.ChoiceFilter(choices=Order.Status.choices)
    customer_ids = UUIDListFilter(field_name="customer_id", help_text="Orders of these customers.")
    channel = django_filters.ChoiceFilter(
        choices=Order.Channel.choices, help_text="Where the sale happened."
    )
    external_id = TextFilter(help_text="The order's id at its channel.")

    class Meta:
        model = Order
        fields: list = []


class GrantFilterSet(ApiFilterSet):
    order_ids = UUIDListFilter(field_name="order_id", help_text="Grants of these orders.")
    product_ids = UUIDListFilter(
        method="filter_products", help_text="Grants for these products' lines or downloads."
    )
    revoked = BooleanFilter(method="filter_revoked")

    class Meta:
        model = DownloadGrant
        fields: list = []

    def filter_products(self, queryset, name, value):
        if not value:
            return queryset
        return queryset.filter(Q(line__product_id__in=value) | Q(download__product_id__in=value))

    def filter_revoked(self, queryset, name, value):
        if value is None:
            return queryset
        return queryset.filter(revoked_at__isnull=not value)


class EventFilterSet(ApiFilterSet):
    grant_ids = UUIDListFilter(field_name="grant_id", help_text="Events of these grants.")
    order_ids = UUIDListFilter(field_name="grant__order_id", help_text="Events of these orders.")
    outcome = django_filters.ChoiceFilter(choices=DownloadEvent.Outcome.choices)
    after = UnixTimeFilter(field_name="at", lookup_expr="gte", help_text="At or after (Unix s).")
    before = UnixTimeFilter(field_name="at", lookup_expr="lt", help_text="Before (Unix seconds).")

    class Meta:
        model = DownloadEvent
        fields: list = []


class CustomerFilterSet(ApiFilterSet):
    email = TextFilter(field_name="email", lookup_expr="iexact", max_length=254)

    class Meta:
        model = User
        fields: list = []


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


class LicenseKeyFilterSet(ApiFilterSet):
    order_ids = UUIDListFilter(field_name="order_id", help_text="Keys of these orders.")
    product_ids = UUIDListFilter(field_name="product_id", help_text="Keys of these products.")
    status = django_filters.ChoiceFilter(
        choices=LicenseKey.Status.choices, method="filter_status", help_text="Derived status."
    )
    disabled = BooleanFilter(method="filter_disabled", help_text="Disabled keys, or the others.")
    email = TextFilter(
        field_name="order__email", lookup_expr="iexact", max_length=254, help_text="The buyer's."
    )

    class Meta:
        model = LicenseKey
        fields: list = []

    def filter_status(self, queryset, name, value):
        return queryset.filter(LicenseKey.status_q(value, timezone.now())) if value else queryset

    def filter_disabled(self, queryset, name, value):
        if value is None:
            return queryset
        return queryset.filter(disabled_at__isnull=not value)


class LicenseInstanceFilterSet(ApiFilterSet):
    license_key_ids = UUIDListFilter(
        field_name="license_key_id", help_text="Instances of these keys."
    )

    class Meta:
        model = LicenseInstance
        fields: list = []


# --- Backends -----------------------------------------------------------------------------------


class ApiFilterBackend(DjangoFilterBackend):
    """django-filter, with invalid values answered as 400 (not the 422 of a bad body)."""

    def filter_queryset(self, request, queryset, view):
        filterset = self.get_filterset(request, queryset, view)
        if filterset is None:
            return queryset
        if not filterset.is_valid():
            raise QueryParameterError(filterset.errors)
        return filterset.qs


class SearchBackend(BaseFilterBackend):
    """`search`: a case-insensitive match on the view's `search_fields` (or `search_q`)."""

    max_length = 200

    def filter_queryset(self, request, queryset, view):
        term = request.query_params.get("search", "").strip()
        if not term:
            return queryset
        if len(term) > self.max_length:
            raise QueryParameterError({"search": [f"At most {self.max_length} characters."]})
        builder = getattr(view, "search_q", None)
        if builder is not None:
            return queryset.filter(builder(term))
        condition = Q()
        for field in getattr(view, "search_fields", ()):
            condition |= Q(**{f"{field}__icontains": term})
        return queryset.filter(condition)

    def get_schema_operation_parameters(self, view):
        fields = getattr(view, "search_fields", None) or getattr(view, "search_description", "")
        return [
            {
                "name": "search",
                "in": "query",
                "required": False,
                "description": f"Case-insensitive search in {', '.join(fields) if isinstance(fields, list | tuple) else fields}.",
                "schema": {"type": "string", "maxLength": self.max_length},
            }
        ]


def or_order_number(condition: Q, term: str, number_field: str) -> Q:
    """A `search_q` helper: `condition`, or else the order numbered `term` (`1042` or `#1042`)
    when the term is such a number (below 19 characters: it fits a bigint)."""
    digits = term.lstrip("#")
    if digits.isdigit() and len(term) < 19:
        condition |= Q(**{number_field: int(digits)})
    return condition


def license_key_prefix(term: str) -> str | None:
    """A search term as the beginning of a stored licence key, or None when it cannot be one.
    Typed as a buyer would (any case, spaces or dashes anywhere, O for 0, I or L for 1): the
    term is padded to a whole key, put in canonical form by `canonical_key`, and cut back to
    the characters typed, with the dashes where the stored key has them."""
    chars = "".join(ch for ch in term if ch not in " -\t\r\n")
    if not chars or len(chars) > KEY_CHARS:
        return None
    canonical = canonical_key(chars + "0" * (KEY_CHARS - len(chars)))
    if canonical is None:
        return None
    return canonical[: len(chars) + (len(chars) - 1) // KEY_GROUP_LENGTH]


def or_license_key(condition: Q, term: str, key_field: str = "key") -> Q:
    """A `search_q` helper: `condition`, or else the keys that are `term` (a whole key) or
    begin with it, as `license_key_prefix` reads it."""
    prefix = license_key_prefix(term)
    if prefix is None:
        return condition
    if len(prefix) == KEY_CHARS + KEY_GROUPS - 1:  # a whole key: the unique index, exactly
        return condition | Q(**{key_field: prefix})
    return condition | Q(**{f"{key_field}__startswith": prefix})


class SortBackend(BaseFilterBackend):
    """`sort=field:asc|desc`, or EasyCart's `sortby=field&sortdir=asc|desc`, over the view's
    `sort_fields` ({public name: model field}); ties are broken by id for stable pages."""

    def filter_queryset(self, request, queryset, view):
        params = request.query_params
        fields = view.sort_fields
        if params.get("sort"):
            name, _, direction = params["sort"].partition(":")
            parameter = "sort"
        elif params.get("sortby"):
            name, direction, parameter = params["sortby"], params.get("sortdir", ""), "sortby"
        else:
            if params.get("sortdir") and params["sortdir"].lower() not in DIRECTIONS:
                raise QueryParameterError({"sortdir": ["Use asc or desc."]}, code="invalid_choice")
            return queryset
        if name not in fields:
            raise QueryParameterError(
                {parameter: [f"Sort by one of: {', '.join(fields)}."]}, code="invalid_choice"
            )
        direction = (direction or "asc").lower()
        if direction not in DIRECTIONS:
            raise QueryParameterError(
                {"sortdir" if parameter == "sortby" else parameter: ["Use asc or desc."]},
                code="invalid_choice",
            )
        prefix = "-" if direction == "desc" else ""
        return queryset.order_by(f"{prefix}{fields[name]}", f"{prefix}pk")

    def get_schema_operation_parameters(self, view):
        fields = list(view.sort_fields)
        return [
            {
                "name": "sort",
                "in": "query",
                "required": False,
                "description": "`field:asc` or `field:desc` (the direction in any case).",
                "schema": {
                    "type": "string",
                    "enum": [f"{field}:{way}" for field in fields for way in ("asc", "desc")]
                    + fields,
                },
            },
            {
                "name": "sortby",
                "in": "query",
                "required": False,
                "description": "EasyCart's alias of `sort`: the field.",
                "schema": {"type": "string", "enum": fields},
            },
            {
                "name": "sortdir",
                "in": "query",
                "required": False,
                "description": "EasyCart's direction for `sortby` (read in any case: `DESC` too).",
                "schema": {"type": "string", "enum": list(DIRECTIONS)},
            },
        ]
