"""The storefront JSON (no auth), in Fileflare's customer-account-orders shape.

`GET /api/v2/customer-account-orders?id=<order access token>` answers exactly the keys of
`seeds/fileflare-customer-account-orders-v2.txt`. Our additions sit beside the seed's keys
and only where they apply, so an order without them has the seed's shape exactly: a file's
`updated_at`, and a line's `license_keys` when it has keys; the one addition every asset
carries is `stamped` (true: the file is a copy stamped with the buyer's email). A plain Django view: no
authentication to run, and it is about as cheap as a JSON answer gets here. CORS for the
store's own origins comes from django-cors-headers (CORS_URLS_REGEX covers /api/v2/).

Errors answer the merchant API's envelope (`{"http_status", "code", "message",
"validation_errors"}`); a query parameter other than `id` is a 400 naming it, by the API's
rule (views/base.py `check_query_parameters`); every answer, errors too, is `no-store`.
"""

from django.http import JsonResponse
from django.urls import re_path, reverse
from rest_framework.exceptions import ErrorDetail

from downloads import selectors
from downloads.emails import site_url
from downloads.models import Download
from downloads.services.stamping import is_stamped_file

from .exceptions import QueryParameterError, error_body, error_response
from .views.base import check_query_parameters

TEXT = {"title": "Download files for your orders", "text": None}
# Grant tokens are URL-safe base64: put into the reversed URL as they are.
TOKEN_SLOT = "grant-token"  # noqa: S105 - a placeholder, not a secret
_UNITS = ("B", "KB", "MB", "GB", "TB")
QUERY_PARAMETERS = frozenset({"id"})
# The answer holds download links: never cached by a browser or a shared cache.
NO_STORE = "private, no-store"


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


def error(status: int, code: str, message: str) -> JsonResponse:
    """The API's error envelope (exceptions.error_body), never cached."""
    response = JsonResponse(error_body(status, code, message), status=status)
    response["Cache-Control"] = NO_STORE
    return response


def asset(row: tuple, url_template: str, paid_at) -> dict:
    """One grant row (selectors.STOREFRONT_GRANT_FIELDS) as a Fileflare asset."""
    (_line, token, count, limit, download_id, name, url, updated, media_id, filename, size,
     stamp, content_type) = row  # fmt: skip
    is_file = media_id is not None
    data = {
        "id": str(download_id),
        "filename": Download.name_shown(name=name, filename=filename, url=url, pk=download_id),
        # A link's size is unknown to us; an empty string keeps the field a string.
        "size": compact_size(size) if is_file else "",
        "is_file": is_file,
        "is_link": not is_file,
        "url": url_template.replace(TOKEN_SLOT, token),
        # Beside the seed's keys: the buyer gets a copy stamped with their email.
        "stamped": is_stamped_file(stamp=stamp, content_type=content_type, filename=filename),
    }
    if updated is not None and paid_at is not None and updated > paid_at:
        # Our one addition to the seed's shape, present only for a file replaced after the
        # order was paid ("updated on …"): Unix seconds, like every time in our API.
        data["updated_at"] = int(updated.timestamp())
    return {"limits": {"downloaded": count, "limit": limit}, "data": data}


def line_product(row: tuple) -> dict:
    """One line row (selectors.STOREFRONT_LINE_FIELDS) as a Fileflare product."""
    (_id, _number, _paid, _token, name, variant_name, sku, product_id, external_id, vendor, tags,
     variant_external_id) = row  # fmt: skip
    return {
        "id": str(product_id),
        "name": name,
        "variant_name": variant_name or None,
        "sku": sku or None,
        "product_id": external_id,
        "variant_id": variant_external_id,
        "vendor": vendor or None,
        "tags": tags or [],
    }


def license_key(row: tuple) -> dict:
    """One key (selectors.StorefrontOrder.license_keys) in the licence API's names; the
    expiry in Unix seconds (null: never), like every time in our API."""
    key, status, limit, usage, expires_at = row
    return {
        "key": key,
        "status": status,
        "activation_limit": limit,
        "activation_usage": usage,
        "expires_at": int(expires_at.timestamp()) if expires_at is not None else None,
    }


def customer_account_orders(request):
    """An order's files by its access token, for a custom storefront's account page."""
    if request.method not in ("GET", "HEAD"):
        response = error(
            405, "request.method_not_allowed", f'Method "{request.method}" not allowed; use GET.'
        )
        response["Allow"] = "GET, HEAD"
        return response
    token = request.GET.get("id", "")
    try:
        check_query_parameters(request.GET, QUERY_PARAMETERS)
        if not token:
            raise QueryParameterError(
                {"id": [ErrorDetail("The id query parameter is required.", code="required")]}
            )
    except QueryParameterError as exc:
        response = error_response(exc)
        response["Cache-Control"] = NO_STORE
        return response
    order = selectors.order_storefront_by_token(access_token=token)
    if order is None:
        return error(404, "order.not_found", "No order has this id.")
    # One reverse() for the order, not one per file.
    url_template = site_url(request) + reverse("downloads:download", args=[TOKEN_SLOT])
    by_line: dict = {}
    for row in order.grants:
        by_line.setdefault(row[0], []).append(asset(row, url_template, order.paid_at))
    lines = []
    for line in order.lines:
        item = {"product": line_product(line), "assets": by_line.get(line[0], [])}
        if line[0] in order.license_keys:
            item["license_keys"] = [license_key(key) for key in order.license_keys[line[0]]]
        lines.append(item)
    body = {
        "order": {
            "order_number": order.number,
            "lines": lines,
            "assets": by_line.get(None, []),
        },
        "text": TEXT,
    }
    response = JsonResponse(body)
    response["Cache-Control"] = NO_STORE
    return response


urlpatterns = [
    # With or without the trailing slash, like every route under /api/.
    re_path(
        r"^customer-account-orders/?$",
        customer_account_orders,
        name="storefront-customer-account-orders",
    ),
]
