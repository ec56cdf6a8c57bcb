"""Downloads in the back office: version history and delivering a file to existing orders."""

import pytest
from django.urls import reverse

from downloads.models import Backfill
from downloads.services.orders import order_refund
from downloads.services.versions import download_replace_media
from tests import factories
from tests.admin.conftest import action, messages_of, paid_order

CHANGELIST = reverse("admin:downloads_download_changelist")


@pytest.mark.django_db
def test_the_change_page_lists_the_files_history(admin_client, admin_user):
    download = factories.DownloadFactory(media=factories.MediaFactory(filename="guide v1.pdf"))
    download_replace_media(
        download=download,
        media=factories.MediaFactory(filename="guide v2.pdf"),
        changelog="Fixed chapter 3",
        created_by=admin_user,
    )
    page = admin_client.get(reverse("admin:downloads_download_change", args=[download.pk]))
    html = page.content.decode()
    assert page.status_code == 200
    assert "guide v1.pdf" in html and "guide v2.pdf" in html
    assert "Fixed chapter 3" in html


@pytest.mark.django_db(transaction=True)
def test_the_action_delivers_a_new_file_to_every_paid_unrefunded_order(admin_client, run_worker):
    product = factories.ProductFactory()
    factories.DownloadFactory(product=product)
    kept = paid_order(product, email="kept@example.com")
    refunded = paid_order(product, email="refunded@example.com")
    order_refund(order=refunded)
    bonus = factories.DownloadFactory(product=product)

    response = admin_client.post(CHANGELIST, action("deliver_to_existing_orders", [bonus]))
    assert response.status_code == 302
    assert any("Delivering 1 download" in text for text in messages_of(response))
    run_worker()

    assert Backfill.objects.get(download=bonus).status == Backfill.Status.DONE
    assert kept.grants.filter(download=bonus).count() == 1
    assert not refunded.grants.filter(download=bonus).exists()


@pytest.mark.django_db
def test_a_file_without_a_product_cannot_be_delivered_to_existing_orders(admin_client):
    loose = factories.DownloadFactory(product=None)
    response = admin_client.post(CHANGELIST, action("deliver_to_existing_orders", [loose]))
    assert any("attach it to single orders" in text for text in messages_of(response))
    assert not Backfill.objects.exists()
