"""The API's one error envelope, for everything DRF, Django or the services raise:

    {"http_status": "unprocessable_entity", "code": "download.invalid", "message": "…",
     "validation_errors": [{"attribute": "url", "code": "blank", "message": "…"}]}

Body validation answers 422, a bad query parameter or a malformed body 400. The services'
`ServiceError` carries a namespaced code and no HTTP status: `STATUS_BY_CODE` below is the one
place that turns a domain code into a status (the admin's upload endpoints use it too).
"""

import logging

from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.core.exceptions import RequestDataTooBig, SuspiciousOperation
from django.db import DataError, IntegrityError
from django.db.models import ProtectedError, RestrictedError
from django.http import Http404, JsonResponse
from django.views import defaults
from django.views.decorators.csrf import csrf_exempt
from rest_framework import exceptions, status
from rest_framework.response import Response
from rest_framework.views import set_rollback

from downloads.errors import ServiceError
from downloads.storage import StorageUnavailable

logger = logging.getLogger(__name__)

STATUS_NAMES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    406: "not_acceptable",
    408: "request_timeout",
    409: "conflict",
    410: "gone",
    411: "length_required",
    413: "payload_too_large",
    415: "unsupported_media_type",
    422: "unprocessable_entity",
    429: "too_many_requests",
    500: "internal_server_error",
    503: "service_unavailable",
}


def status_name(code: int) -> str:
    return STATUS_NAMES.get(code) or ("bad_request" if code < 500 else "internal_server_error")


class QueryParameterError(exceptions.ValidationError):
    """A bad query parameter (filter, page, sort…): 400, unlike a bad body (422)."""

    status_code = status.HTTP_400_BAD_REQUEST


class PayloadTooLarge(exceptions.APIException):
    status_code = status.HTTP_413_REQUEST_ENTITY_TOO_LARGE
    default_detail = "The request body is too large."
    default_code = "request.too_large"


def error_body(status_code: int, code: str, message: str, validation_errors=()) -> dict:
    return {
        "http_status": status_name(status_code),
        "code": code,
        "message": message,
        "validation_errors": list(validation_errors),
    }


def flatten_errors(detail, attribute: str = ""):
    """Yield {attribute, code, message} from DRF's nested error structure.

    Nested attributes read `lines[0].quantity`; errors of a whole object have the object's
    attribute (or null at the top)."""
    if isinstance(detail, dict):
        for key, value in detail.items():
            if key in ("non_field_errors", "__all__"):
                name = attribute
            elif isinstance(key, int):
                name = f"{attribute}[{key}]"
            else:
                name = f"{attribute}.{key}" if attribute else str(key)
            yield from flatten_errors(value, name)
    elif isinstance(detail, list):
        for index, item in enumerate(detail):
            if isinstance(item, dict | list):
                yield from flatten_errors(item, f"{attribute}[{index}]")
            else:
                yield from flatten_errors(item, attribute)
    else:
        yield {
            "attribute": attribute or None,
            "code": getattr(detail, "code", None) or "invalid",
            "message": str(detail),
        }


def _object_name(context) -> str:
    view = (context or {}).get("view")
    return getattr(view, "object_name", None) or "request"


# The HTTP status of each domain error code that is not a plain 422 (the input breaks a
# rule). 409: valid, but the current state forbids it.
STATUS_BY_CODE = {
    "backfill.done": 409,
    "channel_event.not_found": 404,
    "checkout.unavailable": 503,
    "download.archived": 409,
    "download.in_use": 409,
    "grant.exists": 409,
    "grant.in_use": 409,
    "license_instance.not_found": 404,
    "license_key.disabled": 400,
    "license_key.expired": 400,
    "license_key.limit_below_usage": 409,
    "license_key.limit_reached": 400,
    "license_key.not_found": 404,
    "media.in_use": 409,
    "media.too_large": 413,
    "media_upload.completed": 409,
    "media_upload.expired": 403,
    "media_upload.forbidden": 403,
    "media_upload.incomplete": 400,
    "media_upload.length_required": 411,
    "media_upload.missing": 409,
    "media_upload.not_found": 404,
    "media_upload.not_local": 404,
    "media_upload.received": 409,
    "media_upload.timeout": 408,
    "order.busy": 409,
    "order.exists": 409,
    "order.invalid_state": 409,
    "order.number_taken": 409,
    "order.token_taken": 409,
    "product.in_use": 409,
    "storage.unavailable": 503,
    "stripe_event.malformed": 400,
    "stripe_event.unverified": 400,
    "variant.in_use": 409,
    "webhook_delivery.delivered": 409,
}


def service_error_status(exc: ServiceError) -> int:
    """The HTTP status that answers a domain error."""
    return STATUS_BY_CODE.get(exc.code, status.HTTP_422_UNPROCESSABLE_ENTITY)


def storage_unavailable_answer(exc: StorageUnavailable) -> dict:
    """The store could not be reached: 503 with `Retry-After`, as keyword arguments of a
    response (`Response(**…)`, `JsonResponse(**…)` takes `data` as its first argument)."""
    return {
        "data": error_body(503, exc.code, exc.message),
        "status": 503,
        "headers": {"Retry-After": str(exc.retry_after)},
    }


def service_error_body(exc: ServiceError) -> dict:
    """The envelope of a domain error: its code, message and, when it names an attribute,
    that attribute with the reason."""
    errors = []
    if exc.attribute:
        errors.append(
            {"attribute": exc.attribute, "code": exc.reason or exc.code, "message": exc.message}
        )
    return error_body(service_error_status(exc), exc.code, exc.message, errors)


def exception_handler(exc, context):
    """DRF's EXCEPTION_HANDLER: every error as the envelope; None (a 500) only for bugs."""
    object_name = _object_name(context)
    headers = {}
    errors: list = []
    if isinstance(exc, Http404):
        exc = exceptions.NotFound()
    elif isinstance(exc, DjangoPermissionDenied):
        exc = exceptions.PermissionDenied()
    elif isinstance(exc, RequestDataTooBig):
        exc = PayloadTooLarge(str(exc) or None)
    elif isinstance(exc, SuspiciousOperation):
        exc = exceptions.ParseError(str(exc) or None, code="request.malformed")

    if isinstance(exc, StorageUnavailable):  # a ServiceError with a Retry-After
        set_rollback()
        return Response(**storage_unavailable_answer(exc))
    if isinstance(exc, ServiceError):
        set_rollback()
        return Response(service_error_body(exc), status=service_error_status(exc))

    if isinstance(exc, ProtectedError | RestrictedError):
        status_code = status.HTTP_409_CONFLICT
        code = f"{object_name}.in_use"
        message = f"This {object_name} is still used by orders; archive it instead of deleting it."
    elif isinstance(exc, IntegrityError):
        logger.warning("IntegrityError answered 409: %s", exc)
        status_code, code = status.HTTP_409_CONFLICT, f"{object_name}.conflict"
        message = "The request conflicts with the current state of the store."
    elif isinstance(exc, DataError):
        # Inputs are validated before they reach the database; this is the safety net.
        logger.warning("DataError answered 400: %s", exc)
        status_code, code = status.HTTP_400_BAD_REQUEST, "request.invalid"
        message = "A value in the request is out of range or malformed."
    elif isinstance(exc, exceptions.APIException):
        status_code = exc.status_code
        if getattr(exc, "auth_header", None):
            headers["WWW-Authenticate"] = exc.auth_header
        if getattr(exc, "wait", None):
            headers["Retry-After"] = str(int(exc.wait) + (exc.wait % 1 > 0))
        if isinstance(exc, exceptions.ValidationError):
            errors = list(flatten_errors(exc.detail))
            if isinstance(exc, QueryParameterError):
                code = "parameter.invalid"
            else:
                status_code = status.HTTP_422_UNPROCESSABLE_ENTITY
                code = f"{object_name}.invalid"
            first = errors[0] if errors else None
            message = (
                (
                    f"{first['attribute']}: {first['message']}"
                    if first["attribute"]
                    else first["message"]
                )
                if first
                else "The request is invalid."
            )
        else:
            codes = exc.get_codes()
            code = codes if isinstance(codes, str) else exc.default_code
            detail = exc.detail
            message = str(detail) if not isinstance(detail, dict | list) else exc.default_detail
            if code == "method_not_allowed":
                code = "request.method_not_allowed"
            elif code == "parse_error":
                code = "request.malformed"
            elif code == "unsupported_media_type":
                code = "request.unsupported_media_type"
    else:
        return None

    set_rollback()
    return Response(
        error_body(status_code, code, str(message), errors), status=status_code, headers=headers
    )


# --- Django's own error pages, as JSON under /api/ ----------------------------------------------


def _is_api(request) -> bool:
    return request.path.startswith("/api/")


def handler400(request, exception=None):
    if _is_api(request):
        return JsonResponse(
            error_body(400, "request.malformed", "The request is malformed."), status=400
        )
    return defaults.bad_request(request, exception)


def handler403(request, exception=None):
    if _is_api(request):
        return JsonResponse(error_body(403, "forbidden", "Access is forbidden."), status=403)
    return defaults.permission_denied(request, exception)


def handler404(request, exception=None):
    if _is_api(request):
        return JsonResponse(
            error_body(404, "not_found", f"There is nothing at {request.path}."), status=404
        )
    return defaults.page_not_found(request, exception)


@csrf_exempt  # any method: a POST to an unknown route is a 404 too, not a CSRF page
def route_not_found(request, *args, **kwargs):
    """The last route under /api/: nothing here, as the API's JSON envelope, whatever DEBUG
    says (Django's debug 404 page is HTML)."""
    response = JsonResponse(
        error_body(404, "route.not_found", f"There is no API route at {request.path[:200]}."),
        status=404,
    )
    response["Cache-Control"] = "no-store"
    return response


def error_response(exc: exceptions.APIException) -> JsonResponse:
    """`exc` as the envelope, for the plain Django views under /api/ (the storefront JSON)."""
    response = exception_handler(exc, {})
    json_response = JsonResponse(response.data, status=response.status_code)
    for header in ("Retry-After", "WWW-Authenticate"):
        if response.has_header(header):
            json_response[header] = response[header]
    return json_response


def handler500(request):
    if _is_api(request):
        return JsonResponse(
            error_body(500, "server_error", "Something went wrong on our side; it was logged."),
            status=500,
        )
    return defaults.server_error(request)
