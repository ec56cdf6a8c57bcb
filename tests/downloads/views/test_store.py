"""The store's home (`GET /`, downloads.views.store): the catalogue of products on sale."""

import re

import pytest
from django.urls import reverse

from tests import factories

pytestmark = pytest.mark.django_db

HOME = "/"


def text_of(response) -> str:
    """The page's visible text, whitespace collapsed."""
    html = re.sub(r"<[^>]+>", " ", response.content.decode())
    return re.sub(r"\s+", " ", html)


@pytest.fixture
def stripe_off(settings):
    settings.STRIPE_SECRET_KEY = ""


@pytest.fixture
def stripe_on(settings):
    settings.STRIPE_SECRET_KEY = "sk_test_home"


def test_the_home_is_the_root_url():
    assert reverse("home") == HOME


def test_lists_products_not_archived_by_name_with_prices(client, stripe_off):
    factories.ProductFactory(name="Zine", price=900, description="A small zine.")
    factories.ProductFactory(name="Atlas", price=4900)
    factories.ProductFactory(name="Old edition", price=100, archived=True)
    factories.ProductFactory(name="Podcast", price=0)
    response = client.get(HOME)
    assert response.status_code == 200
    page = text_of(response)
    assert "Atlas $49.00" in page
    assert "Zine $9.00 A small zine." in page
    assert "Podcast Free" in page
    assert "Old edition" not in page
    assert page.index("Atlas") < page.index("Podcast") < page.index("Zine")


def test_a_product_with_variants_shows_each_effective_price_and_from_the_cheapest(
    client, stripe_off
):
    icons = factories.ProductFactory(name="Icons", price=2900)
    factories.VariantFactory(product=icons, name="Commercial", price=4900, position=1)
    factories.VariantFactory(product=icons, name="Personal", price=None, position=0)
    page = text_of(client.get(HOME))
    assert "Icons from $29.00" in page
    assert "Personal $29.00 Commercial $49.00" in page  # by position; null = product's price


def test_variants_sharing_one_price_show_it_without_from(client, stripe_off):
    book = factories.ProductFactory(name="Book", price=0)
    factories.VariantFactory(product=book, name="PDF", price=1500)
    factories.VariantFactory(product=book, name="EPUB", price=1500)
    page = text_of(client.get(HOME))
    assert "Book $15.00" in page
    assert "from" not in page


def test_prices_are_in_the_stores_currency(client, settings, stripe_off):
    settings.DOWNLOADS_CURRENCY = "JPY"
    factories.ProductFactory(name="Manga", price=1200)
    assert "Manga ¥1,200" in text_of(client.get(HOME))


def test_a_long_description_is_cut_to_an_excerpt(client, stripe_off):
    factories.ProductFactory(name="Essay", description=" ".join(["word"] * 100) + " ENDING")
    page = text_of(client.get(HOME))
    assert "word word" in page and "ENDING" not in page and "…" in page


def test_without_stripe_there_is_no_buy_link(client, stripe_off):
    product = factories.ProductFactory()
    factories.VariantFactory(product=factories.ProductFactory())
    response = client.get(HOME)
    html = response.content.decode()
    assert "/buy/" not in html
    assert "Buy" not in text_of(response)
    assert str(product.pk) not in html


def test_with_stripe_each_product_or_each_of_its_variants_has_a_buy_link(client, stripe_on):
    single = factories.ProductFactory(name="Single")
    icons = factories.ProductFactory(name="Icons")
    variants = [factories.VariantFactory(product=icons, position=n) for n in range(2)]
    html = client.get(HOME).content.decode()
    buy_links = re.findall(r'<a class="button" href="(/buy/[^"]+)">', html)
    assert buy_links == [
        reverse("buy", args=[variants[0].pk]),
        reverse("buy", args=[variants[1].pk]),
        reverse("buy", args=[single.pk]),
    ]
    assert reverse("buy", args=[icons.pk]) not in html  # its variants are what is bought
    assert f'class="visually-hidden"> Icons, {variants[0].name}<' in html


def test_names_and_descriptions_are_escaped(client, stripe_off):
    product = factories.ProductFactory(name="<script>x</script>", description="<b>bold</b>")
    factories.VariantFactory(product=product, name="<i>v</i>")
    html = client.get(HOME).content.decode()
    assert "<script>x" not in html and "<b>bold" not in html and "<i>v" not in html
    assert "&lt;script&gt;x&lt;/script&gt;" in html and "&lt;b&gt;bold&lt;/b&gt;" in html


def test_an_empty_catalogue_is_a_friendly_page(client, django_assert_num_queries):
    factories.ProductFactory(archived=True)
    with django_assert_num_queries(1):
        response = client.get(HOME)
    assert response.status_code == 200
    assert "Nothing is for sale just yet." in text_of(response)


@pytest.mark.parametrize("products", [1, 5, 20])
def test_the_query_count_is_constant_whatever_the_catalogues_size(
    client, stripe_on, django_assert_num_queries, products
):
    for n in range(products):
        product = factories.ProductFactory()
        for position in range(n % 3):
            factories.VariantFactory(product=product, position=position, price=None)
    # the products, their variants
    with django_assert_num_queries(2):
        response = client.get(HOME)
    assert response.content.decode().count('class="card product"') == products


def test_headers_are_the_buyer_pages_strict_ones(client):
    response = client.get(HOME)
    assert "default-src 'none'" in response["Content-Security-Policy"]
    assert response["X-Frame-Options"] == "DENY"
    html = response.content.decode()
    assert "<script" not in html and "style=" not in html


def test_head_is_answered_and_post_is_405(client):
    assert client.head(HOME).status_code == 200
    assert client.post(HOME).status_code == 405


def test_the_header_links_to_the_home_from_every_buyer_page(client):
    order = factories.paid_order_with_files(lines=1)
    html = client.get(reverse("accounts:order_detail", args=[order.access_token])).content
    assert b'<a class="brand" href="/">' in html
