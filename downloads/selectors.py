"""Reads. Pages, the storefront JSON and the API fetch the domain through these functions,
each with the joins and prefetches that keep its query count constant."""

import hmac
import json
import uuid
from dataclasses import dataclass
from datetime import datetime

from django.db import DEFAULT_DB_ALIAS, connection, connections
from django.db.models import (
    BooleanField,
    ExpressionWrapper,
    F,
    FilteredRelation,
    OuterRef,
    Prefetch,
    Q,
    QuerySet,
    Subquery,
    UUIDField,
    Value,
)
from django.db.models.functions import Cast
from django.utils import timezone
from django.utils.translation import pgettext_lazy

from .compiled import CompiledQuery, ModelRow, cache_related, fields_except, prefetched
from .models import (
    REFUSAL_LABELS,
    Download,
    DownloadGrant,
    DownloadVersion,
    LicenseInstance,
    LicenseKey,
    Media,
    Order,
    OrderLine,
    Product,
    Variant,
)
from .services.stamping import STATE_ANNOTATIONS, is_stamped

MAX_TOKEN_LENGTH = 64


def token_ok(token: str | None) -> bool:
    # Refuse what no token can be before it reaches the database (NUL bytes break PostgreSQL).
    return bool(token) and len(token) <= MAX_TOKEN_LENGTH and "\x00" not in token


# What serving a download reads, model by model (attnames; see `grant_get_for_delivery`).
_DELIVERY_ROW = ModelRow(
    (
        "",
        DownloadGrant,
        (
            "id",
            "token",
            "order_id",
            "download_id",
            "download_count",
            "download_limit",
            "expires_at",
            "revoked_at",
            "last_downloaded_at",
            # The resume window (services.consume): lets a refused-looking resume be told
            # apart without another read.
            "resume_until",
            "resume_bytes_left",
        ),
    ),
    ("order", Order, ("id", "access_token", "number", "email", "customer_id")),
    # `stamp`: whether the buyer gets a stamped copy (services.stamping.file_to_deliver).
    ("download", Download, ("id", "media_id", "url", "name", "stamp")),
    (
        "download__media",
        Media,
        ("id", "file", "filename", "content_type", "byte_size", "sha256"),
    ),
)
_DELIVERY = CompiledQuery(
    lambda token: (
        DownloadGrant.objects.filter(token=token)
        .order_by()
        .values_list(*_DELIVERY_ROW.lookups())[:1]
    )
)


def grant_get_for_delivery(*, token: str) -> DownloadGrant | None:
    """The grant behind a download URL, with its order, download and file, in one query.

    The hot path of the whole store: one prepared SELECT, and the instances are built from
    its row (`Model.from_db`, fields not read here stay deferred) without compiling a
    `select_related()` queryset on every request.
    """
    if not token_ok(token):
        return None
    rows = _DELIVERY.rows(token)
    return grant_from_delivery_row(rows[0], token=token) if rows else None


def delivery_lookup_sql(using: str = DEFAULT_DB_ALIAS) -> str:
    """The SQL of `grant_get_for_delivery`'s lookup with its one parameter named
    `%(token)s`, for a statement that embeds it (services.consume); its row, whose first
    DELIVERY_WIDTH columns are the lookup's, goes to `delivery_rows_of`."""
    sql, order = _DELIVERY.sql(using)
    if order != [0] or sql.count("%s") != 1:
        raise ValueError("The delivery lookup takes exactly one parameter, the token.")
    return sql.replace("%s", "%(token)s")


def delivery_rows_of(sql: str, params: dict, using: str = DEFAULT_DB_ALIAS) -> list[tuple]:
    """The rows of a statement embedding the delivery lookup, its columns converted."""
    return _DELIVERY.rows_of(sql, params, using=using)


# The lookup's columns, in its row's order, and where a few of them are.
DELIVERY_COLUMNS = _DELIVERY_ROW.columns()
DELIVERY_WIDTH = _DELIVERY_ROW.width


def delivery_column(model, name: str) -> int:
    """The position of `model`'s field `name` (an attname) in the delivery lookup's row."""
    return DELIVERY_COLUMNS.index((model, name))


def grant_from_delivery_row(row, *, token: str) -> DownloadGrant | None:
    """The grant, its order, download and file built from the delivery lookup's row
    (`Model.from_db`; fields not read stay deferred); None if the token does not match in
    constant time."""
    grant = _DELIVERY_ROW.instance(row, using=connection.alias)
    if not hmac.compare_digest(grant.token, token):
        return None
    return grant


# A key's unit was refunded: its order refunded, its line refunded in full, or past the units
# still paid for (`LicenseKey.refunded_q`, what refunds disable); read here only to word a
# disabled key ("Disabled (refunded)"), never to decide its status (`LicenseKey.status_at`).
_KEY_UNIT_REFUNDED = ExpressionWrapper(LicenseKey.refunded_q(), output_field=BooleanField())


def _with_changelog(queryset: QuerySet[DownloadGrant]) -> QuerySet[DownloadGrant]:
    """Grants with `changelog`: what the merchant wrote about their file's current version
    (the newest), None without versions. A subquery in the grants' own statement."""
    newest = DownloadVersion.objects.filter(download_id=OuterRef("download_id")).order_by(
        "-created_at", "-id"
    )
    return queryset.annotate(changelog=Subquery(newest.values("changelog")[:1]))


# The order buyers see an order's parts in, on the page and in the storefront JSON: lines as
# placed, each line's keys by unit, files as the merchant ordered them (then as granted).
LINES_SHOWN_ORDER = ("position", "id")
KEYS_SHOWN_ORDER = ("unit", "id")
GRANTS_SHOWN_ORDER = ("download__position", "created_at", "id")

# What the order page reads (`order_get_by_token`): every field of the order and its lines,
# and of its grants, their downloads and files every field but the bookkeeping times nothing
# shows (three in four of the datetimes the page would parse); one read later loads as a
# deferred field does. Nothing on the page or in the order email reads a line's product or
# variant (a line keeps its own name and variant name): not joined.
_BOOKKEEPING = ("created_at", "updated_at")
_PAGE_ORDER_ROW = ModelRow(("", Order, None))
_PAGE_LINE_ROW = ModelRow(("", OrderLine, None))
_PAGE_GRANT_ROW = ModelRow(
    ("", DownloadGrant, fields_except(DownloadGrant, *_BOOKKEEPING)),
    ("download", Download, fields_except(Download, *_BOOKKEEPING)),
    ("download__media", Media, fields_except(Media, *_BOOKKEEPING)),
    extra=(*STATE_ANNOTATIONS, "changelog"),
)
_PAGE_KEY_ROW = ModelRow(("", LicenseKey, None), extra=("unit_refunded",))
_PAGE_QUERIES = (
    CompiledQuery(
        lambda access_token: (
            Order.objects.filter(access_token=access_token)
            .order_by()
            .values_list(*_PAGE_ORDER_ROW.lookups())[:1]
        )
    ),
    CompiledQuery(
        lambda access_token: (
            OrderLine.objects.filter(order__access_token=access_token)
            .order_by(*LINES_SHOWN_ORDER)
            .values_list(*_PAGE_LINE_ROW.lookups())
        )
    ),
    CompiledQuery(
        lambda access_token: (
            _with_changelog(
                grants_with_stamp_state(
                    DownloadGrant.objects.filter(order__access_token=access_token)
                )
            )
            .order_by(*GRANTS_SHOWN_ORDER)
            .values_list(*_PAGE_GRANT_ROW.lookups())
        )
    ),
    CompiledQuery(
        lambda access_token: (
            LicenseKey.objects.filter(order__access_token=access_token)
            .annotate(unit_refunded=_KEY_UNIT_REFUNDED)
            .order_by(*KEYS_SHOWN_ORDER)
            .values_list(*_PAGE_KEY_ROW.lookups())
        )
    ),
)


def order_get_by_token(*, access_token: str) -> Order | None:
    """The order behind a buyer's order page URL, with lines, files, grants and licence keys
    read as `prefetch_related()` would leave them: `order.lines.all()`, each line's
    `grants.all()` and `license_keys.all()` (each key with `unit_refunded`, to word a
    disabled one) ask nothing more. Four compiled queries, in one statement on PostgreSQL
    (`CompiledQuery.together`).

    Order-level grants (files attached to the order) are in `order.order_grants`. Each
    grant's `stamped` says its file is a copy personalised for the buyer
    (services.stamping.is_stamped, from the loaded download: no query); each grant also
    carries its current stamped copy's state (`grants_with_stamp_state`), so the page and
    the download-all notice ask nothing more per file; `changelog`, the current version's
    line; and `updated_since_paid`, whether the file was replaced after the purchase.
    """
    if not token_ok(access_token):
        return None
    args = (access_token,)
    orders, lines, grants, keys = CompiledQuery.together(
        *((query, args) for query in _PAGE_QUERIES)
    )
    if not orders:
        return None
    db = connection.alias
    order = _PAGE_ORDER_ROW.instance(orders[0], using=db)
    if not hmac.compare_digest(order.access_token, access_token):
        return None
    lines = [_PAGE_LINE_ROW.instance(row, using=db) for row in lines]
    grants_of = {line.pk: [] for line in lines}
    keys_of = {line.pk: [] for line in lines}
    order_grants = []
    for row in grants:
        grant = _PAGE_GRANT_ROW.instance(row, using=db)
        cache_related(grant, "order", order)
        download = grant.download
        grant.stamped = is_stamped(download)
        # "Updated on …" (and what changed): the file was replaced after the purchase.
        updated = download.file_updated_at
        grant.updated_since_paid = bool(updated and order.paid_at and updated > order.paid_at)
        (order_grants if grant.line_id is None else grants_of[grant.line_id]).append(grant)
    for row in keys:
        key = _PAGE_KEY_ROW.instance(row, using=db)
        cache_related(key, "order", order)
        keys_of[key.line_id].append(key)
    for line in lines:
        prefetched(line, "grants", grants_of[line.pk])
        prefetched(line, "license_keys", keys_of[line.pk])
    prefetched(order, "lines", lines)
    order.order_grants = order_grants
    return order


def grants_with_stamp_state(queryset: QuerySet[DownloadGrant]) -> QuerySet[DownloadGrant]:
    """Grants with their stamped copy of their Download's current file (the copy
    `services.stamping.file_to_deliver` serves) in one LEFT JOIN, as the annotations
    `stamping.stamp_state` reads (stamping.STATE_ANNOTATIONS): no query per grant, and no
    extra row (a grant has at most one copy of a file)."""
    return queryset.annotate(
        current_copy=FilteredRelation(
            "stamped_copies", condition=Q(stamped_copies__source_id=F("download__media_id"))
        ),
        stamp_copy_status=F("current_copy__status"),
        stamp_copy_error=F("current_copy__error"),
        stamp_copy_ready_at=F("current_copy__ready_at"),
    )


@dataclass(frozen=True)
class StorefrontOrder:
    """An order as flat rows, for the storefront JSON: no model instances are built (a key's
    status comes from `LicenseKey.status_of` on its values), which makes this read about
    three times cheaper than `order_get_by_token` (see bench/)."""

    number: int
    paid_at: datetime | None
    lines: list[tuple]  # STOREFRONT_LINE_FIELDS, in line order
    grants: list[tuple]  # STOREFRONT_GRANT_FIELDS, in display order
    # Each line's licence keys by line id, in unit order: (key, status, activation_limit,
    # activation_usage, expires_at); lines without keys are absent.
    license_keys: dict


STOREFRONT_LINE_FIELDS = (
    "id",
    "order__number",
    "order__paid_at",
    "order__access_token",
    "name",
    "variant_name",
    "sku",
    "product_id",
    "product__external_id",
    "product__vendor",
    "product__tags",
    "variant__external_id",
)
STOREFRONT_GRANT_FIELDS = (
    "line_id",
    "token",
    "download_count",
    "download_limit",
    "download_id",
    "download__name",
    "download__url",
    "download__file_updated_at",
    "download__media_id",
    "download__media__filename",
    "download__media__byte_size",
    "download__stamp",
    "download__media__content_type",
)


# Each line's keys come in the lines' own statement (LEFT JOIN: one row per key, one row of
# NULLs for a line without keys), so they cost the storefront no statement of their own.
STOREFRONT_KEY_FIELDS = (
    "license_keys__key",
    "license_keys__activation_limit",
    "license_keys__activation_usage",
    "license_keys__expires_at",
    "license_keys__disabled_at",
)
_STOREFRONT_LINES = CompiledQuery(
    lambda access_token: (
        OrderLine.objects.filter(order__access_token=access_token)
        .order_by(*LINES_SHOWN_ORDER, *(f"license_keys__{name}" for name in KEYS_SHOWN_ORDER))
        .values_list(*STOREFRONT_LINE_FIELDS, *STOREFRONT_KEY_FIELDS)
    )
)
_STOREFRONT_GRANTS = CompiledQuery(
    lambda access_token: (
        DownloadGrant.objects.filter(order__access_token=access_token)
        .order_by(*GRANTS_SHOWN_ORDER)
        .values_list(*STOREFRONT_GRANT_FIELDS)
    )
)


def order_storefront_by_token(*, access_token: str) -> StorefrontOrder | None:
    """The order behind a storefront's account page as plain rows (no model instances): its
    lines with their licence keys, and its grants; two queries in one statement."""
    if not token_ok(access_token):
        return None
    rows, grants = CompiledQuery.together(
        (_STOREFRONT_LINES, (access_token,)), (_STOREFRONT_GRANTS, (access_token,))
    )
    # Every order has a line; none here means no such order.
    if not rows or not hmac.compare_digest(rows[0][3], access_token):
        return None
    width = len(STOREFRONT_LINE_FIELDS)
    lines, keys, now = [], {}, timezone.now()
    for row in rows:
        if not lines or lines[-1][0] != row[0]:
            lines.append(row[:width])
        if row[width] is None:
            continue
        text, limit, usage, expires_at, disabled_at = row[width:]
        status = LicenseKey.status_of(
            disabled_at=disabled_at, expires_at=expires_at, activation_usage=usage, now=now
        )
        keys.setdefault(row[0], []).append((text, status, limit, usage, expires_at))
    return StorefrontOrder(
        number=lines[0][1], paid_at=lines[0][2], lines=lines, grants=grants, license_keys=keys
    )


def order_list_for_customer(*, user) -> QuerySet[Order]:
    """A customer's orders, newest first (`Order.owned_by_q`: linked, or their email)."""
    return Order.objects.filter(Order.owned_by_q(user)).order_by("-placed_at", "-number")


def order_list_page_for_customer(*, user) -> QuerySet[Order]:
    """A customer's orders with their lines, for the account's order list."""
    return order_list_for_customer(user=user).prefetch_related("lines")


@dataclass(frozen=True)
class PaymentState:
    """An order's state in the buyer's words: `key` (the badge's class) and `label`."""

    key: str
    label: str


PAYMENT_STATES = {
    state.key: state
    for state in (
        PaymentState("pending", pgettext_lazy("order state", "Pending")),
        PaymentState("paid", pgettext_lazy("order state", "Paid")),
        PaymentState("partly_refunded", pgettext_lazy("order state", "Partly refunded")),
        PaymentState("refunded", pgettext_lazy("order state", "Refunded")),
        PaymentState("cancelled", pgettext_lazy("order state", "Cancelled")),
    )
}


def order_payment_state(order: Order) -> PaymentState:
    """What an order's badge says, wherever buyers see it: "Refunded" once the order is
    refunded (or its whole total was given back), "Partly refunded" while a paid order has a
    refunded amount, line or unit, else its status. Reads the order's lines only when no
    amount was refunded (prefetched on the buyer's pages: no query)."""
    paid, refunded = Order.Status.PAID, Order.Status.REFUNDED
    if order.status == refunded or (
        order.status == paid and order.total and order.refunded_total >= order.total
    ):
        return PAYMENT_STATES["refunded"]
    if order.status == paid and (
        order.refunded_total
        or any(line.refunded_at or line.refunded_quantity for line in order.lines.all())
    ):
        return PAYMENT_STATES["partly_refunded"]
    return PAYMENT_STATES[order.status]


def products_with_tag(queryset: QuerySet[Product], tag: str) -> QuerySet[Product]:
    """Filter products carrying `tag` (tags are a JSON list)."""
    if connection.vendor == "postgresql":
        return queryset.filter(tags__contains=[tag])
    # SQLite has no JSON containment; match the tag as a quoted JSON string in the stored text.
    return queryset.filter(tags__icontains=json.dumps(tag))


def line_target(
    *, product_id=None, variant_id=None, sku: str | None = None
) -> tuple[Product, Variant | None] | None:
    """Find what an order line sells, by variant, product or SKU (variant SKUs first)."""
    if variant_id:
        variant = Variant.objects.select_related("product").filter(pk=variant_id).first()
        return (variant.product, variant) if variant else None
    if product_id:
        product = Product.objects.filter(pk=product_id).first()
        return (product, None) if product else None
    if sku:
        variant = Variant.objects.select_related("product").filter(sku=sku).first()
        if variant:
            return variant.product, variant
        product = Product.objects.filter(sku=sku).first()
        return (product, None) if product else None
    return None


def downloads_for_product(*, product: Product) -> QuerySet[Download]:
    return product.downloads.select_related("media", "variant").order_by("position", "created_at")


# --- Back office ------------------------------------------------------------------------------

# The back office's list filters, by name ("revoked", "expired", "used_up").
_REFUSAL_BY_FILTER = {labels.filter: reason for reason, labels in REFUSAL_LABELS.items()}
GRANT_STATES = tuple(_REFUSAL_BY_FILTER)


def grant_state_q(state: str, *, now=None) -> Q:
    """The grants in one state, for list filters: "revoked", "used_up" or "expired"
    (`DownloadGrant.refusal_q`, the one definition)."""
    if state not in _REFUSAL_BY_FILTER:
        raise ValueError(f"unknown grant state {state!r}")
    return DownloadGrant.refusal_q(_REFUSAL_BY_FILTER[state], now or timezone.now())


# --- Store: the catalogue on the store's home -------------------------------------------------


@dataclass(frozen=True)
class CatalogueEntry:
    """One product on sale, with its variants in display order (each variant's product is
    the loaded product, so `effective_price` costs no query)."""

    product: Product
    variants: list[Variant]

    @property
    def price_from(self) -> int:
        """The least one unit costs: the cheapest variant, else the product's price."""
        if not self.variants:
            return self.product.price
        return min(variant.effective_price for variant in self.variants)

    @property
    def prices_vary(self) -> bool:
        return len({variant.effective_price for variant in self.variants}) > 1


def catalogue_for_store() -> list[CatalogueEntry]:
    """The products that are not archived, by name, with their variants: two queries
    whatever the catalogue's size (one when it is empty)."""
    products = (
        Product.objects.filter(archived=False)
        .order_by("name", "id")
        .prefetch_related(
            Prefetch("variants", queryset=Variant.objects.order_by("position", "name", "id"))
        )
    )
    return [
        CatalogueEntry(product=product, variants=list(product.variants.all()))
        for product in products
    ]


# --- Licence keys -----------------------------------------------------------------------------

# What the public licence API answers with, model by model (attnames; see
# `license_key_get_for_validation`): the whole key, and what its `meta` shows.
_Customer = Order._meta.get_field("customer").related_model

_LICENSE_ROW = ModelRow(
    ("", LicenseKey, None),
    ("order", Order, ("id", "number", "email", "customer_id")),
    ("order__customer", _Customer, ("id", "name")),
    ("product", Product, ("id", "name")),
    ("variant", Variant, ("id", "name")),
    ("asked_instance", LicenseInstance, ("id", "license_key_id", "name", "created_at")),
)
# The instance id the statement is given when none was asked for (or it is not an id at all):
# uuid4 never makes it, so it matches no instance.
_NO_INSTANCE = uuid.UUID(int=0)
_LICENSE_FOR_VALIDATION = CompiledQuery(
    lambda key_hash, instance_id: (
        LicenseKey.objects.annotate(
            # LEFT JOIN the key's instance with that id (the id is cast in SQL, so that it
            # reaches the statement as a plain string parameter).
            asked_instance=FilteredRelation(
                "instances",
                condition=Q(instances__id=Cast(Value(instance_id), output_field=UUIDField())),
            )
        )
        .filter(key_hash=key_hash)
        .order_by()
        .values_list(*_LICENSE_ROW.lookups())[:1]
    )
)


def license_key_get_for_validation(
    *, key_hash: str, instance_id=None
) -> tuple[LicenseKey, LicenseInstance | None] | None:
    """The key whose SHA-256 is `key_hash`, with its order (and the order's customer),
    product and variant, and the key's instance `instance_id` when it has one of that id
    (else None): one SELECT, run as a prepared statement (a licence check runs on every start
    of the seller's app). None when no key has that digest. Comparing the key the buyer typed
    with the one found, in constant time, is the caller's (`services.licences`)."""
    if not isinstance(key_hash, str) or len(key_hash) != 64:
        return None
    try:
        asked = uuid.UUID(str(instance_id)) if instance_id not in (None, "") else _NO_INSTANCE
    except ValueError:  # not an id at all: as unknown as any other
        asked = _NO_INSTANCE
    db = connections[DEFAULT_DB_ALIAS]
    # The id as the database stores it: a uuid's text on PostgreSQL, 32 hex digits on SQLite.
    asked_param = str(LicenseInstance._meta.pk.get_db_prep_value(asked, db))
    rows = _LICENSE_FOR_VALIDATION.rows(key_hash, asked_param)
    if not rows:
        return None
    built = _LICENSE_ROW.instances(rows[0], using=db.alias)
    key, instance = built[""], built["asked_instance"]
    if instance is not None:
        cache_related(instance, "license_key", key)
    return key, instance
