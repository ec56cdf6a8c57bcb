"""Writes for identity: API keys and the link between customers and their orders."""

from django.db import IntegrityError, transaction
from django.utils import timezone

from downloads.models import Order

from . import tokens
from .models import ApiKey, User, normalize_email


def api_key_create(*, name: str, scope: str = ApiKey.Scope.WRITE, created_by=None):
    """Create an API key; return (key, raw). The raw key exists only in this return value."""
    if scope not in ApiKey.Scope.values:
        raise ValueError(f"scope must be one of {', '.join(ApiKey.Scope.values)}")
    raw, prefix, hashed = tokens.generate_key()
    key = ApiKey.objects.create(
        name=name, scope=scope, prefix=prefix, hashed_secret=hashed, created_by=created_by
    )
    return key, raw


def api_key_revoke(*, key: ApiKey) -> ApiKey:
    if key.revoked_at is None:
        key.revoked_at = timezone.now()
        key.save(update_fields=["revoked_at"])
    return key


def api_keys_revoke(*, keys) -> int:
    """Revoke every active key of a queryset; return how many changed."""
    return keys.filter(revoked_at__isnull=True).update(revoked_at=timezone.now())


@transaction.atomic
def user_claim_orders(*, user: User) -> int:
    """Give a customer the orders placed with their email before they registered."""
    return Order.objects.filter(customer__isnull=True, email=user.email).update(customer=user)


def customer_ensure_for_orders(*, email: str) -> User | None:
    """The account of an email address that has orders, created if the buyer never registered.

    A created account has no usable password, so nobody can sign in to it until the owner of
    the address follows a password reset link sent there. Returns None for an address with
    neither an account nor an order (no account is ever created for those).
    """
    email = normalize_email(email)
    user = User.objects.filter(email=email).first()
    if user is not None or not Order.objects.filter(email=email).exists():
        return user
    try:
        with transaction.atomic():
            return User.objects.create_user(email=email)
    except IntegrityError:
        # Another request created it at the same moment.
        return User.objects.filter(email=email).first()
