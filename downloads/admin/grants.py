"""Grants and the download log in the back office: who may download what (search, state
filters, reset, extend, revoke, restore) and every download served (read-only, exported as
CSV for support and disputes).

Every change goes through `downloads.services.grants`; what a grant's state is comes from the
grant itself (`DownloadGrant.refusal`), where its stamped copy stands from
`services.stamping.stamp_state` (read with the grants: `selectors.grants_with_stamp_state`).
A grant is never deleted here: it is the buyer's history (its downloads are logged against
it), so access ends by *Revoke*, which confirms first and can be undone (*Restore*).
"""

import csv
from functools import partial

from django import forms
from django.contrib import admin
from django.core.exceptions import PermissionDenied
from django.http import StreamingHttpResponse
from django.urls import path
from django.utils import timezone
from django.utils.html import format_html
from django.utils.translation import ngettext

from downloads import selectors
from downloads.errors import ServiceError
from downloads.models import REFUSAL_LABELS, DownloadEvent, DownloadGrant, StampedCopy
from downloads.services.common import MAX_EXPIRY_DAYS
from downloads.services.grants import (
    grant_create,
    grant_update,
    grants_extend,
    grants_reset,
    grants_restore,
    grants_revoke,
)
from downloads.services.stamping import stamp_state

from .mixins import (
    LIST_PER_PAGE,
    ObjectActionsMixin,
    RecordAdminMixin,
    ServiceFormMixin,
    StripNulSearchMixin,
    action_form_response,
    admin_url,
    bulk_change,
    changed_fields,
    confirmation,
    plural,
)


def grant_count(grant) -> str:
    """ "3 / 10", or "3 / ∞" when unlimited."""
    limit = "∞" if grant.download_limit is None else grant.download_limit
    return f"{grant.download_count} / {limit}"


def grant_state(grant) -> str:
    """The back office's word for a grant's state now (REFUSAL_LABELS, the one map)."""
    labels = grant.refusal_labels
    return labels.state if labels else "active"


class GrantColumnsMixin:
    """The columns a grant shows wherever it is listed (the grants' list, an order's page)."""

    @admin.display(description="file")
    def file(self, obj):
        return obj.download.display_name

    @admin.display(description="downloads", ordering="download_count")
    def count(self, obj):
        return grant_count(obj)

    @admin.display(description="state")
    def state(self, obj):
        return grant_state(obj)

    @admin.display(description="stamping")
    def stamping(self, obj):
        """The buyer's stamped copy: Being prepared, Ready, or Delivered unstamped with the
        reason (an encrypted or broken PDF); "-" when the file is not stamped. Needs the
        grants read through `selectors.grants_with_stamp_state`."""
        state = stamp_state(grant=obj)
        if state is None:
            return "-"
        if state.status == StampedCopy.Status.UNSTAMPABLE:
            return format_html(
                '<span class="stamp-status stamp-status-{}">{}</span>: {}',
                state.status,
                state.label,
                state.error,
            )
        return format_html(
            '<span class="stamp-status stamp-status-{}">{}</span>', state.status, state.label
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


def _state_filter(reason: str) -> type[GrantStateFilter]:
    labels = REFUSAL_LABELS[reason]
    return type(
        f"{labels.filter.title().replace('_', '')}Filter",
        (GrantStateFilter,),
        {"title": labels.state, "parameter_name": labels.filter, "state": labels.filter},
    )


class StampingFilter(admin.SimpleListFilter):
    """Grants by their stamped copy of the current file: the merchant finds the PDFs that
    could not be stamped (Delivered unstamped) and the copies still being made."""

    title = "stamping"
    parameter_name = "stamping"

    def lookups(self, request, model_admin):
        return StampedCopy.Status.choices

    def queryset(self, request, queryset):
        if self.value() in StampedCopy.Status.values:
            return queryset.filter(stamp_copy_status=self.value())
        return queryset


RevokedFilter = _state_filter(DownloadEvent.Outcome.REVOKED)
UsedUpFilter = _state_filter(DownloadEvent.Outcome.LIMIT_REACHED)
ExpiredFilter = _state_filter(DownloadEvent.Outcome.EXPIRED)


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
    GrantColumnsMixin,
    ServiceFormMixin,
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
        "stamping",
        "last_downloaded_at",
    ]
    list_filter = [RevokedFilter, UsedUpFilter, ExpiredFilter, StampingFilter]
    search_fields = [
        "=order__number",
        "order__email",
        "download__media__filename",
        "download__name",
    ]
    list_select_related = ["order", "download__media"]
    autocomplete_fields = ["order", "download"]
    list_per_page = LIST_PER_PAGE
    actions = ["reset", "extend", "revoke", "restore"]
    object_actions = ("reset", "extend", "revoke", "restore")
    object_action_labels = {
        "reset": "Reset count",
        "extend": "Extend expiry…",
        "revoke": "Revoke…",
        "restore": "Restore",
    }
    destructive_actions = frozenset({"revoke"})
    readonly_fields = [
        "order_link",
        "line",
        "file",
        "count",
        "state",
        "stamping",
        "revoked_at",
        "last_downloaded_at",
        "created_at",
    ]

    def get_queryset(self, request):
        # The stamping column: each grant's copy in the list's own statement.
        return selectors.grants_with_stamp_state(super().get_queryset(request))

    def get_fields(self, request, obj=None):
        if obj is None:
            return ["order", "download", "download_limit", "expires_at"]
        return [
            "order_link",
            "line",
            "file",
            "count",
            "state",
            "stamping",
            "download_count",
            "download_limit",
            "expires_at",
            "revoked_at",
            "last_downloaded_at",
            "created_at",
        ]

    def get_readonly_fields(self, request, obj=None):
        return [] if obj is None else self.readonly_fields

    def has_delete_permission(self, request, obj=None):
        # The buyer's history (the download log hangs on it): revoke instead, which keeps it
        # and can be undone.
        return False

    def get_object_actions(self, request, obj):
        """Only what would change this grant: reset a count above 0, extend an expiry there
        is, revoke while active, restore once revoked (the services' own filters)."""
        allowed = {"restore"} if obj.is_revoked else {"revoke"}
        if obj.download_count:
            allowed.add("reset")
        if obj.expires_at is not None:
            allowed.add("extend")
        return frozenset(allowed)

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

    @admin.display(description="order")
    def order_link(self, obj):
        return format_html(
            '<a href="{}">{}</a> ({})', admin_url(obj.order), obj.order, obj.order.email
        )

    def _bulk(self, request, queryset, change, verb: str, already):
        """`already(n)`: the sentence about the n selected grants that were already so."""
        return bulk_change(
            self,
            request,
            queryset,
            lambda grants: change(grants=grants),
            verb=verb,
            noun="grant",
            unchanged=already,
        )

    @admin.action(permissions=["change"], description="Reset the download count to 0")
    def reset(self, request, queryset):
        self._bulk(
            request, queryset, grants_reset, "Reset", lambda n: f"{n} already had no downloads."
        )

    @admin.action(permissions=["change"], description="Revoke access…")
    def revoke(self, request, queryset):
        page = confirmation(
            self,
            request,
            queryset,
            action="revoke",
            title="Revoke access",
            intro="The buyers can no longer download these files; their download history is "
            "kept, and Restore gives the access back.",
            submit="Yes, revoke",
            objects=list(queryset.select_related("order", "download__media")),
        )
        if page is not None:
            return page
        self._bulk(
            request,
            queryset,
            grants_revoke,
            "Revoked",
            lambda n: ngettext("%d was already revoked.", "%d were already revoked.", n) % n,
        )
        return None

    @admin.action(permissions=["change"], description="Restore access")
    def restore(self, request, queryset):
        self._bulk(
            request, queryset, grants_restore, "Restored", lambda n: f"{n} already had access."
        )

    @admin.action(permissions=["change"], description="Extend expiry by N days…")
    def extend(self, request, queryset):
        form = ExtendForm(request.POST if "apply" in request.POST else None)
        if form.is_bound and form.is_valid():
            days = form.cleaned_data["days"]
            try:
                self._bulk(
                    request,
                    queryset,
                    partial(grants_extend, days=days),
                    f"Extended by {plural(days, 'day')}:",
                    lambda n: ngettext("%d never expires.", "%d never expire.", n) % n,
                )
            except ServiceError as exc:
                form.add_error("days", exc.message)
            else:
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
    """A file-like object whose write returns the line, so csv.writer can feed a stream."""

    def write(self, value):
        return value


class DateFilter(admin.DateFieldListFilter):
    title = "date"


@admin.register(DownloadEvent)
class DownloadEventAdmin(RecordAdminMixin, StripNulSearchMixin, admin.ModelAdmin):
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

    @admin.display(description="order", ordering="grant__order__number")
    def order(self, obj):
        return format_html('<a href="{}">{}</a>', admin_url(obj.grant.order), obj.grant.order)

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
