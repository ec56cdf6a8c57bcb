"""Webhooks in the back office: the endpoints that receive the store's events (URL, event
types, signing secret) and the delivery log (every event sent, every attempt, a retry).

Every change goes through `downloads.services.webhooks`; the log is read-only. Rotating a
secret confirms first (receivers refuse the new signatures until they are given it), and the
delete page of an endpoint with deliveries says its log goes with it and offers to deactivate
it instead, which keeps the log.
"""

import json

from django import forms
from django.contrib import admin, messages
from django.contrib.admin.utils import quote, unquote
from django.core.exceptions import PermissionDenied
from django.db.models import Count
from django.http import HttpResponseNotAllowed, HttpResponseRedirect
from django.urls import path, reverse
from django.utils.html import format_html

from downloads.models import WebhookAttempt, WebhookDelivery, WebhookEndpoint
from downloads.services import webhooks
from downloads.services.webhooks import (
    webhook_delivery_retry,
    webhook_endpoint_create,
    webhook_endpoint_delete,
    webhook_endpoint_rotate_secret,
    webhook_endpoint_update,
)

from .mixins import (
    LIST_PER_PAGE,
    ServiceDeleteMixin,
    ServiceFormMixin,
    ViewOnlyChangeMixin,
    ViewOnlyInlineMixin,
    admin_url,
    confirmation,
    plural,
    run_each,
)


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

    def endpoint_fields(self) -> dict:
        """What webhook_endpoint_create and webhook_endpoint_update take from this form."""
        data = self.cleaned_data
        return {
            "url": data["url"],
            "event_types": data.get("event_types") or [],
            "description": data.get("description", ""),
            "is_active": data.get("is_active", True),
        }


@admin.register(WebhookEndpoint)
class WebhookEndpointAdmin(ServiceFormMixin, ServiceDeleteMixin, admin.ModelAdmin):
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

    def service_create(self, request, form):
        return webhook_endpoint_create(**form.endpoint_fields())

    def service_update(self, request, obj, form):
        # The admin's form already set the fields on obj; reload to hand the service the
        # stored row and the wanted changes.
        stored = WebhookEndpoint.objects.get(pk=obj.pk)
        return webhook_endpoint_update(endpoint=stored, **form.endpoint_fields())

    def service_delete(self, obj):
        webhook_endpoint_delete(endpoint=obj)

    def render_delete_form(self, request, context):
        obj = context["object"]
        context["deliveries"] = obj.deliveries.count()
        if obj.is_active and self.has_change_permission(request, obj):
            context["deactivate_url"] = reverse(
                "admin:downloads_webhookendpoint_deactivate", args=[quote(obj.pk)]
            )
        return super().render_delete_form(request, context)

    def get_urls(self):
        return [
            path(
                "<path:object_id>/deactivate/",
                self.admin_site.admin_view(self.deactivate_view),
                name="downloads_webhookendpoint_deactivate",
            ),
            *super().get_urls(),
        ]

    def deactivate_view(self, request, object_id):
        """The delete page's *Deactivate instead*: no more deliveries, the log kept."""
        if request.method != "POST":
            return HttpResponseNotAllowed(["POST"])
        endpoint = self.get_object(request, unquote(object_id))
        if endpoint is None or not self.has_change_permission(request, endpoint):
            raise PermissionDenied
        webhook_endpoint_update(endpoint=endpoint, is_active=False)
        self.message_user(
            request,
            f"Deactivated {endpoint}: nothing more is sent to it; its deliveries are kept.",
            messages.SUCCESS,
        )
        return HttpResponseRedirect(admin_url(endpoint))

    @admin.action(permissions=["change"], description="Rotate the signing secret…")
    def rotate_secret(self, request, queryset):
        page = confirmation(
            self,
            request,
            queryset,
            action="rotate_secret",
            title="Rotate signing secrets",
            intro="Each endpoint gets a new secret at once: its receiver refuses the new "
            "signatures until you give it the new secret (shown on the endpoint's page).",
            submit="Yes, rotate",
        )
        if page is not None:
            return page
        count = 0
        for endpoint in queryset:
            webhook_endpoint_rotate_secret(endpoint=endpoint)
            count += 1
        self.message_user(
            request, f"New secrets for {plural(count, 'endpoint')}.", messages.SUCCESS
        )
        return None


class WebhookAttemptInline(ViewOnlyInlineMixin, admin.TabularInline):
    model = WebhookAttempt
    fields = ["at", "status_code", "error", "duration_ms"]
    readonly_fields = fields
    ordering = ["at"]


@admin.register(WebhookDelivery)
class WebhookDeliveryAdmin(ViewOnlyChangeMixin, admin.ModelAdmin):
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
            '<pre class="webhook-payload">{}</pre>', json.dumps(obj.payload, indent=2)
        )

    def has_add_permission(self, request):
        return False

    def has_delete_permission(self, request, obj=None):
        return False  # the log stays; deleting the endpoint removes its deliveries

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
