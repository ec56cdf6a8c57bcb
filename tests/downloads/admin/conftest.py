"""Helpers for the back-office tests: paid orders made through the services (with files, with
licence keys), and messages."""

import pytest
from django.contrib.messages import get_messages

from downloads.services.orders import LineInput
from tests import factories
from tests.conftest import paid_order


def product_with_file(content=b"%PDF-1.4 the bytes\n", filename="guide.pdf", **kwargs):
    download = factories.DownloadFactory(
        product=factories.ProductFactory(**kwargs),
        media=factories.MediaFactory(content=content, filename=filename),
    )
    return download.product


def licence_order(product=None, quantity=1, **kwargs):
    """A paid order of `quantity` units of a product that issues licence keys (by default one
    with 3 activations per key); its keys are `order.license_keys`."""
    product = product or factories.ProductFactory(license_keys=True, license_activation_limit=3)
    return paid_order(LineInput(product=product, quantity=quantity), **kwargs)


def messages_of(response) -> list[str]:
    """The texts of the messages this request added (not those left from earlier requests)."""
    return [str(message) for message in get_messages(response.wsgi_request)._queued_messages]


def action(name: str, objects, **extra) -> dict:
    """The POST body of a changelist action on `objects`."""
    return {"action": name, "_selected_action": [str(obj.pk) for obj in objects], **extra}


@pytest.fixture
def order(db):
    return paid_order(product_with_file())


@pytest.fixture(autouse=True)
def _fast_passwords(settings):
    """admin_client's superuser is made per test; a fast hasher keeps that cheap."""
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
