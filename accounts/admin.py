"""Identity in the back office: users (email login) and the merchant API's keys.

Django's *Groups* are not offered: staff here are given permissions one by one (or are
superusers), so groups would only clutter the menu and the user form.
"""

from axes.models import AccessFailureLog, AccessLog
from django.contrib import admin, messages
from django.contrib.auth.admin import UserAdmin as DjangoUserAdmin
from django.contrib.auth.models import Group

from downloads.admin.mixins import confirmation, plural

from .models import ApiKey, User
from .services import api_key_create, api_keys_revoke

# django.contrib.auth registers Group when its admin module is imported (above).
if admin.site.is_registered(Group):
    admin.site.unregister(Group)

# Login protection (accounts/lockout.py) keeps failed attempts only: no log of successful
# logins (AXES_DISABLE_ACCESS_LOG), no failure history. The menu keeps axes' *Access
# attempts*, where a merchant lifts a lockout early by deleting its rows. (axes comes before
# accounts in INSTALLED_APPS, so its admin has registered these by now.)
for _model in (AccessLog, AccessFailureLog):
    if admin.site.is_registered(_model):
        admin.site.unregister(_model)


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
            {"fields": ["is_active", "is_staff", "is_superuser", "user_permissions"]},
        ),
        ("Dates", {"fields": ["last_login", "date_joined"]}),
    ]
    add_fieldsets = [
        (None, {"classes": ["wide"], "fields": ["email", "password1", "password2", "is_staff"]}),
    ]
    filter_horizontal = ["user_permissions"]


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

    @admin.action(permissions=["change"], description="Revoke selected API keys…")
    def revoke(self, request, queryset):
        page = confirmation(
            self,
            request,
            queryset,
            action="revoke",
            title="Revoke API keys",
            intro="Requests with these keys are refused from now on; this cannot be undone "
            "(create a new key instead). The keys stay listed: who had access, and until when.",
            submit="Yes, revoke",
        )
        if page is not None:
            return page
        count = api_keys_revoke(keys=queryset)
        self.message_user(request, f"Revoked {plural(count, 'API key')}.", messages.SUCCESS)
        return None
