"""API authentication: `Authorization: Bearer <api key>`, plus HTTP Basic and the admin
session for staff. Only merchants (staff users, API keys) get through.

HTTP Basic is a password login like the login pages, under the same login protection
(accounts/lockout.py): a locked-out account or address gets 429 `auth.locked_out`, the
right password too. API keys are not passwords and are never locked out."""

import re
from datetime import timedelta

from django.contrib.auth import authenticate
from django.utils import timezone
from drf_spectacular.authentication import BasicScheme
from rest_framework import authentication, exceptions, permissions, status

from . import lockout, tokens
from .models import ApiKey, User

LAST_USED_RESOLUTION = timedelta(minutes=1)
# What `tokens.generate_key` makes a prefix of; anything else never reaches the database
# (a NUL byte in a filter value is a DataError on PostgreSQL).
_PREFIX = re.compile(r"[0-9a-f]{12}")
# Compared against when no key has the prefix, so a miss costs the same hash and compare.
_NO_MATCH = "0" * 64


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

    def get_username(self) -> str:
        return str(self)


class ApiKeyAuthentication(authentication.BaseAuthentication):
    """`Authorization: Bearer dd_<prefix>_<secret>`: the prefix finds the key, the secret's
    hash is compared in constant time; revoked keys are refused. `last_used_at` is written
    at most once a minute per key, so reads do not turn into a write each."""

    keyword = "Bearer"

    def authenticate(self, request):
        header = authentication.get_authorization_header(request).split()
        if not header or header[0].lower() != self.keyword.lower().encode():
            return None
        if len(header) != 2:
            raise exceptions.AuthenticationFailed(
                "Malformed Authorization header: use `Bearer <api key>`.", code="api_key.invalid"
            )
        try:
            raw = header[1].decode("ascii")
        except UnicodeDecodeError as exc:
            raise exceptions.AuthenticationFailed(
                "Invalid API key.", code="api_key.invalid"
            ) from exc
        parts = tokens.split_key(raw)
        if parts is not None and not _PREFIX.fullmatch(parts[0]):
            parts = None
        key = (
            ApiKey.objects.only(
                "id", "prefix", "hashed_secret", "scope", "revoked_at", "last_used_at"
            )
            .filter(prefix=parts[0])
            .first()
            if parts
            else None
        )
        hashed = key.hashed_secret if key else _NO_MATCH
        matches = tokens.secret_matches(parts[1] if parts else raw, hashed)
        if key is None or not matches:
            raise exceptions.AuthenticationFailed("Invalid API key.", code="api_key.invalid")
        if key.revoked_at is not None:
            raise exceptions.AuthenticationFailed(
                "This API key was revoked.", code="api_key.revoked"
            )
        now = timezone.now()
        if key.last_used_at is None or now - key.last_used_at >= LAST_USED_RESOLUTION:
            ApiKey.objects.filter(pk=key.pk).update(last_used_at=now)
            key.last_used_at = now
        return ApiKeyUser(key), key

    def authenticate_header(self, request):
        return f'{self.keyword} realm="api"'


class LoginLockedOut(exceptions.APIException):
    """429 `auth.locked_out`: too many failed logins for this account or from this address;
    `wait` becomes the answer's Retry-After."""

    status_code = status.HTTP_429_TOO_MANY_REQUESTS
    default_code = "auth.locked_out"
    default_detail = (
        "Too many failed logins for this account or from this address: every login is "
        "refused, the right password too, until Retry-After seconds have passed."
    )

    def __init__(self, wait: int):
        super().__init__()
        self.wait = wait


class BasicAuthentication(authentication.BasicAuthentication):
    """DRF's HTTP Basic, with the password checked through the login protection: each
    failure counts against the account and the address, and once either is locked out the
    answer is 429 (`LoginLockedOut`) before or after the password is checked."""

    def authenticate_credentials(self, userid, password, request=None):
        if "\x00" in userid:
            # No account has one, and PostgreSQL refuses it in a query (a DataError).
            raise exceptions.AuthenticationFailed("Invalid username/password.")
        # A copy of the request without its body: see lockout.login_attempt.
        attempt = lockout.login_attempt(request)
        user = authenticate(attempt, **{User.USERNAME_FIELD: userid, "password": password})
        if lockout.is_locked_out(attempt):
            raise LoginLockedOut(wait=lockout.retry_after())
        if user is None:
            raise exceptions.AuthenticationFailed("Invalid username/password.")
        return user, None


class BasicAuthenticationScheme(BasicScheme):
    """The OpenAPI security scheme of `BasicAuthentication`: drf-spectacular's own (`basicAuth`),
    which matches DRF's class only, not subclasses."""

    target_class = "accounts.authentication.BasicAuthentication"


class IsMerchant(permissions.BasePermission):
    """Staff users and API keys; read-scope keys only read. Customers get 403."""

    message = "This endpoint is for the store's merchants."
    code = "forbidden"

    def has_permission(self, request, view):
        user = request.user
        if not (user and user.is_authenticated):
            return False
        if isinstance(request.auth, ApiKey):
            if request.method in permissions.SAFE_METHODS or request.auth.can_write:
                return True
            self.message = "This API key is read-only: create a write key to make changes."
            self.code = "api_key.read_only"
            return False
        return bool(user.is_staff and user.is_active)
