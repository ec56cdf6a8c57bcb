"""Catalogue (services.catalogue): products and their downloads."""

import pytest

from downloads.errors import ServiceError
from downloads.models import Download
from downloads.services.catalogue import product_delete
from tests import factories

pytestmark = pytest.mark.django_db


class TestDeletion:
    def test_deleting_a_product_with_orders_is_refused(self, paid_order):
        product = factories.ProductFactory()
        factories.DownloadFactory(product=product)
        paid_order(product)
        with pytest.raises(ServiceError) as exc:
            product_delete(product=product)
        assert exc.value.code == "product.in_use"
        assert Download.objects.filter(product=product).exists()

    def test_deleting_an_unsold_product_takes_its_downloads(self):
        product = factories.ProductFactory()
        factories.DownloadFactory(product=product)
        product_delete(product=product)
        assert not Download.objects.exists()
