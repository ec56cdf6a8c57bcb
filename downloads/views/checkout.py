"""Buying through Stripe Checkout: the buy page (`/buy/<product or variant id>/`) and
Stripe's webhook endpoint (`/channels/stripe/webhooks`). The rules are in
`services.stripe_checkout`; these views only read the request and answer."""

from django import forms
from django.http import Http404, HttpResponseNotAllowed, HttpResponseRedirect, JsonResponse
from django.shortcuts import render
from django.utils.translation import gettext_lazy as _
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_http_methods

from ..api.exceptions import service_error_body, service_error_status
from ..errors import ServiceError
from ..services import stripe_checkout
from .headers import CHECKOUT_CONTENT_SECURITY_POLICY, page_headers


class BuyForm(forms.Form):
    email = forms.EmailField(
        required=False,
        label=_("Email (optional)"),
        help_text=_("Where your download links go. You can also type it on the payment page."),
        widget=forms.EmailInput(attrs={"autocomplete": "email"}),
    )


@require_http_methods(["GET", "HEAD", "POST"])
@page_headers(csp=CHECKOUT_CONTENT_SECURITY_POLICY)
def buy(request, item_id):
    """GET: what is bought, its price and *Pay*. POST: a pending order and its Checkout
    Session, then 303 to Stripe's payment page (503 when Stripe is unavailable)."""
    if not stripe_checkout.checkout_enabled():
        raise Http404("Stripe Checkout is not configured.")
    item = stripe_checkout.checkout_item_get(item_id=item_id)
    if item is None:
        raise Http404("Nothing to buy here.")
    form = BuyForm(request.POST if request.method == "POST" else None)
    if request.method != "POST":
        return _buy_page(request, item, form)
    if not form.is_valid():
        return _buy_page(request, item, form, status=400)
    try:
        start = stripe_checkout.checkout_start(
            item=item, email=form.cleaned_data["email"], request=request
        )
    except ServiceError as exc:
        if exc.code == "checkout.unavailable":
            return render(request, "store/unavailable.html", {"item": item}, status=503)
        form.add_error("email" if exc.attribute == "email" else None, exc.message)
        return _buy_page(request, item, form, status=service_error_status(exc))
    response = HttpResponseRedirect(start.url)
    response.status_code = 303
    return response


def _buy_page(request, item, form, *, status=200):
    return render(request, "store/buy.html", {"item": item, "form": form}, status=status)


@csrf_exempt
def stripe_webhook(request):
    """Stripe's events: verified, stored once, answered at once; processed in the background."""
    if not stripe_checkout.webhooks_enabled():
        raise Http404("Stripe webhooks are not configured.")
    if request.method != "POST":
        return HttpResponseNotAllowed(["POST"])
    try:
        stripe_checkout.stripe_event_receive(
            payload=request.body, signature=request.headers.get("Stripe-Signature")
        )
    except ServiceError as exc:
        return JsonResponse(service_error_body(exc), status=service_error_status(exc))
    return JsonResponse({"received": True})
