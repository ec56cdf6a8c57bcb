"""Channel events in the back office: the inbox of verified webhooks from the sales channels
(Shopify, Stripe), listed by status and channel, each shown as it came in, and processed
again through `channel_event_process_again` (after mapping a product, an `unmatched` order
gets its missing lines and files).

An event is a record of what a channel told the store: it is never added, edited or deleted
here (see ChannelEventAdmin.has_delete_permission), only processed again.
"""

import json
from collections import Counter

from django.contrib import admin, messages
from django.utils.html import format_html
from django.utils.text import Truncator

from downloads.models import ChannelEvent
from downloads.services.channels import channel_event_process_again

from .mixins import (
    LIST_PER_PAGE,
    ObjectActionsMixin,
    StripNulSearchMixin,
    ViewOnlyChangeMixin,
    admin_url,
    run_each,
)

ERROR_EXCERPT = 80
# How the action reports outcomes: these always, `ignored` only when it happened.
REPORTED = (
    ChannelEvent.Status.PROCESSED,
    ChannelEvent.Status.UNMATCHED,
    ChannelEvent.Status.FAILED,
)


def label(event: ChannelEvent) -> str:
    """An event in the action's messages: its channel, type and the channel's id."""
    return f"{event.get_channel_display()} {event.type} {event.event_id}"


@admin.register(ChannelEvent)
class ChannelEventAdmin(
    ViewOnlyChangeMixin, ObjectActionsMixin, StripNulSearchMixin, admin.ModelAdmin
):
    list_display = [
        "received_at",
        "channel",
        "type",
        "status",
        "order_link",
        "attempts",
        "error_excerpt",
    ]
    list_display_links = ["received_at"]
    list_filter = ["status", "channel"]
    search_fields = ["event_id", "type"]
    list_select_related = ["order"]
    list_per_page = LIST_PER_PAGE
    fieldsets = [
        (None, {"fields": ["channel", "event_id", "type", "status", "order_link", "attempts"]}),
        ("Dates", {"fields": ["received_at", "processed_at"]}),
        ("What went wrong", {"fields": ["error_shown"]}),
        ("Payload", {"fields": ["payload_shown"]}),
    ]
    readonly_fields = [
        "channel",
        "event_id",
        "type",
        "status",
        "order_link",
        "attempts",
        "received_at",
        "processed_at",
        "error_shown",
        "payload_shown",
    ]
    actions = ["process_again"]
    object_actions = ("process_again",)
    object_action_labels = {"process_again": "Process again"}

    def has_add_permission(self, request):
        # Events come only from verified webhooks.
        return False

    def has_delete_permission(self, request, obj=None):
        # The record of what a channel sent (payments, refunds, disputes) and the key that
        # makes a redelivery change nothing: kept, for superusers too.
        return False

    @admin.display(description="order", ordering="order__number")
    def order_link(self, obj):
        if obj.order is None:
            return "–"
        return format_html('<a href="{}">{}</a>', admin_url(obj.order), obj.order)

    @admin.display(description="error")
    def error_excerpt(self, obj):
        return Truncator(obj.error).chars(ERROR_EXCERPT)

    @admin.display(description="error")
    def error_shown(self, obj):
        if not obj.error:
            return "None"
        return format_html('<pre class="channel-event-error">{}</pre>', obj.error)

    @admin.display(description="payload")
    def payload_shown(self, obj):
        # Escaped by format_html: a payload is whatever the channel (or a buyer) typed.
        text = json.dumps(obj.payload, indent=2, sort_keys=True, ensure_ascii=False)
        return format_html('<pre class="channel-event-payload">{}</pre>', text)

    @admin.action(permissions=["change"], description="Process again")
    def process_again(self, request, queryset):
        outcomes = Counter()

        def again(event):
            processed = channel_event_process_again(event=event)
            outcomes[processed.status] += 1
            if processed.status in (ChannelEvent.Status.UNMATCHED, ChannelEvent.Status.FAILED):
                self.message_user(
                    request,
                    f"{label(processed)}: {processed.get_status_display().lower()}"
                    + (f": {Truncator(processed.error).chars(200)}" if processed.error else "."),
                    messages.WARNING,
                )

        def report(count: str) -> str:
            statuses = [*REPORTED, *([ChannelEvent.Status.IGNORED] if outcomes["ignored"] else [])]
            parts = ", ".join(f"{outcomes[status]} {status}" for status in statuses)
            return f"Processed {count} again: {parts}."

        run_each(self, request, queryset, again, noun="event", done=report, label=label)
