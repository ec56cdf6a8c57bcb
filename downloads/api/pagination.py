"""The list envelope: {"object": "list", "pagination": {"count", "count_is_estimate", "limit",
"page", "url"}, "data": [...]}, paged by `page` (from 1) and `limit` (1–100, default 20;
EasyCart's `perpage` is an alias)."""

import json

from django.db import connections
from rest_framework.pagination import BasePagination
from rest_framework.response import Response

from .exceptions import QueryParameterError

DEFAULT_LIMIT = 20
MAX_LIMIT = 100
# Lists are counted exactly up to this many rows; past it PostgreSQL's planner estimates them
# (an exact COUNT(*) reads every row: ~60 ms at a million grants).
COUNT_CAP = 10_000


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


def planner_rows(queryset) -> int:
    """PostgreSQL's estimate of how many rows `queryset` returns (EXPLAIN, nothing run)."""
    sql, params = queryset.query.get_compiler(using=queryset.db).as_sql()
    with connections[queryset.db].cursor() as cursor:
        cursor.execute(f"EXPLAIN (FORMAT JSON) {sql}", params)
        plan = cursor.fetchone()[0]
    if isinstance(plan, str):  # drivers that leave json undecoded
        plan = json.loads(plan)
    return int(plan[0]["Plan"]["Plan Rows"])


def count_rows(queryset) -> tuple[int, bool]:
    """(count, is_estimate): exact up to COUNT_CAP rows, the planner's estimate (at least
    COUNT_CAP + 1) past it on PostgreSQL, exact elsewhere."""
    unordered = queryset.order_by()
    # A count over a LIMITed subquery: stops reading after COUNT_CAP + 1 rows.
    count = unordered[: COUNT_CAP + 1].count()
    if count <= COUNT_CAP:
        return count, False
    if connections[queryset.db].vendor != "postgresql":
        return unordered.count(), False
    return max(planner_rows(unordered), COUNT_CAP + 1), True


class ApiPagination(BasePagination):
    """Page numbers past the end answer an empty page without asking the database for an
    offset (a huge offset is an error on PostgreSQL). Big lists report an estimated count;
    pages are fetched key-first, so the rows skipped by the offset are never joined."""

    def paginate_queryset(self, queryset, request, view=None):
        self.request = request
        self.page = int_parameter(request, "page", default=1)
        self.limit = min(
            int_parameter(request, "limit", default=DEFAULT_LIMIT, alias="perpage"), MAX_LIMIT
        )
        self.count, self.count_is_estimate = count_rows(queryset)
        offset = (self.page - 1) * self.limit
        if self.count_is_estimate and offset >= self.count:
            # Past the estimated end: the estimate may be short, so ask for the truth.
            self.count, self.count_is_estimate = queryset.order_by().count(), False
        if offset >= self.count:
            return []
        # The page's keys first (without the select_related joins), then only its rows with their
        # select_related/prefetch_related/annotations.
        keys = list(queryset.values_list("pk", flat=True)[offset : offset + self.limit])
        if self.count_is_estimate:
            if not keys:
                self.count, self.count_is_estimate = queryset.order_by().count(), False
            elif len(keys) < self.limit:
                # The last page: now the count is known.
                self.count, self.count_is_estimate = offset + len(keys), False
            else:
                self.count = max(self.count, offset + len(keys))
        if not keys:
            return []
        rows = {row.pk: row for row in queryset.order_by().filter(pk__in=keys)}
        return [rows[key] for key in keys if key in rows]

    def get_paginated_response(self, data):
        return Response(
            {
                "object": "list",
                "pagination": {
                    "count": self.count,
                    "count_is_estimate": self.count_is_estimate,
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
                    "required": ["count", "count_is_estimate", "limit", "page", "url"],
                    "properties": {
                        "count": {"type": "integer", "minimum": 0},
                        "count_is_estimate": {
                            "type": "boolean",
                            "description": (
                                f"True when `count` is past {COUNT_CAP:,} objects and is the "
                                "database's estimate rather than an exact count."
                            ),
                        },
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
