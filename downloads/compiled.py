"""Compiled reads: ORM querysets turned into SQL once, for the hot paths.

Django compiles a queryset again on every evaluation; for the joined reads of the download,
the storefront JSON and the order page that was 0.4-0.6 ms a query, several times what
PostgreSQL takes to answer it (see bench/). The querysets stay the one definition of what is
read: this module only keeps their SQL and gives their rows back as the ORM would, as
values (`CompiledQuery`) or as the model instances `select_related()` and
`prefetch_related()` would have built (`ModelRow`, `prefetched`).
"""

import weakref
from collections.abc import Callable, Iterable

from django.core.exceptions import FieldDoesNotExist
from django.db import DEFAULT_DB_ALIAS, connections
from django.db.models import DEFERRED, Model, QuerySet


class _Fixed:
    """A parameter of the compiled SQL that is part of the query, not one of its arguments
    (`Order.Status.REFUNDED` in a condition): the same on every compilation."""

    __slots__ = ("value",)

    def __init__(self, value):
        self.value = value

    def __eq__(self, other):
        return isinstance(other, _Fixed) and self.value == other.value


class CompiledQuery:
    """A `values_list()` queryset turned into SQL once per database connection, then run with
    new string arguments.

    `build(*args)` returns the queryset; it is built with placeholder strings, which must
    come out as the SQL's parameters unchanged (plain `=` lookups), so the SQL text is the
    same on every call and PostgreSQL runs a prepared statement. The query's other
    parameters (a status in a condition) are kept as they were compiled; it is compiled
    twice to prove they do not change (a `now()` would). Rows get the fields' own
    conversions (JSON, and on SQLite UUIDs and datetimes), as the ORM would give them.
    """

    def __init__(self, build: Callable[..., QuerySet]):
        self._build = build
        self._compiled: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()

    def _compile_with(self, db, tag: str):
        arity = self._build.__code__.co_argcount
        placeholders = [f"\x00{tag}{i}\x00" for i in range(arity)]
        queryset = self._build(*placeholders).using(db.alias)
        compiler = queryset.query.get_compiler(connection=db)
        sql, params = compiler.as_sql()
        order = []
        for param in params:
            if param in placeholders:
                order.append(placeholders.index(param))
            elif isinstance(param, str) and "\x00" in param:
                # A lookup made something else of an argument (`startswith` adds a %).
                raise ValueError(f"{self._build.__qualname__}: only plain string arguments")
            else:
                order.append(_Fixed(param))
        return sql, order, compiler

    def _compile(self, db):
        sql, order, compiler = self._compile_with(db, "arg")
        again, order_again, _ = self._compile_with(db, "again")
        if again != sql or order_again != order:
            raise ValueError(f"{self._build.__qualname__}: its SQL changes between compilations")
        fields = [column[0] for column in compiler.select[: compiler.col_count]]
        converters = [
            (position, expression, functions)
            for position, (functions, expression) in compiler.get_converters(fields).items()
        ]
        compiled = self._compiled[db] = (sql, order, converters, len(fields))
        return compiled

    def _compiled_for(self, db):
        return self._compiled.get(db) or self._compile(db)

    @staticmethod
    def _bound(order, args) -> list:
        return [args[part] if type(part) is int else part.value for part in order]

    def sql(self, using: str = DEFAULT_DB_ALIAS) -> tuple[str, list]:
        """The query's SQL text and, for each of its parameters, the index of the argument it
        takes (or a fixed value, never an int): for a statement that embeds the query
        (`rows_of`)."""
        sql, order, *_ = self._compiled_for(connections[using])
        return sql, order

    def rows(self, *args: str, using: str = DEFAULT_DB_ALIAS) -> list[tuple]:
        """Every row of the query for `args`, as `values_list()` would return them."""
        sql, order, *_ = self._compiled_for(connections[using])
        return self.rows_of(sql, self._bound(order, args), using=using)

    def rows_of(self, sql: str, params, using: str = DEFAULT_DB_ALIAS) -> list[tuple]:
        """The rows of a statement whose first columns are this query's (one that embeds it,
        `sql()`), with those columns converted as `values_list()` would convert them."""
        with connections[using].cursor() as cursor:
            cursor.execute(sql, params)
            return self.converted(cursor.fetchall(), using=using)

    @staticmethod
    def together(*calls: tuple["CompiledQuery", tuple], using: str = DEFAULT_DB_ALIAS):
        """The rows of several queries (each a `(query, args)` pair), in ONE statement on
        PostgreSQL: each query numbers its rows in its own order and the numbered results are
        joined on FALSE (a FULL JOIN that pairs nothing), so every row of the statement
        belongs to one query, its other queries' columns NULL. Elsewhere (SQLite, in
        process: no round trip to save) they run one after the other."""
        db = connections[using]
        if db.vendor != "postgresql":
            return [query.rows(*args, using=using) for query, args in calls]
        parts, params, widths = [], [], []
        for i, (query, args) in enumerate(calls):
            sql, order, _, width = query._compiled_for(db)
            # row_number() numbers the rows as the query's ORDER BY delivers them.
            numbered = f"(SELECT row_number() OVER () AS n, q.* FROM ({sql}) q) AS t{i}"  # noqa: S608 - the ORM's compiled SQL; values are parameters
            parts.append(numbered)
            params.extend(CompiledQuery._bound(order, args))
            widths.append(width)
        joined = " FULL JOIN ".join(
            part if i == 0 else f"{part} ON FALSE" for i, part in enumerate(parts)
        )
        statement = f"SELECT * FROM {joined}"  # noqa: S608 - as above
        with db.cursor() as cursor:
            cursor.execute(statement, params)
            rows = cursor.fetchall()
        results, start = [], 0
        for (query, _), width in zip(calls, widths, strict=True):
            mine = sorted(
                (row[start : start + 1 + width] for row in rows if row[start] is not None),
                key=lambda part: part[0],
            )
            results.append(query.converted([part[1:] for part in mine], using=using))
            start += 1 + width
        return results

    def converted(self, rows, using: str = DEFAULT_DB_ALIAS) -> list[tuple]:
        """Rows of this query's columns (first), converted as `values_list()` would."""
        db = connections[using]
        _, _, converters, _ = self._compiled_for(db)
        if not converters:
            return rows
        converted = []
        for row in rows:
            row = list(row)
            for position, expression, functions in converters:
                value = row[position]
                for function in functions:
                    value = function(value, expression, db)
                row[position] = value
            converted.append(tuple(row))
        return converted


class ModelRow:
    """Which models' fields a compiled query's row holds, and in which columns: the queried
    model and what it joins, each at its lookup path ("" for the queried model,
    "download__media" for a grant's file), then `extra` columns (annotations).

    `instances(row)` builds them back as `select_related()` would: `Model.from_db` with the
    fields read (the rest stay deferred), each joined model cached on the one it was reached
    from (`grant.download.media` asks nothing), None where a LEFT JOIN matched nothing, and
    the extras set on the queried model's instance as annotations are.
    """

    def __init__(
        self, *parts: tuple[str, type[Model], Iterable[str] | None], extra: Iterable[str] = ()
    ):
        self._parts = []
        models, start = {}, 0
        for path, model, names in parts:
            concrete = [field.attname for field in model._meta.concrete_fields]
            wanted = set(concrete if names is None else names)
            if wanted - set(concrete):
                raise ValueError(f"{model.__name__} has no fields {sorted(wanted - set(concrete))}")
            # Model.from_db() takes the loaded values in the order of the concrete fields.
            attnames = [name for name in concrete if name in wanted]
            pk = start + attnames.index(model._meta.pk.attname)
            # For each concrete field, its column in the row, or None for a field not read:
            # from_db() is then given every field (DEFERRED where not read) and takes its
            # fast path instead of matching names field by field.
            slots = tuple(
                start + attnames.index(name) if name in wanted else None for name in concrete
            )
            self._parts.append((path, model, attnames, start, slots, pk))
            models[path] = model
            start += len(attnames)
        self.extra = tuple(extra)
        self.width = start + len(self.extra)
        # Where select_related() would cache each joined instance: the forward relation it
        # was reached by (a FilteredRelation's path is no field: its caller places it).
        self._links = []
        for path, *_ in self._parts[1:]:
            parent, _, name = path.rpartition("__")
            field = _forward_relation(models.get(parent), name)
            if field is not None:
                self._links.append((parent, path, field))

    def lookups(self) -> list[str]:
        """The `values_list()` arguments that give this row."""
        return [
            f"{path}__{name}" if path else name
            for path, _, attnames, *_ in self._parts
            for name in attnames
        ] + list(self.extra)

    def columns(self) -> list[tuple[type[Model], str]]:
        """Each model column's (model, attname), in the row's order (extras after these)."""
        return [(model, name) for _, model, attnames, *_ in self._parts for name in attnames]

    def position(self, path: str, name: str) -> int:
        """Where the field `name` (an attname, or an extra) of the model at `path` is."""
        if name in self.extra and not path:
            return self.width - len(self.extra) + self.extra.index(name)
        for part_path, _, attnames, start, *_ in self._parts:
            if part_path == path:
                return start + attnames.index(name)
        raise KeyError(path)

    def instances(self, row, using: str = DEFAULT_DB_ALIAS) -> dict[str, Model | None]:
        """The row's instances by path, linked as select_related() links them."""
        built = {}
        for path, model, attnames, _, slots, pk in self._parts:
            if row[pk] is None:
                built[path] = None
            else:
                values = [DEFERRED if slot is None else row[slot] for slot in slots]
                built[path] = model.from_db(using, attnames, values)
        for parent, path, field in self._links:
            if built[parent] is not None:
                field.set_cached_value(built[parent], built[path])
        if self.extra:
            instance = built[""]
            for name, value in zip(self.extra, row[self.width - len(self.extra) :], strict=True):
                setattr(instance, name, value)
        return built

    def instance(self, row, using: str = DEFAULT_DB_ALIAS) -> Model:
        """The queried model's instance, what it joins cached on it (`instances`)."""
        return self.instances(row, using)[""]


def fields_except(model: type[Model], *names: str) -> tuple[str, ...]:
    """Every concrete field of `model` (attnames) but `names`: for a ModelRow part."""
    concrete = [field.attname for field in model._meta.concrete_fields]
    if set(names) - set(concrete):
        raise ValueError(f"{model.__name__} has no fields {sorted(set(names) - set(concrete))}")
    return tuple(name for name in concrete if name not in names)


def _forward_relation(model: type[Model] | None, name: str):
    if model is None:
        return None
    try:
        field = model._meta.get_field(name)
    except FieldDoesNotExist:
        return None
    # A forward foreign key or one-to-one: what select_related() follows.
    return field if field.is_relation and field.concrete and not field.many_to_many else None


def cache_related(instance: Model, name: str, value: Model | None) -> None:
    """Cache `value` as `instance.<name>` (a forward relation) as select_related() and
    prefetch_related() do: the ids already agree, so none of the assignment's checks."""
    instance._meta.get_field(name).set_cached_value(instance, value)


def prefetched(instance: Model, name: str, objects: list) -> None:
    """Leave `objects` where `prefetch_related(name)` leaves them for a reverse foreign key:
    `instance.<name>.all()` then returns them without a query, each object's own relation
    back to `instance` is cached, and a filter on the manager still asks the database about
    this instance's objects only."""
    manager = getattr(instance, name)
    queryset = manager.all()  # the related manager's own filtered queryset
    # As django.db.models.query.prefetch_one_level leaves a prefetched manager.
    queryset._result_cache = objects
    queryset._prefetch_done = True
    instance.__dict__.setdefault("_prefetched_objects_cache", {})[name] = queryset
    back = manager.field
    for item in objects:
        back.set_cached_value(item, instance)
