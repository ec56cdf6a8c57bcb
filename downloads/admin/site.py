"""The admin site itself: its titles (the store's name), its menu, and the dashboard on its
index page (downloads and net revenue per day as server-drawn bar charts, and the top
products by downloads and by revenue, amounts formatted by `downloads.money`).

The menu lists the store's own models. django-tasks-db's *Task results* (the background
tasks' log) stay out of it: merchants never act on them; superusers still open them by URL
(`/admin/django_tasks_database/dbtaskresult/`) when a webhook, backfill or email task failed.

The index template (`templates/admin/index.html`) draws the dashboard through the
`downloads_dashboard` tag of `downloads.templatetags.downloads_admin`, which asks `dashboard`.
"""

import math

from django.conf import settings
from django.contrib import admin
from django.urls import reverse

# Imported for its registration, so it can be replaced below whatever the apps' order.
from django_tasks_db.admin import DBTaskResultAdmin
from django_tasks_db.models import DBTaskResult

from downloads import money, reports

admin.site.site_header = f"{settings.DOWNLOADS_STORE_NAME} · back office"
admin.site.site_title = settings.DOWNLOADS_STORE_NAME
admin.site.index_title = "Store"


class TaskResultAdmin(DBTaskResultAdmin):
    """django-tasks-db's read-only task results, out of the menu (the index and the nav
    sidebar); their pages answer as before, to superusers (and staff given the view
    permission)."""

    def has_module_permission(self, request):
        return False


admin.site.unregister(DBTaskResult)
admin.site.register(DBTaskResult, TaskResultAdmin)

CHART_WIDTH = 640
CHART_HEIGHT = 180
CHART_LEFT = 36  # room for the y-axis labels (at least: wider labels widen it)
AXIS_CHAR_WIDTH = 6  # about one character of the 10px axis labels, in the chart's units
CHART_RIGHT = 8
CHART_TOP = 10
CHART_BOTTOM = 24  # room for the date labels


def nice_ceiling(value: int) -> int:
    """The smallest of 1, 2, 5, 10, 20, 50, … not below value: a y-axis top with round ticks."""
    if value <= 1:
        return 1
    magnitude = 10 ** math.floor(math.log10(value))
    for step in (1, 2, 5, 10):
        if step * magnitude >= value:
            return step * magnitude
    return 10 * magnitude


def bar_chart(per_day: list[tuple], *, label=str) -> dict:
    """SVG geometry for a bar per day: positions in the chart's own units, computed here so
    the template only places shapes. `label(value)` writes a value for people (the y-axis
    ticks and each bar's `shown`), and the left margin grows to fit the widest tick."""
    peak = max((count for _, count in per_day), default=0)
    top = nice_ceiling(peak)
    tick_values = sorted({0, top // 2, top} if top > 1 else {0, 1})
    tick_labels = [label(value) for value in tick_values]
    left = max(CHART_LEFT, AXIS_CHAR_WIDTH * max(map(len, tick_labels)) + 8)
    plot_width = CHART_WIDTH - left - CHART_RIGHT
    plot_height = CHART_HEIGHT - CHART_TOP - CHART_BOTTOM
    baseline = CHART_TOP + plot_height
    slot = plot_width / max(len(per_day), 1)
    gap = min(2.0, slot / 4)
    bars = []
    for index, (day, count) in enumerate(per_day):
        height = round(plot_height * count / top, 2)
        x = left + index * slot
        bars.append(
            {
                "day": day,
                "count": count,
                "shown": label(count),
                "x": round(x + gap / 2, 2),
                "y": round(baseline - height, 2),
                "width": round(slot - gap, 2),
                "height": height,
                "center": round(x + slot / 2, 2),
                # A date under every 7th bar, counted back from today so today is labelled.
                "label": (len(per_day) - 1 - index) % 7 == 0,
            }
        )
    ticks = [
        {"value": value, "label": text, "y": round(baseline - plot_height * value / top, 2)}
        for value, text in zip(tick_values, tick_labels, strict=True)
    ]
    return {
        "width": CHART_WIDTH,
        "height": CHART_HEIGHT,
        "left": left,
        "right": CHART_WIDTH - CHART_RIGHT,
        "label_x": left - 6,
        "label_y": CHART_HEIGHT - 6,
        "bars": bars,
        "ticks": ticks,
        "peak": peak,
        "peak_shown": label(peak),
        "first": per_day[0][0] if per_day else None,
        "last": per_day[-1][0] if per_day else None,
    }


def dashboard(request, *, days: int = 30, top: int = 5, top_revenue: int = 10) -> dict:
    """Downloads per day and the top products by downloads, for staff who may read the
    download log; net revenue per day and the top products by revenue, in the store's
    currency, for staff who may view orders. Two queries for each part, whatever the number
    of events and orders."""
    user = request.user if request is not None else None
    context = {"show": False, "days": days}
    if user is not None and user.has_perm("downloads.view_downloadevent"):
        per_day = reports.downloads_per_day(days=days)
        context["downloads"] = {
            "total": sum(count for _, count in per_day),
            "chart": bar_chart(per_day),
            "top_products": _linked(reports.top_products_by_downloads(limit=top, days=days)),
        }
    if user is not None and user.has_perm("downloads.view_order"):
        revenue = reports.revenue_per_day(days=days)
        currency = revenue.currency
        products = reports.top_products_by_revenue(limit=top_revenue, days=days, currency=currency)
        for product in products:
            product["shown"] = money.format_money(product["revenue"], currency)
        context["revenue"] = {
            "currency": currency,
            "total": money.format_money(sum(net for _, net in revenue.days), currency),
            "chart": bar_chart(
                revenue.days, label=lambda value: money.format_money(value, currency)
            ),
            "other_currencies": revenue.other_currencies,
            "top_products": _linked(products),
        }
    context["show"] = "downloads" in context or "revenue" in context
    return context


def _linked(products: list[dict]) -> list[dict]:
    for product in products:
        product["url"] = reverse("admin:downloads_product_change", args=[product["id"]])
    return products
