"""The merchant's back office. Every change goes through downloads.services, as in the API.

The admin holds no rule of its own: forms collect input, services decide. A `ServiceError`
raised while saving lands on the form (ServiceErrorMixin), a `Conflict` on delete becomes a
message that offers archiving (ServiceDeleteMixin), and the buttons on change pages run the
same actions as the changelist (ObjectActionsMixin).
"""

import csv
import json
from contextvars import ContextVar

from django import forms
from django.conf import settings
from django.contrib import admin, messages
from django.contrib.admin import helpers
from django.contrib.admin.actions import delete_selected as django_delete_selected
from django.contrib.admin.utils import quote, unquote
from django.contrib.admin.widgets import AutocompleteSelect, AutocompleteSelectMultiple
from django.core.exceptions import PermissionDenied
from django.db import models, transaction
from django.db.models import Count, IntegerField, OuterRef, Subquery
from django.db.models.functions import Coalesce
from django.http import (
    FileResponse,
    Http404,
    HttpResponseNotAllowed,
    HttpResponseRedirect,
    JsonResponse,
    StreamingHttpResponse,
)
from django.template.defaultfilters import filesizeformat
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils import timezone
from django.utils.html import format_html, format_html_join

from downloads.api.exceptions import service_error_status
from downloads.errors import ServiceError
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
from downloads.services.grants import (
    grant_create,
    grant_delete,
    grant_update,
    grants_extend,
    grants_reset,
    grants_restore,
    grants_revoke,
)
from downloads.services.media import (
    media_create,
    media_delete,
    media_upload_complete,
    media_upload_start,
)
from downloads.services.orders import (
    LineInput,
    order_attach_downloads,
    order_cancel,
    order_create,
    order_detach_downloads,
    order_pay,
    order_refund,
    order_send_email,
)

from . import selectors, storage
from .emails import order_page_url, site_url
from .models import (
    Download,
    DownloadEvent,
    DownloadGrant,
    DownloadVersion,
    Media,
    MediaUpload,
    Order,
    OrderLine,
    Product,
    Variant,
)

LIST_PER_PAGE = 50

admin.site.site_header = f"{settings.DOWNLOADS_STORE_NAME} · back office"
admin.site.site_title = settings.DOWNLOADS_STORE_NAME
admin.site.index_title = "Store"
# The request being rendered, for absolute buyer links in list and read-only cells (which
# receive only the object). A ContextVar: admin instances are shared between threads.
_current_request: ContextVar = ContextVar("downloads_admin_request", default=None)
# Files at least this large skip the app and go straight to storage (S3, or the app's own
# upload endpoint on local storage) through the direct-upload flow, with a progress bar.
DIRECT_UPLOAD_MIN_BYTES = 4 * 1024 * 1024


# --- Helpers ----------------------------------------------------------------------------------


def _count(model, fk: str, **filters):
    """A correlated COUNT subquery: constant queries and no row multiplication across joins."""
    rows = (
        model.objects.filter(**{fk: OuterRef("pk")}, **filters)
        .order_by()
        .values(fk)
        .annotate(n=Count("pk"))
        .values("n")
    )
    return Coalesce(Subquery(rows, output_field=IntegerField()), 0)


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


def _url_name(opts, view: str) -> str:
    return f"admin:{opts.app_label}_{opts.model_name}_{view}"


def _admin_url(obj, view: str = "change") -> str:
    return reverse(_url_name(obj._meta, view), args=[quote(obj.pk)])


def _plural(count: int, noun: str) -> str:
    if count == 1:
        return f"1 {noun}"
    if noun.endswith("y") and noun[-2:-1] not in "aeiou":
        return f"{count} {noun[:-1]}ies"
    return f"{count} {noun}s"


def run_each(modeladmin, request, queryset, service, *, noun: str, done: str, label=str) -> int:
    """Run `service(obj)` on each selected row; a ServiceError becomes an error message for
    that row (named by `label(obj)`), and `done` (formatted with "N <noun>s") reports how
    many went through."""
    changed = 0
    for obj in queryset:
        try:
            service(obj)
            changed += 1
        except ServiceError as exc:
            modeladmin.message_user(request, f"{label(obj)}: {exc.message}", messages.ERROR)
    if changed or not queryset:
        modeladmin.message_user(request, done.format(_plural(changed, noun)), messages.SUCCESS)
    return changed


def _service_error_target(form, error: ServiceError) -> str | None:
    """The form field a service's error is about, or None for the whole form."""
    attribute = error.attribute
    if attribute is None and error.code.endswith("number_taken"):
        attribute = "number"
    return attribute if attribute in form.fields else None


def _with_service_error(form_class, error: ServiceError):
    """A subclass of form_class that shows `error` the way a validation error is shown."""

    class ServiceErrorForm(form_class):
        def clean(self):
            cleaned = super().clean()
            self.add_error(_service_error_target(self, error), error.message)
            return cleaned

    ServiceErrorForm.__name__ = form_class.__name__
    return ServiceErrorForm


def _set_archived(modeladmin, request, queryset, archived: bool, *, noun: str, service) -> None:
    """Archive or unarchive each selected row through its service; say how many changed."""
    changed = 0
    for obj in queryset:
        if obj.archived != archived:
            service(obj)
            changed += 1
    verb = "Archived" if archived else "Unarchived"
    modeladmin.message_user(request, f"{verb} {_plural(changed, noun)}.", messages.SUCCESS)


class StripNulSearchMixin:
    """PostgreSQL refuses a NUL byte in a query parameter (DataError); a search never needs
    one, so it is dropped before the query instead of answering 500."""

    def get_search_results(self, request, queryset, search_term):
        return super().get_search_results(request, queryset, search_term.replace("\x00", ""))


class ServiceErrorMixin:
    """Saving goes through services; a ServiceError they raise shows on the form.

    changeform_view runs in a transaction: when a service refuses, everything rolls back and
    the same POST is rendered again with the service's message on the field it names.
    """

    def changeform_view(self, request, object_id=None, form_url="", extra_context=None):
        try:
            return super().changeform_view(request, object_id, form_url, extra_context)
        except ServiceError as exc:
            request._service_error = exc
            return super().changeform_view(request, object_id, form_url, extra_context)

    def get_form(self, request, obj=None, change=False, **kwargs):
        form = super().get_form(request, obj, change=change, **kwargs)
        error = getattr(request, "_service_error", None)
        return _with_service_error(form, error) if error is not None else form


def changed_fields(form, allowed) -> dict:
    """The fields a form changed, among those a service's update accepts."""
    return {name: form.cleaned_data[name] for name in form.changed_data if name in allowed}


class ServiceSaveMixin:
    """Saving goes through services: `service_create(request, form)` on add and
    `service_update(request, obj, form)` on change; inline formsets through save_formset
    (see ProductAdmin). The admin calls save_model only once the form and every inline are
    valid, so nothing is written for a page that comes back with errors."""

    def service_create(self, request, form):
        raise NotImplementedError

    def service_update(self, request, obj, form):
        raise NotImplementedError

    def save_model(self, request, obj, form, change):
        if change:
            self.service_update(request, obj, form)
            return
        created = self.service_create(request, form)
        # The service made the row; the admin's object (the inlines' parent, the history
        # entry, the redirect) becomes that row.
        obj.pk = created.pk
        obj.refresh_from_db()
        obj._state.adding = False

    def save_related(self, request, form, formsets, change):
        # No many-to-many field is edited on these forms; inlines save through services.
        for formset in formsets:
            self.save_formset(request, form, formset, change=change)


def save_formset_through(formset, *, create, update, delete):
    """Save an inline formset row by row through services, recording what changed the way
    formset.save() does (the admin's history reads new/changed/deleted_objects)."""
    formset.new_objects, formset.changed_objects, formset.deleted_objects = [], [], []
    deleted = set(map(id, formset.deleted_forms))
    for form in formset.initial_forms:
        if id(form) in deleted:
            delete(form.instance)
            formset.deleted_objects.append(form.instance)
        elif form.has_changed():
            formset.changed_objects.append((update(form.instance, form), form.changed_data))
    for form in formset.extra_forms:
        if form.has_changed() and id(form) not in deleted:
            formset.new_objects.append(create(form))


class ReadOnlyChangeMixin:
    """A change page whose fields are all read-only (changes go through actions): no Save."""

    def change_view(self, request, object_id, form_url="", extra_context=None):
        extra_context = {
            "show_save": False,
            "show_save_and_continue": False,
            "show_save_and_add_another": False,
            **(extra_context or {}),
        }
        return super().change_view(request, object_id, form_url, extra_context)


class ServiceDeleteMixin:
    """Deleting goes through a service that answers Conflict when orders still need the row.

    Django's own "protected objects" refusal is lifted so the service decides, and its
    message (which suggests archiving) is shown on the change page.
    """

    def service_delete(self, obj) -> None:
        """Delete obj through its service; raise ServiceError when it is in use."""
        raise NotImplementedError

    def get_deleted_objects(self, objs, request):
        deleted, model_count, perms_needed, protected = super().get_deleted_objects(objs, request)
        request._in_use = protected
        if protected:
            # Nothing will be deleted (the service answers Conflict), so the permissions the
            # protected rows would need do not matter.
            perms_needed = set()
        return deleted, model_count, perms_needed, []

    def render_delete_form(self, request, context):
        context["in_use"] = getattr(request, "_in_use", [])
        return super().render_delete_form(request, context)

    def delete_model(self, request, obj):
        self.service_delete(obj)

    def delete_queryset(self, request, queryset):
        for obj in queryset:
            self.service_delete(obj)

    def delete_view(self, request, object_id, extra_context=None):
        try:
            return super().delete_view(request, object_id, extra_context)
        except ServiceError as exc:
            self.message_user(request, exc.message, messages.ERROR)
            return HttpResponseRedirect(
                reverse(_url_name(self.opts, "change"), args=[quote(unquote(object_id))])
            )

    @admin.action(permissions=["delete"], description="Delete selected %(verbose_name_plural)s")
    def delete_selected(self, request, queryset):
        """Django's confirmation page, then each row through the service, one by one."""
        if not request.POST.get("post"):
            return django_delete_selected(self, request, queryset)
        deleted = 0
        for obj in queryset:
            display = str(obj)
            try:
                with transaction.atomic():
                    self.log_deletions(request, [obj])
                    self.service_delete(obj)
                deleted += 1
            except ServiceError as exc:
                self.message_user(request, f"{display}: {exc.message}", messages.ERROR)
        if deleted:
            noun = self.opts.verbose_name if deleted == 1 else self.opts.verbose_name_plural
            self.message_user(request, f"Deleted {deleted} {noun}.", messages.SUCCESS)
        return None


class ObjectActionsMixin:
    """Buttons on the change page that run changelist actions on that one object.

    The button POSTs to `<id>/run/<action>/`; an action with an intermediate form renders
    it, and the form posts back to the same URL. The user lands back on the change page.
    """

    object_actions: tuple[str, ...] = ()
    # Button labels, shorter than the changelist's action descriptions.
    object_action_labels: dict[str, str] = {}

    def get_urls(self):
        return [
            path(
                "<path:object_id>/run/<str:action>/",
                self.admin_site.admin_view(self.object_action_view),
                name=_url_name(self.opts, "run").removeprefix("admin:"),
            ),
            *super().get_urls(),
        ]

    def object_action_view(self, request, object_id, action):
        if request.method != "POST":
            return HttpResponseNotAllowed(["POST"])
        obj = self.get_object(request, unquote(object_id))
        if obj is None:
            return self._get_obj_does_not_exist_redirect(request, self.opts, object_id)
        actions = self.get_actions(request)
        if action not in self.object_actions or action not in actions:
            raise PermissionDenied
        func = actions[action][0]
        response = func(self, request, self.get_queryset(request).filter(pk=obj.pk))
        return response or HttpResponseRedirect(_admin_url(obj))

    def render_change_form(self, request, context, add=False, change=False, form_url="", obj=None):
        if obj is not None and not add:
            actions = self.get_actions(request)
            context["object_actions"] = [
                {
                    "name": name,
                    "label": self.object_action_labels.get(name, actions[name][2]),
                    "url": reverse(_url_name(self.opts, "run"), args=[quote(obj.pk), name]),
                }
                for name in self.get_object_actions(request, obj)
                if name in actions
            ]
        return super().render_change_form(request, context, add, change, form_url, obj)

    def get_object_actions(self, request, obj) -> tuple[str, ...]:
        return self.object_actions


def action_form_response(
    modeladmin, request, queryset, *, action, title, form, submit, objects=None, intro=""
):
    """An intermediate page for an action, in the admin's look, posting back to the same URL
    with the selection, so a changelist action and a change-page button share it."""
    context = {
        **modeladmin.admin_site.each_context(request),
        "title": title,
        "subtitle": None,
        "intro": intro,
        "opts": modeladmin.opts,
        "app_label": modeladmin.opts.app_label,
        "form": form,
        "media": modeladmin.media + form.media,
        "objects": objects if objects is not None else list(queryset),
        "selected": [str(pk) for pk in queryset.values_list("pk", flat=True)],
        "action": action,
        "action_checkbox_name": helpers.ACTION_CHECKBOX_NAME,
        "submit": submit,
    }
    request.current_app = modeladmin.admin_site.name
    return TemplateResponse(request, "admin/downloads/action_form.html", context)


# --- Products ---------------------------------------------------------------------------------


class VariantInline(admin.TabularInline):
    model = Variant
    extra = 0
    fields = ["name", "sku", "external_id", "price", "position"]


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
        fields = ["product", "variant", "media", "upload", "url", "name", "title", "alt"]

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
            self.add_error(_service_error_target(self, exc), exc.message)
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


# Links without a scheme are read as https (Django 6's default, chosen now).
URL_OVERRIDES = {models.URLField: {"assume_scheme": "https"}}


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
        fields = [
            "name",
            "sku",
            "vendor",
            "tags",
            "description",
            "external_id",
            "download_limit",
            "download_expiry_days",
        ]

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

    def clean_tags(self):
        tags = [tag.strip() for tag in self.cleaned_data["tags"].split(",") if tag.strip()]
        # The API's limits on tags, so both accept the same products.
        if len(tags) > 50 or any(len(tag) > 100 for tag in tags):
            raise forms.ValidationError("At most 50 tags of at most 100 characters.")
        return tags


@admin.register(Product)
class ProductAdmin(
    ObjectActionsMixin,
    ServiceSaveMixin,
    ServiceDeleteMixin,
    ServiceErrorMixin,
    StripNulSearchMixin,
    admin.ModelAdmin,
):
    form = ProductAdminForm
    list_display = [
        "name",
        "sku",
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
        (None, {"fields": ["name", "sku", "vendor", "tags", "description", "external_id"]}),
        ("Downloads", {"fields": ["download_limit", "download_expiry_days"]}),
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
        return product_create(**{name: data[name] for name in ProductAdminForm.Meta.fields})

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
                _variants=_count(Variant, "product"),
                _files=_count(Download, "product", archived=False),
            )
        )

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

    def _set_archived(self, request, queryset, archived: bool):
        _set_archived(
            self,
            request,
            queryset,
            archived,
            noun="product",
            service=lambda obj: product_set_archived(product=obj, archived=archived),
        )

    @admin.action(permissions=["change"], description="Archive (stop selling, keep downloads)")
    def archive(self, request, queryset):
        self._set_archived(request, queryset, True)

    @admin.action(permissions=["change"], description="Unarchive (sell again)")
    def unarchive(self, request, queryset):
        self._set_archived(request, queryset, False)

    def get_object_actions(self, request, obj):
        # Offer only the archive button that changes something.
        return ("unarchive",) if obj.archived else ("archive",)

    def render_delete_form(self, request, context):
        obj = context["object"]
        if not obj.archived and self.has_change_permission(request, obj):
            context["archive_url"] = reverse(
                _url_name(self.opts, "run"), args=[quote(obj.pk), "archive"]
            )
        return super().render_delete_form(request, context)


@admin.register(Variant)
class VariantAdmin(
    ServiceSaveMixin, ServiceDeleteMixin, ServiceErrorMixin, StripNulSearchMixin, admin.ModelAdmin
):
    list_display = ["name", "product", "sku", "price", "position"]
    search_fields = ["name", "sku", "product__name"]
    list_select_related = ["product"]
    autocomplete_fields = ["product"]
    list_per_page = LIST_PER_PAGE
    fields = ["product", "name", "sku", "external_id", "price", "position"]
    actions = ["delete_selected"]

    def get_readonly_fields(self, request, obj=None):
        # A variant stays on its product (variant_update).
        return ["product"] if obj is not None else []

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


# --- Media ------------------------------------------------------------------------------------


class MediaUploadForm(forms.ModelForm):
    upload = forms.FileField(label="File")

    class Meta:
        model = Media
        fields = ["upload"]


@admin.register(Media)
class MediaAdmin(
    ReadOnlyChangeMixin,
    ServiceSaveMixin,
    ServiceDeleteMixin,
    ServiceErrorMixin,
    StripNulSearchMixin,
    admin.ModelAdmin,
):
    list_display = ["filename", "size", "content_type", "used_by", "created_at"]
    search_fields = ["filename", "sha256"]
    list_per_page = LIST_PER_PAGE
    fieldsets = [
        (
            None,
            {
                "fields": [
                    "filename",
                    "size",
                    "content_type",
                    "sha256_display",
                    "storage",
                    "key",
                    "preview",
                    "usage",
                    "created_at",
                ]
            },
        )
    ]
    add_fieldsets = [(None, {"fields": ["upload"]})]
    readonly_fields = [
        "filename",
        "size",
        "content_type",
        "sha256_display",
        "storage",
        "key",
        "preview",
        "usage",
        "created_at",
    ]
    actions = ["delete_selected"]

    def service_delete(self, obj):
        media_delete(media=obj)

    def get_queryset(self, request):
        return super().get_queryset(request).annotate(_used_by=_count(Download, "media"))

    def get_fieldsets(self, request, obj=None):
        return self.add_fieldsets if obj is None else super().get_fieldsets(request, obj)

    def get_readonly_fields(self, request, obj=None):
        return [] if obj is None else self.readonly_fields

    def get_form(self, request, obj=None, change=False, **kwargs):
        if obj is None:
            kwargs["form"] = MediaUploadForm
        return super().get_form(request, obj, change=change, **kwargs)

    def service_create(self, request, form):
        # The service reads the file once: size, type and SHA-256, then stores it.
        return media_create(file=form.cleaned_data["upload"])

    def service_update(self, request, obj, form):
        """Every field is read-only: nothing to save."""

    @admin.display(description="size", ordering="byte_size")
    def size(self, obj):
        if obj.byte_size < 1024:
            return filesizeformat(obj.byte_size)
        return format_html(
            '{} <span class="quiet">({} bytes)</span>',
            filesizeformat(obj.byte_size),
            f"{obj.byte_size:,}",
        )

    @admin.display(description="SHA-256")
    def sha256_display(self, obj):
        return format_html("<code>{}</code>", obj.sha256)

    @admin.display(description="used by", ordering="_used_by")
    def used_by(self, obj):
        return _plural(obj._used_by, "download")

    @admin.display(description="storage")
    def storage(self, obj):
        return storage.storage_kind()

    @admin.display(description="key")
    def key(self, obj):
        return obj.key

    @admin.display(description="preview")
    def preview(self, obj):
        url = reverse("admin:downloads_media_preview", args=[quote(obj.pk)])
        return format_html(
            '<a href="{}" class="media-preview" target="_blank" rel="noopener">Download a copy</a> '
            '<span class="help">Staff only; never a public link{}.</span>',
            url,
            ": a presigned URL valid for a minute" if storage.is_s3() else "",
        )

    @admin.display(description="used by")
    def usage(self, obj):
        downloads = obj.downloads.select_related("product", "variant").order_by("created_at")
        rows = [
            (
                _admin_url(download),
                download.display_name,
                f" on {download.product.name}" if download.product else " (order attachments)",
                f" – {download.variant.name}" if download.variant else "",
                " (archived)" if download.archived else "",
            )
            for download in downloads
        ]
        if not rows:
            return "No download uses this file."
        return format_html(
            "<ul class='media-usage'>{}</ul>",
            format_html_join("", '<li><a href="{}">{}</a>{}{}{}</li>', rows),
        )

    # The upload page: small files post through the form; large ones take the direct flow.

    def get_urls(self):
        return [
            path(
                "<path:object_id>/preview/",
                self.admin_site.admin_view(self.preview_view),
                name="downloads_media_preview",
            ),
            path(
                "upload/start/",
                self.admin_site.admin_view(self.upload_start_view),
                name="downloads_media_upload_start",
            ),
            path(
                "upload/<uuid:upload_id>/complete/",
                self.admin_site.admin_view(self.upload_complete_view),
                name="downloads_media_upload_complete",
            ),
            *super().get_urls(),
        ]

    def add_view(self, request, form_url="", extra_context=None):
        extra_context = {
            **(extra_context or {}),
            "direct_upload": {
                "start_url": reverse("admin:downloads_media_upload_start"),
                "min_bytes": DIRECT_UPLOAD_MIN_BYTES,
                "max_bytes": settings.DOWNLOADS_MAX_UPLOAD_SIZE,
                "storage": storage.storage_kind(),
            },
        }
        return super().add_view(request, form_url, extra_context)

    def preview_view(self, request, object_id):
        """Staff only: a presigned URL (S3) or the file streamed by the app (local)."""
        media = self.get_object(request, unquote(object_id))
        if media is None or not self.has_view_permission(request, media):
            raise Http404
        if storage.is_s3():
            return HttpResponseRedirect(
                storage.presigned_download_url(
                    key=media.key, filename=media.filename, content_type=media.content_type
                )
            )
        try:
            handle = media.file.open("rb")
        except FileNotFoundError as exc:
            raise Http404("The stored file is missing.") from exc
        response = FileResponse(handle, content_type=media.content_type)
        response["Content-Disposition"] = storage.content_disposition(media.filename)
        response["Cache-Control"] = "private, no-store"
        return response

    def _json_error(self, message: str, code: str, status: int = 400):
        return JsonResponse({"code": code, "message": message}, status=status)

    def upload_start_view(self, request):
        """JSON for the upload page's script: where and how to send the bytes."""
        if request.method != "POST":
            return HttpResponseNotAllowed(["POST"])
        if not self.has_add_permission(request):
            raise PermissionDenied
        try:
            body = json.loads(request.body or b"{}")
            filename = str(body["filename"])
            byte_size = int(body["byte_size"])
            content_type = str(body.get("content_type") or "")
        except (ValueError, KeyError, TypeError):
            return self._json_error("Send filename, byte_size and content_type.", "invalid")
        try:
            upload, instructions = media_upload_start(
                filename=filename,
                byte_size=byte_size,
                content_type=content_type or None,
                site_url=site_url(request),
            )
        except ServiceError as exc:
            return self._json_error(exc.message, exc.code, service_error_status(exc))
        return JsonResponse(
            {
                "id": str(upload.pk),
                **instructions,
                "complete_url": reverse("admin:downloads_media_upload_complete", args=[upload.pk]),
            }
        )

    def upload_complete_view(self, request, upload_id):
        """JSON: the stored file became a Media; where to go next."""
        if request.method != "POST":
            return HttpResponseNotAllowed(["POST"])
        if not self.has_add_permission(request):
            raise PermissionDenied
        upload = MediaUpload.objects.filter(pk=upload_id).first()
        if upload is None:
            return self._json_error("No such upload.", "media_upload.not_found", 404)
        try:
            media = media_upload_complete(upload=upload)
        except ServiceError as exc:
            return self._json_error(exc.message, exc.code, service_error_status(exc))
        self.log_addition(request, media, [{"added": {}}])
        return JsonResponse(
            {
                "id": str(media.pk),
                "filename": media.filename,
                "byte_size": media.byte_size,
                "sha256": media.sha256,
                "change_url": _admin_url(media),
            }
        )


# --- Downloads (files on products, or kept for attaching to single orders) --------------------


class DownloadVersionInline(admin.TabularInline):
    """The file's history, newest first; new versions are added through Download versions."""

    model = DownloadVersion
    extra = 0
    can_delete = False
    fields = ["created_at", "media", "url", "changelog", "created_by", "notify_buyers"]
    readonly_fields = fields
    verbose_name_plural = "versions (the newest is what buyers get)"

    def get_queryset(self, request):
        return super().get_queryset(request).select_related("media", "created_by")

    def has_add_permission(self, request, obj=None):
        return False


@admin.register(Download)
class DownloadAdmin(
    ServiceSaveMixin, ServiceDeleteMixin, ServiceErrorMixin, StripNulSearchMixin, admin.ModelAdmin
):
    form = DownloadForm
    formfield_overrides = URL_OVERRIDES
    list_display = ["__str__", "product", "variant", "media", "url", "archived", "position"]
    list_filter = ["archived"]
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

    def _set_archived(self, request, queryset, archived: bool):
        _set_archived(
            self,
            request,
            queryset,
            archived,
            noun="download",
            service=lambda obj: download_set_archived(download=obj, archived=archived),
        )

    @admin.action(permissions=["change"], description="Archive (new orders no longer get it)")
    def archive(self, request, queryset):
        self._set_archived(request, queryset, True)

    @admin.action(permissions=["change"], description="Unarchive")
    def unarchive(self, request, queryset):
        self._set_archived(request, queryset, False)

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


# --- Orders -----------------------------------------------------------------------------------


class OrderLineInline(admin.TabularInline):
    """Lines are snapshots taken when the order was placed: shown, never edited here."""

    model = OrderLine
    extra = 0
    can_delete = False
    fields = ["name", "variant_name", "sku", "quantity", "price", "refunded_at"]
    readonly_fields = fields

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False


def grant_count(grant) -> str:
    """ "3 / 10", or "3 / ∞" when unlimited."""
    limit = "∞" if grant.download_limit is None else grant.download_limit
    return f"{grant.download_count} / {limit}"


GRANT_STATE_LABELS = {
    None: "active",
    DownloadEvent.Outcome.REVOKED: "revoked",
    DownloadEvent.Outcome.EXPIRED: "expired",
    DownloadEvent.Outcome.LIMIT_REACHED: "used up",
}


def grant_state(grant, now=None) -> str:
    return GRANT_STATE_LABELS[grant.refusal(now)]


class GrantInline(admin.TabularInline):
    model = DownloadGrant
    extra = 0
    can_delete = False
    fields = ["file", "line", "count", "expires_at", "state", "last_downloaded_at", "edit"]
    readonly_fields = fields
    verbose_name = "download grant"

    def get_queryset(self, request):
        return super().get_queryset(request).select_related("download__media", "line")

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    @admin.display(description="file")
    def file(self, obj):
        return obj.download.display_name

    @admin.display(description="downloads")
    def count(self, obj):
        return grant_count(obj)

    @admin.display(description="state")
    def state(self, obj):
        return grant_state(obj)

    @admin.display(description="")
    def edit(self, obj):
        return format_html('<a href="{}">Manage</a>', _admin_url(obj))


class OrderLineForm(forms.Form):
    """One line of a new order: a product, or a variant (which names its product)."""

    product = forms.ModelChoiceField(
        queryset=Product.objects.all(),
        required=False,
        widget=AutocompleteSelect(OrderLine._meta.get_field("product"), admin.site),
    )
    variant = forms.ModelChoiceField(
        queryset=Variant.objects.select_related("product"),
        required=False,
        widget=AutocompleteSelect(OrderLine._meta.get_field("variant"), admin.site),
    )
    quantity = forms.IntegerField(initial=1)

    def clean(self):
        cleaned = super().clean()
        if not cleaned.get("product") and not cleaned.get("variant"):
            raise forms.ValidationError("Choose a product or a variant.")
        return cleaned

    def line_input(self) -> LineInput:
        variant = self.cleaned_data.get("variant")
        product = self.cleaned_data.get("product") or variant.product
        return LineInput(product=product, variant=variant, quantity=self.cleaned_data["quantity"])


OrderLineFormSet = forms.formset_factory(
    OrderLineForm, extra=0, min_num=1, validate_min=True, max_num=100, validate_max=True
)


class OrderAddForm(forms.Form):
    email = forms.EmailField(help_text="The buyer's email: the order email goes there.")
    number = forms.IntegerField(
        required=False, help_text="Empty: the next number in sequence.", min_value=1
    )
    status = forms.ChoiceField(
        choices=[(Order.Status.PENDING, "Pending"), (Order.Status.PAID, "Paid")],
        initial=Order.Status.PENDING,
        help_text="Paid issues the downloads at once.",
    )
    send_email = forms.BooleanField(
        required=False, initial=True, label="Send the order email when paid"
    )
    downloads = forms.ModelMultipleChoiceField(
        queryset=Download.objects.all(),
        required=False,
        label="Extra files",
        help_text="Files for this order only, beyond those of its products.",
        widget=AutocompleteSelectMultiple(Order._meta.get_field("downloads"), admin.site),
    )


class RefundForm(forms.Form):
    lines = forms.MultipleChoiceField(
        widget=forms.CheckboxSelectMultiple,
        label="Lines to refund",
        help_text="All lines of an order: the whole order is refunded (attached files too).",
    )

    def __init__(self, *args, orders, **kwargs):
        super().__init__(*args, **kwargs)
        self.orders = orders
        self.fields["lines"].choices = [
            (
                f"Order #{order.number} ({order.email}, {order.get_status_display().lower()})",
                [
                    (str(line.pk), f"{line} {line.variant_name}".strip())
                    for line in order.lines.all()
                    if line.refunded_at is None
                ],
            )
            for order in orders
        ]
        self.fields["lines"].initial = [
            str(line.pk)
            for order in orders
            for line in order.lines.all()
            if line.refunded_at is None
        ]


class AttachForm(forms.Form):
    downloads = forms.ModelMultipleChoiceField(
        queryset=Download.objects.all(),
        widget=AutocompleteSelectMultiple(Order._meta.get_field("downloads"), admin.site),
        help_text="On a paid order the buyer can download them at once.",
    )


class DetachForm(forms.Form):
    downloads = forms.ModelMultipleChoiceField(
        queryset=Download.objects.none(),
        widget=forms.CheckboxSelectMultiple,
        help_text="Their grants on these orders are revoked; the download log is kept.",
    )

    def __init__(self, *args, orders, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["downloads"].queryset = (
            Download.objects.filter(attached_orders__in=orders).select_related("media").distinct()
        )


@admin.register(Order)
class OrderAdmin(ReadOnlyChangeMixin, ObjectActionsMixin, StripNulSearchMixin, admin.ModelAdmin):
    list_display = [
        "__str__",
        "email",
        "status",
        "line_count",
        "placed_at",
        "paid_at",
        "email_sent_at",
        "buyer_page",
    ]
    list_display_links = ["__str__"]
    list_filter = ["status", "placed_at"]
    search_fields = ["=number", "email"]
    date_hierarchy = "placed_at"
    list_per_page = LIST_PER_PAGE
    fieldsets = [
        (None, {"fields": ["number", "email", "customer", "status", "buyer_page"]}),
        ("Dates", {"fields": ["placed_at", "paid_at", "refunded_at", "email_sent_at"]}),
        ("Extra files", {"fields": ["attached"]}),
    ]
    readonly_fields = [
        "number",
        "email",
        "customer",
        "status",
        "buyer_page",
        "placed_at",
        "paid_at",
        "refunded_at",
        "email_sent_at",
        "attached",
    ]
    inlines = [OrderLineInline, GrantInline]
    actions = ["mark_paid", "send_email", "refund", "attach", "detach", "cancel"]
    object_actions = ("mark_paid", "send_email", "refund", "attach", "detach", "cancel")
    object_action_labels = {
        "mark_paid": "Mark paid",
        "send_email": "Resend email",
        "refund": "Refund…",
        "attach": "Attach files…",
        "detach": "Detach files…",
        "cancel": "Cancel order",
    }

    def get_queryset(self, request):
        return (
            super()
            .get_queryset(request)
            .select_related("customer")
            .annotate(_lines=_count(OrderLine, "order"))
        )

    def has_delete_permission(self, request, obj=None):
        # Orders are records of sales and the download log hangs on them: refund or cancel.
        return False

    @admin.display(description="lines", ordering="_lines")
    def line_count(self, obj):
        return obj._lines

    @admin.display(description="buyer's page")
    def buyer_page(self, obj):
        return format_html(
            '<a href="{}" target="_blank" rel="noopener" class="buyer-page">Open ↗</a>',
            order_page_url(obj, _current_request.get()),
        )

    @admin.display(description="attached files")
    def attached(self, obj):
        downloads = obj.downloads.select_related("media")
        if not downloads:
            return "None"
        return format_html_join(
            ", ", '<a href="{}">{}</a>', ((_admin_url(d), d.display_name) for d in downloads)
        )

    def _rendered_with_request(self, request, view, *args):
        token = _current_request.set(request)
        try:
            response = view(request, *args)
            if hasattr(response, "render"):
                response.render()
            return response
        finally:
            _current_request.reset(token)

    def changelist_view(self, request, extra_context=None):
        return self._rendered_with_request(request, super().changelist_view, extra_context)

    def change_view(self, request, object_id, form_url="", extra_context=None):
        return self._rendered_with_request(
            request, super().change_view, object_id, form_url, extra_context
        )

    # Creating an order: the dedicated add view below, through order_create.

    def add_view(self, request, form_url="", extra_context=None):
        if not self.has_add_permission(request):
            raise PermissionDenied
        if request.method == "POST":
            form = OrderAddForm(request.POST)
            lines = OrderLineFormSet(request.POST, prefix="lines")
            if form.is_valid() and lines.is_valid():
                order = self._create_order(request, form, lines)
                if order is not None:
                    self.log_addition(request, order, [{"added": {}}])
                    self.message_user(
                        request, f"Order {order} was created for {order.email}.", messages.SUCCESS
                    )
                    return HttpResponseRedirect(_admin_url(order))
        else:
            form = OrderAddForm()
            lines = OrderLineFormSet(prefix="lines")
        context = {
            **self.admin_site.each_context(request),
            "title": "Add order",
            "subtitle": None,
            "opts": self.opts,
            "app_label": self.opts.app_label,
            "form": form,
            "lines": lines,
            "media": self.media
            + form.media
            + lines.media
            # inlines.js needs django.jQuery: list the order so Media merging keeps it.
            + forms.Media(
                js=[
                    "admin/js/vendor/jquery/jquery.js",
                    "admin/js/jquery.init.js",
                    "admin/js/inlines.js",
                ]
            ),
            "errors": bool(form.errors or lines.total_error_count()),
            **(extra_context or {}),
        }
        request.current_app = self.admin_site.name
        return TemplateResponse(request, "admin/downloads/order/add_form.html", context)

    def _create_order(self, request, form, lines):
        data = form.cleaned_data
        try:
            return order_create(
                email=data["email"],
                number=data["number"],
                status=data["status"],
                send_email=data["send_email"],
                downloads=data["downloads"],
                lines=[line.line_input() for line in lines.forms if line.cleaned_data],
            )
        except ServiceError as exc:
            form.add_error(_service_error_target(form, exc), exc.message)
            return None

    # Actions: each through a service, reporting how many orders changed.

    def _each(self, request, queryset, service, done: str):
        run_each(self, request, queryset, service, noun="order", done=done, label="Order {}".format)

    @admin.action(permissions=["change"], description="Mark paid (issues the downloads)")
    def mark_paid(self, request, queryset):
        self._each(request, queryset, lambda order: order_pay(order=order), "Marked {} paid.")

    @admin.action(permissions=["change"], description="Resend the order email")
    def send_email(self, request, queryset):
        self._each(
            request,
            queryset,
            lambda order: order_send_email(order=order, request=request),
            "Sent the order email for {}.",
        )

    @admin.action(permissions=["change"], description="Cancel (pending orders)")
    def cancel(self, request, queryset):
        self._each(request, queryset, lambda order: order_cancel(order=order), "Cancelled {}.")

    @admin.action(permissions=["change"], description="Refund orders or lines…")
    def refund(self, request, queryset):
        orders = list(queryset.prefetch_related("lines"))
        form = RefundForm(request.POST if "apply" in request.POST else None, orders=orders)
        if form.is_bound and form.is_valid():
            chosen = set(form.cleaned_data["lines"])
            refunded_orders = refunded_lines = 0
            for order in orders:
                open_lines = {str(ln.pk) for ln in order.lines.all() if ln.refunded_at is None}
                picked = open_lines & chosen
                if not picked:
                    continue
                whole = picked == open_lines
                try:
                    order_refund(order=order, line_ids=None if whole else picked)
                except ServiceError as exc:
                    self.message_user(request, f"Order {order}: {exc.message}", messages.ERROR)
                    continue
                if whole:
                    refunded_orders += 1
                else:
                    refunded_lines += len(picked)
            parts = []
            if refunded_orders:
                parts.append(_plural(refunded_orders, "order"))
            if refunded_lines:
                parts.append(_plural(refunded_lines, "line"))
            if parts:
                self.message_user(
                    request,
                    f"Refunded {' and '.join(parts)}; their downloads are revoked.",
                    messages.SUCCESS,
                )
            return None
        return action_form_response(
            self,
            request,
            queryset,
            action="refund",
            title="Refund",
            intro="Refunding revokes the downloads of the refunded lines.",
            form=form,
            submit="Refund",
            objects=orders,
        )

    @admin.action(permissions=["change"], description="Attach downloads…")
    def attach(self, request, queryset):
        form = AttachForm(request.POST if "apply" in request.POST else None)
        if form.is_bound and form.is_valid():
            downloads = list(form.cleaned_data["downloads"])
            self._each(
                request,
                queryset,
                lambda order: order_attach_downloads(order=order, downloads=downloads),
                f"Attached {_plural(len(downloads), 'download')} to {{}}.",
            )
            return None
        return action_form_response(
            self,
            request,
            queryset,
            action="attach",
            title="Attach downloads",
            form=form,
            submit="Attach",
        )

    @admin.action(permissions=["change"], description="Detach downloads…")
    def detach(self, request, queryset):
        orders = list(queryset)
        form = DetachForm(request.POST if "apply" in request.POST else None, orders=orders)
        if form.is_bound and form.is_valid():
            downloads = list(form.cleaned_data["downloads"])
            self._each(
                request,
                orders,
                lambda order: order_detach_downloads(order=order, downloads=downloads),
                f"Detached {_plural(len(downloads), 'download')} from {{}}.",
            )
            return None
        return action_form_response(
            self,
            request,
            queryset,
            action="detach",
            title="Detach downloads",
            form=form,
            submit="Detach",
            objects=orders,
        )


# --- Grants -----------------------------------------------------------------------------------


class GrantStateFilter(admin.SimpleListFilter):
    """Yes/no on one state; the three filters combine."""

    state = ""

    def lookups(self, request, model_admin):
        return [("yes", "Yes"), ("no", "No")]

    def queryset(self, request, queryset):
        condition = selectors.grant_state_q(self.state)
        if self.value() == "yes":
            return queryset.filter(condition)
        if self.value() == "no":
            return queryset.exclude(condition)
        return queryset


class RevokedFilter(GrantStateFilter):
    title = "revoked"
    parameter_name = state = "revoked"


class UsedUpFilter(GrantStateFilter):
    title = "used up"
    parameter_name = state = "used_up"


class ExpiredFilter(GrantStateFilter):
    title = "expired"
    parameter_name = state = "expired"


class GrantForm(forms.ModelForm):
    """The service decides what a grant may hold (limits, one per order and download), with
    messages a merchant understands, so the model's own constraint check is not repeated."""

    class Meta:
        model = DownloadGrant
        fields = ["order", "download", "download_count", "download_limit", "expires_at"]

    def _get_validation_exclusions(self):
        return {field.name for field in self._meta.model._meta.fields}


class ExtendForm(forms.Form):
    days = forms.IntegerField(
        initial=7,
        max_value=MAX_EXPIRY_DAYS,
        help_text="From the current expiry, or from now if already expired. "
        "Grants that never expire stay so.",
    )


@admin.register(DownloadGrant)
class DownloadGrantAdmin(
    ServiceSaveMixin,
    ServiceDeleteMixin,
    ServiceErrorMixin,
    ObjectActionsMixin,
    StripNulSearchMixin,
    admin.ModelAdmin,
):
    form = GrantForm
    list_display = [
        "order_number",
        "email",
        "file",
        "count",
        "expires_at",
        "state",
        "last_downloaded_at",
    ]
    list_filter = [RevokedFilter, UsedUpFilter, ExpiredFilter]
    search_fields = [
        "=order__number",
        "order__email",
        "download__media__filename",
        "download__name",
    ]
    list_select_related = ["order", "download__media"]
    autocomplete_fields = ["order", "download"]
    list_per_page = LIST_PER_PAGE
    actions = ["reset", "extend", "revoke", "restore", "delete_selected"]
    object_actions = ("reset", "extend", "revoke", "restore")
    object_action_labels = {
        "reset": "Reset count",
        "extend": "Extend expiry…",
        "revoke": "Revoke",
        "restore": "Restore",
    }

    def get_fields(self, request, obj=None):
        if obj is None:
            return ["order", "download", "download_limit", "expires_at"]
        return [
            "order_link",
            "line",
            "file",
            "count",
            "state",
            "download_count",
            "download_limit",
            "expires_at",
            "revoked_at",
            "last_downloaded_at",
            "created_at",
        ]

    def get_readonly_fields(self, request, obj=None):
        if obj is None:
            return []
        return [
            "order_link",
            "line",
            "file",
            "count",
            "state",
            "revoked_at",
            "last_downloaded_at",
            "created_at",
        ]

    def service_delete(self, obj):
        grant_delete(grant=obj)

    def service_create(self, request, form):
        data = form.cleaned_data
        return grant_create(
            order=data["order"],
            download=data["download"],
            download_limit=data.get("download_limit"),
            expires_at=data.get("expires_at"),
        )

    def service_update(self, request, obj, form):
        return grant_update(
            grant=obj, **changed_fields(form, {"download_count", "download_limit", "expires_at"})
        )

    @admin.display(description="order", ordering="order__number")
    def order_number(self, obj):
        return str(obj.order)

    @admin.display(description="email", ordering="order__email")
    def email(self, obj):
        return obj.order.email

    @admin.display(description="file")
    def file(self, obj):
        return obj.download.display_name

    @admin.display(description="downloads", ordering="download_count")
    def count(self, obj):
        return grant_count(obj)

    @admin.display(description="state")
    def state(self, obj):
        return grant_state(obj)

    @admin.display(description="order")
    def order_link(self, obj):
        return format_html(
            '<a href="{}">{}</a> ({})', _admin_url(obj.order), obj.order, obj.order.email
        )

    def _report(self, request, verb: str, changed: int, selected: int, extra: str = ""):
        unchanged = selected - changed
        text = f"{verb} {_plural(changed, 'grant')}."
        if unchanged:
            text += f" {unchanged} already {extra or 'were so'}."
        self.message_user(request, text, messages.SUCCESS)

    @admin.action(permissions=["change"], description="Reset the download count to 0")
    def reset(self, request, queryset):
        changed = grants_reset(grants=queryset)
        self._report(request, "Reset", changed, queryset.count(), "had no downloads")

    @admin.action(permissions=["change"], description="Revoke access")
    def revoke(self, request, queryset):
        changed = grants_revoke(grants=queryset)
        self._report(request, "Revoked", changed, queryset.count(), "were revoked")

    @admin.action(permissions=["change"], description="Restore access")
    def restore(self, request, queryset):
        changed = grants_restore(grants=queryset)
        self._report(request, "Restored", changed, queryset.count(), "had access")

    @admin.action(permissions=["change"], description="Extend expiry by N days…")
    def extend(self, request, queryset):
        form = ExtendForm(request.POST if "apply" in request.POST else None)
        if form.is_bound and form.is_valid():
            days = form.cleaned_data["days"]
            try:
                changed = grants_extend(grants=queryset, days=days)
            except ServiceError as exc:
                form.add_error("days", exc.message)
            else:
                self._report(
                    request,
                    f"Extended by {_plural(days, 'day')}:",
                    changed,
                    queryset.count(),
                    "never expire",
                )
                return None
        return action_form_response(
            self,
            request,
            queryset,
            action="extend",
            title="Extend expiry",
            form=form,
            submit="Extend",
            objects=list(queryset.select_related("order", "download__media")),
        )


# --- Download log -----------------------------------------------------------------------------


def _csv_cell(value) -> str:
    """Spreadsheets run a cell starting with = + - @ as a formula; the log holds text buyers
    control (user agents), so such cells are quoted with a leading apostrophe."""
    text = "" if value is None else str(value)
    return "'" + text if text[:1] in ("=", "+", "-", "@", "\t", "\r") else text


class _Echo:
    def write(self, value):
        return value


class DateFilter(admin.DateFieldListFilter):
    title = "date"


@admin.register(DownloadEvent)
class DownloadEventAdmin(StripNulSearchMixin, admin.ModelAdmin):
    list_display = ["at", "outcome", "order", "email", "file", "ip", "agent"]
    list_filter = ["outcome", ("at", DateFilter)]
    search_fields = ["grant__order__email", "ip", "=grant__order__number"]
    list_select_related = ["grant__order", "grant__download__media"]
    date_hierarchy = "at"
    list_per_page = LIST_PER_PAGE

    csv_columns = [
        "at",
        "outcome",
        "order",
        "email",
        "product",
        "file",
        "ip",
        "user_agent",
        "grant",
    ]

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False

    @admin.display(description="order", ordering="grant__order__number")
    def order(self, obj):
        return format_html('<a href="{}">{}</a>', _admin_url(obj.grant.order), obj.grant.order)

    @admin.display(description="email", ordering="grant__order__email")
    def email(self, obj):
        return obj.grant.order.email

    @admin.display(description="file")
    def file(self, obj):
        return obj.grant.download.display_name

    @admin.display(description="user agent")
    def agent(self, obj):
        text = obj.user_agent
        if len(text) <= 40:
            return text
        return format_html('<span title="{}">{}…</span>', text, text[:39])

    def get_urls(self):
        return [
            path(
                "export.csv",
                self.admin_site.admin_view(self.export_view),
                name="downloads_downloadevent_export",
            ),
            *super().get_urls(),
        ]

    def export_view(self, request):
        """The changelist's rows as CSV, with the same filters and search, streamed."""
        if not self.has_view_permission(request):
            raise PermissionDenied
        changelist = self.get_changelist_instance(request)
        rows = (
            changelist.get_queryset(request)
            .select_related("grant__order", "grant__download__media", "grant__download__product")
            .iterator(chunk_size=2000)
        )

        def lines():
            writer = csv.writer(_Echo())
            yield writer.writerow(self.csv_columns)
            for event in rows:
                grant = event.grant
                product = grant.download.product
                yield writer.writerow(
                    [
                        _csv_cell(value)
                        for value in (
                            event.at.isoformat(),
                            event.outcome,
                            grant.order.number,
                            grant.order.email,
                            product.name if product else "",
                            grant.download.display_name,
                            event.ip,
                            event.user_agent,
                            grant.pk,
                        )
                    ]
                )

        stamp = timezone.now().strftime("%Y%m%d-%H%M%S")
        response = StreamingHttpResponse(lines(), content_type="text/csv; charset=utf-8")
        response["Content-Disposition"] = f'attachment; filename="downloads-{stamp}.csv"'
        response["Cache-Control"] = "private, no-store"
        return response


from . import admin_webhooks  # noqa: E402,F401
