"""The admin for what happens after the sale: download versions, backfills (files delivered to
existing orders, buyer emails), webhook endpoints and their delivery log.

Every change goes through `downloads.services`, as in the API. Imported at the end of
`downloads/admin.py`.
"""

import json

from django import forms
from django.contrib import admin, messages
from django.db.models import Count
from django.utils.html import format_html

from downloads.services.backfills import backfill_resume, download_deliver_to_existing_orders
from downloads.services.versions import download_replace_media
from downloads.services.webhooks import (
    webhook_delivery_retry,
    webhook_endpoint_create,
    webhook_endpoint_delete,
    webhook_endpoint_rotate_secret,
    webhook_endpoint_update,
)

from .admin import ServiceErrorMixin, run_each
from .models import (
    Backfill,
    DownloadVersion,
    WebhookAttempt,
    WebhookDelivery,
    WebhookEndpoint,
)
from .services import webhooks

LIST_PER_PAGE = 50


class ServiceFormMixin(ServiceErrorMixin):
    """Saving goes through a service (`service_save`); a ServiceError it raises shows on the
    form (ServiceErrorMixin). The service's result replaces the unsaved object the admin
    built."""

    def service_save(self, request, obj, form, change):
        raise NotImplementedError

    def save_model(self, request, obj, form, change):
        saved = self.service_save(request, obj, form, change)
        if saved is not None and saved is not obj:
            obj.__dict__.update({k: v for k, v in saved.__dict__.items() if k != "_state"})
            obj._state.adding = False


# --- Versions ---------------------------------------------------------------------------------


class DownloadVersionForm(forms.ModelForm):
    class Meta:
        model = DownloadVersion
        fields = ["download", "media", "changelog", "notify_buyers"]
        help_texts = {
            "media": "The new file. Buyers get it from their next download on.",
            "notify_buyers": "Email every order that has this file (once per order).",
        }

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        if "media" in self.fields:
            self.fields["media"].required = True


@admin.register(DownloadVersion)
class DownloadVersionAdmin(ServiceFormMixin, admin.ModelAdmin):
    """Adding a version replaces the download's file; the history is read-only."""

    form = DownloadVersionForm
    list_display = ["download", "file", "changelog", "created_by", "created_at", "notify_buyers"]
    list_select_related = ["download__media", "media", "created_by"]
    search_fields = ["download__name", "media__filename", "changelog"]
    autocomplete_fields = ["download", "media"]
    list_per_page = LIST_PER_PAGE
    date_hierarchy = "created_at"

    @admin.display(description="File")
    def file(self, obj):
        return obj.media.filename if obj.media_id else obj.url

    def get_readonly_fields(self, request, obj=None):
        if obj is None:
            return []
        return ["download", "media", "url", "changelog", "created_by", "created_at"]

    def get_fields(self, request, obj=None):
        if obj is None:
            return ["download", "media", "changelog", "notify_buyers"]
        return ["download", "media", "url", "changelog", "created_by", "created_at"]

    def has_change_permission(self, request, obj=None):
        return obj is None and super().has_change_permission(request, obj)

    def has_delete_permission(self, request, obj=None):
        return False

    def service_save(self, request, obj, form, change):
        data = form.cleaned_data
        return download_replace_media(
            download=data["download"],
            media=data["media"],
            changelog=data.get("changelog", ""),
            created_by=request.user,
            notify_buyers=data.get("notify_buyers", False),
        )


# --- Backfills --------------------------------------------------------------------------------


class BackfillForm(forms.ModelForm):
    class Meta:
        model = Backfill
        fields = ["download", "notify_buyers"]
        help_texts = {
            "download": "A file on a product: every paid, unrefunded order of the product "
            "(and variant) that lacks it gets it.",
            "notify_buyers": "Email each order that receives the file (once per order).",
        }


@admin.register(Backfill)
class BackfillAdmin(ServiceFormMixin, admin.ModelAdmin):
    """Progress of deliveries to existing orders and of buyer emails; add one to start it."""

    form = BackfillForm
    list_display = [
        "download",
        "kind",
        "status",
        "orders_seen",
        "grants_created",
        "emails_sent",
        "cursor",
        "started_at",
        "finished_at",
    ]
    list_filter = ["status", "notify_buyers"]
    list_select_related = ["download__media", "version"]
    search_fields = ["download__name", "download__media__filename"]
    autocomplete_fields = ["download"]
    actions = ["resume"]
    list_per_page = LIST_PER_PAGE
    readonly_fields = [
        "download",
        "version",
        "kind",
        "status",
        "notify_buyers",
        "cursor",
        "orders_seen",
        "grants_created",
        "emails_sent",
        "error",
        "created_at",
        "started_at",
        "finished_at",
    ]

    @admin.display(description="Kind")
    def kind(self, obj):
        return "Emails about a new version" if obj.version_id else "File for existing orders"

    def get_fields(self, request, obj=None):
        return ["download", "notify_buyers"] if obj is None else self.readonly_fields

    def get_readonly_fields(self, request, obj=None):
        return [] if obj is None else self.readonly_fields

    def has_change_permission(self, request, obj=None):
        return obj is None and super().has_change_permission(request, obj)

    def service_save(self, request, obj, form, change):
        return download_deliver_to_existing_orders(
            download=form.cleaned_data["download"],
            notify_buyers=form.cleaned_data.get("notify_buyers", False),
        )

    @admin.action(permissions=["add"], description="Resume selected backfills")
    def resume(self, request, queryset):
        run_each(
            self,
            request,
            queryset,
            lambda backfill: backfill_resume(backfill=backfill),
            noun="backfill",
            done="Queued {}.",
        )


# --- Webhooks ---------------------------------------------------------------------------------


class WebhookEndpointForm(forms.ModelForm):
    url = forms.URLField(
        label="URL",
        max_length=2048,
        assume_scheme="https",
        widget=forms.URLInput(attrs={"size": 60}),
    )
    # The names receivers see in `type` and Webhook-Event, not prettified labels.
    event_types = forms.MultipleChoiceField(
        choices=[(name, name) for name in webhooks.EVENT_TYPES],
        widget=forms.CheckboxSelectMultiple,
        required=False,
        help_text="None chosen: every event.",
    )

    class Meta:
        model = WebhookEndpoint
        fields = ["url", "description", "event_types", "is_active"]


@admin.register(WebhookEndpoint)
class WebhookEndpointAdmin(ServiceFormMixin, admin.ModelAdmin):
    form = WebhookEndpointForm
    list_display = ["url", "description", "events", "is_active", "deliveries", "created_at"]
    list_filter = ["is_active"]
    search_fields = ["url", "description"]
    actions = ["rotate_secret"]
    list_per_page = LIST_PER_PAGE

    def get_queryset(self, request):
        return super().get_queryset(request).annotate(delivery_count=Count("deliveries"))

    @admin.display(description="Events")
    def events(self, obj):
        return ", ".join(obj.event_types) if obj.event_types else "all"

    @admin.display(description="Deliveries", ordering="delivery_count")
    def deliveries(self, obj):
        return obj.delivery_count

    def get_fields(self, request, obj=None):
        fields = ["url", "description", "event_types", "is_active"]
        return fields if obj is None else [*fields, "signing_secret", "created_at"]

    def get_readonly_fields(self, request, obj=None):
        return [] if obj is None else ["signing_secret", "created_at"]

    @admin.display(description="Signing secret")
    def signing_secret(self, obj):
        return format_html(
            "<code>{}</code><div class='help'>Verify the <code>{}</code> header with it "
            "(README, Webhooks).</div>",
            obj.secret,
            webhooks.SIGNATURE_HEADER,
        )

    def service_save(self, request, obj, form, change):
        data = form.cleaned_data
        if not change:
            return webhook_endpoint_create(
                url=data["url"],
                event_types=data.get("event_types") or [],
                description=data.get("description", ""),
                is_active=data.get("is_active", True),
            )
        # The admin's form already set the fields on obj; reload to hand the service the
        # stored row and the wanted changes.
        stored = WebhookEndpoint.objects.get(pk=obj.pk)
        return webhook_endpoint_update(
            endpoint=stored,
            url=data["url"],
            event_types=data.get("event_types") or [],
            description=data.get("description", ""),
            is_active=data.get("is_active", True),
        )

    def delete_model(self, request, obj):
        webhook_endpoint_delete(endpoint=obj)

    def delete_queryset(self, request, queryset):
        for endpoint in queryset:
            webhook_endpoint_delete(endpoint=endpoint)

    @admin.action(permissions=["change"], description="Rotate the signing secret")
    def rotate_secret(self, request, queryset):
        for endpoint in queryset:
            webhook_endpoint_rotate_secret(endpoint=endpoint)
        self.message_user(
            request, f"New secrets for {queryset.count()} endpoint(s).", messages.SUCCESS
        )


class WebhookAttemptInline(admin.TabularInline):
    model = WebhookAttempt
    extra = 0
    can_delete = False
    fields = ["at", "status_code", "error", "duration_ms"]
    readonly_fields = fields
    ordering = ["at"]

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False


@admin.register(WebhookDelivery)
class WebhookDeliveryAdmin(admin.ModelAdmin):
    """The delivery log: every event sent, every attempt, and a way to send one again."""

    list_display = [
        "event_type",
        "endpoint",
        "status",
        "attempts",
        "created_at",
        "next_attempt_at",
        "delivered_at",
    ]
    list_filter = ["status", "event_type"]
    list_select_related = ["endpoint"]
    search_fields = ["endpoint__url", "event_type"]
    date_hierarchy = "created_at"
    inlines = [WebhookAttemptInline]
    actions = ["retry_now"]
    list_per_page = LIST_PER_PAGE
    fields = [
        "id",
        "endpoint",
        "event_type",
        "status",
        "attempts",
        "created_at",
        "next_attempt_at",
        "delivered_at",
        "body",
    ]
    readonly_fields = fields

    @admin.display(description="Payload")
    def body(self, obj):
        return format_html(
            "<pre style='white-space: pre-wrap'>{}</pre>", json.dumps(obj.payload, indent=2)
        )

    def has_add_permission(self, request):
        return False

    def has_delete_permission(self, request, obj=None):
        return False  # the log stays; deleting the endpoint removes its deliveries

    def has_change_permission(self, request, obj=None):
        # Viewing only; the list's action still needs the changelist.
        return obj is None and super().has_change_permission(request, obj)

    @admin.action(permissions=["change"], description="Retry now")
    def retry_now(self, request, queryset):
        run_each(
            self,
            request,
            queryset,
            lambda delivery: webhook_delivery_retry(delivery=delivery),
            noun="delivery",
            done="Queued {} again.",
        )
