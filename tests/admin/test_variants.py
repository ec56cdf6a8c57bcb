"""Variants on their own admin page go through variant_create and variant_update."""

import pytest
from django.urls import reverse

from tests import factories

pytestmark = pytest.mark.django_db


def test_adding_a_variant_goes_through_variant_create(admin_client):
    product = factories.ProductFactory()
    data = {"product": str(product.pk), "name": "Paperback", "sku": "", "price": "900"}
    response = admin_client.post(reverse("admin:downloads_variant_add"), {**data, "position": "5"})
    assert response.status_code == 302
    variant = product.variants.get()
    assert (variant.name, variant.price, variant.position) == ("Paperback", 900, 5)


def test_a_variant_stays_on_its_product(admin_client):
    variant = factories.VariantFactory()
    other = factories.ProductFactory()
    url = reverse("admin:downloads_variant_change", args=[variant.pk])
    data = {"product": str(other.pk), "name": "Renamed", "sku": "X", "price": "0", "position": "0"}
    assert admin_client.post(url, data).status_code == 302
    variant.refresh_from_db()
    assert (variant.name, variant.product_id) == ("Renamed", variant.product.pk)
    assert variant.product != other
