"""The buyer's account pages: one order by its secret link, and a customer's order list."""

from django.contrib.auth import views as auth_views
from django.contrib.auth.decorators import login_required
from django.core.paginator import Paginator
from django.shortcuts import render
from django.urls import reverse_lazy
from django.views.decorators.http import require_safe

from downloads import selectors
from downloads.emails import site_url
from downloads.views.headers import ORDER_PAGE_CONTENT_SECURITY_POLICY, page_headers

from .forms import OrderEmailPasswordResetForm

ORDERS_PER_PAGE = 20


@require_safe
@page_headers(csp=ORDER_PAGE_CONTENT_SECURITY_POLICY)
def order_detail(request, access_token: str):
    """An order's files and licence keys, by the secret link in the order email (no login
    needed)."""
    order = selectors.order_get_by_token(access_token=access_token)
    if order is None:
        return render(request, "accounts/order_not_found.html", status=404)
    lines = order.lines.all()
    return render(
        request,
        "accounts/order_detail.html",
        {
            "order": order,
            "lines": lines,
            "order_grants": order.order_grants,
            "is_owner": order.is_owned_by(request.user),
            # The *Copy* buttons' script is loaded only on a page with keys to copy.
            "has_license_keys": any(line.license_keys.all() for line in lines),
        },
    )


@require_safe
@page_headers
@login_required
def order_list(request):
    """The logged-in customer's orders, newest first."""
    paginator = Paginator(
        selectors.order_list_page_for_customer(user=request.user), ORDERS_PER_PAGE
    )
    page = paginator.get_page(request.GET.get("page"))
    return render(request, "accounts/order_list.html", {"page": page, "orders": page.object_list})


class PasswordResetView(auth_views.PasswordResetView):
    """Sets a first password too: see OrderEmailPasswordResetForm."""

    form_class = OrderEmailPasswordResetForm
    email_template_name = "registration/password_reset_email.txt"
    success_url = reverse_lazy("accounts:password_reset_done")

    def form_valid(self, form):
        # Links in the email use the configured site URL, not whatever Host the request had.
        self.extra_email_context = {"site_url": site_url(self.request)}
        return super().form_valid(form)
