"""The input rules several services share (services.common): expiry bounds."""

from datetime import timedelta

import pytest
from django.utils import timezone

from downloads.errors import ServiceError
from downloads.models import DownloadGrant
from downloads.services.catalogue import product_create, product_update
from downloads.services.common import LATEST_EXPIRY, MAX_EXPIRY_DAYS
from downloads.services.grants import grant_create, grant_extend, grant_update, grants_extend
from tests import factories

pytestmark = pytest.mark.django_db


class TestBounds:
    """The bounds hold in the services, so the API and the admin both get them."""

    def test_product_expiry_days_beyond_a_century_are_refused(self):
        with pytest.raises(ServiceError) as exc:
            product_create(name="Book", download_expiry_days=MAX_EXPIRY_DAYS + 1)
        assert exc.value.attribute == "download_expiry_days"
        product = product_create(name="Book", download_expiry_days=30)
        with pytest.raises(ServiceError):
            product_update(product=product, download_expiry_days=-1)

    def test_extending_by_more_than_a_century_is_refused(self):
        grant = factories.GrantFactory(expires_at=timezone.now())
        with pytest.raises(ServiceError) as exc:
            grants_extend(
                grants=DownloadGrant.objects.filter(pk=grant.pk),
                days=MAX_EXPIRY_DAYS + 1,
            )
        assert exc.value.attribute == "days"

    def test_expiry_dates_past_the_representable_range_are_refused(self):
        grant = factories.GrantFactory()
        with pytest.raises(ServiceError):
            grant_update(grant=grant, expires_at=LATEST_EXPIRY)
        with pytest.raises(ServiceError):
            grant_create(
                order=grant.order,
                download=factories.DownloadFactory(product=None),
                expires_at=LATEST_EXPIRY,
            )

    def test_extending_past_the_representable_range_changes_no_grant(self):
        near_end = factories.GrantFactory(expires_at=LATEST_EXPIRY - timedelta(days=3))
        ordinary = factories.GrantFactory(expires_at=timezone.now())
        both = DownloadGrant.objects.filter(pk__in=[near_end.pk, ordinary.pk])
        with pytest.raises(ServiceError) as exc:
            grants_extend(grants=both, days=5)
        assert exc.value.attribute == "days"
        ordinary_before = ordinary.expires_at
        ordinary.refresh_from_db()
        assert ordinary.expires_at == ordinary_before
        with pytest.raises(ServiceError):
            grant_extend(grant=near_end, days=5)
