"""The OpenAPI description of the merchant API (drf-spectacular): the envelopes, every error
status an operation can answer, the filters with their real names (`ids[]`) and bounds, each
create and update body bare or in SureCart's wrapper (`{"product": {...}}`), with filled-in
examples, and the fixes that let generated clients work with their default settings:

- OpenAPI 3.0's `nullable` counts only beside a `type`: `openapi_30_nullables` rewrites every
  nullable `oneOf`/`anyOf`/`allOf`/`$ref` into a `oneOf` with an explicit null member.
- No enum lists values that differ only in case (generators turn them into duplicate names);
  tests/downloads/api/test_schema_clients.py lints the whole document for both.
"""

import copy

from django_filters import ChoiceFilter
from drf_spectacular.extensions import (
    OpenApiAuthenticationExtension,
    OpenApiFilterExtension,
    OpenApiSerializerFieldExtension,
)
from drf_spectacular.openapi import AutoSchema
from drf_spectacular.plumbing import ResolvedComponent
from drf_spectacular.utils import (
    OpenApiExample,
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
    # Only where a view lists them in `error_statuses` ({action: {status, …}}):
    408: "The request body stopped arriving; nothing was kept: send it again.",
    503: "A service the store needs (its file storage) is unreachable: retry after Retry-After.",
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
        action = getattr(self.view, "action", None)
        statuses |= set(getattr(self.view, "error_statuses", {}).get(action, ()))
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
            if code in (429, 503):
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
        self._document_wrapper(operation)
        return operation

    def _document_wrapper(self, operation) -> None:
        """A create or update body may come bare or wrapped in the resource's name, as
        SureCart sends it (views/base.py `ApiViewSet.request_body`): `anyOf` of the two."""
        view = self.view
        wrapper = getattr(view, "object_name", None)
        if getattr(view, "action", None) not in WRAPPED_ACTIONS or not wrapper:
            return
        content = operation.get("requestBody", {}).get("content", {})
        media = content.get("application/json")
        if not media or "$ref" not in media.get("schema", {}):
            return
        bare = media["schema"]
        name = bare["$ref"].rsplit("/", 1)[1]
        wrapped = ResolvedComponent(
            name=f"Wrapped{name}",
            type=ResolvedComponent.SCHEMA,
            object=f"Wrapped{name}",
            schema={
                "type": "object",
                "description": f'SureCart\'s form: `{{"{wrapper}": {{...}}}}`.',
                "properties": {wrapper: bare},
                "required": [wrapper],
                "additionalProperties": False,
            },
        )
        self.registry.register_on_missing(wrapped)
        media["schema"] = {
            "anyOf": [bare, wrapped.ref],
            "description": f'The object, bare or wrapped as `{{"{wrapper}": {{...}}}}`.',
        }

    def get_examples(self):
        examples = super().get_examples()
        if examples or not self.path.startswith("/api/v1/"):
            return examples
        key = (getattr(self.view, "object_name", None), getattr(self.view, "action", None))
        return request_examples(*key)


def merchant_api_only(endpoints, **kwargs):
    """PREPROCESSING_HOOKS: the schema describes /api/v1/ (not the storefront JSON), each path
    once, without the optional trailing slash the routes also accept (urls.py)."""
    described = []
    for path, path_regex, method, callback in endpoints:
        if path.startswith("/api/v1/"):
            described.append((path.rstrip("/"), path_regex, method, callback))
    return described


# A schema that accepts null and nothing else, under OpenAPI 3.0 (`nullable` only counts
# beside a `type`; `enum: [null]` keeps every object out). openapi-python-client reads it as
# None, TypeScript generators as `null`.
NULL_SCHEMA = {"type": "object", "nullable": True, "enum": [None]}
_COMPOSITES = ("oneOf", "anyOf", "allOf")


def _accepts_null(schema: dict, components: dict) -> bool:
    """Whether `schema` (a member of a composite) already admits null on its own."""
    if "$ref" in schema:
        schema = components.get(schema["$ref"].rsplit("/", 1)[1], {})
    if "type" in schema:
        return schema.get("nullable") is True and None in schema.get("enum", [None])
    return any(
        _accepts_null(member, components)
        for key in ("oneOf", "anyOf")
        for member in schema.get(key, [])
    )


def _nullable_without_type(schema: dict, components: dict) -> None:
    """Rewrite one schema whose `nullable: true` has no `type` beside it (ignored under 3.0)
    into a `oneOf` of what it was and NULL_SCHEMA; its description and flags stay."""
    del schema["nullable"]
    if "$ref" in schema:
        members = [{"$ref": schema.pop("$ref")}]
    elif "allOf" in schema:
        parts = schema.pop("allOf")
        members = parts if len(parts) == 1 else [{"allOf": parts}]
    else:
        key = "oneOf" if "oneOf" in schema else "anyOf"
        members = schema.pop(key)
        if not any(_accepts_null(member, components) for member in members):
            members.append(dict(NULL_SCHEMA))
        schema[key] = members
        return
    schema["oneOf"] = [*members, dict(NULL_SCHEMA)]


def _member_type(schema: dict, components: dict) -> str | None:
    if "$ref" in schema:
        schema = components.get(schema["$ref"].rsplit("/", 1)[1], {})
    return schema.get("type") or ("object" if "properties" in schema else None)


def _overlapping_one_of(schema: dict, components: dict) -> None:
    """A `oneOf` of members of one type (drf-spectacular's blank URL: a `uri` string or an
    empty one) becomes an `anyOf`: "" is valid under both, which `oneOf` refuses."""
    types = [_member_type(member, components) for member in schema["oneOf"]]
    if None in types or len(set(types)) != len(types):
        schema["anyOf"] = schema.pop("oneOf")


def openapi_30_nullables(result, generator=None, request=None, public=None):
    """POSTPROCESSING_HOOKS: every schema that means "this, or null" says so in a form OpenAPI
    3.0 validators and client generators read (see NULL_SCHEMA), and no `oneOf` holds
    members a value can match twice."""
    components = result.get("components", {}).get("schemas", {})

    def walk(node):
        if isinstance(node, dict):
            if "oneOf" in node:
                _overlapping_one_of(node, components)
            composite = "$ref" in node or any(key in node for key in _COMPOSITES)
            if composite and node.get("nullable") is True and "type" not in node:
                _nullable_without_type(node, components)
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(result)
    return result


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


# --- Request examples (shown filled in by /api/docs/) -------------------------------------------

# The actions whose JSON body may come in SureCart's wrapper (views/base.py).
WRAPPED_ACTIONS = ("create", "update", "partial_update")

_PRODUCT_ID = "608aeae7-52c1-4e7c-a902-603f33f589af"
_MEDIA_ID = "3668c771-7538-4adf-ac71-328b81b63222"
_DOWNLOAD_ID = "cd13e33f-95e4-48fd-838f-28c8c65d4828"
_ORDER_ID = "5b1f7f0e-2c43-4d8e-9a61-0c1d2e3f4a5b"
_LINE_ID = "9e8d7c6b-5a49-4837-a625-1f0e2d3c4b5a"

# (object_name, action) -> [(summary, body)]; a create or update also gets its body wrapped.
REQUEST_EXAMPLES: dict[tuple[str, str], list[tuple[str, dict]]] = {
    ("product", "create"): [
        (
            "A priced product",
            {
                "name": "Field guide (PDF)",
                "sku": "GUIDE-PDF",
                "vendor": "Northwind Press",
                "tags": ["guide", "pdf"],
                "price": 1900,
                "download_limit": 5,
                "download_expiry_days": 30,
            },
        )
    ],
    ("product", "partial_update"): [("Change the price", {"price": 2400})],
    ("variant", "create"): [
        (
            "A variant with its own price",
            {"product": _PRODUCT_ID, "name": "EPUB edition", "sku": "GUIDE-EPUB", "price": 1500},
        )
    ],
    ("variant", "partial_update"): [("Use the product's price", {"price": None})],
    ("download", "create"): [
        ("A stored file on a product", {"media": _MEDIA_ID, "product": _PRODUCT_ID}),
        (
            "An external link (needs a name)",
            {"url": "https://videos.example.com/course", "name": "Video course"},
        ),
    ],
    ("download", "partial_update"): [("Archive it", {"archived": True})],
    ("order", "create"): [
        (
            "A paid order by SKU, once per external_id",
            {
                "email": "buyer@example.com",
                "external_id": "pos-7781",
                "status": "paid",
                "tax": 190,
                "lines": [{"sku": "GUIDE-PDF", "quantity": 1}],
            },
        ),
        (
            "A pending order by product",
            {"email": "buyer@example.com", "lines": [{"product": _PRODUCT_ID, "quantity": 2}]},
        ),
    ],
    ("order", "refund"): [
        ("The whole order", {}),
        ("Some lines (only their grants are revoked)", {"line_ids": [_LINE_ID]}),
        ("An amount alone (revokes nothing)", {"amount": 500}),
    ],
    ("order", "attach"): [("Downloads by id", {"download_ids": [_DOWNLOAD_ID]})],
    ("order", "detach"): [("Fileflare's asset_ids", {"asset_ids": [_DOWNLOAD_ID]})],
    ("grant", "create"): [
        (
            "Three downloads until the end of 2026",
            {
                "order_id": _ORDER_ID,
                "download": _DOWNLOAD_ID,
                "download_limit": 3,
                "expires_at": 1798761600,
            },
        )
    ],
    ("grant", "update"): [("A new limit", {"download_limit": 10, "expires_at": None})],
    ("grant", "partial_update"): [("Give downloads back", {"download_count": 0})],
    ("grant", "extend"): [("A week more", {"days": 7}), ("Never expire", {"expires_at": None})],
    ("media", "upload_start"): [
        (
            "A PDF sent straight to storage",
            {"filename": "guide.pdf", "byte_size": 5242880, "content_type": "application/pdf"},
        )
    ],
    ("webhook_endpoint", "create"): [
        (
            "Orders and grants",
            {
                "url": "https://hooks.example.com/store",
                "description": "Fulfilment",
                "event_types": ["order.paid", "grant.created"],
            },
        )
    ],
    ("webhook_endpoint", "partial_update"): [("Pause it", {"is_active": False})],
    ("license_key", "partial_update"): [
        ("Allow three activations", {"activation_limit": 3}),
        ("Disable the key", {"disabled": True}),
    ],
    ("download_version", "create"): [
        (
            "A new file, buyers told",
            {"media": _MEDIA_ID, "changelog": "Chapter 3 rewritten.", "notify_buyers": True},
        )
    ],
    ("backfill", "create"): [("Deliver and email", {"notify_buyers": True})],
}


def request_examples(object_name: str | None, action: str | None) -> list[OpenApiExample]:
    """The filled-in request bodies of an operation: REQUEST_EXAMPLES, and for a create or
    update the first one again in SureCart's wrapper."""
    bodies = REQUEST_EXAMPLES.get((object_name, action), [])
    examples = [
        OpenApiExample(
            f"example_{number}", summary=summary, value=copy.deepcopy(body), request_only=True
        )
        for number, (summary, body) in enumerate(bodies, 1)
    ]
    if bodies and action in WRAPPED_ACTIONS:
        summary, body = bodies[0]
        examples.append(
            OpenApiExample(
                "wrapped",
                summary=f"{summary}, in SureCart's wrapper",
                value={object_name: copy.deepcopy(body)},
                request_only=True,
            )
        )
    return examples


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
    create_output=None,
):
    """extend_schema_view for a resource's standard actions (custom actions carry their own
    extend_schema). `create_existing` describes the 200 of an idempotent create that found
    the object it would have made; `create_output` is what a create answers when it is not
    `output` (a webhook endpoint shows its secret once)."""
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
                201: create_output or output,
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
