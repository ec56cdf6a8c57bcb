"""What every viewset of the merchant API shares: `ApiViewSet` (JSON in, the envelopes out,
throttling with headers on every answer, ids checked before they reach the database, unknown
query parameters and body fields refused, SureCart's wrapped bodies read, no caching of
answers), and the helpers a view uses to read a request. The JSON parser (size, depth, no
lone surrogates) is in ../parsers.py.

Rules owned here (for every resource, not per viewset):
- A query parameter the action does not read is a 400 `parameter.invalid` naming it
  (`check_query_parameters`; the storefront JSON uses the same rule), so `order_id=` where
  `order_ids[]` is meant never silently lists everything.
- A create or update body may be the object or SureCart's `{"<object>": {...}}`
  (`unwrap_body`); a wrapper naming another resource is a 400 `request.wrong_wrapper`.
- A body field the action does not take (neither an input nor an output field: a fetched
  object may be sent back) is a 422 `<object>.invalid` with code `unknown_field`, so a
  misspelt or misplaced field (`{"refund": {"line_ids": …}}`) is never silently dropped.

Views are thin: each action validates its input with a serializer, calls one service (writes)
or a queryset with its joins (reads), and renders the output serializer. Business rules live
in downloads/services/, shared with the admin."""

import uuid

from rest_framework import exceptions, serializers, status, viewsets
from rest_framework.response import Response

from .. import filters
from ..exceptions import QueryParameterError
from ..pagination import ApiPagination
from ..parsers import (
    LimitedJSONParser,
    content_length,  # noqa: F401 (the views read it from here)
    printable,
)
from ..schema import WRAPPED_ACTIONS
from ..throttling import ApiKeyRateThrottle, rate_limit_headers

# Every resource's `object` name, filled in as the viewsets are defined: a body wrapped in
# one of them on another resource's endpoint is a wrong wrapper, not a missing field.
RESOURCE_NAMES: set[str] = set()
MAX_NAMED = 10  # unknown parameters or fields named in one answer


def check_query_parameters(query_params, known) -> None:
    """An unknown query parameter is a 400 naming it, not silently ignored (`order_id=` where
    `order_ids[]` is meant would otherwise list everything)."""
    unknown = sorted(set(query_params) - set(known))
    if unknown:
        raise QueryParameterError(
            {printable(name)[:100]: ["Unknown query parameter."] for name in unknown[:MAX_NAMED]},
            code="unknown_parameter",
        )


def unwrap_body(data, object_name: str):
    """A create or update body: SureCart's `{"<object_name>": {...}}` or the bare object.

    A wrapper around anything but an object, or beside other keys, is a 400; so is an object
    wrapped in another resource's name (`{"download": {...}}` sent to products)."""
    if not isinstance(data, dict):
        return data
    if object_name in data:
        inner = data[object_name]
        if not isinstance(inner, dict) or len(data) != 1:
            raise exceptions.ParseError(
                f'A wrapped body is {{"{object_name}": {{...}}}} and nothing beside it.',
                code="request.wrapper_invalid",
            )
        return inner
    if len(data) == 1:
        (name,) = data
        if name in RESOURCE_NAMES and isinstance(data[name], dict):
            raise exceptions.ParseError(
                f'This endpoint takes a {object_name}: send {{"{object_name}": {{...}}}} or the '
                f'bare object, not {{"{printable(name)[:64]}": {{...}}}}.',
                code="request.wrong_wrapper",
            )
    return data


def unknown_fields(data, serializer, path: str = "", tolerated=frozenset()) -> list[str]:
    """The attributes (`lines[0].sku_code`) of `data` that `serializer` does not take:
    neither a writable field nor, at the top, one of `tolerated` (the output's fields)."""
    found: list[str] = []
    if isinstance(serializer, serializers.ListSerializer):
        if isinstance(data, list):
            for index, item in enumerate(data[:1000]):
                found += unknown_fields(item, serializer.child, f"{path}[{index}]")
        return found
    if not isinstance(serializer, serializers.Serializer) or not isinstance(data, dict):
        return found
    fields = serializer.fields
    for key, value in data.items():
        field = fields.get(key)
        name = f"{path}.{printable(str(key))}" if path else printable(str(key))
        if field is not None and not field.read_only:
            found += unknown_fields(value, field, name)
        elif key not in tolerated:
            found.append(name)
    return found


class ApiViewSet(viewsets.GenericViewSet):
    # What every resource shares: JSON in, the envelopes out, throttling with headers on
    # every answer, ids checked before they reach the database. (No docstring: subclasses'
    # docstrings describe their resource in the schema.)

    object_name = "object"
    parser_classes = [LimitedJSONParser]
    pagination_class = ApiPagination
    filter_backends = [filters.ApiFilterBackend, filters.SearchBackend, filters.SortBackend]
    throttle_classes = [ApiKeyRateThrottle]
    lookup_value_regex = "[^/]+"
    sort_fields = {"created_at": "created_at"}
    search_fields: tuple = ()
    output_serializer_class = None
    input_serializer_class = None
    update_serializer_class = None
    # The fields `expand[]` may name (downloads: media, product, variant).
    expandable: tuple[str, ...] = ()
    # Error statuses an action answers beyond the usual ones, for the schema (schema.py):
    # e.g. {"create": {408, 503}}.
    error_statuses: dict[str, set[int]] = {}

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        if cls.object_name != "object":
            RESOURCE_NAMES.add(cls.object_name)

    # --- request life cycle ---

    def perform_authentication(self, request):
        try:
            request.user  # noqa: B018 (authenticates)
        except exceptions.AuthenticationFailed:
            # Count failed keys too (by IP), so guessing keys is throttled like everything else.
            self.check_throttles(request)
            raise

    def check_permissions(self, request):
        # Throttle first, so forbidden requests are counted and get the rate-limit headers.
        self.check_throttles(request)
        super().check_permissions(request)

    def check_throttles(self, request):
        if getattr(request, "throttle_checked", False):
            return
        request.throttle_checked = True
        super().check_throttles(request)

    def initial(self, request, *args, **kwargs):
        super().initial(request, *args, **kwargs)
        for name, values in request.query_params.lists():
            for text in (name, *values):
                if "\x00" in text:
                    raise QueryParameterError(
                        {printable(name): ["Null characters are not allowed."]},
                        code="null_characters_not_allowed",
                    )
                if printable(text) != text:
                    raise QueryParameterError(
                        {printable(name): ["Text must be valid Unicode."]}, code="invalid"
                    )
        check_query_parameters(request.query_params, self.known_query_parameters())

    def finalize_response(self, request, response, *args, **kwargs):
        response = super().finalize_response(request, response, *args, **kwargs)
        for header, value in rate_limit_headers(request).items():
            response[header] = value
        # Answers carry customers' data and links (an order's customer_page_url is a bearer
        # link): no shared or browser cache keeps them.
        if not response.has_header("Cache-Control"):
            response["Cache-Control"] = "no-store, private"
        return response

    # --- helpers ---

    def get_serializer_class(self):
        if self.action in ("create",) and self.input_serializer_class:
            return self.input_serializer_class
        if self.action in ("update", "partial_update"):
            return self.update_serializer_class or self.input_serializer_class
        return self.output_serializer_class

    def parse_pk(self, value):
        try:
            return uuid.UUID(str(value))
        except ValueError:
            return None

    def find(self, queryset, value, *, object_name: str, noun: str | None = None):
        """The object of `queryset` whose id is `value`, or a 404 `<object_name>.not_found`
        (a malformed id is unknown too: it never reaches the database)."""
        pk = self.parse_pk(value)
        found = queryset.filter(pk=pk).first() if pk is not None else None
        if found is None:
            raise exceptions.NotFound(
                f"No {noun or object_name} with id {value!s:.64}.",
                code=f"{object_name}.not_found",
            )
        return found

    def get_object(self):
        value = self.kwargs.get(self.lookup_url_kwarg or self.lookup_field)
        return self.find(self.get_queryset(), value, object_name=self.object_name)

    def request_body(self):
        """The request's JSON body; a create's or update's unwrapped (`unwrap_body`)."""
        data = self.request.data
        if self.action in WRAPPED_ACTIONS:
            return unwrap_body(data, self.object_name)
        return data

    def validated(self, serializer_class, data=None, **kwargs) -> dict:
        """The request's body (or `data`) validated by `serializer_class`; a body field it
        does not take is a 422 naming it (see the module)."""
        from_request = data is None
        serializer = serializer_class(
            data=self.request_body() if from_request else data,
            context=self.get_serializer_context(),
            **kwargs,
        )
        if from_request:
            # A create or update may send back the object as it was read.
            output = self.output_serializer_class
            echo = self.action in WRAPPED_ACTIONS and output is not None
            tolerated = frozenset(output().fields) if echo else frozenset()
            # The browsable API's HTML forms post Django's CSRF token beside the fields.
            tolerated |= {"csrfmiddlewaretoken"}
            unknown = unknown_fields(serializer.initial_data, serializer, tolerated=tolerated)
            if unknown:
                raise exceptions.ValidationError(
                    {
                        name: [exceptions.ErrorDetail("Unknown field.", code="unknown_field")]
                        for name in unknown[:MAX_NAMED]
                    }
                )
        serializer.is_valid(raise_exception=True)
        return serializer.validated_data

    def render(self, instance, status_code=status.HTTP_200_OK, *, serializer_class=None):
        """`instance` through `serializer_class` (default: the output serializer)."""
        serializer_class = serializer_class or self.output_serializer_class
        serializer = serializer_class(instance, context=self.get_serializer_context())
        return Response(serializer.data, status=status_code)

    def render_fresh(self, instance, status_code=status.HTTP_200_OK):
        """Re-read through get_queryset (joins and prefetches) and render."""
        return self.render(self.get_queryset().get(pk=instance.pk), status_code)

    def deleted(self, instance_id):
        return Response({"id": str(instance_id), "object": self.object_name, "deleted": True})

    # --- the standard actions ---

    # Query parameters every list reads besides its filter set's (pagination, search, sort,
    # DRF's format); a `[]` suffix is accepted on list-valued ones only. Every other action
    # reads `format`, and `expand[]` where the resource has expandable fields.
    list_parameters = frozenset(
        {"page", "limit", "perpage", "sort", "sortby", "sortdir", "search", "format"}
    )
    list_array_parameters = frozenset({"ids"})

    def known_query_parameters(self) -> set[str]:
        """The query parameters this request's action reads (`check_query_parameters`)."""
        known, arrays = {"format"}, {"expand"} if self.expandable else set()
        if self.action == "list":
            known |= self.list_parameters
            arrays |= self.list_array_parameters
            filterset_class = getattr(self, "filterset_class", None)
            for name, filter_ in getattr(filterset_class, "base_filters", {}).items():
                widget = getattr(filter_.field_class, "widget", None)
                if isinstance(widget, type) and issubclass(widget, filters.ArrayWidget):
                    arrays.add(name)
                else:
                    known.add(name)
        return known | arrays | {f"{name}[]" for name in arrays}

    def list(self, request, *args, **kwargs):
        queryset = self.filter_queryset(self.get_queryset())
        page = self.paginate_queryset(queryset)
        serializer = self.output_serializer_class(
            page, many=True, context=self.get_serializer_context()
        )
        return self.get_paginated_response(serializer.data)

    def retrieve(self, request, *args, **kwargs):
        return self.render(self.get_object())
