"""API authentication: `Authorization: Bearer <api key>`, plus HTTP Basic and the admin
session for staff. Only merchants (staff users, API keys) get through."""

from datetime import timedelta

from django.utils import timezone
from rest_framework import authentication, exceptions, permissions

from . import tokens
from .models import ApiKey

LAST_USED_RESOLUTION = timedelta(minutes=1)


class ApiKeyUser:
    """The request.user of a call made with an API key: a merchant, never a customer."""

    is_authenticated = True
    is_anonymous = False
    is_active = True
    is_staff = True
    is_superuser = False

    def __init__(self, key: ApiKey):
        self.api_key = key
        self.pk = None
        self.id = None

    def __str__(self):
        return f"API key {self.api_key.prefix}"


class ApiKeyAuthentication(authentication.BaseAuthentication):
    keyword = "Bearer"

    def authenticate(self, request):
        header = authentication.get_authorization_header(request).split()
        if not header or header[0].lower() != self.keyword.lower().encode():
            return None
        if len(header) != 2:
            raise exceptions.AuthenticationFailed("Malformed Authorization header.")
        try:
            raw = header[1].decode("ascii")
        except UnicodeDecodeError as exc:
            raise exceptions.AuthenticationFailed("Invalid API key.") from exc
        parts = tokens.split_key(raw)
        key = ApiKey.objects.filter(prefix=parts[0]).first() if parts else None
        # Hash and compare even when no row matched, so timing does not tell prefixes apart.
        hashed = key.hashed_secret if key else "0" * 64
        if not tokens.secret_matches(parts[1] if parts else raw, hashed) or key is None:
            raise exceptions.AuthenticationFailed("Invalid API key.")
        if key.revoked_at is not None:
            raise exceptions.AuthenticationFailed("This API key was revoked.")
        now = timezone.now()
        if key.last_used_at is None or now - key.last_used_at >= LAST_USED_RESOLUTION:
            ApiKey.objects.filter(pk=key.pk).update(last_used_at=now)
            key.last_used_at = now
        return ApiKeyUser(key), key

    def authenticate_header(self, request):
        return f'{self.keyword} realm="api"'


class IsMerchant(permissions.BasePermission):
    """Staff users and API keys; read-scope keys only read. Customers get 403."""

    message = "This endpoint is for the store's merchants."

    def has_permission(self, request, view):
        user = request.user
        if not (user and user.is_authenticated):
            return False
        if isinstance(request.auth, ApiKey):
            if request.method in permissions.SAFE_METHODS or request.auth.can_write:
                return True
            self.message = "This API key is read-only."
            return False
        return bool(user.is_staff and user.is_active)
