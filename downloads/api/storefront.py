"""The storefront JSON (no auth), in Fileflare's customer-account-orders shape.

`GET /api/v2/customer-account-orders?id=<order access token>` answers exactly the keys of
`seeds/fileflare-customer-account-orders-v2.txt`. A plain Django view: no authentication
to run, and it is about as cheap as a JSON answer gets here. CORS for the store's own
origins comes from django-cors-headers (CORS_URLS_REGEX covers /api/v2/).
"""

from django.http import JsonResponse
from django.urls import path, reverse

from downloads import selectors
from downloads.emails import site_url

TEXT = {"title": "Download files for your orders", "text": None}
_UNITS = ("B", "KB", "MB", "GB", "TB")


def compact_size(byte_size: int) -> str:
    """A size as Fileflare writes it: "10MB", "1.5GB", "512KB", "20B" (1024-based)."""
    value = float(byte_size)
    for unit in _UNITS:
        if value < 1024 or unit == _UNITS[-1]:
            break
        value /= 1024
    if unit == "B":
        return f"{byte_size}B"
    return f"{value:.1f}".removesuffix(".0") + unit


def error(status: int, http_status: str, code: str, message: str) -> JsonResponse:
    """The API's error envelope."""
    return JsonResponse(
        {"http_status": http_status, "code": code, "message": message}, status=status
    )


def asset(grant, base_url: str, paid_at=None) -> dict:
    download = grant.download
    media = download.media
    data = {
        "id": str(download.id),
        "filename": download.display_name,
        # A link's size is unknown to us; an empty string keeps the field a string.
        "size": compact_size(media.byte_size) if media is not None else "",
        "is_file": media is not None,
        "is_link": media is None,
        "url": base_url + reverse("downloads:download", args=[grant.token]),
    }
    updated = download.file_updated_at
    if updated is not None and paid_at is not None and updated > paid_at:
        # Our one addition to the seed's shape, present only for a file replaced after the
        # order was paid ("updated on …"): Unix seconds, like every time in our API.
        data["updated_at"] = int(updated.timestamp())
    return {
        "limits": {"downloaded": grant.download_count, "limit": grant.download_limit},
        "data": data,
    }


def line_product(line) -> dict:
    product = line.product
    return {
        "id": str(product.id),
        "name": line.name,
        "variant_name": line.variant_name or None,
        "sku": line.sku or None,
        "product_id": product.external_id,
        "variant_id": line.variant.external_id if line.variant is not None else None,
        "vendor": product.vendor or None,
        "tags": product.tags or [],
    }


def customer_account_orders(request):
    """An order's files by its access token, for a custom storefront's account page."""
    if request.method not in ("GET", "HEAD"):
        response = error(405, "method_not_allowed", "method_not_allowed", "Use GET.")
        response["Allow"] = "GET, HEAD"
        return response
    token = request.GET.get("id", "")
    if not token:
        return error(400, "bad_request", "required", "The id query parameter is required.")
    order = selectors.order_get_by_token(access_token=token)
    if order is None:
        return error(404, "not_found", "order.not_found", "No order has this id.")
    base_url = site_url(request)
    body = {
        "order": {
            "order_number": order.number,
            "lines": [
                {
                    "product": line_product(line),
                    "assets": [
                        asset(grant, base_url, order.paid_at) for grant in line.grants.all()
                    ],
                }
                for line in order.lines.all()
            ],
            "assets": [asset(grant, base_url, order.paid_at) for grant in order.order_grants],
        },
        "text": TEXT,
    }
    response = JsonResponse(body)
    # The answer holds download links: never cached by a browser or a shared cache.
    response["Cache-Control"] = "private, no-store"
    return response


urlpatterns = [
    path(
        "customer-account-orders",
        customer_account_orders,
        name="storefront-customer-account-orders",
    ),
]
