"""Licence keys: issue, disable, enable, update; activate, validate and deactivate for the
buyer's software (the public licence API); delete an instance for the merchant.

Rules owned here:
- A paid order is owed one key per unit of each unrefunded line whose product turns
  `license_keys` on, issued idempotently (one per line and unit), with the product's
  activation limit and an expiry `license_expiry_days` after payment (null: never).
- A refund disables the keys of the refunded units (a line refunded in full: all of its
  keys; a partial one: its highest units first); a refunded order, and a dispute, disable
  every key of the order; enabling a key (restore) is the merchant's call.
- An activation is taken only by one conditional UPDATE whose WHERE clause is
  `LicenseKey.activatable_q` (not disabled, not expired, under the limit), and its instance
  is inserted in the same transaction; a deactivation deletes the instance and gives the
  activation back in one transaction. Nothing reads the usage and writes it back.
- A key typed by a buyer is put in canonical form, looked up by its SHA-256 and compared with
  `hmac.compare_digest`; an unknown key and a malformed one get the same answer
  (`license_key.not_found`). The lookup is one SELECT
  (`selectors.license_key_get_for_validation`), with the instance a validation asks about.
- A key's limit is never set below its usage (the UPDATE checks it); a limit is at least 1
  or null (unlimited).
"""

import hmac
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import partial

from django.db import transaction
from django.db.models import F, QuerySet
from django.db.models.functions import Greatest
from django.utils import timezone

from .. import selectors
from ..errors import ServiceError
from ..models import LicenseInstance, LicenseKey, Order, canonical_key, key_digest, new_license_key
from . import webhooks
from .common import UNSET, check_expires_at

MAX_INSTANCE_NAME = 255


# --- Issuing and taking away (the order's side) -----------------------------------------------


def license_keys_issue(*, order: Order) -> list[LicenseKey]:
    """Issue the keys a paid order is owed and has not got yet; return the new ones. Call
    it with the order locked (as `order_pay` does), so two calls cannot race; the unique
    (line, unit) constraint backs that up."""
    start = order.paid_at or timezone.now()
    lines = list(
        order.lines.filter(refunded_at__isnull=True, product__license_keys=True).select_related(
            "product"
        )
    )
    if not lines:
        return []
    have = set(LicenseKey.objects.filter(line__in=lines).values_list("line_id", "unit"))
    new = []
    for line in lines:
        product = line.product
        expires_at = (
            start + timedelta(days=product.license_expiry_days)
            if product.license_expiry_days
            else None
        )
        for unit in range(1, line.quantity - line.refunded_quantity + 1):
            if (line.pk, unit) in have:
                continue
            key = new_license_key()
            new.append(
                LicenseKey(
                    key=key,
                    key_hash=key_digest(key),
                    order=order,
                    line=line,
                    unit=unit,
                    product=product,
                    variant_id=line.variant_id,
                    activation_limit=product.license_activation_limit or None,
                    expires_at=expires_at,
                )
            )
    LicenseKey.objects.bulk_create(new)
    webhooks.emit_many("license_key.created", [partial(webhooks.license_key_data, k) for k in new])
    return new


def license_keys_disable_refunded(*, order: Order, at: datetime) -> int:
    """Disable the keys of the order's refunded units (`LicenseKey.refunded_q`). One
    UPDATE; keys already disabled keep their time."""
    keys = LicenseKey.objects.filter(LicenseKey.refunded_q(), order=order, disabled_at__isnull=True)
    return keys.update(disabled_at=at, updated_at=at)


def license_keys_disable(*, keys: QuerySet, at: datetime | None = None) -> int:
    """Disable keys (a dispute, the merchant's bulk action); their instances are kept, and
    every validation answers `disabled` until they are enabled."""
    at = at or timezone.now()
    return keys.filter(disabled_at__isnull=True).update(disabled_at=at, updated_at=at)


def license_keys_enable(*, keys: QuerySet) -> int:
    """Enable disabled keys again (a dispute won, a refund undone)."""
    return keys.filter(disabled_at__isnull=False).update(
        disabled_at=None, updated_at=timezone.now()
    )


def license_key_update(
    *, key: LicenseKey, activation_limit=UNSET, expires_at=UNSET, disabled=UNSET
) -> LicenseKey:
    """Change a key's activation limit (None: unlimited; never below its usage), expiry
    (None: never) or whether it is disabled."""
    now = timezone.now()
    changes: dict = {}
    if activation_limit is not UNSET:
        if activation_limit is not None and (
            not isinstance(activation_limit, int)
            or isinstance(activation_limit, bool)
            or activation_limit < 1
        ):
            raise ServiceError(
                "activation_limit must be at least 1, or null for unlimited.",
                code="license_key.invalid",
                reason="min_value",
                attribute="activation_limit",
            )
        changes["activation_limit"] = activation_limit
    if expires_at is not UNSET:
        check_expires_at(expires_at, entity="license_key")
        changes["expires_at"] = expires_at
    if disabled is not UNSET:
        changes["disabled_at"] = (key.disabled_at or now) if disabled else None
    if not changes:
        return key
    with transaction.atomic():
        rows = LicenseKey.objects.filter(pk=key.pk)
        if changes.get("activation_limit") is not None:
            # The usage is read by the UPDATE itself, so an activation cannot slip in between.
            rows = rows.filter(activation_usage__lte=changes["activation_limit"])
        if not rows.update(**changes, updated_at=now):
            if not LicenseKey.objects.filter(pk=key.pk).exists():
                raise ServiceError(
                    "The licence key no longer exists.", code="license_key.not_found"
                )
            raise ServiceError(
                "The key has more activations than that limit; deactivate instances first.",
                code="license_key.limit_below_usage",
                attribute="activation_limit",
            )
    key.refresh_from_db()
    return key


def license_instance_delete(*, instance: LicenseInstance) -> LicenseKey:
    """The merchant deactivates one instance: it is deleted and its activation given back."""
    key = instance.license_key
    _instance_remove(key=key, instance_id=instance.pk)
    key.refresh_from_db()
    return key


# --- The public licence API (the buyer's software) ---------------------------------------------


@dataclass(frozen=True)
class LicenseAnswer:
    """What an activate, validate or deactivate call found: the key and the instance."""

    key: LicenseKey
    instance: LicenseInstance | None = None


class LicenseRefusal(ServiceError):
    """A refusal about a key that exists (disabled, expired, at its limit, no such instance):
    it carries the key, so that the answer can still show the key and its meta."""

    def __init__(self, message: str, *, code: str, key: LicenseKey):
        super().__init__(message, code=code)
        self.key = key


def _not_found() -> ServiceError:
    return ServiceError("license_key not found.", code="license_key.not_found")


def _instance_not_found(key: LicenseKey) -> LicenseRefusal:
    return LicenseRefusal("instance_id not found.", code="license_instance.not_found", key=key)


def _lookup(key_text, instance_id=None) -> tuple[LicenseKey, LicenseInstance | None] | None:
    key = canonical_key(key_text)
    if key is None:
        return None
    found = selectors.license_key_get_for_validation(
        key_hash=key_digest(key), instance_id=instance_id
    )
    if found is None or not hmac.compare_digest(found[0].key.encode(), key.encode()):
        return None
    return found


def license_key_find(*, key_text) -> LicenseKey | None:
    """The key a buyer typed (with its order and its customer, product and variant, for the
    answer's meta), or None for an unknown or malformed one: the same for both, and compared
    in constant time. One SELECT."""
    found = _lookup(key_text)
    return None if found is None else found[0]


def license_key_activate(*, key_text, instance_name) -> LicenseAnswer:
    """Activate a key on one instance (an install named `instance_name`): one activation is
    taken by the conditional UPDATE, the instance inserted in the same transaction."""
    name = (instance_name if isinstance(instance_name, str) else "").strip()
    if not name:
        raise ServiceError(
            "instance_name is required.",
            code="license_key.invalid",
            reason="required",
            attribute="instance_name",
        )
    if len(name) > MAX_INSTANCE_NAME:
        raise ServiceError(
            f"instance_name is at most {MAX_INSTANCE_NAME} characters.",
            code="license_key.invalid",
            reason="max_length",
            attribute="instance_name",
        )
    key = license_key_find(key_text=key_text)
    if key is None:
        raise _not_found()
    now = timezone.now()
    with transaction.atomic():
        taken = LicenseKey.objects.filter(LicenseKey.activatable_q(now), pk=key.pk).update(
            activation_usage=F("activation_usage") + 1, updated_at=now
        )
        if taken:
            instance = LicenseInstance.objects.create(license_key=key, name=name, created_at=now)
    _refresh_usage(key)
    if not taken:
        raise _refusal(key, now)
    webhooks.emit(
        "license_key.activated",
        partial(webhooks.license_key_data, key, instance=instance),
    )
    return LicenseAnswer(key=key, instance=instance)


def license_key_validate(*, key_text, instance_id=None) -> LicenseAnswer:
    """Find a key (and, when `instance_id` is given, its instance) for a validation, in one
    SELECT. The answer's `valid` is the caller's to derive from the key's status; a missing
    instance is `license_instance.not_found`."""
    found = _lookup(key_text, instance_id)
    if found is None:
        raise _not_found()
    key, instance = found
    if instance_id not in (None, "") and instance is None:
        raise _instance_not_found(key)
    return LicenseAnswer(key=key, instance=instance)


def license_key_deactivate(*, key_text, instance_id) -> LicenseAnswer:
    """Deactivate one instance of a key: the instance is deleted and its activation given
    back, in one transaction."""
    key = license_key_find(key_text=key_text)
    if key is None:
        raise _not_found()
    if instance_id in (None, ""):
        raise ServiceError(
            "instance_id is required.",
            code="license_key.invalid",
            reason="required",
            attribute="instance_id",
        )
    instance = _instance_of(key, instance_id)
    if instance is None:
        raise _instance_not_found(key)
    _instance_remove(key=key, instance_id=instance.pk)
    _refresh_usage(key)
    return LicenseAnswer(key=key, instance=instance)


def _instance_of(key: LicenseKey, instance_id) -> LicenseInstance | None:
    try:
        pk = uuid.UUID(str(instance_id))
    except ValueError:  # not an id at all: as unknown as any other
        return None
    return key.instances.filter(pk=pk).first()


def _instance_remove(*, key: LicenseKey, instance_id) -> None:
    now = timezone.now()
    with transaction.atomic():
        deleted, _ = LicenseInstance.objects.filter(pk=instance_id, license_key=key).delete()
        if deleted:
            LicenseKey.objects.filter(pk=key.pk).update(
                activation_usage=Greatest(F("activation_usage") - 1, 0), updated_at=now
            )
            webhooks.emit(
                "license_key.deactivated",
                partial(webhooks.license_key_data, key, instance_id=instance_id),
            )


def _refresh_usage(key: LicenseKey) -> None:
    fresh = (
        LicenseKey.objects.filter(pk=key.pk)
        .values("activation_usage", "activation_limit", "expires_at", "disabled_at")
        .first()
    )
    if fresh:
        for field, value in fresh.items():
            setattr(key, field, value)


def _refusal(key: LicenseKey, now) -> LicenseRefusal:
    status = key.status_at(now)
    if status == LicenseKey.Status.DISABLED:
        return LicenseRefusal("This license key is disabled.", code="license_key.disabled", key=key)
    if status == LicenseKey.Status.EXPIRED:
        return LicenseRefusal("This license key has expired.", code="license_key.expired", key=key)
    return LicenseRefusal(
        "This license key has reached the activation limit.",
        code="license_key.limit_reached",
        key=key,
    )
