"""Shopify's webhooks: `POST /channels/shopify/webhooks`.

The receiver only checks the delivery and hands it to the inbox: Shopify's HMAC first
(`services.shopify.webhook_verify`; nothing is read or stored before it passes), then its
id, topic and JSON body, then `channel_event_receive`, which stores it once and enqueues its
processing. It answers `{"received": true}` at once; what the event does to the store is
decided in the background (`services.shopify.event_process`).

Answers: 404 when SHOPIFY_WEBHOOK_SECRET is unset, 401 for a wrong or missing HMAC or
another shop, 400 for a verified delivery without an id or topic or whose body is not a JSON
object, 405 for anything but POST; errors in the API's envelope.
"""

import json

from django.core.exceptions import RequestDataTooBig
from django.http import JsonResponse
from django.views.decorators.csrf import csrf_exempt

from downloads.api.exceptions import error_body
from downloads.models import Order
from downloads.services import shopify
from downloads.services.channels import channel_event_receive

RECEIVED = {"received": True}


def _error(status: int, code: str, message: str) -> JsonResponse:
    return JsonResponse(error_body(status, code, message), status=status)


@csrf_exempt
def webhook(request):
    """Verify one Shopify delivery and put it in the inbox."""
    if request.method != "POST":
        response = _error(405, "request.method_not_allowed", "Use POST.")
        response["Allow"] = "POST"
        return response
    if not shopify.webhook_configured():
        return _error(404, "not_found", "Shopify webhooks are not enabled on this store.")
    try:
        body = request.body
    except RequestDataTooBig:
        return _error(413, "request.too_large", "The request body is too large.")
    if not shopify.webhook_verify(
        body=body,
        hmac_header=request.headers.get("X-Shopify-Hmac-Sha256"),
        shop_domain=request.headers.get("X-Shopify-Shop-Domain"),
    ):
        return _error(401, "shopify_webhook.unverified", "The webhook's HMAC does not verify.")
    event_id = (request.headers.get("X-Shopify-Webhook-Id") or "").strip()
    topic = (request.headers.get("X-Shopify-Topic") or "").strip()
    if not event_id or not topic:
        return _error(
            400,
            "shopify_webhook.malformed",
            "X-Shopify-Webhook-Id and X-Shopify-Topic are required.",
        )
    try:
        payload = json.loads(body)
    except ValueError:
        payload = None
    if not isinstance(payload, dict):
        return _error(400, "request.malformed", "The body is not a JSON object.")
    channel_event_receive(
        channel=Order.Channel.SHOPIFY, event_id=event_id, event_type=topic, payload=payload
    )
    return JsonResponse(RECEIVED)
