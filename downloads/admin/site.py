"""The admin site itself: its titles (the store's name) and the dashboard on its index page
(downloads per day as a server-drawn bar chart, and the top products).

The index template (`templates/admin/index.html`) draws the dashboard through the
`downloads_dashboard` tag of `downloads.templatetags.downloads_admin`, which asks `dashboard`.
"""

import math

from django.conf import settings
from django.contrib import admin
from django.urls import reverse

from downloads import selectors

admin.site.site_header = f"{settings.DOWNLOADS_STORE_NAME} · back office"
admin.site.site_title = settings.DOWNLOADS_STORE_NAME
admin.site.index_title = "Store"

CHART_WIDTH = 640
CHART_HEIGHT = 180
CHART_LEFT = 36  # room for the y-axis labels
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


def bar_chart(per_day: list[tuple]) -> dict:
    """SVG geometry for a bar per day: positions in the chart's own units, computed here so
    the template only places shapes."""
    peak = max((count for _, count in per_day), default=0)
    top = nice_ceiling(peak)
    plot_width = CHART_WIDTH - CHART_LEFT - CHART_RIGHT
    plot_height = CHART_HEIGHT - CHART_TOP - CHART_BOTTOM
    baseline = CHART_TOP + plot_height
    slot = plot_width / max(len(per_day), 1)
    gap = min(2.0, slot / 4)
    bars = []
    for index, (day, count) in enumerate(per_day):
        height = round(plot_height * count / top, 2)
        x = CHART_LEFT + index * slot
        bars.append(
            {
                "day": day,
                "count": count,
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
        {"value": value, "y": round(baseline - plot_height * value / top, 2)}
        for value in sorted({0, top // 2, top} if top > 1 else {0, 1})
    ]
    return {
        "width": CHART_WIDTH,
        "height": CHART_HEIGHT,
        "left": CHART_LEFT,
        "right": CHART_WIDTH - CHART_RIGHT,
        "label_x": CHART_LEFT - 6,
        "label_y": CHART_HEIGHT - 6,
        "bars": bars,
        "ticks": ticks,
        "peak": peak,
        "first": per_day[0][0] if per_day else None,
        "last": per_day[-1][0] if per_day else None,
    }


def dashboard(request, *, days: int = 30, top: int = 5) -> dict:
    """Downloads per day and the top products, for staff who may read the download log.
    Two queries, whatever the number of events."""
    if request is None or not request.user.has_perm("downloads.view_downloadevent"):
        return {"show": False}
    per_day = selectors.downloads_per_day(days=days)
    products = selectors.top_products_by_downloads(limit=top, days=days)
    for product in products:
        product["url"] = reverse("admin:downloads_product_change", args=[product["id"]])
    return {
        "show": True,
        "days": days,
        "total": sum(count for _, count in per_day),
        "chart": bar_chart(per_day),
        "top_products": products,
    }
