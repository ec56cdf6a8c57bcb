"""What every viewset of the merchant API shares: `ApiViewSet` (JSON in, the envelopes out,
throttling with headers on every answer, ids checked before they reach the database, unknown
list parameters refused, no caching of answers), and the helpers a view uses to read a
request. The JSON parser (size, depth, no lone surrogates) is in ../parsers.py.

Views are thin: each action validates its input with a serializer, calls one service (writes)
or a queryset with its joins (reads), and renders the output serializer. Business rules live
in downloads/services/, shared with the admin."""

import uuid

from rest_framework import exceptions, status, viewsets
from rest_framework.response import Response

from .. import filters
from ..exceptions import QueryParameterError
from ..pagination import ApiPagination
from ..parsers import (
    LimitedJSONParser,
    content_length,  # noqa: F401 (the views read it from here)
    printable,
)
from ..throttling import ApiKeyRateThrottle, rate_limit_headers


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

    def validated(self, serializer_class, data=None, **kwargs) -> dict:
        serializer = serializer_class(
            data=self.request.data if data is None else data,
            context=self.get_serializer_context(),
            **kwargs,
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
    # expand, DRF's format); a `[]` suffix is accepted on list-valued ones only.
    list_parameters = frozenset(
        {"page", "limit", "perpage", "sort", "sortby", "sortdir", "search", "format"}
    )
    list_array_parameters = frozenset({"ids", "expand"})

    def known_list_parameters(self) -> set[str]:
        known = set(self.list_parameters)
        arrays = set(self.list_array_parameters)
        filterset_class = getattr(self, "filterset_class", None)
        for name, filter_ in getattr(filterset_class, "base_filters", {}).items():
            widget = getattr(filter_.field_class, "widget", None)
            if isinstance(widget, type) and issubclass(widget, filters.ArrayWidget):
                arrays.add(name)
            else:
                known.add(name)
        return known | arrays | {f"{name}[]" for name in arrays}

    def check_list_parameters(self, request) -> None:
        """An unknown query parameter on a list is a 400 naming it, not silently ignored
        (`order_id=` where `order_ids[]` is meant would otherwise list everything)."""
        unknown = sorted(set(request.query_params) - self.known_list_parameters())
        if unknown:
            raise QueryParameterError(
                {name[:100]: ["Unknown query parameter."] for name in unknown[:10]},
                code="unknown_parameter",
            )

    def filter_queryset(self, queryset):
        self.check_list_parameters(self.request)
        return super().filter_queryset(queryset)

    def list(self, request, *args, **kwargs):
        queryset = self.filter_queryset(self.get_queryset())
        page = self.paginate_queryset(queryset)
        serializer = self.output_serializer_class(
            page, many=True, context=self.get_serializer_context()
        )
        return self.get_paginated_response(serializer.data)

    def retrieve(self, request, *args, **kwargs):
        return self.render(self.get_object())
