"""Catalogue: products, variants and downloads (SureCart's download object).

Rules owned here: a product and a variant need a name; tags are stripped, non-empty and
unique, at most MAX_TAGS of at most MAX_TAG_LENGTH characters; a download has exactly one
of media or url, a url needs a name, a variant belongs to the download's product; archiving
hides from new sales and keeps buyers' downloads; deleting what orders use is refused; a
product has a price (an amount, see downloads.money) and a variant its own or none (None: it
costs its product's); a product's licence keys are on or off, their activation limit at least 1
(None: unlimited, at most MAX_LICENSE_ACTIVATIONS) and their expiry 1 to MAX_EXPIRY_DAYS days
after payment (None: never); keys already issued keep what they were issued with. A
download's stamp is on or off, its text a template `stamping.stamp_text_check` accepts and its
position one of StampPosition; turning the stamp on, or changing its text or position, makes
every buyer's copy (again), and turning it off deletes them (services.stamping).
"""

from collections.abc import Iterable

from django.db import transaction
from django.db.models import Max
from django.utils import timezone

from .. import money
from ..errors import ServiceError
from ..models import (
    Download,
    Media,
    Product,
    StampPosition,
    Variant,
)
from ..models.catalogue import DEFAULT_STAMP_TEXT
from . import stamping
from .backfills import download_deliver_to_existing_orders
from .common import UNSET, check_expiry_days, delete_or_refuse, required_text, save_fields
from .versions import download_replace_media


def product_delete(*, product: Product) -> None:
    """Delete a product no order uses; otherwise refuse (409) and suggest archiving."""
    delete_or_refuse(product, code="product.in_use", noun="product")


def product_set_archived(*, product: Product, archived: bool) -> Product:
    """Archive (hide from new sales) or unarchive a product; buyers keep their downloads."""
    if product.archived != archived:
        product.archived = archived
        product.archived_at = timezone.now() if archived else None
        product.save(update_fields=["archived", "archived_at", "updated_at"])
    return product


def download_set_archived(*, download: Download, archived: bool) -> Download:
    """Archive a download: new orders no longer receive it; existing grants keep working."""
    if download.archived != archived:
        download.archived = archived
        download.archived_at = timezone.now() if archived else None
        download.save(update_fields=["archived", "archived_at", "updated_at"])
    return download


def download_delete(*, download: Download) -> None:
    delete_or_refuse(download, code="download.in_use", noun="download")


def download_validate(
    *,
    product: Product | None,
    variant: Variant | None,
    media: Media | None,
    url: str | None,
    name: str | None,
) -> None:
    """The rules of a Download that the database also enforces, as clear messages."""
    if (media is None) == (not url):
        raise ServiceError(
            "A download needs exactly one of media or url.",
            code="download.invalid",
            attribute="media" if media is None else "url",
        )
    if url and not (name or "").strip():
        raise ServiceError(
            "A download with a url needs a name.",
            code="download.invalid",
            reason="blank",
            attribute="name",
        )
    if variant is not None and product is not None and variant.product_id != product.pk:
        raise ServiceError(
            "The variant belongs to another product.",
            code="download.invalid",
            reason="invalid",
            attribute="variant",
        )


MAX_TAGS = 50
MAX_TAG_LENGTH = 100

PRODUCT_FIELDS = frozenset(
    {
        "name",
        "sku",
        "vendor",
        "tags",
        "description",
        "price",
        "external_id",
        "download_limit",
        "download_expiry_days",
        "license_keys",
        "license_activation_limit",
        "license_expiry_days",
    }
)

# Activations a product's keys may each take; beyond that, unlimited (None) says it better.
MAX_LICENSE_ACTIVATIONS = 1_000_000


VARIANT_FIELDS = frozenset({"name", "sku", "external_id", "price", "position"})


STAMP_FIELDS = frozenset({"stamp", "stamp_text", "stamp_position"})
DOWNLOAD_FIELDS = frozenset(
    {"media", "url", "name", "title", "alt", "product", "variant", "position", *STAMP_FIELDS}
)


def _clean_stamp_settings(fields: dict) -> dict:
    """The stamp settings among `fields`, checked: `stamp` a bool, `stamp_text` through
    stamping.stamp_text_check (stripped), `stamp_position` one of StampPosition."""
    if "stamp" in fields and not isinstance(fields["stamp"], bool):
        raise ServiceError(
            "stamp must be true or false.",
            code="download.invalid",
            reason="invalid",
            attribute="stamp",
        )
    if "stamp_text" in fields:
        fields["stamp_text"] = stamping.stamp_text_check(fields["stamp_text"])
    if "stamp_position" in fields and fields["stamp_position"] not in StampPosition.values:
        raise ServiceError(
            f"stamp_position is one of {', '.join(StampPosition.values)}.",
            code="download.invalid",
            reason="invalid_choice",
            attribute="stamp_position",
        )
    return fields


def _clean_tags(tags) -> list[str]:
    """Stripped, non-empty, unique tags within MAX_TAGS and MAX_TAG_LENGTH."""
    clean = list(dict.fromkeys(tag.strip() for tag in tags or () if tag and tag.strip()))
    if len(clean) > MAX_TAGS or any(len(tag) > MAX_TAG_LENGTH for tag in clean):
        raise ServiceError(
            f"At most {MAX_TAGS} tags of at most {MAX_TAG_LENGTH} characters.",
            code="product.invalid",
            reason="max_length",
            attribute="tags",
        )
    return clean


def _check_license_settings(fields: dict) -> None:
    """The product's licence settings among `fields`: a bool, a limit of at least 1 or None,
    an expiry of 1 to MAX_EXPIRY_DAYS days or None."""
    if "license_keys" in fields and not isinstance(fields["license_keys"], bool):
        raise ServiceError(
            "license_keys must be true or false.",
            code="product.invalid",
            reason="invalid",
            attribute="license_keys",
        )
    limit = fields.get("license_activation_limit")
    if limit is not None and (not isinstance(limit, int) or isinstance(limit, bool)):
        raise ServiceError(
            "license_activation_limit must be a whole number, or null for unlimited.",
            code="product.invalid",
            reason="invalid",
            attribute="license_activation_limit",
        )
    if limit is not None and not 1 <= limit <= MAX_LICENSE_ACTIVATIONS:
        raise ServiceError(
            f"license_activation_limit must be between 1 and {MAX_LICENSE_ACTIVATIONS}, "
            "or null for unlimited.",
            code="product.invalid",
            reason="min_value" if limit < 1 else "max_value",
            attribute="license_activation_limit",
        )
    days = fields.get("license_expiry_days")
    if days is not None and (not isinstance(days, int) or isinstance(days, bool)):
        raise ServiceError(
            "license_expiry_days must be a whole number of days, or null for never.",
            code="product.invalid",
            reason="invalid",
            attribute="license_expiry_days",
        )
    check_expiry_days(days, attribute="license_expiry_days", entity="product", minimum=1)


def product_create(
    *,
    name: str,
    sku: str = "",
    vendor: str = "",
    tags: Iterable[str] = (),
    description: str = "",
    price: int = 0,
    external_id: int | None = None,
    download_limit: int | None = None,
    download_expiry_days: int | None = None,
    license_keys: bool = False,
    license_activation_limit: int | None = None,
    license_expiry_days: int | None = None,
    archived: bool = False,
) -> Product:
    """Create a product. Limits left None fall back to the store defaults when orders pay;
    with `license_keys` each unit bought gets a key (limit None: unlimited activations,
    expiry None: never)."""
    check_expiry_days(download_expiry_days, attribute="download_expiry_days", entity="product")
    _check_license_settings(
        {
            "license_keys": license_keys,
            "license_activation_limit": license_activation_limit,
            "license_expiry_days": license_expiry_days,
        }
    )
    now = timezone.now()
    return Product.objects.create(
        name=required_text(name, attribute="name", noun="product"),
        sku=sku or "",
        vendor=vendor or "",
        tags=_clean_tags(tags),
        description=description or "",
        price=money.check_amount(price, entity="product", attribute="price"),
        external_id=external_id,
        download_limit=download_limit,
        download_expiry_days=download_expiry_days,
        license_keys=license_keys,
        license_activation_limit=license_activation_limit,
        license_expiry_days=license_expiry_days,
        archived=archived,
        archived_at=now if archived else None,
    )


def product_update(*, product: Product, archived=UNSET, **fields) -> Product:
    """Change a product's fields (see PRODUCT_FIELDS); `archived` goes through
    `product_set_archived`. Existing grants and licence keys keep the limits they were
    issued with."""
    if unknown := set(fields) - PRODUCT_FIELDS:
        raise TypeError(f"Unknown product fields: {', '.join(sorted(unknown))}")
    if "name" in fields:
        fields["name"] = required_text(fields["name"], attribute="name", noun="product")
    if "tags" in fields:
        fields["tags"] = _clean_tags(fields["tags"])
    if "price" in fields:
        money.check_amount(fields["price"], entity="product", attribute="price")
    if "download_expiry_days" in fields:
        check_expiry_days(
            fields["download_expiry_days"], attribute="download_expiry_days", entity="product"
        )
    _check_license_settings(fields)
    for field in ("sku", "vendor", "description"):
        if field in fields and fields[field] is None:
            fields[field] = ""
    save_fields(product, fields)
    if archived is not UNSET:
        product_set_archived(product=product, archived=archived)
    return product


def variant_create(
    *,
    product: Product,
    name: str,
    sku: str = "",
    external_id: int | None = None,
    price: int | None = None,
    position: int | None = None,
) -> Variant:
    """Add a variant to a product, by default after its last one; without a price (None)
    it costs the product's."""
    if position is None:
        last = product.variants.aggregate(last=Max("position"))["last"]
        position = 0 if last is None else last + 1
    return Variant.objects.create(
        product=product,
        name=required_text(name, attribute="name", noun="variant"),
        sku=sku or "",
        external_id=external_id,
        price=_variant_price(price),
        position=position,
    )


def variant_update(*, variant: Variant, **fields) -> Variant:
    """Change a variant's fields (see VARIANT_FIELDS); it stays on its product."""
    if unknown := set(fields) - VARIANT_FIELDS:
        raise TypeError(f"Unknown variant fields: {', '.join(sorted(unknown))}")
    if "name" in fields:
        fields["name"] = required_text(fields["name"], attribute="name", noun="variant")
    if "sku" in fields and fields["sku"] is None:
        fields["sku"] = ""
    if "price" in fields:
        _variant_price(fields["price"])
    save_fields(variant, fields)
    return variant


def _variant_price(price: int | None) -> int | None:
    """A variant's own price, or None: it costs its product's."""
    if price is not None:
        money.check_amount(price, entity="variant", attribute="price")
    return price


def variant_delete(*, variant: Variant) -> None:
    """Delete a variant no order line uses (its downloads go with it, unless granted)."""
    delete_or_refuse(variant, code="variant.in_use", noun="variant")


def _next_download_position(product: Product | None) -> int:
    if product is None:
        return 0
    last = product.downloads.aggregate(last=Max("position"))["last"]
    return 0 if last is None else last + 1


def download_create(
    *,
    media: Media | None = None,
    url: str | None = None,
    name: str | None = None,
    title: str | None = None,
    alt: str | None = None,
    product: Product | None = None,
    variant: Variant | None = None,
    position: int | None = None,
    archived: bool = False,
    deliver_to_existing_orders: bool = False,
    stamp: bool = False,
    stamp_text: str = DEFAULT_STAMP_TEXT,
    stamp_position: str = StampPosition.BOTTOM,
) -> Download:
    """Create a download (SureCart's): exactly one of `media` or `url` (which needs a
    `name`), on a product, one of its variants (the product follows), or on neither, to be
    attached to single orders. `deliver_to_existing_orders` also gives it to the product's
    paid orders, in the background. With `stamp`, each buyer of a PDF gets a copy stamped
    with `stamp_text` at `stamp_position` (services.stamping); any other file is delivered
    as it is."""
    url = url or None
    name = (name or "").strip() or None
    if variant is not None and product is None:
        product = variant.product
    download_validate(product=product, variant=variant, media=media, url=url, name=name)
    stamp_settings = _clean_stamp_settings(
        {"stamp": stamp, "stamp_text": stamp_text, "stamp_position": stamp_position}
    )
    now = timezone.now()
    with transaction.atomic():
        download = Download.objects.create(
            media=media,
            url=url,
            name=name,
            title=title or None,
            alt=alt or None,
            product=product,
            variant=variant,
            position=_next_download_position(product) if position is None else position,
            archived=archived,
            archived_at=now if archived else None,
            **stamp_settings,
        )
        if deliver_to_existing_orders:
            download_deliver_to_existing_orders(download=download)
    return download


def _stamp_settings_applied(download: Download, changed: set[str]) -> None:
    """The buyers' copies after a change of the stamp settings (already saved)."""
    if not download.stamp:
        stamping.stamped_copies_discard(download=download)
    elif changed & {"stamp_text", "stamp_position"}:
        stamping.stamped_copies_remake(download=download)
    else:  # turned on
        stamping.stamped_copies_for_download(download=download)


def download_update(
    *,
    download: Download,
    archived=UNSET,
    deliver_to_existing_orders=UNSET,
    created_by=None,
    **fields,
) -> Download:
    """Change a download's fields (see DOWNLOAD_FIELDS).

    Turning `deliver_to_existing_orders` on gives the file to the product's paid orders in
    the background (`download_deliver_to_existing_orders`); turning it off stops nothing
    already delivered.

    Giving `url` alone switches a file download to a link and `media` alone the other way.
    A new media file goes through `download_replace_media`, so the old file is kept as a
    version; `archived` goes through `download_set_archived`.

    Turning `stamp` on requests a stamped copy for every grant; changing `stamp_text` or
    `stamp_position` makes every copy again; turning it off deletes the copies (their
    files go with them)."""
    if unknown := set(fields) - DOWNLOAD_FIELDS:
        raise TypeError(f"Unknown download fields: {', '.join(sorted(unknown))}")
    _clean_stamp_settings(fields)
    stamp_changed = {
        field for field in STAMP_FIELDS & set(fields) if fields[field] != getattr(download, field)
    }
    if "url" in fields:
        fields["url"] = fields["url"] or None
    if "name" in fields:
        fields["name"] = (fields["name"] or "").strip() or None
    if fields.get("url") and "media" not in fields:
        fields["media"] = None
    if fields.get("media") is not None and "url" not in fields:
        fields["url"] = None
    new_media = fields.pop("media", download.media if download.media_id else None)
    state = {
        field: fields.get(field, getattr(download, field))
        for field in ("url", "name", "product", "variant")
    }
    if fields.get("variant") is not None and "product" not in fields:
        state["product"] = fields["product"] = fields["variant"].product
    download_validate(
        product=state["product"],
        variant=state["variant"],
        media=new_media,
        url=state["url"],
        name=state["name"],
    )
    replace = new_media is not None and new_media.pk != download.media_id
    with transaction.atomic():
        if new_media is None and download.media_id is not None:
            fields["media"] = None
        for field, value in fields.items():
            setattr(download, field, value or None if field in ("title", "alt") else value)
        if fields:
            if replace and download.media_id is None:
                # A link becoming a file: the constraint wants the media in the same save.
                download.media, download.url = new_media, None
                fields.update(media=new_media, url=None)
                replace = False
            download.save(update_fields=[*fields, "updated_at"])
        if replace:
            download_replace_media(download=download, media=new_media, created_by=created_by)
        if stamp_changed:
            _stamp_settings_applied(download, stamp_changed)
        if archived is not UNSET:
            download_set_archived(download=download, archived=archived)
        if deliver_to_existing_orders is True:
            download_deliver_to_existing_orders(download=download)
        elif deliver_to_existing_orders is False and download.deliver_to_existing_orders:
            Download.objects.filter(pk=download.pk).update(
                deliver_to_existing_orders=False, updated_at=timezone.now()
            )
            download.deliver_to_existing_orders = False
    return download
