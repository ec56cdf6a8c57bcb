"""The download limit holds under concurrency: the database decides, in one UPDATE."""

import threading

import pytest
from django.db import connection, connections

from downloads.models import DownloadEvent, DownloadGrant
from downloads.services.consume import grant_consume
from downloads.services.orders import LineInput, order_create
from tests import factories

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]


def test_fifty_concurrent_consumes_with_seven_left_serve_exactly_seven(postgres_only):
    grant = factories.GrantFactory(download_limit=10, download_count=3)
    barrier = threading.Barrier(50)
    results: list[bool] = []
    lock = threading.Lock()

    def consume():
        try:
            mine = DownloadGrant.objects.get(pk=grant.pk)
            barrier.wait(timeout=30)
            allowed = grant_consume(grant=mine, ip="127.0.0.1").allowed
            with lock:
                results.append(allowed)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=consume) for _ in range(50)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)

    assert connection.vendor == "postgresql"
    assert len(results) == 50
    assert results.count(True) == 7
    grant.refresh_from_db()
    assert grant.download_count == 10
    served = DownloadEvent.objects.filter(grant=grant, outcome="served").count()
    assert served == 7 == grant.download_count - 3
    assert DownloadEvent.objects.filter(grant=grant, outcome="limit_reached").count() == 43


def test_concurrent_orders_get_distinct_sequential_numbers(postgres_only):
    product = factories.ProductFactory()
    barrier = threading.Barrier(20)
    numbers: list[int] = []
    errors: list[Exception] = []
    lock = threading.Lock()

    def place():
        try:
            barrier.wait(timeout=30)
            order = order_create(email="race@example.com", lines=[LineInput(product=product)])
            with lock:
                numbers.append(order.number)
        except Exception as exc:  # collected and asserted below
            with lock:
                errors.append(exc)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=place) for _ in range(20)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)

    assert errors == []
    assert sorted(numbers) == list(range(1001, 1021))
