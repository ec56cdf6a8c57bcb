"""Template tags for the back office: the dashboard on the admin index and buyer links.

The dashboard's data and chart geometry belong to the admin site (`downloads.admin.site`);
these tags only hand them to the templates.
"""

from django import template

from downloads.admin.site import dashboard
from downloads.emails import order_page_url

register = template.Library()


@register.inclusion_tag("admin/downloads/dashboard.html", takes_context=True)
def downloads_dashboard(context, days: int = 30, top: int = 5):
    """Downloads per day and the top products (see `downloads.admin.site.dashboard`)."""
    return dashboard(context.get("request"), days=days, top=top)


@register.simple_tag(takes_context=True)
def buyer_page_url(context, order) -> str:
    """The absolute URL of the buyer's order page (the link in the order email)."""
    return order_page_url(order, context.get("request"))
