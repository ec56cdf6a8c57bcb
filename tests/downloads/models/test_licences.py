"""Licence key models: one status rule in two forms that agree on every state, keys typed
loosely read as stored, and the limits the database keeps."""

from datetime import timedelta

import pytest
from django.db import IntegrityError, transaction
from django.utils import timezone

from downloads.models import LicenseKey, canonical_key, key_digest
from downloads.services.orders import LineInput, order_create
from tests import factories

pytestmark = pytest.mark.django_db

STATES = {
    "inactive": {},
    "active": {"activation_usage": 1},
    "expired": {"expires_at": -1},
    "expired and used": {"expires_at": -1, "activation_usage": 2},
    "disabled": {"disabled_at": True},
    "disabled and expired": {"disabled_at": True, "expires_at": -1},
    "expires later": {"expires_at": +1, "activation_usage": 1},
}


def key_in(state):
    product = factories.ProductFactory(license_keys=True, license_activation_limit=3)
    order = order_create(
        email="a@example.com", lines=[LineInput(product=product)], status="paid", send_email=False
    )
    key = order.license_keys.get()
    now = timezone.now()
    fields = dict(STATES[state])
    if "expires_at" in fields:
        fields["expires_at"] = now + timedelta(days=fields["expires_at"])
    if fields.get("disabled_at"):
        fields["disabled_at"] = now
    LicenseKey.objects.filter(pk=key.pk).update(**fields)
    key.refresh_from_db()
    return key


@pytest.mark.parametrize("state", STATES)
def test_a_keys_status_on_the_row_is_the_one_filter_that_matches_it(state):
    key = key_in(state)
    now = timezone.now()
    matching = [
        status
        for status in LicenseKey.Status.values
        if LicenseKey.objects.filter(LicenseKey.status_q(status, now), pk=key.pk).exists()
    ]
    assert matching == [key.status_at(now)]
    activatable = LicenseKey.objects.filter(LicenseKey.activatable_q(now), pk=key.pk).exists()
    assert activatable == (key.status_at(now) in ("inactive", "active"))


def test_a_key_typed_loosely_reads_as_stored():
    key = "0A1B2C3-D4E5F6G-H7J8K9M-NPQRSTV"
    assert canonical_key(" oa1b2c3 d4e5f6g-h7j8k9m\tnpqrstv ") == key
    assert canonical_key("0A1B2C3-D4E5F6G-H7J8K9M-NPQRSTU") is None  # U is not base32
    assert canonical_key("0A1B2C3-D4E5F6G") is None
    assert key_digest(key) != key_digest(key.lower())


def test_usage_stays_within_the_limit_and_one_key_per_unit_in_the_database():
    key = key_in("inactive")
    with pytest.raises(IntegrityError), transaction.atomic():
        LicenseKey.objects.filter(pk=key.pk).update(activation_usage=4)
    with pytest.raises(IntegrityError), transaction.atomic():
        LicenseKey.objects.create(
            order=key.order, line=key.line, unit=key.unit, product=key.product
        )
