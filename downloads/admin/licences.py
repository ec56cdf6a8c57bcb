"""Licence keys in the back office: the keys paid orders were issued, searched by key (as
typed: any case, spaces, or its first characters), email or order number and filtered by
status, product and disabled; disabled and enabled in bulk; a key's limit, expiry and
disabled flag changed through `license_key_update`, and its instances deactivated through
`license_instance_delete` (which gives the activation back).

Keys are issued by paying an order, never added or deleted here; what a key's status is comes
from the key itself (`LicenseKey.status_at`, `LicenseKey.status_q` for the filter).
"""

import re

from django import forms
from django.contrib import admin
from django.utils import timezone
from django.utils.html import format_html

from downloads.models import LicenseInstance, LicenseKey, canonical_key
from downloads.models.licences import KEY_GROUP_LENGTH, KEY_GROUPS
from downloads.services.licences import (
    license_instance_delete,
    license_key_update,
    license_keys_disable,
    license_keys_enable,
)

from .mixins import (
    LIST_PER_PAGE,
    ServiceFormMixin,
    StripNulSearchMixin,
    admin_url,
    bulk_change,
    changed_fields,
    confirmation,
)

KEY_LENGTH = KEY_GROUPS * KEY_GROUP_LENGTH  # characters, without the dashes
STORED_KEY_LENGTH = KEY_LENGTH + KEY_GROUPS - 1
# A shorter start of a key would match keys by chance (and words typed to find an email).
MIN_KEY_PREFIX = 4
UPDATE_FIELDS = {"activation_limit", "expires_at", "disabled"}


def key_search_prefix(term: str) -> str | None:
    """The stored form of a key, or of its first MIN_KEY_PREFIX or more characters, as typed
    (any case, spaces, O for 0, I or L for 1); None when the term cannot start a key.

    `canonical_key` reads the characters (the one rule), so the start is padded to a whole
    key with zeros and cut back to its own length, dashes included."""
    compact = re.sub(r"[\s-]", "", term)
    if not MIN_KEY_PREFIX <= len(compact) <= KEY_LENGTH:
        return None
    whole = canonical_key(compact + "0" * (KEY_LENGTH - len(compact)))
    if whole is None:
        return None
    return whole[: len(compact) + (len(compact) - 1) // KEY_GROUP_LENGTH]


def activations_text(key: LicenseKey) -> str:
    """ "2 of 3", or "2 (unlimited)"."""
    if key.activation_limit is None:
        return f"{key.activation_usage} (unlimited)"
    return f"{key.activation_usage} of {key.activation_limit}"


def item_text(key: LicenseKey) -> str:
    """What the key was bought as: the line's product (and variant) and, of several units,
    which one."""
    line = key.line
    name = f"{line.name} ({line.variant_name})" if line.variant_name else line.name
    return f"{name}, unit {key.unit} of {line.quantity}" if line.quantity > 1 else name


class LicenseKeyColumnsMixin:
    """The columns a key shows wherever it is listed (the keys' list, an order's page)."""

    @admin.display(description="status")
    def status_badge(self, obj):
        status = LicenseKey.Status(obj.status_at(timezone.now()))
        return format_html(
            '<span class="license-status license-status-{}">{}</span>', status.value, status.label
        )

    @admin.display(description="activations", ordering="activation_usage")
    def activations(self, obj):
        return activations_text(obj)

    @admin.display(description="expires", ordering="expires_at")
    def expires(self, obj):
        return obj.expires_at or "never"

    @admin.display(description="item")
    def item(self, obj):
        return item_text(obj)

    @admin.display(description="key")
    def key_link(self, obj):
        return format_html(
            '<a href="{}"><code class="license-key">{}</code></a>', admin_url(obj), obj.key
        )


# --- Filters ----------------------------------------------------------------------------------


class StatusFilter(admin.SimpleListFilter):
    """The key's status now, by the same rule as the key's own (`LicenseKey.status_q`)."""

    title = "status"
    parameter_name = "status"

    def lookups(self, request, model_admin):
        return LicenseKey.Status.choices

    def queryset(self, request, queryset):
        if self.value() in LicenseKey.Status.values:
            return queryset.filter(LicenseKey.status_q(self.value(), timezone.now()))
        return queryset


class DisabledFilter(admin.SimpleListFilter):
    title = "disabled"
    parameter_name = "disabled"

    def lookups(self, request, model_admin):
        return [("yes", "Yes"), ("no", "No")]

    def queryset(self, request, queryset):
        if self.value() in ("yes", "no"):
            return queryset.filter(disabled_at__isnull=self.value() == "no")
        return queryset


# --- The change page --------------------------------------------------------------------------


class LicenseKeyForm(forms.ModelForm):
    """What a merchant may change on a key; `license_key_update` decides (a limit of at least
    1, never below the usage), with messages a merchant understands, so the model's own
    constraint check is not repeated."""

    disabled = forms.BooleanField(
        required=False,
        help_text="A disabled key takes no activation and validates as disabled; its "
        "instances are kept.",
    )

    class Meta:
        model = LicenseKey
        fields = ["activation_limit", "expires_at"]

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.initial["disabled"] = self.instance.disabled_at is not None

    def _get_validation_exclusions(self):
        return {field.name for field in self._meta.model._meta.fields}


class LicenseInstanceForm(forms.ModelForm):
    deactivate = forms.BooleanField(required=False, label="Deactivate")

    class Meta:
        model = LicenseInstance
        fields = ["deactivate"]


class LicenseInstanceInline(admin.TabularInline):
    """The key's activations; *Deactivate* goes through `license_instance_delete` (see
    LicenseKeyAdmin.save_formset), never a plain delete that would keep the activation."""

    model = LicenseInstance
    form = LicenseInstanceForm
    fields = ["name", "created_at", "deactivate"]
    readonly_fields = ["name", "created_at"]
    extra = 0
    can_delete = False
    verbose_name = "instance"
    verbose_name_plural = "instances (activations)"

    def has_add_permission(self, request, obj=None):
        # Instances are made by the buyer's software (the public licence API).
        return False


@admin.register(LicenseKey)
class LicenseKeyAdmin(
    LicenseKeyColumnsMixin, ServiceFormMixin, StripNulSearchMixin, admin.ModelAdmin
):
    form = LicenseKeyForm
    list_display = [
        "key_display",
        "status_badge",
        "product_display",
        "order_link",
        "email",
        "activations",
        "expires",
        "created_at",
    ]
    list_display_links = ["key_display"]
    list_filter = [StatusFilter, ("product", admin.RelatedOnlyFieldListFilter), DisabledFilter]
    search_fields = ["order__email", "=order__number"]
    search_help_text = (
        "A key (any case, with or without dashes, or its first characters), an email or an "
        "order number."
    )
    list_select_related = ["order", "line", "product", "variant"]
    list_per_page = LIST_PER_PAGE
    ordering = ["-created_at", "unit"]
    actions = ["disable", "enable"]
    fieldsets = [
        (None, {"fields": ["key_display", "status_badge", "activations"]}),
        ("Sale", {"fields": ["order_link", "email", "product_display", "item"]}),
        ("Limits", {"fields": ["activation_limit", "expires_at", "disabled"]}),
        ("Dates", {"fields": ["created_at", "updated_at", "disabled_at"]}),
    ]
    readonly_fields = [
        "key_display",
        "status_badge",
        "activations",
        "order_link",
        "email",
        "product_display",
        "item",
        "created_at",
        "updated_at",
        "disabled_at",
    ]
    inlines = [LicenseInstanceInline]

    def get_queryset(self, request):
        return super().get_queryset(request).select_related("order", "line", "product", "variant")

    def has_add_permission(self, request):
        # Keys are issued by paying an order (license_keys_issue).
        return False

    def has_delete_permission(self, request, obj=None):
        # The buyer holds the key: disable it instead, which keeps the record and its instances.
        return False

    def get_search_results(self, request, queryset, search_term):
        """Email and order number as usual, or a key as typed (or its start)."""
        results, may_have_duplicates = super().get_search_results(request, queryset, search_term)
        prefix = key_search_prefix(search_term.strip())
        if prefix is not None:
            if len(prefix) == STORED_KEY_LENGTH:
                results |= queryset.filter(key=prefix)
            else:
                results |= queryset.filter(key__startswith=prefix)
        return results, may_have_duplicates

    # Columns and read-only fields

    @admin.display(description="key", ordering="key")
    def key_display(self, obj):
        return format_html('<code class="license-key">{}</code>', obj.key)

    @admin.display(description="product", ordering="product__name")
    def product_display(self, obj):
        if obj.variant is not None:
            return f"{obj.product} ({obj.variant.name})"
        return str(obj.product)

    @admin.display(description="order", ordering="order__number")
    def order_link(self, obj):
        return format_html('<a href="{}">{}</a>', admin_url(obj.order), obj.order)

    @admin.display(description="customer email", ordering="order__email")
    def email(self, obj):
        return obj.order.email

    # Saving: the instances the page deactivates first, then the key, so a limit lowered to
    # the usage those leave is accepted in the same save. A refusal (a limit below the usage)
    # rolls both back and shows on the field (ServiceFormMixin).

    def save_model(self, request, obj, form, change):
        pass

    def save_related(self, request, form, formsets, change):
        for formset in formsets:
            self.save_formset(request, form, formset, change=change)
        self.service_update(request, form.instance, form)

    def service_update(self, request, obj, form):
        return license_key_update(key=obj, **changed_fields(form, UPDATE_FIELDS))

    def save_formset(self, request, form, formset, change):
        # What the admin's history reads, as formset.save() would record it.
        formset.new_objects, formset.changed_objects, formset.deleted_objects = [], [], []
        for row in formset.initial_forms:
            if row.cleaned_data.get("deactivate"):
                license_instance_delete(instance=row.instance)
                formset.deleted_objects.append(row.instance)

    # Bulk actions

    def _bulk(self, request, queryset, change, verb: str, already: str):
        bulk_change(
            self,
            request,
            queryset,
            lambda keys: change(keys=keys),
            verb=verb,
            noun="licence key",
            unchanged=lambda n: f"{n} {'was' if n == 1 else 'were'} already {already}.",
        )

    @admin.action(permissions=["change"], description="Disable (refuse activations)…")
    def disable(self, request, queryset):
        page = confirmation(
            self,
            request,
            queryset,
            action="disable",
            title="Disable licence keys",
            intro="The buyers' software is refused: a disabled key takes no activation and "
            "validates as disabled. Its instances are kept, and Enable undoes it.",
            submit="Yes, disable",
        )
        if page is not None:
            return page
        self._bulk(request, queryset, license_keys_disable, "Disabled", "disabled")
        return None

    @admin.action(permissions=["change"], description="Enable")
    def enable(self, request, queryset):
        self._bulk(request, queryset, license_keys_enable, "Enabled", "enabled")
