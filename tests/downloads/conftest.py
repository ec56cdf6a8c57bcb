"""Fixtures of the domain tests."""

import pytest

from downloads.models import Order
from downloads.services.orders import LineInput, order_create
from tests import factories


@pytest.fixture
def paid_order():
    """paid_order(*lines, email=…, **order_create options): an order paid through the services
    (grants issued, no email). A line is a Product or a LineInput; with none, the order buys
    one product with one file."""

    def make(*lines, email="buyer@example.com", **kwargs):
        lines = lines or (factories.DownloadFactory().product,)
        return order_create(
            email=email,
            lines=[
                line if isinstance(line, LineInput) else LineInput(product=line) for line in lines
            ],
            status=Order.Status.PAID,
            send_email=False,
            **kwargs,
        )

    return make
