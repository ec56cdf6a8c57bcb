"""The merchant's back office. Every change goes through downloads.services, as in the API."""

from django.contrib import admin, messages

from . import services
from .models import (
    Download,
    DownloadEvent,
    DownloadGrant,
    Media,
    Order,
    OrderLine,
    Product,
    Variant,
)


class VariantInline(admin.TabularInline):
    model = Variant
    extra = 0
    fields = ["name", "sku", "external_id", "price", "position"]


class DownloadInline(admin.TabularInline):
    model = Download
    fk_name = "product"
    extra = 0
    fields = ["media", "url", "name", "variant", "position", "archived"]
    autocomplete_fields = ["media"]


@admin.register(Product)
class ProductAdmin(admin.ModelAdmin):
    list_display = [
        "name",
        "sku",
        "vendor",
        "external_id",
        "download_limit",
        "archived",
        "created_at",
    ]
    list_filter = ["archived", "vendor"]
    search_fields = ["name", "sku", "vendor", "=external_id"]
    inlines = [VariantInline, DownloadInline]

    def delete_model(self, request, obj):
        services.product_delete(product=obj)


@admin.register(Variant)
class VariantAdmin(admin.ModelAdmin):
    list_display = ["name", "product", "sku", "price", "position"]
    search_fields = ["name", "sku", "product__name"]
    list_select_related = ["product"]
    autocomplete_fields = ["product"]


@admin.register(Media)
class MediaAdmin(admin.ModelAdmin):
    list_display = ["filename", "content_type", "byte_size", "created_at"]
    search_fields = ["filename", "sha256"]
    readonly_fields = ["filename", "content_type", "byte_size", "sha256", "created_at"]


@admin.register(Download)
class DownloadAdmin(admin.ModelAdmin):
    list_display = ["__str__", "product", "variant", "media", "url", "archived", "position"]
    list_filter = ["archived"]
    search_fields = ["name", "url", "media__filename", "product__name"]
    list_select_related = ["product", "variant", "media"]
    autocomplete_fields = ["product", "variant", "media"]


class OrderLineInline(admin.TabularInline):
    model = OrderLine
    extra = 0
    fields = ["product", "variant", "name", "sku", "quantity", "refunded_at"]
    readonly_fields = ["name", "sku", "refunded_at"]
    autocomplete_fields = ["product", "variant"]


@admin.register(Order)
class OrderAdmin(admin.ModelAdmin):
    list_display = ["number", "email", "status", "placed_at", "email_sent_at"]
    list_filter = ["status", "placed_at"]
    search_fields = ["=number", "email"]
    readonly_fields = ["access_token", "paid_at", "refunded_at", "email_sent_at"]
    autocomplete_fields = ["customer", "downloads"]
    inlines = [OrderLineInline]
    actions = ["mark_paid", "refund"]

    @admin.action(description="Mark selected orders paid (issues downloads)")
    def mark_paid(self, request, queryset):
        done = 0
        for order in queryset:
            try:
                services.order_pay(order=order)
                done += 1
            except services.ServiceError as exc:
                self.message_user(request, f"Order #{order.number}: {exc.message}", messages.ERROR)
        self.message_user(request, f"Marked {done} order(s) paid.", messages.SUCCESS)

    @admin.action(description="Refund selected orders (revokes downloads)")
    def refund(self, request, queryset):
        done = 0
        for order in queryset:
            try:
                services.order_refund(order=order)
                done += 1
            except services.ServiceError as exc:
                self.message_user(request, f"Order #{order.number}: {exc.message}", messages.ERROR)
        self.message_user(request, f"Refunded {done} order(s).", messages.SUCCESS)


@admin.register(DownloadGrant)
class DownloadGrantAdmin(admin.ModelAdmin):
    list_display = [
        "order",
        "download",
        "download_count",
        "download_limit",
        "expires_at",
        "revoked_at",
        "last_downloaded_at",
    ]
    list_filter = [("revoked_at", admin.EmptyFieldListFilter)]
    search_fields = [
        "=order__number",
        "order__email",
        "download__media__filename",
        "download__name",
    ]
    list_select_related = ["order", "download__media"]
    raw_id_fields = ["order", "line", "download"]
    readonly_fields = ["token", "download_count", "last_downloaded_at"]
    actions = ["reset", "revoke", "restore"]

    @admin.action(description="Reset download count")
    def reset(self, request, queryset):
        count = services.grants_reset(grants=queryset)
        self.message_user(request, f"Reset {count} grant(s).", messages.SUCCESS)

    @admin.action(description="Revoke access")
    def revoke(self, request, queryset):
        count = services.grants_revoke(grants=queryset)
        self.message_user(request, f"Revoked {count} grant(s).", messages.SUCCESS)

    @admin.action(description="Restore access")
    def restore(self, request, queryset):
        count = services.grants_restore(grants=queryset)
        self.message_user(request, f"Restored {count} grant(s).", messages.SUCCESS)


@admin.register(DownloadEvent)
class DownloadEventAdmin(admin.ModelAdmin):
    list_display = ["at", "outcome", "grant", "ip", "user_agent"]
    list_filter = ["outcome", "at"]
    search_fields = ["grant__order__email", "ip", "=grant__order__number"]
    list_select_related = ["grant__order", "grant__download__media"]
    date_hierarchy = "at"

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


from . import admin_webhooks  # noqa: E402,F401
