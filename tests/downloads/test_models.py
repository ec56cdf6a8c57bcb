import pytest
from django.db import IntegrityError, transaction

from downloads.models import Download, DownloadGrant
from tests import factories

pytestmark = pytest.mark.django_db


def violates(**fields):
    with pytest.raises(IntegrityError), transaction.atomic():
        Download.objects.create(**fields)


def test_download_with_both_media_and_url_is_rejected_by_the_database():
    violates(media=factories.MediaFactory(), url="https://example.com/a", name="A")


def test_download_with_neither_media_nor_url_is_rejected_by_the_database():
    violates(product=factories.ProductFactory())


def test_download_with_url_needs_a_name():
    violates(url="https://example.com/a")
    violates(url="https://example.com/a", name="")


def test_grant_count_cannot_go_negative():
    grant = factories.GrantFactory()
    with pytest.raises(IntegrityError), transaction.atomic():
        DownloadGrant.objects.filter(pk=grant.pk).update(download_count=-1)


def test_one_grant_per_order_line_and_download():
    grant = factories.GrantFactory()
    with pytest.raises(IntegrityError), transaction.atomic():
        DownloadGrant.objects.create(order=grant.order, line=grant.line, download=grant.download)


def test_one_order_level_grant_per_download():
    grant = factories.GrantFactory(line=None)
    with pytest.raises(IntegrityError), transaction.atomic():
        DownloadGrant.objects.create(order=grant.order, line=None, download=grant.download)


def test_tokens_are_long_random_and_distinct():
    a, b = factories.GrantFactory.create_batch(2)
    assert len(a.order.access_token) == 32 and a.order.access_token != b.order.access_token
    assert len(a.token) >= 43 and a.token != b.token


def test_media_keys_cannot_collide_and_keep_the_original_filename():
    first = factories.MediaFactory(filename="My Book.pdf")
    second = factories.MediaFactory(filename="My Book.pdf")
    assert first.file.name != second.file.name
    assert first.filename == "My Book.pdf"
