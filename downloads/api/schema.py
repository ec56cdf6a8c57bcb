"""The OpenAPI description of the merchant API (drf-spectacular): the envelopes, every error
status an operation can answer, the filters with their real names (`ids[]`) and bounds, and
SureCart's create body that may or may not be wrapped in `{"download": …}`."""

from django_filters import ChoiceFilter
from drf_spectacular.extensions import (
    OpenApiAuthenticationExtension,
    OpenApiFilterExtension,
    OpenApiSerializerExtension,
    OpenApiSerializerFieldExtension,
)
from drf_spectacular.openapi import AutoSchema
from drf_spectacular.utils import (
    OpenApiParameter,
    OpenApiResponse,
    extend_schema,
    extend_schema_view,
)

from .filters import (
    UNIX_MAX,
    UNIX_MIN,
    BooleanFilter,
    IntegerFilter,
    TextFilter,
    UnixTimeFilter,
    UUIDListFilter,
)
from .serializers.catalogue import DownloadInputSerializer
from .serializers.common import DeletedSerializer, ErrorSerializer

ERROR_DESCRIPTIONS = {
    400: "Malformed request or invalid query parameter.",
    401: "Missing, invalid or revoked credentials.",
    403: "Not a merchant, or a read-only API key writing.",
    404: "No such object.",
    406: "The requested format is not available.",
    409: "The current state forbids it (in use, already exists, wrong order state).",
    413: "The body is too large.",
    415: "Unsupported Content-Type.",
    422: "Invalid body: see validation_errors.",
    429: "Throttled: retry after Retry-After seconds.",
}
RATE_LIMIT_HEADERS = {
    "X-RateLimit-Limit": {
        "description": "Requests allowed per period for this API key.",
        "schema": {"type": "integer"},
    },
    "X-RateLimit-Remaining": {
        "description": "Requests left in the current period.",
        "schema": {"type": "integer"},
    },
}


class ApiAutoSchema(AutoSchema):
    """Adds the error envelope for every status an operation can answer, and the rate-limit
    headers, to the operations of the merchant API."""

    def get_operation(self, *args, **kwargs):
        operation = super().get_operation(*args, **kwargs)
        if operation is None or not self.path.startswith("/api/v1/"):
            return operation
        error_ref = self.resolve_serializer(ErrorSerializer, "response").ref
        statuses = {400, 401, 403, 406, 429}
        if "{" in self.path:
            statuses.add(404)
        if self.method in ("POST", "PUT", "PATCH"):
            statuses |= {409, 413, 415, 422}
        if self.method == "DELETE":
            statuses.add(409)
        path_schema = {"type": "string", "format": "uuid"}
        for parameter in operation.get("parameters", []):
            if parameter["in"] == "path" and parameter["name"] == "id":
                parameter["schema"] = dict(path_schema)
        responses = operation["responses"]
        for code in sorted(statuses):
            response = responses.setdefault(
                str(code),
                {
                    "content": {"application/json": {"schema": error_ref}},
                    "description": ERROR_DESCRIPTIONS[code],
                },
            )
            if code == 429:
                response["headers"] = {
                    "Retry-After": {
                        "description": "Seconds to wait.",
                        "schema": {"type": "integer"},
                    },
                    **RATE_LIMIT_HEADERS,
                }
        for code, response in responses.items():
            if code.startswith("2"):
                response.setdefault("headers", {}).update(RATE_LIMIT_HEADERS)
        return operation


def merchant_api_only(endpoints, **kwargs):
    """PREPROCESSING_HOOKS: the schema describes /api/v1/ (not the storefront JSON)."""
    return [endpoint for endpoint in endpoints if endpoint[0].startswith("/api/v1/")]


# --- Extensions ---------------------------------------------------------------------------------


class ApiKeyAuthenticationScheme(OpenApiAuthenticationExtension):
    target_class = "accounts.authentication.ApiKeyAuthentication"
    name = "ApiKey"

    def get_security_definition(self, auto_schema):
        return {
            "type": "http",
            "scheme": "bearer",
            "description": "`Authorization: Bearer <api key>` (manage.py create_api_key).",
        }


class ConstantFieldExtension(OpenApiSerializerFieldExtension):
    target_class = "downloads.api.serializers.common.ConstantField"

    def map_serializer_field(self, auto_schema, direction):
        return {"type": "string", "enum": [self.target.value]}


class UnixTimeFieldExtension(OpenApiSerializerFieldExtension):
    target_class = "downloads.api.serializers.common.UnixTimeField"

    def map_serializer_field(self, auto_schema, direction):
        schema = {"type": "integer", "description": "Unix time in seconds."}
        if direction == "request":
            schema.update(minimum=UNIX_MIN, maximum=UNIX_MAX)
        return schema


class ExpandableFieldExtension(OpenApiSerializerFieldExtension):
    target_class = "downloads.api.serializers.common.ExpandableField"

    def map_serializer_field(self, auto_schema, direction):
        component = auto_schema.resolve_serializer(self.target.serializer_class, direction)
        return {"oneOf": [{"type": "string", "format": "uuid"}, component.ref]}


class DownloadCreateExtension(OpenApiSerializerExtension):
    """SureCart's `{"download": {...}}`, or the same object bare."""

    target_class = "downloads.api.serializers.catalogue.DownloadCreateSerializer"

    def map_serializer(self, auto_schema, direction):
        inner = auto_schema.resolve_serializer(DownloadInputSerializer, direction).ref
        return {
            "anyOf": [
                {
                    "type": "object",
                    "properties": {"download": inner},
                    "required": ["download"],
                },
                inner,
            ],
            "description": 'SureCart\'s body `{"download": {...}}`; the bare object is accepted too.',
        }


class ApiFilterBackendExtension(OpenApiFilterExtension):
    """The filters of downloads.api.filters with their real names and bounds."""

    target_class = "downloads.api.filters.ApiFilterBackend"
    priority = 1

    def get_schema_operation_parameters(self, auto_schema, *args, **kwargs):
        filterset_class = getattr(auto_schema.view, "filterset_class", None)
        if filterset_class is None:
            return []
        parameters = []
        for name, flt in filterset_class.base_filters.items():
            schema, parameter_name, explode = self._schema(flt), name, False
            if isinstance(flt, UUIDListFilter):
                parameter_name, explode = f"{name}[]", True
            parameter = {
                "name": parameter_name,
                "in": OpenApiParameter.QUERY,
                "required": False,
                "schema": schema,
            }
            if explode:
                parameter.update(style="form", explode=True)
            description = flt.extra.get("help_text")
            if description:
                parameter["description"] = str(description)
            parameters.append(parameter)
        return parameters

    @staticmethod
    def _schema(flt) -> dict:
        extra = flt.extra
        if isinstance(flt, UUIDListFilter):
            return {"type": "array", "items": {"type": "string", "format": "uuid"}, "maxItems": 100}
        if isinstance(flt, UnixTimeFilter):
            return {"type": "integer", "minimum": UNIX_MIN, "maximum": UNIX_MAX}
        if isinstance(flt, IntegerFilter):
            return {"type": "integer", "minimum": extra["min_value"], "maximum": extra["max_value"]}
        if isinstance(flt, BooleanFilter):
            return {"type": "boolean"}
        if isinstance(flt, ChoiceFilter):
            return {"type": "string", "enum": [value for value, _label in extra["choices"]]}
        if isinstance(flt, TextFilter):
            return {"type": "string", "maxLength": extra["max_length"]}
        return {"type": "string"}


# --- Per-viewset documentation ------------------------------------------------------------------


def api_docs(
    name: str,
    output,
    create_input=None,
    update_input=None,
    *,
    delete: bool = False,
    put: bool = False,
    updatable: bool = True,
    multipart: bool = False,
    expand: tuple[str, ...] = (),
    create_existing: str | None = None,
):
    """extend_schema_view for a resource's standard actions (custom actions carry their own
    extend_schema). `create_existing` describes the 200 of an idempotent create that found
    the object it would have made."""
    plural = name if name == "media" else f"{name}s"
    tag = [plural]
    expand_parameters = (
        [
            OpenApiParameter(
                "expand[]",
                {"type": "array", "items": {"type": "string", "enum": list(expand)}},
                OpenApiParameter.QUERY,
                explode=True,
                style="form",
                description="Replace these ids with the objects.",
            )
        ]
        if expand
        else []
    )
    views = {
        "list": extend_schema(
            summary=f"List {plural}",
            tags=tag,
            responses=output(many=True),
            parameters=expand_parameters,
        ),
        "retrieve": extend_schema(
            summary=f"Get a {name}", tags=tag, responses=output, parameters=expand_parameters
        ),
    }
    if create_input is not None:
        request = {"multipart/form-data": create_input} if multipart else create_input
        views["create"] = extend_schema(
            summary=f"Create a {name}",
            tags=tag,
            request=request,
            responses={
                201: output,
                **(
                    {200: OpenApiResponse(output, description=create_existing)}
                    if create_existing
                    else {}
                ),
            },
            parameters=expand_parameters,
        )
        if updatable and not multipart:
            updating = update_input or create_input
            views["partial_update"] = extend_schema(
                summary=f"Update a {name}",
                tags=tag,
                request=updating,
                responses=output,
                parameters=expand_parameters,
            )
            if put:
                views["update"] = extend_schema(
                    summary=f"Update a {name} (EasyCart's PUT)",
                    tags=tag,
                    request=updating,
                    responses=output,
                )
    if delete:
        views["destroy"] = extend_schema(
            summary=f"Delete a {name}",
            tags=tag,
            responses={200: DeletedSerializer},
            description="Deleting what orders still use answers 409: archive it instead.",
        )

    def decorate(viewset):
        viewset = extend_schema_view(**views)(viewset)
        return extend_schema(tags=tag)(viewset)

    return decorate
