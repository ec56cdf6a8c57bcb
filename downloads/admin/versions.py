"""After the sale, files change: download versions (a new file for a download, its history)
and backfills (a file delivered to existing orders, buyer emails about a new version).

Adding a version goes through `downloads.services.versions`, starting a backfill through
`downloads.services.backfills`; both histories are read-only and never deleted here.
"""

from django import forms
from django.contrib import admin

from downloads.models import Backfill, DownloadVersion
from downloads.services.backfills import backfill_resume, download_deliver_to_existing_orders
from downloads.services.versions import download_replace_media

from .mixins import (
    LIST_PER_PAGE,
    ServiceFormMixin,
    ViewOnlyChangeMixin,
    ViewOnlyInlineMixin,
    run_each,
)


class DownloadVersionInline(ViewOnlyInlineMixin, admin.TabularInline):
    """The file's history on the download's page, newest first; new versions are added
    through Download versions."""

    model = DownloadVersion
    fields = ["created_at", "media", "url", "changelog", "created_by", "notify_buyers"]
    readonly_fields = fields
    verbose_name_plural = "versions (the newest is what buyers get)"

    def get_queryset(self, request):
        return super().get_queryset(request).select_related("media", "created_by")


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
class DownloadVersionAdmin(ViewOnlyChangeMixin, ServiceFormMixin, admin.ModelAdmin):
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

    def has_delete_permission(self, request, obj=None):
        return False

    def service_create(self, request, form):
        data = form.cleaned_data
        return download_replace_media(
            download=data["download"],
            media=data["media"],
            changelog=data.get("changelog", ""),
            created_by=request.user,
            notify_buyers=data.get("notify_buyers", False),
        )


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
class BackfillAdmin(ViewOnlyChangeMixin, ServiceFormMixin, admin.ModelAdmin):
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

    def has_delete_permission(self, request, obj=None):
        # The record of what was delivered and emailed (and a running one's cursor): kept.
        return False

    def get_fields(self, request, obj=None):
        return ["download", "notify_buyers"] if obj is None else self.readonly_fields

    def get_readonly_fields(self, request, obj=None):
        return [] if obj is None else self.readonly_fields

    def service_create(self, request, form):
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
