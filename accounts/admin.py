from django.contrib import admin, messages
from django.contrib.auth.admin import UserAdmin as DjangoUserAdmin

from .models import ApiKey, User
from .services import api_key_create, api_keys_revoke


@admin.register(User)
class UserAdmin(DjangoUserAdmin):
    ordering = ["email"]
    list_display = ["email", "name", "is_staff", "is_active", "date_joined", "last_login"]
    list_filter = ["is_staff", "is_superuser", "is_active"]
    search_fields = ["email", "name"]
    fieldsets = [
        (None, {"fields": ["email", "password"]}),
        ("Profile", {"fields": ["name"]}),
        (
            "Permissions",
            {"fields": ["is_active", "is_staff", "is_superuser", "groups", "user_permissions"]},
        ),
        ("Dates", {"fields": ["last_login", "date_joined"]}),
    ]
    add_fieldsets = [
        (None, {"classes": ["wide"], "fields": ["email", "password1", "password2", "is_staff"]}),
    ]


@admin.register(ApiKey)
class ApiKeyAdmin(admin.ModelAdmin):
    """API keys: the raw key is shown once, in the message after creating it; only its hash
    is stored, and the hash is never displayed."""

    list_display = [
        "name",
        "prefix",
        "scope",
        "created_by",
        "created_at",
        "last_used_at",
        "revoked_at",
    ]
    list_filter = ["scope", ("revoked_at", admin.EmptyFieldListFilter)]
    search_fields = ["name", "prefix"]
    list_select_related = ["created_by"]
    list_per_page = 50
    fields = ["name", "scope", "prefix", "created_by", "created_at", "last_used_at", "revoked_at"]
    readonly_fields = ["prefix", "created_by", "created_at", "last_used_at", "revoked_at"]
    actions = ["revoke"]

    def get_readonly_fields(self, request, obj=None):
        if obj is not None:
            return [*self.readonly_fields, "scope"]
        return self.readonly_fields

    def has_delete_permission(self, request, obj=None):
        # Revoked keys stay listed: who had access, and until when.
        return False

    def save_form(self, request, form, change):
        if change:
            return super().save_form(request, form, change)
        key, raw = api_key_create(
            name=form.cleaned_data["name"],
            scope=form.cleaned_data["scope"],
            created_by=request.user,
        )
        self.message_user(
            request,
            f"The new API key is {raw} — copy it now: it is shown only once.",
            messages.WARNING,
        )
        return key

    def save_model(self, request, obj, form, change):
        if change:
            super().save_model(request, obj, form, change)

    def save_related(self, request, form, formsets, change):
        if change:
            super().save_related(request, form, formsets, change)

    @admin.action(permissions=["change"], description="Revoke selected API keys")
    def revoke(self, request, queryset):
        count = api_keys_revoke(keys=queryset)
        self.message_user(request, f"Revoked {count} API key(s).", messages.SUCCESS)
