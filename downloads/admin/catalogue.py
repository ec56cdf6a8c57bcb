"""The catalogue in the back office: products (with their variants and files inline),
variants, and downloads (files on products, or kept for attaching to single orders).

Every change goes through `downloads.services.catalogue`; a product or variant that orders
use is archived, not deleted (the service refuses the delete and the page offers archiving).
"""

from django import forms
from django.conf import settings
from django.contrib import admin, messages
from django.db import models
from django.db.models.functions import Coalesce

from downloads import money
from downloads.errors import ServiceError
from downloads.models import Download, Product, Variant
from downloads.services.backfills import download_deliver_to_existing_orders
from downloads.services.catalogue import (
    DOWNLOAD_FIELDS,
    PRODUCT_FIELDS,
    VARIANT_FIELDS,
    download_create,
    download_delete,
    download_set_archived,
    download_update,
    download_validate,
    product_create,
    product_delete,
    product_set_archived,
    product_update,
    variant_create,
    variant_delete,
    variant_update,
)
from downloads.services.common import MAX_EXPIRY_DAYS
from downloads.services.media import media_create

from .mixins import (
    LIST_PER_PAGE,
    ObjectActionsMixin,
    ServiceDeleteMixin,
    ServiceFormMixin,
    StripNulSearchMixin,
    changed_fields,
    error_field,
    plural,
    related_count,
    run_each,
    save_formset_through,
)
from .versions import DownloadVersionInline

# Links without a scheme are read as https (Django 6's default, chosen now).
URL_OVERRIDES = {models.URLField: {"assume_scheme": "https"}}


def describe_limit(limit: int) -> str:
    return "unlimited" if not limit else f"{limit} download{'s' if limit != 1 else ''}"


def describe_expiry(days: int) -> str:
    return "never expire" if not days else f"{days} day{'s' if days != 1 else ''}"


def download_limit_help() -> str:
    """Help text with the store default read now, so a changed setting shows at once."""
    default = describe_limit(settings.DOWNLOADS_DEFAULT_LIMIT)
    return f"Downloads per file and order. Empty: the store default ({default}); 0: unlimited."


def download_expiry_help() -> str:
    default = describe_expiry(settings.DOWNLOADS_DEFAULT_EXPIRY_DAYS)
    return (
        f"Days from payment until downloads expire. Empty: the store default ({default}); 0: never."
    )


def price_help(*, inherits: bool = False) -> str:
    """How a price is typed, with an example formatted in the store's currency."""
    currency = money.store_currency()
    example = 49 * 10 ** money.exponent(currency)
    text = f"In minor units of {currency}: {example} is {money.format_money(example, currency)}."
    return f"{text} Empty: the product's price." if inherits else text


def variant_price_display(variant: Variant) -> str:
    """What one unit of the variant costs, formatted; "(product's)" when it inherits it."""
    shown = money.format_money(variant.effective_price, money.store_currency())
    return f"{shown} (product's)" if variant.price is None else shown


def archive_actions(noun: str, service, *, archive: str, unarchive: str):
    """An admin's archive and unarchive actions: `service(obj, archived)` on each selected row
    that changes, then how many did."""

    def run(modeladmin, request, queryset, archived: bool):
        changed = 0
        for obj in queryset:
            if obj.archived != archived:
                service(obj, archived)
                changed += 1
        verb = "Archived" if archived else "Unarchived"
        modeladmin.message_user(request, f"{verb} {plural(changed, noun)}.", messages.SUCCESS)

    @admin.action(permissions=["change"], description=archive)
    def archive_action(modeladmin, request, queryset):
        run(modeladmin, request, queryset, True)

    @admin.action(permissions=["change"], description=unarchive)
    def unarchive_action(modeladmin, request, queryset):
        run(modeladmin, request, queryset, False)

    return archive_action, unarchive_action


# --- Downloads: the form, shared by the product's inline and the download's own page ---------


class DownloadForm(forms.ModelForm):
    """A download picks a stored file, or uploads a new one in place, or links a URL."""

    url = forms.URLField(
        required=False,
        max_length=2048,
        assume_scheme="https",
        empty_value=None,
        label="or URL",
        widget=forms.URLInput(attrs={"size": 24}),
    )
    upload = forms.FileField(
        required=False,
        label="or upload",
        help_text="A new file, stored as media (large files: use Media › Add for a progress bar).",
    )

    class Meta:
        model = Download
        fields = [
            "product",
            "variant",
            "media",
            "upload",
            "url",
            "name",
            "title",
            "alt",
            "stamp",
            "stamp_text",
            "stamp_position",
        ]
        labels = {"stamp": "Stamp PDFs with the buyer's details"}
        help_texts = {
            "stamp": "Each buyer gets their own copy of the PDF with stamp text on every "
            "page, made in the background after payment (and after a new version). Only PDFs "
            "are stamped: any other file is delivered as it is. A PDF that cannot be stamped "
            "(encrypted, broken) is delivered as it is and flagged on its grants.",
            "stamp_text": "Placeholders: {email}, {name}, {order_number}, {date}. Changing "
            "the text or the position makes every buyer's copy again.",
        }

    def clean(self):
        cleaned = super().clean()
        upload = cleaned.get("upload")
        if upload and cleaned.get("media"):
            self.add_error("upload", "Pick a stored file or upload a new one, not both.")
            return cleaned
        if upload and not self.errors:
            try:
                media = media_create(file=upload)
            except ServiceError as exc:
                self.add_error("upload", exc.message)
                return cleaned
            cleaned["media"] = media
            # If another part of the page is invalid, the page comes back with this file
            # picked, so it is not uploaded (and stored) twice.
            self.data = self.data.copy()
            self.data[self.add_prefix("media")] = str(media.pk)
        try:
            download_validate(
                product=cleaned.get("product"),
                variant=cleaned.get("variant"),
                media=cleaned.get("media"),
                url=cleaned.get("url") or None,
                name=cleaned.get("name"),
            )
        except ServiceError as exc:
            self.add_error(error_field(self, exc), exc.message)
        return cleaned


def stored(download: Download) -> Download:
    """The download as stored. The form has already put its new values on its instance;
    download_update compares old and new (a new file becomes a version), so it gets this."""
    return Download.objects.select_related("media").get(pk=download.pk)


def download_fields(form, *, create: bool = False, exclude=()) -> dict:
    """What a download form gives download_create (every field) or download_update (the
    changed ones); a file uploaded in place is the media."""
    names = (set(form.fields) & DOWNLOAD_FIELDS) - set(exclude)
    if not create:
        changed = set(form.changed_data)
        if form.cleaned_data.get("upload"):
            changed.add("media")
        names &= changed
    return {name: form.cleaned_data.get(name) for name in names}


# --- Products ---------------------------------------------------------------------------------


class VariantInline(admin.TabularInline):
    model = Variant
    extra = 0
    fields = ["name", "sku", "external_id", "price", "effective_price", "position"]
    readonly_fields = ["effective_price"]

    def get_queryset(self, request):
        # effective_price reads the product: loaded with the rows, not once per row.
        return super().get_queryset(request).select_related("product")

    def formfield_for_dbfield(self, db_field, request, **kwargs):
        field = super().formfield_for_dbfield(db_field, request, **kwargs)
        if db_field.name == "price":
            field.help_text = price_help(inherits=True)
        return field

    @admin.display(description="costs")
    def effective_price(self, obj):
        return variant_price_display(obj) if obj.pk is not None else ""


class DownloadInline(admin.TabularInline):
    model = Download
    formfield_overrides = URL_OVERRIDES
    form = DownloadForm
    fk_name = "product"
    extra = 0
    fields = ["media", "upload", "url", "name", "variant", "position"]
    autocomplete_fields = ["media"]

    def get_queryset(self, request):
        return super().get_queryset(request).select_related("media", "variant")

    def formfield_for_dbfield(self, db_field, request, **kwargs):
        field = super().formfield_for_dbfield(db_field, request, **kwargs)
        if db_field.name == "variant":
            # A plain select of this product's variants, without add/edit links per row.
            field.widget = getattr(field.widget, "widget", field.widget)
        elif db_field.name == "name":
            field.widget.attrs["size"] = 18
        return field

    def get_formset(self, request, obj=None, **kwargs):
        formset = super().get_formset(request, obj, **kwargs)
        variant = formset.form.base_fields.get("variant")
        if variant is not None:
            # Only this product's variants, listed once for every row (not a query per row).
            queryset = Variant.objects.filter(product=obj) if obj else Variant.objects.none()
            variant.queryset = queryset
            variant.choices = [("", "All variants"), *((v.pk, v.name) for v in queryset)]
        return formset


class ProductAdminForm(forms.ModelForm):
    class Meta:
        model = Product
        # What product_create takes; the page's order is ProductAdmin.fieldsets'.
        fields = sorted(PRODUCT_FIELDS)

    tags = forms.CharField(
        required=False, help_text="Comma-separated, e.g. ebooks, design.", max_length=5000
    )
    download_expiry_days = forms.IntegerField(
        required=False,
        min_value=0,
        max_value=MAX_EXPIRY_DAYS,
        label="Download expiry days",
    )

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.initial["tags"] = ", ".join(self.instance.tags or [])
        if "download_limit" in self.fields:
            self.fields["download_limit"].help_text = download_limit_help()
        if "download_expiry_days" in self.fields:
            self.fields["download_expiry_days"].help_text = download_expiry_help()
        if "price" in self.fields:
            self.fields["price"].help_text = price_help()

    def clean_tags(self):
        # Only the typing: the service owns the limits (its error shows on this field).
        return [tag.strip() for tag in self.cleaned_data["tags"].split(",") if tag.strip()]


@admin.register(Product)
class ProductAdmin(
    ObjectActionsMixin,
    ServiceFormMixin,
    ServiceDeleteMixin,
    StripNulSearchMixin,
    admin.ModelAdmin,
):
    form = ProductAdminForm
    list_display = [
        "name",
        "sku",
        "price_display",
        "vendor",
        "variant_count",
        "file_count",
        "limit_display",
        "expiry_display",
        "archived",
        "created_at",
    ]
    list_filter = ["archived", "vendor"]
    search_fields = ["name", "sku", "vendor", "=external_id"]
    list_per_page = LIST_PER_PAGE
    readonly_fields = ["archived", "archived_at", "created_at", "updated_at"]
    fieldsets = [
        (
            None,
            {"fields": ["name", "sku", "price", "vendor", "tags", "description", "external_id"]},
        ),
        ("Downloads", {"fields": ["download_limit", "download_expiry_days"]}),
        (
            "Licence keys",
            {
                "fields": ["license_keys", "license_activation_limit", "license_expiry_days"],
                "description": "Settings for the keys issued from now on; keys already "
                "issued keep their limit and expiry (change those on the key's page).",
            },
        ),
        ("State", {"fields": ["archived", "archived_at", "created_at", "updated_at"]}),
    ]
    inlines = [VariantInline, DownloadInline]
    actions = ["archive", "unarchive", "delete_selected"]
    object_actions = ("archive", "unarchive")
    object_action_labels = {"archive": "Archive", "unarchive": "Unarchive"}

    def service_delete(self, obj):
        product_delete(product=obj)

    def service_create(self, request, form):
        data = form.cleaned_data
        return product_create(**{name: data[name] for name in PRODUCT_FIELDS})

    def service_update(self, request, obj, form):
        return product_update(product=obj, **changed_fields(form, PRODUCT_FIELDS))

    def save_formset(self, request, form, formset, change):
        product = form.instance
        if formset.model is Variant:
            save_formset_through(
                formset,
                create=lambda row: variant_create(
                    product=product,
                    **{name: row.cleaned_data[name] for name in VARIANT_FIELDS},
                ),
                update=lambda variant, row: variant_update(
                    variant=variant, **changed_fields(row, VARIANT_FIELDS)
                ),
                delete=lambda variant: variant_delete(variant=variant),
            )
        elif formset.model is Download:
            save_formset_through(
                formset,
                create=lambda row: download_create(
                    product=product, **download_fields(row, create=True, exclude={"product"})
                ),
                update=lambda download, row: download_update(
                    download=stored(download),
                    created_by=request.user,
                    **download_fields(row, exclude={"product"}),
                ),
                delete=lambda download: download_delete(download=download),
            )
        else:  # pragma: no cover - every inline is handled above
            raise TypeError(f"No service saves {formset.model.__name__} rows.")

    def get_queryset(self, request):
        return (
            super()
            .get_queryset(request)
            .annotate(
                _variants=related_count(Variant, "product"),
                _files=related_count(Download, "product", archived=False),
            )
        )

    @admin.display(description="price", ordering="price")
    def price_display(self, obj):
        return money.format_money(obj.price, money.store_currency())

    @admin.display(description="variants", ordering="_variants")
    def variant_count(self, obj):
        return obj._variants

    @admin.display(description="files", ordering="_files")
    def file_count(self, obj):
        return obj._files

    @admin.display(description="download limit", ordering="download_limit")
    def limit_display(self, obj):
        if obj.download_limit is None:
            return f"default ({describe_limit(settings.DOWNLOADS_DEFAULT_LIMIT)})"
        return describe_limit(obj.download_limit)

    @admin.display(description="expiry", ordering="download_expiry_days")
    def expiry_display(self, obj):
        if obj.download_expiry_days is None:
            return f"default ({describe_expiry(settings.DOWNLOADS_DEFAULT_EXPIRY_DAYS)})"
        return describe_expiry(obj.download_expiry_days)

    archive, unarchive = archive_actions(
        "product",
        lambda product, archived: product_set_archived(product=product, archived=archived),
        archive="Archive (stop selling, keep downloads)",
        unarchive="Unarchive (sell again)",
    )

    def get_object_actions(self, request, obj):
        # Offer only the archive button that changes something.
        return ("unarchive",) if obj.archived else ("archive",)

    def render_delete_form(self, request, context):
        obj = context["object"]
        if not obj.archived and self.has_change_permission(request, obj):
            context["archive_url"] = self.object_action_url(obj, "archive")
        return super().render_delete_form(request, context)


# --- Variants ---------------------------------------------------------------------------------


@admin.register(Variant)
class VariantAdmin(ServiceFormMixin, ServiceDeleteMixin, StripNulSearchMixin, admin.ModelAdmin):
    list_display = ["name", "product", "sku", "price_display", "position"]
    search_fields = ["name", "sku", "product__name"]
    list_select_related = ["product"]
    autocomplete_fields = ["product"]
    list_per_page = LIST_PER_PAGE
    fields = ["product", "name", "sku", "external_id", "price", "position"]
    actions = ["delete_selected"]

    def get_fields(self, request, obj=None):
        # The formatted price it costs now, once there is a product to inherit from.
        return [*self.fields, "effective_price"] if obj is not None else self.fields

    def get_readonly_fields(self, request, obj=None):
        # A variant stays on its product (variant_update).
        return ["product", "effective_price"] if obj is not None else []

    def formfield_for_dbfield(self, db_field, request, **kwargs):
        field = super().formfield_for_dbfield(db_field, request, **kwargs)
        if db_field.name == "price":
            field.help_text = price_help(inherits=True)
        return field

    @admin.display(description="price", ordering=Coalesce("price", "product__price"))
    def price_display(self, obj):
        return variant_price_display(obj)

    @admin.display(description="costs")
    def effective_price(self, obj):
        return variant_price_display(obj)

    def service_create(self, request, form):
        data = form.cleaned_data
        return variant_create(
            product=data["product"], **{name: data[name] for name in VARIANT_FIELDS}
        )

    def service_update(self, request, obj, form):
        return variant_update(variant=obj, **changed_fields(form, VARIANT_FIELDS))

    def service_delete(self, obj):
        variant_delete(variant=obj)

    def get_queryset(self, request):
        # str(variant) names its product: the autocomplete lists them without a query each.
        return super().get_queryset(request).select_related("product")


# --- Downloads --------------------------------------------------------------------------------


@admin.register(Download)
class DownloadAdmin(ServiceFormMixin, ServiceDeleteMixin, StripNulSearchMixin, admin.ModelAdmin):
    form = DownloadForm
    formfield_overrides = URL_OVERRIDES
    list_display = [
        "__str__",
        "product",
        "variant",
        "media",
        "url",
        "stamp",
        "archived",
        "position",
    ]
    list_filter = ["archived", "stamp"]
    search_fields = ["name", "url", "media__filename", "product__name"]
    list_select_related = ["product", "variant", "media"]
    autocomplete_fields = ["product", "variant", "media"]
    list_per_page = LIST_PER_PAGE
    fields = [
        "product",
        "variant",
        "media",
        "upload",
        "url",
        "name",
        "title",
        "alt",
        "position",
        "stamp",
        "stamp_text",
        "stamp_position",
        "archived",
        "archived_at",
        "deliver_to_existing_orders",
        "file_updated_at",
    ]
    readonly_fields = ["archived", "archived_at", "deliver_to_existing_orders", "file_updated_at"]
    inlines = [DownloadVersionInline]
    actions = [
        "archive",
        "unarchive",
        "deliver_to_existing_orders",
        "deliver_and_notify",
        "delete_selected",
    ]

    def service_delete(self, obj):
        download_delete(download=obj)

    def service_create(self, request, form):
        return download_create(**download_fields(form, create=True))

    def service_update(self, request, obj, form):
        return download_update(
            download=stored(obj), created_by=request.user, **download_fields(form)
        )

    def get_queryset(self, request):
        # Also what the autocomplete lists (its labels name the file). A queryset that
        # selects related rows itself makes the changelist skip list_select_related.
        return super().get_queryset(request).select_related("media", "product", "variant__product")

    archive, unarchive = archive_actions(
        "download",
        lambda download, archived: download_set_archived(download=download, archived=archived),
        archive="Archive (new orders no longer get it)",
        unarchive="Unarchive",
    )

    def _deliver(self, request, queryset, notify_buyers: bool):
        run_each(
            self,
            request,
            queryset,
            lambda download: download_deliver_to_existing_orders(
                download=download, notify_buyers=notify_buyers
            ),
            noun="download",
            done="Delivering {} to existing orders in the background; follow the progress "
            "under Backfills.",
        )

    @admin.action(permissions=["change"], description="Deliver to existing orders")
    def deliver_to_existing_orders(self, request, queryset):
        self._deliver(request, queryset, notify_buyers=False)

    @admin.action(
        permissions=["change"], description="Deliver to existing orders and email the buyers"
    )
    def deliver_and_notify(self, request, queryset):
        self._deliver(request, queryset, notify_buyers=True)
