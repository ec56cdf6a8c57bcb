"""The admin index at a glance: downloads per day (server-rendered SVG) and top products."""

import re
from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

from downloads import selectors
from downloads.admin.site import bar_chart, nice_ceiling
from tests import factories

pytestmark = pytest.mark.django_db

INDEX = reverse("admin:index")


def served(grant, days_ago=0, count=1, outcome="served"):
    at = timezone.now() - timedelta(days=days_ago)
    factories.EventFactory.create_batch(count, grant=grant, at=at, outcome=outcome)


def test_downloads_per_day_counts_served_downloads_of_the_last_30_days():
    grant = factories.GrantFactory()
    served(grant, days_ago=0, count=3)
    served(grant, days_ago=2)
    served(grant, days_ago=2, outcome="limit_reached")  # refused: not a download
    served(grant, days_ago=31)  # too old
    days = selectors.downloads_per_day(days=30)
    assert len(days) == 30
    assert days[-1] == (timezone.localdate(), 3)
    assert days[-3] == (timezone.localdate() - timedelta(days=2), 1)
    assert sum(count for _, count in days) == 4


def test_top_products_are_ranked_by_downloads():
    first = factories.GrantFactory(download=factories.DownloadFactory(product__name="Icons"))
    second = factories.GrantFactory(download=factories.DownloadFactory(product__name="Guide"))
    served(first, count=2)
    served(second, count=5)
    top = selectors.top_products_by_downloads(limit=5)
    assert [(row["name"], row["downloads"]) for row in top] == [("Guide", 5), ("Icons", 2)]


def test_the_index_draws_one_bar_per_day_and_lists_top_products(admin_client):
    grant = factories.GrantFactory()
    served(grant, count=4)
    html = admin_client.get(INDEX).content.decode()
    start = html.index('<svg xmlns="http://www.w3.org/2000/svg"')
    svg = html[start : html.index("</svg>", start)]
    bars = re.findall(r'<rect [^>]*data-day="([\d-]+)" data-count="(\d+)"', svg)
    assert len(bars) == 30
    assert bars[-1] == (timezone.localdate().isoformat(), "4")
    assert "4 downloads served in the last 30 days." in html
    product = grant.download.product
    assert f'href="{reverse("admin:downloads_product_change", args=[product.pk])}"' in html
    assert "<script" not in svg and "http" not in svg.replace("http://www.w3.org/2000/svg", "")


def test_the_tallest_bar_fills_the_chart_and_empty_days_have_no_height():
    today = timezone.localdate()
    chart = bar_chart([(today - timedelta(days=2), 0), (today - timedelta(days=1), 5), (today, 10)])
    empty, half, full = chart["bars"]
    assert empty["height"] == 0
    assert full["y"] == 10  # the top margin: the peak reaches the top of the plot
    assert half["height"] == full["height"] / 2
    assert [tick["value"] for tick in chart["ticks"]] == [0, 5, 10]
    assert (nice_ceiling(7), nice_ceiling(11), nice_ceiling(230)) == (10, 20, 500)


@pytest.mark.parametrize("events", [1, 50])
def test_the_index_takes_constant_queries(admin_client, django_assert_num_queries, events):
    grant = factories.GrantFactory()
    for index in range(events):
        served(grant, days_ago=index % 30)
    # session, user, the two dashboard aggregates, the recent actions box
    with django_assert_num_queries(5):
        assert admin_client.get(INDEX).status_code == 200


def test_staff_without_the_download_log_see_no_dashboard(client):
    staff = factories.UserFactory(is_staff=True)
    client.force_login(staff)
    html = client.get(INDEX).content.decode()
    assert "downloads-dashboard" not in html
