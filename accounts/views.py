"""The buyer's account pages: one order by its secret link (and all its files as one ZIP),
and a customer's order list."""

from django.contrib.auth import views as auth_views
from django.contrib.auth.decorators import login_required
from django.core.paginator import Paginator
from django.http import HttpResponse
from django.shortcuts import render
from django.urls import reverse, reverse_lazy
from django.utils.translation import gettext
from django.views.decorators.http import require_http_methods, require_safe

from downloads import selectors, storage
from downloads.emails import site_url
from downloads.errors import ServiceError
from downloads.models import Order
from downloads.services import bundles
from downloads.views.delivery import PREPARING_RETRY_AFTER, client_of, delivery_headers
from downloads.views.headers import ORDER_PAGE_CONTENT_SECURITY_POLICY, page_headers
from downloads.views.order_access import remember_order_page

from . import order_markup
from .forms import OrderEmailPasswordResetForm

ORDERS_PER_PAGE = 20
# The order page offers *Download all* from this many files the buyer may download.
DOWNLOAD_ALL_FROM = 2


def _grants_shown(order) -> list:
    """The order's grants as the page lists them (each line's files, then the files attached
    to the order), from the page's prefetch."""
    return [
        *(grant for line in order.lines.all() for grant in line.grants.all()),
        *order.order_grants,
    ]


@require_safe
@page_headers(csp=ORDER_PAGE_CONTENT_SECURITY_POLICY)
def order_detail(request, access_token: str):
    """An order's files and licence keys, by the secret link in the order email (no login
    needed)."""
    order = selectors.order_get_by_token(access_token=access_token)
    if order is None:
        return render(request, "accounts/order_not_found.html", status=404)
    response = _order_page(request, order)
    # So that a refusal page of one of its downloads can link a guest back here.
    remember_order_page(request, response, order)
    return response


def _order_page(request, order: Order) -> HttpResponse:
    """The order page of an order read by `selectors.order_get_by_token`: the template lays
    out the page; its lines' cards, the files attached to the order, the *Download all*
    notice and the receipt's rows are made by `order_markup` (through the template engine
    they took most of the page's time)."""
    lines = order.lines.all()
    markup = order_markup.OrderMarkup(order)
    download_all = None
    if order.status != Order.Status.PENDING:
        # From the grants already read, nothing asked of the storage (a stamped file's copy:
        # see bundles.bundle_contents).
        contents = bundles.bundle_contents(
            order=order, grants=_grants_shown(order), read_storage=False
        )
        if len(contents.files) >= DOWNLOAD_ALL_FROM:
            download_all = markup.download_all(contents)
    return render(
        request,
        "accounts/order_detail.html",
        {
            "order": order,
            "line_cards": [markup.line(line, number) for number, line in enumerate(lines, 1)],
            "order_grants": order.order_grants,
            "order_files": markup.files(order.order_grants),
            "is_owner": order.is_owned_by(request.user),
            # The *Copy* buttons' script is loaded only on a page with keys to copy.
            "has_license_keys": any(line.license_keys.all() for line in lines),
            "download_all": download_all,
            "receipt": markup.receipt(),
        },
    )


@require_http_methods(["GET", "HEAD"])
@delivery_headers
@page_headers
def order_download_all(request, access_token: str):
    """Every file of the order the buyer can still download, as one ZIP streamed while it is
    read, one download taken from each before the first byte (services.bundles). HEAD
    answers the headers a GET would get now and takes nothing. Nothing to download: a page
    that says why (409 awaiting payment, 503 still being prepared, 410 nothing left)."""
    order = selectors.order_get_by_token(access_token=access_token)
    if order is None:
        return render(request, "accounts/order_not_found.html", status=404)
    if not storage.reachable():  # nothing would arrive: take nothing, as a single download
        response = _download_all_problem(
            request,
            order,
            status=503,
            title=gettext("Downloads are paused for a moment"),
            message=gettext(
                "The files of order #%(number)s cannot be delivered right now: the store's "
                "file storage is not answering. Nothing was counted. Please try again in a "
                "few minutes."
            )
            % {"number": order.number},
        )
        response["Retry-After"] = str(storage.storage_health.retry_after())
        return response
    try:
        if request.method == "HEAD":
            bundle = bundles.bundle_contents(order=order, grants=_grants_shown(order))
        else:
            ip, user_agent = client_of(request)
            bundle = bundles.bundle_take(
                order=order, grants=_grants_shown(order), ip=ip, user_agent=user_agent
            )
    except ServiceError:  # order.invalid_state, the only one: not paid yet
        return _download_all_problem(
            request,
            order,
            status=409,
            title=gettext("Not paid yet"),
            # The service's words, translatable.
            message=gettext(
                "Order #%(number)s is awaiting payment: its files can be downloaded once it "
                "is paid."
            )
            % {"number": order.number},
        )
    if bundle.is_empty:
        return _nothing_to_download(request, bundle)
    return storage.zip_response(
        filename=bundle.filename,
        files=bundle.files,
        texts=bundle.texts,
        head=request.method == "HEAD",
    )


def _nothing_to_download(request, bundle):
    order = bundle.order
    named = gettext(", ").join(
        gettext("“%(name)s” (%(why)s)") % {"name": item.name, "why": item.label}
        for item in bundle.left_out
    )
    words = {"number": order.number, "files": named}
    if bundle.waiting:
        response = _download_all_problem(
            request,
            order,
            status=503,
            title=gettext("Your files are not ready yet"),
            message=gettext(
                "Nothing in order #%(number)s can be downloaded yet: %(files)s. Try again in "
                "a moment; nothing was counted."
            )
            % words,
        )
        # As the single download of a file being prepared.
        response["Retry-After"] = str(PREPARING_RETRY_AFTER)
        return response
    if not bundle.left_out:
        message = gettext("Order #%(number)s has no files to download.") % words
    else:
        message = (
            gettext(
                "Nothing in order #%(number)s can be downloaded any more: %(files)s. Contact "
                "the store if you need more."
            )
            % words
        )
    return _download_all_problem(
        request, order, status=410, title=gettext("Nothing left to download"), message=message
    )


def _download_all_problem(request, order, *, status: int, title: str, message: str):
    # The visitor holds the order page's token (it is in this URL): link back to it.
    return render(
        request,
        "downloads/problem.html",
        {
            "title": title,
            "message": message,
            "order_url": reverse("accounts:order_detail", args=[order.access_token]),
        },
        status=status,
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
