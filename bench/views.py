"""The baseline, the cheapest DRF view there is, and the floors of the two hot paths: what
their database work alone allows. All served by the same process as the app."""

from django.http import HttpResponseRedirect, JsonResponse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST
from rest_framework.permissions import AllowAny
from rest_framework.renderers import JSONRenderer
from rest_framework.response import Response
from rest_framework.views import APIView

from downloads import selectors
from downloads.api.licenses import LicenseValidateView
from downloads.models import canonical_key, key_digest
from downloads.services.consume import grant_consume_by_token

BASELINE_PAYLOAD = {"object": "baseline", "ok": True}


class BaselineView(APIView):
    """A small constant JSON: the cost of Django + DRF + gunicorn with no work at all."""

    authentication_classes: list = []
    permission_classes = [AllowAny]
    renderer_classes = [JSONRenderer]

    def get(self, request):
        return Response(BASELINE_PAYLOAD)


def storefront_reads(request):
    """The storefront JSON's reads (`selectors.order_storefront_by_token`) and a
    constant answer: no JSON built. The most any storefront answer on them can reach."""
    order = selectors.order_storefront_by_token(access_token=request.GET.get("id", ""))
    return JsonResponse(BASELINE_PAYLOAD, status=200 if order else 404)


def download_without_presign(request, token: str):
    """The download endpoint's one statement (`grant_consume_by_token`: lookup, count and
    event) and a redirect to a fixed URL: no presign, no page machinery. The most a download
    can reach on it."""
    taken = grant_consume_by_token(
        token=token, ip=request.META.get("REMOTE_ADDR"), user_agent="bench"
    )
    if taken is None or taken.consumption is None:
        return JsonResponse(BASELINE_PAYLOAD, status=404)
    return HttpResponseRedirect("https://bench.invalid/file")


def order_page_reads(request, access_token: str):
    """The order page's reads (`selectors.order_get_by_token` and the prefetches the page
    walks: each line's files and licence keys, the order's own files) and a constant answer:
    no page rendered. The most the order page can reach on them."""
    order = selectors.order_get_by_token(access_token=access_token)
    if order is None:
        return JsonResponse(BASELINE_PAYLOAD, status=404)
    for line in order.lines.all():
        list(line.grants.all())
        list(line.license_keys.all())
    list(order.order_grants)
    return JsonResponse(BASELINE_PAYLOAD)


@csrf_exempt
@require_POST
def license_reads(request):
    """The licence validate's read (`selectors.license_key_get_for_validation`: the key by its
    digest, with its order, customer, product, variant and the instance asked about) and a
    constant answer: no form, no throttle, no answer built. The most a validate can reach
    on it."""
    key = canonical_key(request.POST.get("license_key", ""))
    found = key and selectors.license_key_get_for_validation(
        key_hash=key_digest(key), instance_id=request.POST.get("instance_id")
    )
    return JsonResponse(BASELINE_PAYLOAD, status=200 if found else 404)


class LicenseValidateWithoutAnswer(LicenseValidateView):
    """The licence validate as the API runs it (DRF's view, the address throttle, the body's
    rules, the service's lookup and constant-time check, the key's status) with a constant
    answer: no answer built or rendered. The most a validate can reach with the API's own
    machinery around its read; `license_reads` is the read alone."""

    def answer(self, status, **kwargs):
        return JsonResponse(BASELINE_PAYLOAD, status=status)
