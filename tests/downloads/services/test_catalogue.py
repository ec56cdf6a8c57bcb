"""Catalogue (services.catalogue): products and their downloads."""

import pytest

from downloads.errors import ServiceError
from downloads.models import Download, Product
from downloads.services.catalogue import (
    MAX_LICENSE_ACTIVATIONS,
    product_create,
    product_delete,
    product_update,
    variant_create,
    variant_update,
)
from downloads.services.common import MAX_EXPIRY_DAYS
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


class TestLicenceSettings:
    def test_a_product_is_created_and_updated_with_its_licence_settings(self):
        product = product_create(
            name="Editor", license_keys=True, license_activation_limit=3, license_expiry_days=365
        )
        product.refresh_from_db()
        assert (
            product.license_keys,
            product.license_activation_limit,
            product.license_expiry_days,
        ) == (True, 3, 365)
        product_update(product=product, license_activation_limit=None, license_expiry_days=None)
        product.refresh_from_db()
        assert (product.license_activation_limit, product.license_expiry_days) == (None, None)
        product_update(product=product, license_keys=False)
        product.refresh_from_db()
        assert product.license_keys is False

    def test_by_default_a_product_issues_no_keys(self):
        product = product_create(name="Guide")
        assert (
            product.license_keys,
            product.license_activation_limit,
            product.license_expiry_days,
        ) == (False, None, None)

    @pytest.mark.parametrize(
        "limit, reason",
        [
            (0, "min_value"),
            (-1, "min_value"),
            (MAX_LICENSE_ACTIVATIONS + 1, "max_value"),
            (1.5, "invalid"),
            ("3", "invalid"),
            (True, "invalid"),
        ],
    )
    def test_an_activation_limit_below_1_or_not_a_number_is_refused(self, limit, reason):
        with pytest.raises(ServiceError) as exc:
            product_create(name="Editor", license_activation_limit=limit)
        assert (exc.value.code, exc.value.attribute, exc.value.reason) == (
            "product.invalid",
            "license_activation_limit",
            reason,
        )
        assert not Product.objects.exists()
        product = product_create(name="Editor", license_activation_limit=2)
        with pytest.raises(ServiceError) as exc:
            product_update(product=product, license_activation_limit=limit)
        assert exc.value.attribute == "license_activation_limit"
        product.refresh_from_db()
        assert product.license_activation_limit == 2

    @pytest.mark.parametrize("limit", [1, MAX_LICENSE_ACTIVATIONS, None])
    def test_an_activation_limit_from_1_up_or_unlimited_is_taken(self, limit):
        assert (
            product_create(name="Editor", license_activation_limit=limit).license_activation_limit
            == limit
        )

    @pytest.mark.parametrize(
        "days, reason",
        [
            (0, "min_value"),
            (-1, "min_value"),
            (MAX_EXPIRY_DAYS + 1, "max_value"),
            ("30", "invalid"),
            (True, "invalid"),
        ],
    )
    def test_a_licence_expiry_outside_1_to_the_maximum_days_is_refused(self, days, reason):
        with pytest.raises(ServiceError) as exc:
            product_create(name="Editor", license_expiry_days=days)
        assert (exc.value.code, exc.value.attribute, exc.value.reason) == (
            "product.invalid",
            "license_expiry_days",
            reason,
        )
        assert not Product.objects.exists()
        product = product_create(name="Editor", license_expiry_days=30)
        with pytest.raises(ServiceError):
            product_update(product=product, license_expiry_days=days)
        product.refresh_from_db()
        assert product.license_expiry_days == 30

    @pytest.mark.parametrize("value", ["yes", 1, None])
    def test_license_keys_must_be_true_or_false(self, value):
        with pytest.raises(ServiceError) as exc:
            product_create(name="Editor", license_keys=value)
        assert exc.value.attribute == "license_keys"
        product = product_create(name="Editor")
        with pytest.raises(ServiceError):
            product_update(product=product, license_keys=value)

    def test_changing_the_settings_leaves_the_keys_already_issued_as_they_are(self, paid_order):
        product = product_create(
            name="Editor", license_keys=True, license_activation_limit=3, license_expiry_days=30
        )
        key = paid_order(product).license_keys.get()
        expires_at = key.expires_at
        product_update(product=product, license_activation_limit=10, license_expiry_days=365)
        key.refresh_from_db()
        assert (key.activation_limit, key.expires_at) == (3, expires_at)
        assert paid_order(product).license_keys.get().activation_limit == 10
