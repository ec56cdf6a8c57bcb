"""What every viewset of the merchant API shares: `ApiViewSet` (JSON in, the envelopes out,
throttling with headers on every answer, ids checked before they reach the database), the
size-limited JSON parser, and the helpers a view uses to read a request.

Views are thin: each action validates its input with a serializer, calls one service (writes)
or a queryset with its joins (reads), and renders the output serializer. Business rules live
in downloads/services/, shared with the admin."""

import uuid

from django.conf import settings
from rest_framework import exceptions, status, viewsets
from rest_framework.parsers import JSONParser
from rest_framework.response import Response

from .. import filters
from ..exceptions import PayloadTooLarge, QueryParameterError
from ..pagination import ApiPagination
from ..throttling import ApiKeyRateThrottle, rate_limit_headers


def content_length(request, default: int = 0) -> int:
    """The request's Content-Length header, or `default` when it is missing or malformed."""
    try:
        return int(request.META.get("CONTENT_LENGTH") or default)
    except ValueError:
        return default


class LimitedJSONParser(JSONParser):
    """JSON bodies are read whole into memory: refuse more than DATA_UPLOAD_MAX_MEMORY_SIZE."""

    def parse(self, stream, media_type=None, parser_context=None):
        request = (parser_context or {}).get("request")
        limit = settings.DATA_UPLOAD_MAX_MEMORY_SIZE
        if request is not None and limit is not None and content_length(request) > limit:
            raise PayloadTooLarge(f"JSON bodies are limited to {limit} bytes.")
        return super().parse(stream, media_type, parser_context)


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
            if "\x00" in name or any("\x00" in value for value in values):
                raise QueryParameterError(
                    {name.replace("\x00", ""): ["Null characters are not allowed."]},
                    code="null_characters_not_allowed",
                )

    def finalize_response(self, request, response, *args, **kwargs):
        response = super().finalize_response(request, response, *args, **kwargs)
        for header, value in rate_limit_headers(request).items():
            response[header] = value
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

    def list(self, request, *args, **kwargs):
        queryset = self.filter_queryset(self.get_queryset())
        page = self.paginate_queryset(queryset)
        serializer = self.output_serializer_class(
            page, many=True, context=self.get_serializer_context()
        )
        return self.get_paginated_response(serializer.data)

    def retrieve(self, request, *args, **kwargs):
        return self.render(self.get_object())
