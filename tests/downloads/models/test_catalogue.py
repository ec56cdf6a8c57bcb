"""Catalogue models: the database keeps a download one of media or url, and media keys apart."""

import pytest
from django.db import IntegrityError, transaction

from downloads.models import Download
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


def test_media_keys_cannot_collide_and_keep_the_original_filename():
    first = factories.MediaFactory(filename="My Book.pdf")
    second = factories.MediaFactory(filename="My Book.pdf")
    assert first.file.name != second.file.name
    assert first.filename == "My Book.pdf"


# --- Each rule once: every form of a rule agrees with the others, on both databases -------
