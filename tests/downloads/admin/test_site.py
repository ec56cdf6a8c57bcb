"""The admin index at a glance: downloads and net revenue per day (server-rendered SVG), and
the top products by downloads and by revenue, amounts formatted in the store's currency."""

import re
from datetime import timedelta

import pytest
from django.contrib.auth.models import Permission
from django.urls import reverse
from django.utils import timezone

from downloads import reports
from downloads.admin.site import bar_chart, nice_ceiling
from downloads.models import Order
from downloads.services.orders import LineInput, order_create, order_refund
from tests import factories
from tests.downloads.admin.conftest import paid_order

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
    days = reports.downloads_per_day(days=30)
    assert len(days) == 30
    assert days[-1] == (timezone.localdate(), 3)
    assert days[-3] == (timezone.localdate() - timedelta(days=2), 1)
    assert sum(count for _, count in days) == 4


def test_top_products_are_ranked_by_downloads():
    first = factories.GrantFactory(download=factories.DownloadFactory(product__name="Icons"))
    second = factories.GrantFactory(download=factories.DownloadFactory(product__name="Guide"))
    served(first, count=2)
    served(second, count=5)
    top = reports.top_products_by_downloads(limit=5)
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


@pytest.mark.parametrize("rows", [1, 50])
def test_the_index_takes_constant_queries(admin_client, django_assert_num_queries, rows):
    grant = factories.GrantFactory()
    product = factories.ProductFactory()
    for index in range(rows):
        served(grant, days_ago=index % 30)
        paid_days_ago(paid_order(product, email=f"buyer{index}@example.com"), index % 30)
    # session, user, the two download aggregates, the two revenue aggregates, recent actions
    with django_assert_num_queries(7):
        assert admin_client.get(INDEX).status_code == 200


def test_staff_without_the_download_log_see_no_dashboard(client):
    staff = factories.UserFactory(is_staff=True)
    client.force_login(staff)
    html = client.get(INDEX).content.decode()
    assert "downloads-dashboard" not in html


# --- Revenue --------------------------------------------------------------------------------------


def paid_days_ago(order, days):
    Order.objects.filter(pk=order.pk).update(paid_at=timezone.now() - timedelta(days=days))
    return order


@pytest.fixture
def sales():
    """Orders in USD (the store's currency) over the last days, and some that do not count.

    Today: Guide × 2 with 5.00 tax (55.00); Icons, 3.00 of it refunded (7.00 net).
    Two days ago: Guide + Icons, the Icons line refunded (25.00 net).
    Not counted: an order in EUR today, a pending order, one paid 31 days ago.
    """
    guide = factories.ProductFactory(name="Guide", price=2500)
    icons = factories.ProductFactory(name="Icons", price=1000)
    paid_order(LineInput(product=guide, quantity=2), tax=500)
    order_refund(order=paid_order(icons), amount=300)
    both = paid_days_ago(paid_order(guide, icons), 2)
    order_refund(order=both, line_ids=[both.lines.get(product=icons).pk])
    paid_order(LineInput(product=guide, price=9900), currency="EUR")
    order_create(email="later@example.com", lines=[LineInput(product=guide)])
    paid_days_ago(paid_order(LineInput(product=guide, quantity=4)), 31)
    return guide, icons


def test_revenue_per_day_is_total_less_refunded_of_the_orders_paid_each_day(sales):
    revenue = reports.revenue_per_day(days=30)
    today = timezone.localdate()
    assert revenue.currency == "USD" and len(revenue.days) == 30
    assert revenue.days[-1] == (today, 6200)
    assert revenue.days[-3] == (today - timedelta(days=2), 2500)
    assert sum(net for _, net in revenue.days) == 8700
    assert revenue.other_currencies == ("EUR",)


def test_products_are_ranked_by_the_totals_of_their_paid_lines_not_refunded(sales):
    top = reports.top_products_by_revenue(limit=10, days=30)
    # Guide: 50.00 today + 25.00 two days ago; Icons: 10.00 today (an amount refund leaves the
    # line), its refunded line two days ago not counted; EUR, pending and older orders out.
    assert [(row["name"], row["revenue"]) for row in top] == [("Guide", 7500), ("Icons", 1000)]
    assert reports.top_products_by_revenue(limit=1, days=30)[0]["name"] == "Guide"


def test_the_index_charts_net_revenue_beside_downloads_with_formatted_amounts(admin_client, sales):
    guide, icons = sales
    html = admin_client.get(INDEX).content.decode()
    start = html.index('class="downloads-chart revenue-chart"')
    svg = html[start : html.index("</svg>", start)]
    bars = re.findall(r'<rect [^>]*data-day="([\d-]+)" data-amount="(\d+)"><title>([^<]*)', svg)
    assert len(bars) == 30
    today = timezone.localdate()
    assert bars[-1][:2] == (today.isoformat(), "6200") and bars[-1][2].endswith(": $62.00")
    assert bars[-3][:2] == ((today - timedelta(days=2)).isoformat(), "2500")
    assert "the best day took $62.00." in svg
    # the y-axis: 0, half and the top of a round ceiling over the best day (62.00 → 100.00)
    assert re.findall(r'class="axis">(\$[\d.,]+)</text>', svg) == ["$0.00", "$50.00", "$100.00"]
    assert (
        "$87.00 net revenue (paid minus refunded) in USD over the last 30 days, by the day "
        "orders were paid. Orders in EUR are not included."
    ) in html
    ranking = re.findall(
        r'<tr><td><a href="([^"]+)">([^<]+)</a></td><td class="num" data-revenue="\d+">([^<]+)<',
        html,
    )
    assert ranking == [
        (reverse("admin:downloads_product_change", args=[guide.pk]), "Guide", "$75.00"),
        (reverse("admin:downloads_product_change", args=[icons.pk]), "Icons", "$10.00"),
    ]
    assert html.index("downloads-chart revenue-chart") > html.index('class="downloads-chart"')
    assert "<script" not in svg


def test_a_store_in_yen_charts_yen_and_says_nothing_of_other_currencies(admin_client, settings):
    settings.DOWNLOADS_CURRENCY = "JPY"
    paid_order(LineInput(product=factories.ProductFactory(name="Font", price=4900), quantity=2))
    html = admin_client.get(INDEX).content.decode()
    assert "¥9,800 net revenue (paid minus refunded) in JPY" in html
    assert "are not included" not in html
    assert 'data-revenue="9800">¥9,800<' in html


def test_staff_who_may_view_orders_but_not_the_download_log_see_only_revenue(client):
    staff = factories.UserFactory(is_staff=True)
    staff.user_permissions.add(Permission.objects.get(codename="view_order"))
    client.force_login(staff)
    html = client.get(INDEX).content.decode()
    assert "Net revenue per day" in html and "Top products by revenue" in html
    assert "Downloads per day" not in html


# --- The menu ---------------------------------------------------------------------------------


def menu(client) -> set[str]:
    """The models the index and the nav sidebar list (both read the site's app list)."""
    response = client.get(INDEX)
    return {
        f"{app['app_label']}.{model['object_name']}"
        for app in response.context["app_list"]
        for model in app["models"]
    }


def test_the_menu_holds_the_stores_models_without_groups_or_task_results(admin_client):
    listed = menu(admin_client)
    assert "auth.Group" not in listed
    assert "django_tasks_database.DBTaskResult" not in listed
    assert {"downloads.Order", "downloads.DownloadGrant", "accounts.ApiKey"} <= listed
    sidebar = admin_client.get(reverse("admin:downloads_order_changelist")).content.decode()
    assert "Task results" not in sidebar and ">Groups<" not in sidebar


def test_task_results_stay_reachable_to_superusers_by_their_url(admin_client, client):
    url = reverse("admin:django_tasks_database_dbtaskresult_changelist")
    assert url == "/admin/django_tasks_database/dbtaskresult/"
    assert admin_client.get(url).status_code == 200
    staff = factories.StaffFactory(is_superuser=False)
    client.force_login(staff)
    assert client.get(url).status_code == 403
