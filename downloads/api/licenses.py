"""The public licence API, in Lemon Squeezy's License API shape, for the seller's software:

    POST /api/v1/licenses/activate    {license_key, instance_name}
    POST /api/v1/licenses/validate    {license_key, instance_id?}
    POST /api/v1/licenses/deactivate  {license_key, instance_id}

No authentication (no API key, no session, no CSRF): the key is the credential, and the
calls are throttled per client address (`LicenseRateThrottle`, DOWNLOADS_LICENSE_THROTTLE).
Bodies are form-encoded (as Lemon Squeezy's docs send them), multipart or JSON; answers are
always JSON, errors included, in the endpoint's own shape with `error` set:

    {"activated" | "valid" | "deactivated": bool, "error": str | null, "code": str | null,
     "license_key": {...} | null, "instance": {...} | null (not on deactivate), "meta": {...} | null}

`code` (beyond Lemon Squeezy's shape, which clients of it ignore) is null when it worked, else
the merchant API's machine-readable code for the same refusal (`license_key.not_found`,
`parameter.invalid`, `request.malformed`…): the domain's codes, and the merchant API's mapping
of every other exception (exceptions.exception_handler), so the two APIs never disagree.

HTTP statuses, Lemon Squeezy's: 200 answered (a validation of an expired or disabled key too:
`valid` false, the key's `status` says why); 400 activation refused (disabled, expired, at its
limit), a body that is not a form or a JSON object (or JSON nested deeper than the API's bound),
or a query parameter (none is read; the merchant API's rule, views/base.py); 404 an unknown or
malformed key (the same body for both), or an instance the key does not have; 413 a body over
16 KiB; 415 another Content-Type; 422 a field missing, blank, of the wrong type, unknown to the
endpoint (the merchant API's rule for body fields) or holding a lone surrogate; 429 throttled,
with Retry-After. Answers are `Cache-Control: no-store` (they hold the key). Times are ISO 8601
in UTC with microseconds (`2021-01-24T14:15:07.000000Z`), as Lemon Squeezy writes them. The
rules (finding a key, the limit) are services.licences'.
"""

import math
from collections.abc import Mapping
from datetime import UTC

from django.http import HttpResponse
from django.urls import path
from django.utils import timezone
from drf_spectacular.openapi import AutoSchema
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import exceptions, serializers
from rest_framework.negotiation import DefaultContentNegotiation
from rest_framework.parsers import FormParser, MultiPartParser
from rest_framework.permissions import AllowAny
from rest_framework.renderers import JSONRenderer
from rest_framework.views import APIView

from downloads.errors import ServiceError
from downloads.models import LicenseKey
from downloads.services import licences

from .exceptions import exception_handler, service_error_status
from .parsers import LimitedJSONParser
from .throttling import LicenseRateThrottle, rate_limit_headers
from .views.base import MAX_NAMED, check_query_parameters, unknown_fields

_RENDERER = JSONRenderer()
MAX_BODY = 16 * 1024  # a key and a name: a few hundred bytes
TAG = "licenses (public)"
# The statuses in which a key can be used: `valid` on validation.
USABLE = (LicenseKey.Status.ACTIVE, LicenseKey.Status.INACTIVE)
NOT_VALID = {
    LicenseKey.Status.EXPIRED: "This license key has expired.",
    LicenseKey.Status.DISABLED: "This license key is disabled.",
}


def iso(moment) -> str | None:
    """A time as Lemon Squeezy writes it: `2021-01-24T14:15:07.000000Z`."""
    return None if moment is None else moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def key_data(key: LicenseKey, status: str) -> dict:
    return {
        "id": str(key.pk),
        "status": status,
        "key": key.key,
        "activation_limit": key.activation_limit,
        "activation_usage": key.activation_usage,
        "created_at": iso(key.created_at),
        "expires_at": iso(key.expires_at),
    }


def instance_data(instance) -> dict | None:
    if instance is None:
        return None
    return {"id": str(instance.pk), "name": instance.name, "created_at": iso(instance.created_at)}


def meta_data(key: LicenseKey) -> dict:
    """The key's order, product, variant and buyer: Lemon Squeezy's meta, less `store_id` (one
    store here) and `customer_id` (buyers' account ids are not given out)."""
    order = key.order
    customer = order.customer
    variant = key.variant if key.variant_id is not None else None
    return {
        "order_id": str(order.pk),
        "order_number": order.number,
        "order_item_id": str(key.line_id),
        "product_id": str(key.product_id),
        "product_name": key.product.name,
        "variant_id": str(variant.pk) if variant else None,
        "variant_name": variant.name if variant else None,
        "customer_name": (customer.name or None) if customer else None,
        "customer_email": order.email,
    }


class BadInput(Exception):
    """A body the view refuses before any service is asked: its status, message and code
    (a field's refusal is the service's `license_key.invalid`)."""

    def __init__(self, status: int, message: str, code: str = "license_key.invalid"):
        super().__init__(message)
        self.status = status
        self.message = message
        self.code = code


def _text(data: Mapping, name: str, *, required: bool, stored: bool = False) -> str | None:
    """Field `name` of the body: a string, or None when absent, null or blank (a 422 when it
    is `required`). A `stored` one also refuses what the database cannot keep (NUL
    characters, lone surrogates); the others are only ever compared, never stored."""
    value = data.get(name)
    if value is None or (isinstance(value, str) and not value.strip()):
        if required:
            raise BadInput(422, f"{name} is required.")
        return None
    if not isinstance(value, str):
        raise BadInput(422, f"{name} must be a string.")
    if stored:
        if "\x00" in value:
            raise BadInput(422, f"{name} must not contain NUL characters.")
        try:
            value.encode()
        except UnicodeEncodeError:
            raise BadInput(422, f"{name} must be valid Unicode text.") from None
    return value


class AlwaysJSON(DefaultContentNegotiation):
    """Answers are JSON whatever the Accept header says, as Lemon Squeezy's are."""

    def select_renderer(self, request, renderers, format_suffix=None):
        return renderers[0], renderers[0].media_type


class LicenseSchema(AutoSchema):
    """The operations as they are: no security, none of the merchant API's envelope (their
    errors are in their own shape), Retry-After and the rate headers documented."""

    def get_operation_id(self):
        return "license_" + self.path.rstrip("/").rsplit("/", 1)[-1]  # license_validate

    def get_operation(self, *args, **kwargs):
        operation = super().get_operation(*args, **kwargs)
        if operation is None:
            return None
        operation["security"] = []
        rate = {
            "X-RateLimit-Limit": {
                "description": "Requests allowed per period from this address.",
                "schema": {"type": "integer"},
            },
            "X-RateLimit-Remaining": {
                "description": "Requests left in the current period.",
                "schema": {"type": "integer"},
            },
        }
        for code, response in operation["responses"].items():
            headers = response.setdefault("headers", {})
            headers.update(rate)
            if code == "429":
                headers["Retry-After"] = {
                    "description": "Seconds to wait.",
                    "schema": {"type": "integer"},
                }
        return operation


class LicenseView(APIView):
    """What the three endpoints share: no authentication, the address throttle, the body
    rules and the answer's shape (`flag` is its boolean's name)."""

    authentication_classes: list = []
    permission_classes = [AllowAny]
    throttle_classes = [LicenseRateThrottle]
    # The merchant API's JSON parser: nesting bounded before parsing (400), lone surrogates
    # refused naming the attribute (422).
    parser_classes = [LimitedJSONParser, FormParser, MultiPartParser]
    renderer_classes = [JSONRenderer]
    content_negotiation_class = AlwaysJSON
    schema = LicenseSchema()
    object_name = "license_key"  # the merchant API's codes: `license_key.invalid`
    flag: str
    has_instance = True
    # The body's fields, as documented: one instance per endpoint, of which only the field
    # names are read (building a serializer's fields costs ~0.1 ms, a tenth of a validation).
    fields_serializer: serializers.Serializer

    def body(self, request) -> Mapping:
        """The request's fields: a form's or a JSON object's, each one the endpoint takes. No
        query parameter is read: one is refused (400), as the merchant API refuses them."""
        check_query_parameters(request.query_params, ())
        try:
            length = int(request.META.get("CONTENT_LENGTH") or 0)
        except ValueError:
            length = 0
        if length > MAX_BODY:
            raise BadInput(
                413, f"The request body is larger than {MAX_BODY} bytes.", "request.too_large"
            )
        data = request.data
        if not isinstance(data, Mapping):
            raise BadInput(
                400, "The body must be form fields or a JSON object.", "request.malformed"
            )
        # A misspelt field (`instance`, `licence_key`) is refused naming it, never ignored:
        # the merchant API's rule for body fields (views/base.py `unknown_fields`).
        unknown = unknown_fields(data, self.fields_serializer)
        if unknown:
            raise exceptions.ValidationError(
                {
                    name: [exceptions.ErrorDetail("Unknown field.", code="unknown_field")]
                    for name in unknown[:MAX_NAMED]
                }
            )
        return data

    def answer(
        self,
        status: int,
        *,
        ok=False,
        error=None,
        code=None,
        key=None,
        key_status=None,
        instance=None,
    ) -> HttpResponse:
        if key is not None and key_status is None:
            key_status = key.status_at(timezone.now())
        body = {
            self.flag: ok,
            "error": error,
            "code": code,
            "license_key": key_data(key, key_status) if key is not None else None,
        }
        if self.has_instance:
            body["instance"] = instance_data(instance)
        body["meta"] = meta_data(key) if key is not None else None
        # Rendered here by the endpoint's one renderer (a JSON answer whatever was asked, so
        # there is nothing to negotiate): the bytes and Content-Type DRF's Response would
        # give, without its template-response machinery around them.
        return HttpResponse(
            _RENDERER.render(body), status=status, content_type=_RENDERER.media_type
        )

    def handle_exception(self, exc):
        """Every refusal in the endpoint's shape; anything else is a bug (500)."""
        if isinstance(exc, licences.LicenseRefusal):
            status = service_error_status(exc)
            return self.answer(status, error=exc.message, code=exc.code, key=exc.key)
        if isinstance(exc, ServiceError):
            return self.answer(service_error_status(exc), error=exc.message, code=exc.code)
        if isinstance(exc, BadInput):
            return self.answer(exc.status, error=exc.message, code=exc.code)
        if isinstance(exc, exceptions.Throttled):
            response = self.answer(
                429, error="Too many requests: retry after Retry-After seconds.", code="throttled"
            )
            response["Retry-After"] = str(max(math.ceil(exc.wait or 1), 1))
            return response
        # The rest (DRF's and Django's exceptions: a malformed body, a form of more than
        # 1,000 fields, an unknown parameter, a NUL PostgreSQL refuses…) as the merchant API
        # answers them: the same status, code and message, in this endpoint's shape.
        envelope = exception_handler(exc, {"view": self, "request": self.request})
        if envelope is None:
            return super().handle_exception(exc)
        return self.answer(
            envelope.status_code, error=envelope.data["message"], code=envelope.data["code"]
        )

    def finalize_response(self, request, response, *args, **kwargs):
        response = super().finalize_response(request, response, *args, **kwargs)
        for name, value in rate_limit_headers(request).items():
            response[name] = value
        # The answer holds the key: never kept by a browser or a shared cache.
        response["Cache-Control"] = "no-store"
        return response


# --- What the schema shows (the views build their answers by hand: a licence check is hot) ----


class PublicLicenseKeySerializer(serializers.Serializer):
    id = serializers.UUIDField()
    status = serializers.ChoiceField(
        choices=LicenseKey.Status.choices,
        help_text="inactive (no activations), active, expired or disabled.",
    )
    key = serializers.CharField()
    activation_limit = serializers.IntegerField(allow_null=True, help_text="null: unlimited.")
    activation_usage = serializers.IntegerField()
    created_at = serializers.DateTimeField()
    expires_at = serializers.DateTimeField(allow_null=True, help_text="null: never.")


class PublicLicenseInstanceSerializer(serializers.Serializer):
    id = serializers.UUIDField(help_text="Keep it: validate and deactivate take it.")
    name = serializers.CharField()
    created_at = serializers.DateTimeField()


class PublicLicenseMetaSerializer(serializers.Serializer):
    order_id = serializers.UUIDField()
    order_number = serializers.IntegerField()
    order_item_id = serializers.UUIDField(help_text="The order line the key was issued for.")
    product_id = serializers.UUIDField()
    product_name = serializers.CharField()
    variant_id = serializers.UUIDField(allow_null=True)
    variant_name = serializers.CharField(allow_null=True)
    customer_name = serializers.CharField(allow_null=True)
    customer_email = serializers.CharField()


class _Answer(serializers.Serializer):
    error = serializers.CharField(allow_null=True, help_text="null when it worked.")
    code = serializers.CharField(
        allow_null=True,
        help_text="null when it worked; else the machine-readable reason, as the merchant API "
        "names it (license_key.not_found, license_key.limit_reached, parameter.invalid…).",
    )
    license_key = PublicLicenseKeySerializer(allow_null=True, help_text="null: no such key.")
    meta = PublicLicenseMetaSerializer(allow_null=True, help_text="null: no such key.")


class PublicLicenseActivationSerializer(_Answer):
    activated = serializers.BooleanField()
    instance = PublicLicenseInstanceSerializer(allow_null=True, help_text="The new instance.")


class PublicLicenseValidationSerializer(_Answer):
    valid = serializers.BooleanField(help_text="true for an active or inactive key.")
    instance = PublicLicenseInstanceSerializer(
        allow_null=True, help_text="The instance asked about; null without instance_id."
    )


class PublicLicenseDeactivationSerializer(_Answer):
    deactivated = serializers.BooleanField()


class PublicLicenseActivateSerializer(serializers.Serializer):
    license_key = serializers.CharField(help_text="The key as the buyer typed it.")
    instance_name = serializers.CharField(
        max_length=licences.MAX_INSTANCE_NAME, help_text="A label for the new instance."
    )


class PublicLicenseValidateSerializer(serializers.Serializer):
    license_key = serializers.CharField(help_text="The key as the buyer typed it.")
    instance_id = serializers.CharField(
        required=False, help_text="Also check that the key has this instance."
    )


class PublicLicenseDeactivateSerializer(serializers.Serializer):
    license_key = serializers.CharField(help_text="The key as the buyer typed it.")
    instance_id = serializers.CharField(help_text="The instance to deactivate.")


_ERRORS = {
    400: "Refused (disabled, expired, at the activation limit), a malformed body, or a query "
    "parameter (none is read).",
    404: "Unknown or malformed license_key (the same answer), or no such instance of the key.",
    413: f"The body is larger than {MAX_BODY} bytes.",
    415: "Unsupported Content-Type (send a form or JSON).",
    422: "A field is missing, blank, of the wrong type or unknown to the endpoint.",
    429: "Throttled (per client address): retry after Retry-After seconds.",
}


def _docs(summary: str, request, answer, ok: str):
    return extend_schema(
        summary=summary,
        tags=[TAG],
        request=request,
        responses={
            200: OpenApiResponse(answer, description=ok),
            **{code: OpenApiResponse(answer, description=text) for code, text in _ERRORS.items()},
        },
    )


# --- The endpoints ---------------------------------------------------------------------------


@_docs(
    "Activate a licence key",
    PublicLicenseActivateSerializer,
    PublicLicenseActivationSerializer,
    "Activated: a new instance, one more activation used.",
)
class LicenseActivateView(LicenseView):
    """Activate a key on one more instance (an install of the seller's software, by name):
    the answer's `instance.id` is what the software keeps, to validate and deactivate with.
    Refused with 400 when the key is disabled, expired or at its activation limit."""

    flag = "activated"
    fields_serializer = PublicLicenseActivateSerializer()

    def post(self, request):
        data = self.body(request)
        key_text = _text(data, "license_key", required=True)
        name = _text(data, "instance_name", required=True, stored=True)
        answer = licences.license_key_activate(key_text=key_text, instance_name=name)
        return self.answer(200, ok=True, key=answer.key, instance=answer.instance)


@_docs(
    "Validate a licence key",
    PublicLicenseValidateSerializer,
    PublicLicenseValidationSerializer,
    "The key (and the instance asked about): `valid` is false for an expired or disabled "
    "key, whose `status` says which.",
)
class LicenseValidateView(LicenseView):
    """Check a key (and, with `instance_id`, that the key still has that instance): `valid`
    is true while the key is neither expired nor disabled. Changes nothing; one SQL read."""

    flag = "valid"
    fields_serializer = PublicLicenseValidateSerializer()

    def post(self, request):
        data = self.body(request)
        key_text = _text(data, "license_key", required=True)
        instance_id = _text(data, "instance_id", required=False)
        answer = licences.license_key_validate(key_text=key_text, instance_id=instance_id)
        status = answer.key.status_at(timezone.now())
        valid = status in USABLE
        return self.answer(
            200,
            ok=valid,
            error=None if valid else NOT_VALID[status],
            code=None if valid else f"license_key.{status}",  # the refusals' own codes
            key=answer.key,
            key_status=status,
            instance=answer.instance,
        )


@_docs(
    "Deactivate an instance of a licence key",
    PublicLicenseDeactivateSerializer,
    PublicLicenseDeactivationSerializer,
    "Deactivated: the instance is gone, its activation given back.",
)
class LicenseDeactivateView(LicenseView):
    """Deactivate one instance of a key (an uninstall): the instance is deleted and its
    activation given back, so the key can be activated elsewhere."""

    flag = "deactivated"
    fields_serializer = PublicLicenseDeactivateSerializer()
    has_instance = False

    def post(self, request):
        data = self.body(request)
        key_text = _text(data, "license_key", required=True)
        instance_id = _text(data, "instance_id", required=True)
        answer = licences.license_key_deactivate(key_text=key_text, instance_id=instance_id)
        return self.answer(200, ok=True, key=answer.key)


urlpatterns = [
    path("activate", LicenseActivateView.as_view(), name="license-activate"),
    path("validate", LicenseValidateView.as_view(), name="license-validate"),
    path("deactivate", LicenseDeactivateView.as_view(), name="license-deactivate"),
]
