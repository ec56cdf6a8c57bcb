"""Catalogue (services.catalogue): products and their downloads."""

import pytest

from downloads.errors import ServiceError
from downloads.models import Download
from downloads.services.catalogue import (
    product_create,
    product_delete,
    product_update,
    variant_create,
    variant_update,
)
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


class TestPrices:
    def test_a_variant_without_a_price_costs_its_products(self):
        product = product_create(name="Guide", price=1900)
        own = variant_create(product=product, name="Hardback", price=2900)
        inherits = variant_create(product=product, name="PDF")
        assert (own.effective_price, inherits.price, inherits.effective_price) == (2900, None, 1900)
        product_update(product=product, price=2100)
        inherits.refresh_from_db()
        assert inherits.effective_price == 2100
        variant_update(variant=own, price=None)
        assert own.effective_price == 2100

    @pytest.mark.parametrize("price", [-1, 2**60, 1.5, "19.00", True])
    def test_a_price_that_is_not_an_amount_is_refused_and_nothing_is_stored(self, price):
        with pytest.raises(ServiceError) as exc:
            product_create(name="Guide", price=price)
        assert (exc.value.code, exc.value.attribute) == ("product.invalid", "price")
        product = product_create(name="Guide")
        for call in (
            lambda: product_update(product=product, price=price),
            lambda: variant_create(product=product, name="PDF", price=price),
        ):
            with pytest.raises(ServiceError) as exc:
                call()
            assert exc.value.attribute == "price"
        product.refresh_from_db()
        assert product.price == 0 and not product.variants.exists()
