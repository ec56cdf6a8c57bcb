"""The catalogue in the back office: products (inlines, store defaults, archive instead of
delete), variants on their own page (variant_create, variant_update) and downloads (version
history, delivering a file to existing orders, PDF stamping settings)."""

import hashlib
import re

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse

from downloads.models import Backfill, Download, Media, Product, StampedCopy
from downloads.models.catalogue import DEFAULT_STAMP_TEXT
from downloads.services.orders import LineInput, order_create, order_refund
from downloads.services.versions import download_replace_media
from tests import factories, pdfs
from tests.downloads.admin.conftest import action, messages_of, paid_order, product_with_file

pytestmark = pytest.mark.django_db


# --- Products -------------------------------------------------------------------------------------


PRODUCTS = reverse("admin:downloads_product_changelist")


def product_form(name="Field Guide", downloads=(), variants=(), **fields):
    """The POST body of the product add/change page, with its two inline formsets."""
    data = {
        "name": name,
        "sku": fields.pop("sku", "FG-1"),
        "vendor": "",
        "tags": "",
        "description": "",
        "price": "0",
        "external_id": "",
        "download_limit": "",
        "download_expiry_days": "",
        "variants-TOTAL_FORMS": str(len(variants)),
        "variants-INITIAL_FORMS": "0",
        "downloads-TOTAL_FORMS": str(len(downloads)),
        "downloads-INITIAL_FORMS": "0",
        **fields,
    }
    for index, variant in enumerate(variants):
        for key, value in {"price": "", "position": "0", **variant}.items():
            data[f"variants-{index}-{key}"] = value
    for index, download in enumerate(downloads):
        for key, value in {"position": "0", **download}.items():
            data[f"downloads-{index}-{key}"] = value
    return data


def test_limit_and_expiry_help_text_shows_the_store_defaults(admin_client, settings):
    settings.DOWNLOADS_DEFAULT_LIMIT = 3
    settings.DOWNLOADS_DEFAULT_EXPIRY_DAYS = 14
    page = admin_client.get(reverse("admin:downloads_product_add")).content.decode()
    assert "Empty: the store default (3 downloads); 0: unlimited." in page
    assert "Empty: the store default (14 days); 0: never." in page


def test_creating_a_product_uploads_a_file_in_place_through_media_create(admin_client):
    content = b"chapter one\n" * 100
    upload = SimpleUploadedFile("Field Guide.pdf", content, content_type="application/pdf")
    data = product_form(
        variants=[{"name": "Hardback", "sku": "FG-HB"}],
        downloads=[{"upload": upload, "name": "The guide"}],
    )
    response = admin_client.post(reverse("admin:downloads_product_add"), data)
    assert response.status_code == 302, response.context and response.context["errors"]
    product = Product.objects.get(name="Field Guide")
    download = product.downloads.get()
    media = download.media
    assert (media.filename, media.byte_size) == ("Field Guide.pdf", len(content))
    assert media.sha256 == hashlib.sha256(content).hexdigest()
    assert media.content_type == "application/pdf"
    assert product.variants.get().name == "Hardback"


def test_a_stored_file_is_picked_for_a_download(admin_client):
    media = factories.MediaFactory()
    data = product_form(downloads=[{"media": str(media.pk)}])
    response = admin_client.post(reverse("admin:downloads_product_add"), data)
    assert response.status_code == 302
    assert Download.objects.get().media == media


def test_a_download_link_without_a_name_shows_the_services_message(admin_client):
    data = product_form(downloads=[{"url": "https://files.example.com/a.mp3"}])
    response = admin_client.post(reverse("admin:downloads_product_add"), data)
    assert response.status_code == 200
    assert "A download with a url needs a name." in response.content.decode()
    assert not Product.objects.exists()


def test_a_page_with_an_error_keeps_the_uploaded_file_picked_instead_of_storing_it_twice(
    admin_client,
):
    upload = SimpleUploadedFile("notes.txt", b"notes", content_type="text/plain")
    data = product_form(name="", downloads=[{"upload": upload}])
    response = admin_client.post(reverse("admin:downloads_product_add"), data)
    assert response.status_code == 200
    media = Media.objects.get()
    formset = response.context["inline_admin_formsets"][1].formset
    assert formset.forms[0]["media"].value() == str(media.pk)


def test_deleting_a_product_orders_use_shows_the_conflict_and_keeps_it(admin_client):
    product = product_with_file()
    paid_order(product)
    response = admin_client.post(
        reverse("admin:downloads_product_delete", args=[product.pk]), {"post": "yes"}
    )
    assert response.status_code == 302
    assert response["Location"] == reverse("admin:downloads_product_change", args=[product.pk])
    assert messages_of(response) == [
        "This product is used by orders and cannot be deleted; archive it instead."
    ]
    assert Product.objects.filter(pk=product.pk).exists()


def test_the_delete_page_of_a_product_in_use_offers_archiving(admin_client):
    product = product_with_file()
    paid_order(product)
    page = admin_client.get(reverse("admin:downloads_product_delete", args=[product.pk]))
    html = page.content.decode()
    assert "Archive instead" in html
    assert reverse("admin:downloads_product_run", args=[product.pk, "archive"]) in html


def test_an_unused_product_is_deleted(admin_client):
    product = product_with_file()
    response = admin_client.post(
        reverse("admin:downloads_product_delete", args=[product.pk]), {"post": "yes"}
    )
    assert response.status_code == 302
    assert not Product.objects.filter(pk=product.pk).exists()


def test_bulk_delete_deletes_the_unused_and_names_those_orders_use(admin_client):
    used, unused = product_with_file(name="Used"), product_with_file(name="Unused")
    paid_order(used)
    confirm = admin_client.post(PRODUCTS, action("delete_selected", [used, unused]))
    assert confirm.status_code == 200
    assert "Are you sure" in confirm.content.decode()
    response = admin_client.post(PRODUCTS, action("delete_selected", [used, unused], post="yes"))
    assert response.status_code == 302
    assert list(Product.objects.values_list("name", flat=True)) == ["Used"]
    assert set(messages_of(response)) == {
        "Used: This product is used by orders and cannot be deleted; archive it instead.",
        "Deleted 1 product.",
    }


def test_archive_and_unarchive_actions_go_through_the_service(admin_client):
    product = product_with_file()
    response = admin_client.post(PRODUCTS, action("archive", [product]))
    product.refresh_from_db()
    assert product.archived and product.archived_at is not None
    assert messages_of(response) == ["Archived 1 product."]
    admin_client.post(PRODUCTS, action("unarchive", [product]))
    product.refresh_from_db()
    assert not product.archived and product.archived_at is None


def test_the_archive_button_on_the_change_page_archives_and_returns_there(admin_client):
    product = product_with_file()
    paid_order(product)
    change = reverse("admin:downloads_product_change", args=[product.pk])
    assert "Archive" in admin_client.get(change).content.decode()
    response = admin_client.post(
        reverse("admin:downloads_product_run", args=[product.pk, "archive"])
    )
    assert response["Location"] == change
    product.refresh_from_db()
    assert product.archived


def test_the_archived_checkbox_cannot_be_edited_around_the_service(admin_client):
    product = product_with_file()
    data = product_form(name=product.name, sku=product.sku, archived="on")
    admin_client.post(reverse("admin:downloads_product_change", args=[product.pk]), data)
    product.refresh_from_db()
    assert not product.archived


def test_object_action_buttons_refuse_get_and_unknown_actions(admin_client):
    product = product_with_file()
    url = reverse("admin:downloads_product_run", args=[product.pk, "archive"])
    assert admin_client.get(url).status_code == 405
    bad = reverse("admin:downloads_product_run", args=[product.pk, "delete_selected"])
    assert admin_client.post(bad).status_code == 403


def inline_rows(product, **changes):
    """The change form of a product as it stands, with changes to its first download row."""
    data = product_form(name=product.name, sku=product.sku)
    variants = list(product.variants.all())
    downloads = list(product.downloads.all())
    data.update(
        {
            "variants-TOTAL_FORMS": str(len(variants)),
            "variants-INITIAL_FORMS": str(len(variants)),
            "downloads-TOTAL_FORMS": str(len(downloads)),
            "downloads-INITIAL_FORMS": str(len(downloads)),
        }
    )
    for index, variant in enumerate(variants):
        for key in ("name", "sku", "price", "position"):
            value = getattr(variant, key)
            data[f"variants-{index}-{key}"] = "" if value is None else str(value)
        data[f"variants-{index}-id"] = str(variant.pk)
        data[f"variants-{index}-product"] = str(product.pk)
    for index, download in enumerate(downloads):
        data[f"downloads-{index}-id"] = str(download.pk)
        data[f"downloads-{index}-product"] = str(product.pk)
        data[f"downloads-{index}-media"] = str(download.media_id or "")
        data[f"downloads-{index}-url"] = download.url or ""
        data[f"downloads-{index}-name"] = download.name or ""
        data[f"downloads-{index}-position"] = str(download.position)
    data.update(changes)
    return data


def test_replacing_a_downloads_file_keeps_the_old_one_as_a_version(admin_client, admin_user):
    product = product_with_file()
    download = product.downloads.get()
    old_media = download.media
    new_media = factories.MediaFactory(filename="guide v2.pdf")
    data = inline_rows(product, **{"downloads-0-media": str(new_media.pk)})
    response = admin_client.post(reverse("admin:downloads_product_change", args=[product.pk]), data)
    assert response.status_code == 302
    download.refresh_from_db()
    assert download.media == new_media and download.file_updated_at is not None
    versions = list(download.versions.order_by("created_at").values_list("media", "created_by"))
    assert versions == [(old_media.pk, None), (new_media.pk, admin_user.pk)]


def test_deleting_a_variant_orders_use_is_refused(admin_client):
    variant = factories.VariantFactory(product=product_with_file())
    product = variant.product
    order_create(email="a@example.com", lines=[LineInput(product=product, variant=variant)])
    data = inline_rows(product, **{"variants-0-DELETE": "on"})
    response = admin_client.post(reverse("admin:downloads_product_change", args=[product.pk]), data)
    assert response.status_code == 200
    # The admin's inline checks the same PROTECT that makes variant_delete refuse (variant.in_use).
    assert "would require deleting the following protected" in response.content.decode()
    assert product.variants.exists()


def test_tags_are_typed_comma_separated(admin_client):
    data = product_form(tags="ebooks, design ,, ebooks")
    admin_client.post(reverse("admin:downloads_product_add"), data)
    assert Product.objects.get().tags == ["ebooks", "design"]


# --- Prices ---------------------------------------------------------------------------------------


def test_a_products_price_is_set_on_its_form_and_listed_formatted(admin_client):
    data = product_form(price="4900", variants=[{"name": "Hardback", "price": "5900"}])
    assert admin_client.post(reverse("admin:downloads_product_add"), data).status_code == 302
    product = Product.objects.get()
    assert product.price == 4900 and product.variants.get().price == 5900
    html = admin_client.get(PRODUCTS).content.decode()
    assert '<td class="field-price_display">$49.00</td>' in html


def test_a_variant_left_without_a_price_costs_the_products(admin_client):
    data = product_form(price="4900", variants=[{"name": "Paperback", "price": ""}])
    admin_client.post(reverse("admin:downloads_product_add"), data)
    variant = Product.objects.get().variants.get()
    assert variant.price is None and variant.effective_price == 4900


def test_changing_prices_on_the_product_page_goes_through_the_services(admin_client):
    variant = factories.VariantFactory(product__price=2500, price=None)
    product = variant.product
    data = inline_rows(product, price="3000", **{"variants-0-price": "1999"})
    url = reverse("admin:downloads_product_change", args=[product.pk])
    assert admin_client.post(url, data).status_code == 302
    product.refresh_from_db()
    variant.refresh_from_db()
    assert (product.price, variant.price) == (3000, 1999)
    cleared = inline_rows(product, **{"variants-0-price": ""})
    admin_client.post(url, cleared)
    variant.refresh_from_db()
    assert variant.price is None


def test_the_variants_inline_shows_what_each_costs(admin_client):
    product = factories.ProductFactory(price=2500)
    factories.VariantFactory(product=product, price=None, position=0)
    factories.VariantFactory(product=product, price=1500, position=1)
    html = admin_client.get(
        reverse("admin:downloads_product_change", args=[product.pk])
    ).content.decode()
    shown = re.findall(r'<td class="field-effective_price">\s*<p>(.*?)</p>', html)
    # The last row is the template for a new variant: nothing to show yet.
    assert shown == ["$25.00 (product&#x27;s)", "$15.00", "-"]
    assert "In minor units of USD: 4900 is $49.00. Empty: the product&#x27;s price." in html


def test_the_variant_list_shows_the_effective_price_formatted(admin_client):
    factories.VariantFactory(product__price=2500, price=None, name="Inherits")
    factories.VariantFactory(price=1500, name="Own")
    html = admin_client.get(reverse("admin:downloads_variant_changelist")).content.decode()
    assert '<td class="field-price_display">$25.00 (product&#x27;s)</td>' in html
    assert '<td class="field-price_display">$15.00</td>' in html


def test_the_variant_page_shows_what_it_costs_once_it_has_a_product(admin_client):
    variant = factories.VariantFactory(product__price=2500, price=None)
    html = admin_client.get(
        reverse("admin:downloads_variant_change", args=[variant.pk])
    ).content.decode()
    assert re.search(r'<div class="readonly">\$25.00 \(product&#x27;s\)</div>', html)
    add = admin_client.get(reverse("admin:downloads_variant_add")).content.decode()
    assert "field-effective_price" not in add


def test_prices_are_formatted_in_the_store_currency_yen_without_decimals(admin_client, settings):
    settings.DOWNLOADS_CURRENCY = "JPY"
    factories.VariantFactory(product__price=4900, price=None)
    products = admin_client.get(PRODUCTS).content.decode()
    assert '<td class="field-price_display">¥4,900</td>' in products
    variants = admin_client.get(reverse("admin:downloads_variant_changelist")).content.decode()
    assert "¥4,900 (product&#x27;s)" in variants
    form = admin_client.get(reverse("admin:downloads_product_add")).content.decode()
    assert "In minor units of JPY: 49 is ¥49." in form


# --- Licence keys ---------------------------------------------------------------------------------


def test_licence_settings_are_saved_through_the_product_services(admin_client):
    page = admin_client.get(reverse("admin:downloads_product_add")).content.decode()
    assert '<h2 id="fieldset-0-2-heading" class="fieldset-heading">Licence keys</h2>' in page
    data = product_form(license_keys="on", license_activation_limit="3", license_expiry_days="365")
    assert admin_client.post(reverse("admin:downloads_product_add"), data).status_code == 302
    product = Product.objects.get()
    assert (
        product.license_keys,
        product.license_activation_limit,
        product.license_expiry_days,
    ) == (True, 3, 365)
    key = paid_order(product).license_keys.get()
    assert key.activation_limit == 3 and key.expires_at is not None
    url = reverse("admin:downloads_product_change", args=[product.pk])
    changed = inline_rows(
        product, license_keys="on", license_activation_limit="", license_expiry_days=""
    )
    assert admin_client.post(url, changed).status_code == 302
    product.refresh_from_db()
    assert (product.license_activation_limit, product.license_expiry_days) == (None, None)
    key.refresh_from_db()
    assert key.activation_limit == 3  # a key keeps what it was issued with


@pytest.mark.parametrize(
    "field, typed, message",
    [
        (
            "license_activation_limit",
            "0",
            "license_activation_limit must be between 1 and 1000000, or null for unlimited.",
        ),
        ("license_expiry_days", "0", "license_expiry_days must be between 1 and 36500."),
        ("license_expiry_days", "36501", "license_expiry_days must be between 1 and 36500."),
    ],
)
def test_licence_settings_the_service_refuses_show_on_their_field(
    admin_client, field, typed, message
):
    data = product_form(license_keys="on", **{field: typed})
    response = admin_client.post(reverse("admin:downloads_product_add"), data)
    assert response.status_code == 200
    assert response.context["adminform"].form.errors[field] == [message]
    assert not Product.objects.exists()


# --- Variants -------------------------------------------------------------------------------------


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


# --- Downloads ------------------------------------------------------------------------------------


DOWNLOADS = reverse("admin:downloads_download_changelist")


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

    response = admin_client.post(DOWNLOADS, action("deliver_to_existing_orders", [bonus]))
    assert response.status_code == 302
    assert any("Delivering 1 download" in text for text in messages_of(response))
    run_worker()

    assert Backfill.objects.get(download=bonus).status == Backfill.Status.DONE
    assert kept.grants.filter(download=bonus).count() == 1
    assert not refunded.grants.filter(download=bonus).exists()


@pytest.mark.django_db
def test_a_file_without_a_product_cannot_be_delivered_to_existing_orders(admin_client):
    loose = factories.DownloadFactory(product=None)
    response = admin_client.post(DOWNLOADS, action("deliver_to_existing_orders", [loose]))
    assert any("attach it to single orders" in text for text in messages_of(response))
    assert not Backfill.objects.exists()


# --- Downloads: PDF stamping ---------------------------------------------------------------------


def download_page_data(page, **changes) -> dict:
    """The POST body of a download's add or change page as it was rendered, with `changes`."""
    form = page.context["adminform"].form
    data = {}
    for name in form.fields:
        value = form[name].value()
        if value is None or value is False:
            continue
        data[name] = "on" if value is True else str(value)
    for inline in page.context["inline_admin_formsets"]:
        management = inline.formset.management_form
        for name in management.fields:
            data[f"{inline.formset.prefix}-{name}"] = management[name].value()
    for name, value in changes.items():
        if value is False:
            data.pop(name, None)
        else:
            data[name] = "on" if value is True else value
    return data


def stamped_copies_of(download):
    return StampedCopy.objects.filter(grant__download=download)


def test_the_download_page_shows_the_stamp_settings_and_what_is_stamped(admin_client):
    download = factories.DownloadFactory()
    html = admin_client.get(
        reverse("admin:downloads_download_change", args=[download.pk])
    ).content.decode()
    for name in ("stamp", "stamp_text", "stamp_position"):
        assert f'name="{name}"' in html
    assert "Only PDFs are stamped: any other file is delivered as it is." in html
    assert "{email}, {name}, {order_number}, {date}" in html
    assert DEFAULT_STAMP_TEXT in html


def test_turning_stamp_on_here_saves_the_settings_and_requests_the_buyers_copies(
    admin_client,
):
    download = factories.DownloadFactory(
        media=factories.MediaFactory(content=pdfs.book(1), filename="Guide.pdf")
    )
    paid_order(download.product)
    paid_order(download.product, email="other@example.com")
    url = reverse("admin:downloads_download_change", args=[download.pk])
    data = download_page_data(
        admin_client.get(url),
        stamp=True,
        stamp_text="Copy for {email}",
        stamp_position="top",
    )
    response = admin_client.post(url, data)
    assert response.status_code == 302, response.context["adminform"].form.errors
    download.refresh_from_db()
    assert (download.stamp, download.stamp_text, download.stamp_position) == (
        True,
        "Copy for {email}",
        "top",
    )
    assert stamped_copies_of(download).filter(status="pending").count() == 2


def test_a_stamp_text_the_service_refuses_shows_on_its_field(admin_client):
    download = factories.DownloadFactory()
    url = reverse("admin:downloads_download_change", args=[download.pk])
    data = download_page_data(admin_client.get(url), stamp=True, stamp_text="For {customer}")
    response = admin_client.post(url, data)
    assert response.status_code == 200
    errors = response.context["adminform"].form.errors
    assert "customer" in errors["stamp_text"][0]
    download.refresh_from_db()
    assert (download.stamp, download.stamp_text) == (False, DEFAULT_STAMP_TEXT)


def test_a_download_is_added_stamped_through_download_create(admin_client):
    media = factories.MediaFactory(filename="Guide.pdf")
    url = reverse("admin:downloads_download_add")
    data = download_page_data(admin_client.get(url), media=str(media.pk), stamp=True)
    response = admin_client.post(url, data)
    assert response.status_code == 302, response.context["adminform"].form.errors
    download = Download.objects.get(media=media)
    assert (download.stamp, download.stamp_text, download.stamp_position) == (
        True,
        DEFAULT_STAMP_TEXT,
        "bottom",
    )


def test_the_download_list_shows_and_filters_the_stamp(admin_client):
    stamped = factories.DownloadFactory(stamp=True)
    factories.DownloadFactory()
    response = admin_client.get(DOWNLOADS, {"stamp__exact": "1"})
    assert [row.pk for row in response.context["cl"].result_list] == [stamped.pk]
    assert "field-stamp" in response.content.decode()
