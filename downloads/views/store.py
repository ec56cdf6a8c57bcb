"""The store's home, `GET /`: the catalogue of products on sale, with their prices and, when
Stripe Checkout is configured, a *Buy* link to `/buy/<product or variant id>/`."""

from django.shortcuts import render
from django.views.decorators.http import require_safe

from .. import selectors
from ..services.stripe_checkout import checkout_enabled
from .headers import page_headers


@require_safe
@page_headers
def home(request):
    """The products that are not archived, by name; a friendly page when there are none."""
    return render(
        request,
        "store/home.html",
        {
            "catalogue": selectors.catalogue_for_store(),
            "can_buy": checkout_enabled(),
        },
    )
