"""The list envelope: {"object": "list", "pagination": {"count", "limit", "page", "url"},
"data": [...]}, paged by `page` (from 1) and `limit` (1–100, default 20; EasyCart's `perpage`
is an alias)."""

from rest_framework.pagination import BasePagination
from rest_framework.response import Response

from .exceptions import QueryParameterError

DEFAULT_LIMIT = 20
MAX_LIMIT = 100


def int_parameter(request, name: str, *, default: int, minimum: int = 1, alias: str | None = None):
    """An integer query parameter of at least `minimum`, or a 400 naming it."""
    raw = request.query_params.get(name)
    if raw is None and alias:
        raw, name = request.query_params.get(alias), alias
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        # int() also refuses digit strings too long to convert (thousands of digits).
        raise QueryParameterError({name: ["A whole number is required."]}, code="invalid") from None
    if value < minimum:
        raise QueryParameterError({name: [f"Must be at least {minimum}."]}, code="min_value")
    return value


class ApiPagination(BasePagination):
    """Page numbers past the end answer an empty page without asking the database for an
    offset (a huge offset is an error on PostgreSQL)."""

    def paginate_queryset(self, queryset, request, view=None):
        self.request = request
        self.page = int_parameter(request, "page", default=1)
        self.limit = min(
            int_parameter(request, "limit", default=DEFAULT_LIMIT, alias="perpage"), MAX_LIMIT
        )
        self.count = queryset.count()
        offset = (self.page - 1) * self.limit
        if offset >= self.count:
            return []
        return list(queryset[offset : offset + self.limit])

    def get_paginated_response(self, data):
        return Response(
            {
                "object": "list",
                "pagination": {
                    "count": self.count,
                    "limit": self.limit,
                    "page": self.page,
                    "url": self.request.path,
                },
                "data": data,
            }
        )

    def get_paginated_response_schema(self, schema):
        return {
            "type": "object",
            "required": ["object", "pagination", "data"],
            "properties": {
                "object": {"type": "string", "enum": ["list"]},
                "pagination": {
                    "type": "object",
                    "required": ["count", "limit", "page", "url"],
                    "properties": {
                        "count": {"type": "integer", "minimum": 0},
                        "limit": {"type": "integer", "minimum": 1, "maximum": MAX_LIMIT},
                        "page": {"type": "integer", "minimum": 1},
                        "url": {"type": "string"},
                    },
                },
                "data": schema,
            },
        }

    def get_schema_operation_parameters(self, view):
        def integer(name, description, **extra):
            return {
                "name": name,
                "in": "query",
                "required": False,
                "description": description,
                "schema": {"type": "integer", "minimum": 1, **extra},
            }

        return [
            integer("page", "Page number, from 1. Past the last page: an empty page."),
            integer("limit", f"Objects per page, default {DEFAULT_LIMIT}, at most {MAX_LIMIT}."),
            integer("perpage", "Alias of `limit` (EasyCart)."),
        ]
